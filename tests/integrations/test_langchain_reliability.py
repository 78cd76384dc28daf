"""The LangChain integration's guarantees: global registration without doubles, reused run ids,
bounded state, and never raising into the application."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda

import llmobs
from llmobs.core import runtime
from llmobs.core.model import Status
from llmobs.core.sinks import MemorySink
from llmobs.core.tracer import EVICTED_ERROR_TYPE
from llmobs.integrations import langchain as lc
from llmobs.integrations.langchain import CallbackHandler
from llmobs.integrations.langchain.record import RunRecord
from tests.conftest import Recorder
from tests.integrations.test_langchain import (
    CHAIN_TREE,
    FakeChat,
    no_leftover_langchain_instrumentation,  # noqa: F401 - an autouse fixture
    prompt_chain,
    replies,
    reply,
)


@pytest.fixture
def instrumented() -> Iterator[CallbackHandler]:
    handler = lc.instrument()
    yield handler
    lc.uninstrument()


# -- global registration -------------------------------------------------------------------------


def test_instrument_traces_without_callbacks(recorder: Recorder, instrumented: CallbackHandler) -> None:
    assert prompt_chain(FakeChat(messages=replies(1))).invoke({"q": "x"}) == "Paris is the capital."
    assert recorder.tree() == CHAIN_TREE
    assert lc.instrument() is instrumented  # idempotent


def test_llmobs_instrument_registers_langchain(recorder: Recorder) -> None:
    try:
        assert "langchain" in llmobs.instrument("langchain")
        prompt_chain(FakeChat(messages=replies(1))).invoke({"q": "x"})
        assert recorder.tree() == CHAIN_TREE
    finally:
        lc.uninstrument()


def test_global_plus_explicit_handler_records_each_run_once(recorder: Recorder, instrumented: CallbackHandler) -> None:
    chain = prompt_chain(FakeChat(messages=replies(2)))
    chain.invoke({"q": "x"}, config={"callbacks": [CallbackHandler()]})
    assert recorder.tree() == CHAIN_TREE
    recorder.clear()
    chain.invoke({"q": "x"}, config={"callbacks": [CallbackHandler(), instrumented]})
    assert recorder.tree() == CHAIN_TREE


def test_global_plus_local_model_handler_records_each_run_once(
    recorder: Recorder, instrumented: CallbackHandler
) -> None:
    # The model's own (local) handler and the inherited global one both see the model run.
    model = FakeChat(messages=replies(1), callbacks=[CallbackHandler()])
    prompt_chain(model).invoke({"q": "x"})
    assert recorder.tree() == CHAIN_TREE


def test_two_explicit_handlers_record_each_run_once(recorder: Recorder) -> None:
    prompt_chain(FakeChat(messages=replies(1))).invoke(
        {"q": "x"}, config={"callbacks": [CallbackHandler(), CallbackHandler()]}
    )
    assert recorder.tree() == CHAIN_TREE


def test_global_handler_is_seen_from_plain_threads(recorder: Recorder, instrumented: CallbackHandler) -> None:
    chain = prompt_chain(FakeChat(messages=replies(1)))
    worker = threading.Thread(target=lambda: chain.invoke({"q": "x"}))
    worker.start()
    worker.join()
    assert recorder.tree() == CHAIN_TREE


def test_uninstrument_stops_global_tracing(recorder: Recorder) -> None:
    lc.instrument()
    lc.uninstrument()
    assert lc.global_handler() is None
    prompt_chain(FakeChat(messages=replies(1))).invoke({"q": "x"})
    assert recorder.spans() == []


# -- run ids -------------------------------------------------------------------------------------


def test_reused_run_id_sequentially_makes_two_intact_traces(recorder: Recorder) -> None:
    config: RunnableConfig = {"callbacks": [CallbackHandler()], "run_id": uuid.uuid4()}
    chain = prompt_chain(FakeChat(messages=replies(2)))
    chain.invoke({"q": "a"}, config=config)
    chain.invoke({"q": "b"}, config=config)
    traces = recorder.traces()
    assert len(traces) == 2
    for spans in traces.values():
        assert recorder.tree(spans) == CHAIN_TREE


def test_reused_run_id_concurrently_keeps_both_runs(recorder: Recorder) -> None:
    run_id = uuid.uuid4()
    handler = CallbackHandler()

    async def step(x: str) -> str:
        await asyncio.sleep(0.01)
        return x

    inner = RunnableLambda(step, name="inner")

    async def outer(x: str, config: RunnableConfig) -> str:
        return await inner.ainvoke(x, config)

    chain = RunnableLambda(outer, name="outer")

    async def main() -> list[str]:
        config: RunnableConfig = {"callbacks": [handler], "run_id": run_id}
        return await asyncio.gather(chain.ainvoke("a", config=config), chain.ainvoke("b", config=config))

    assert asyncio.run(main()) == ["a", "b"]
    spans = recorder.spans()
    assert sorted(s.name for s in spans) == ["inner", "inner", "outer", "outer"]
    roots = [s for s in spans if s.name == "outer"]
    assert all(s.parent_id is None and s.status is Status.OK for s in roots)
    assert len({s.trace_id for s in roots}) == 2
    # Each inner run hangs under an outer run (LangChain gave both the same parent id).
    root_ids = {s.span_id for s in roots}
    assert all(s.parent_id in root_ids for s in spans if s.name == "inner")
    assert runtime.get_tracer().in_flight_count() == 0


# -- bounded state ---------------------------------------------------------------------------------


def test_20000_invocations_leave_no_run_state() -> None:
    sink = MemorySink()
    llmobs.configure(sinks=[sink], flush_interval=0.01)
    handler = CallbackHandler()
    model = FakeChat(messages=itertools.repeat(reply("ok")))
    config: RunnableConfig = {"callbacks": [handler]}
    for _ in range(20_000):
        model.invoke("hi", config=config)
    assert llmobs.flush(timeout=60)
    assert len(sink.spans) == 20_000
    assert all(s.usage is not None and s.usage.total_tokens == 1500 for s in sink.spans)
    assert runtime.get_tracer().in_flight_count() == 0
    assert vars(handler) == {}  # the handler itself holds nothing
    sink.clear()
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is RunRecord]


def test_runs_that_never_end_are_evicted_by_the_tracer_cap(recorder: Recorder) -> None:
    llmobs.configure(sinks=[recorder.sink], flush_interval=0.005, max_in_flight=50)
    handler = CallbackHandler()
    for _ in range(200):  # a start with no end: an abandoned run
        handler.on_chain_start(None, {"q": "x"}, run_id=uuid.uuid4(), name="abandoned")
    tracer = runtime.get_tracer()
    assert tracer.in_flight_count() <= 50
    evicted = recorder.spans()
    assert len(evicted) >= 150
    assert all(s.status is Status.ERROR and s.error and s.error.type == EVICTED_ERROR_TYPE for s in evicted)
    assert all(s.input == {"q": "x"} for s in evicted)  # the payload still reached the span


# -- never raising into the application ----------------------------------------------------------


def test_a_broken_tracer_does_not_break_the_app(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import llmobs.integrations.langchain.handler as handler_module

    def broken() -> Any:
        raise RuntimeError("tracer exploded")

    monkeypatch.setattr(handler_module, "get_tracer", broken)
    before = lc.fault_counts().get("on_chain_start:RuntimeError", 0)
    chain = prompt_chain(FakeChat(messages=replies(2)))
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        assert chain.invoke({"q": "x"}, config={"callbacks": [CallbackHandler()]}) == "Paris is the capital."
        assert chain.invoke({"q": "x"}, config={"callbacks": [CallbackHandler()]}) == "Paris is the capital."
    assert lc.fault_counts()["on_chain_start:RuntimeError"] == before + 6  # 3 chain runs per call
    warnings = [r for r in caplog.records if "on_chain_start" in r.getMessage()]
    assert len(warnings) <= 1  # logged once per kind of fault
    assert recorder.spans() == []


def test_unreadable_payload_keeps_the_span(recorder: Recorder) -> None:
    class Weird:
        @property
        def generations(self) -> Any:
            raise ValueError("cannot read me")

    handler = CallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chat_model_start({"name": "X"}, [[]], run_id=run_id, metadata={"ls_model_name": "gpt-4o"})
    handler.on_llm_end(Weird(), run_id=run_id)
    (span,) = recorder.spans()
    assert span.kind.value == "llm" and span.status is Status.OK


def test_exceptions_reach_the_app_unchanged(recorder: Recorder) -> None:
    class Boom(Exception):
        pass

    error = Boom("exact object")

    def fail(_: str) -> str:
        raise error

    with pytest.raises(Boom) as caught:
        RunnableLambda(fail, name="fail").invoke("x", config={"callbacks": [CallbackHandler()]})
    assert caught.value is error
    (span,) = recorder.spans()
    assert span.status is Status.ERROR and span.error is not None
    assert (span.error.type, span.error.message) == ("Boom", "exact object")


def test_input_messages_are_copied_at_start(recorder: Recorder) -> None:
    # The pipeline reads the payloads later; an agent loop's appends after the call must not leak
    # into the recorded input. A long pipeline interval makes "later" certain.
    llmobs.configure(sinks=[recorder.sink], flush_interval=60, batch_size=100_000)
    messages: list[Any] = []

    messages.append(HumanMessage("first"))
    model = FakeChat(messages=iter([AIMessage(content="a")]))
    handler = CallbackHandler()
    reply_message = model.invoke(messages, config={"callbacks": [handler]})
    messages.append(reply_message)
    messages.append(HumanMessage("second"))
    (span,) = recorder.spans()
    assert span.input == [{"role": "user", "content": "first"}]


def test_reused_run_id_on_a_streamed_model_times_each_first_token(recorder: Recorder) -> None:
    # The handler skips the lookup for later tokens of the run it stamped last; a new run under
    # the same id object must still get its own time to first token.
    config: RunnableConfig = {"callbacks": [CallbackHandler()], "run_id": uuid.uuid4()}
    model = FakeChat(streaming=True, messages=replies(2))
    for _ in range(2):
        assert "".join(str(c.content) for c in model.stream([HumanMessage("Capital?")], config=config)).strip()
    llms = [s for s in recorder.spans() if s.kind.value == "llm"]
    assert len(llms) == 2
    for llm in llms:
        assert llm.ttft_ms is not None and 0 <= llm.ttft_ms <= llm.duration_ms
