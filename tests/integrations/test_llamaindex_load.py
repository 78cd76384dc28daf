"""LlamaIndex integration under load: in-flight state and memory stay flat over many queries."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index_instrumentation import get_dispatcher

import llmobs
from llmobs.core.model import Span
from llmobs.core.runtime import get_tracer
from llmobs.core.sinks import Sink
from llmobs.integrations import llamaindex as li


class CountingSink(Sink):
    """Counts spans by kind and keeps none of them (a MemorySink would grow by design)."""

    def __init__(self) -> None:
        self.count = 0
        self.kinds: dict[str, int] = {}

    def write(self, spans: Sequence[Span]) -> None:
        self.count += len(spans)
        for s in spans:
            self.kinds[s.kind.value] = self.kinds.get(s.kind.value, 0) + 1


@pytest.fixture
def instrumented() -> Iterator[None]:
    li.instrument()
    yield
    li.uninstrument()


def _recorder() -> li.Recorder:
    handler = next(h for h in get_dispatcher().span_handlers if type(h) is li.SpanHandler)
    return handler._recorder


def test_memory_is_flat_after_5000_queries(instrumented: None) -> None:
    sink = CountingSink()
    llmobs.configure(sinks=[sink], flush_interval=0.01)
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France."), Document(text="Rome is the capital of Italy.")],
        embed_model=MockEmbedding(embed_dim=4),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=2), similarity_top_k=1)
    recorder = _recorder()

    for i in range(500):  # warm-up: caches, interned names, pools
        engine.query(f"question {i}")
    assert llmobs.flush(timeout=30)
    gc.collect()
    objects_before = len(gc.get_objects())
    for i in range(4500):
        engine.query(f"question {i}")
    assert llmobs.flush(timeout=60)
    gc.collect()
    grown = len(gc.get_objects()) - objects_before

    queries = 5000
    assert sink.count == 2 + queries * 5  # index build (2) + 5 spans per query
    assert sink.kinds == {"chain": 1 + 2 * queries, "embedding": 1 + queries, "retriever": queries, "llm": queries}
    assert recorder.open == {}
    assert get_tracer().in_flight_count() == 0
    assert len(recorder.rules) < 50
    assert llmobs.health()["dropped"] == 0
    # 4,500 queries recorded 22,500 spans (each holding several objects); what stays behind
    # must not scale with them.
    assert grown < 2_000, f"{grown} more live objects after 4,500 queries"


def test_streams_never_consumed_do_not_grow_state_without_bound(
    instrumented: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream nobody iterates never sends its End event; our span map stays capped."""
    from llama_index.core.base.llms.types import ChatMessage

    from llmobs.integrations.llamaindex import handlers

    llmobs.configure(sinks=[CountingSink()], max_in_flight=50)
    monkeypatch.setattr(handlers, "MAX_OPEN", 20)
    llm = MockLLM()
    pending = [llm.stream_chat([ChatMessage(role="user", content=f"q{i}")]) for i in range(100)]
    recorder = _recorder()
    assert 0 < len(recorder.open) <= 20
    assert get_tracer().in_flight_count() <= 50
    assert len(pending) == 100
