"""Shared fixtures: an isolated store for every test, and a recorder of finished spans.

Every test gets its own `LLMOBS_DB` in a temporary folder and a fresh llmobs runtime, so no
test reads another's spans and none ever touches `~/.llmobs`.

    def test_something(recorder):
        with llmobs.span("root"):
            ...
        assert recorder.tree() == [("custom", "root", [])]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context

import llmobs
from llmobs.core import runtime, tracer
from llmobs.core.model import Span
from llmobs.core.sinks import MemorySink

#: A span tree as tests compare it: (kind, name, children) per span, children in start order.
Tree = list[tuple[str, str, Any]]


class Recorder:
    """Collects every span llmobs records during a test, in memory."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def spans(self) -> list[Span]:
        """Every span finished so far (flushes the pipeline first)."""
        assert llmobs.flush(timeout=10), "llmobs.flush timed out"
        return self.sink.spans

    def by_name(self, name: str) -> Span:
        """The one span called `name`; fails if there are none or several."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span named {name!r}, got {len(found)}: {[s.name for s in self.spans()]}"
        return found[0]

    def traces(self) -> dict[str, list[Span]]:
        out: dict[str, list[Span]] = {}
        for span in self.spans():
            out.setdefault(span.trace_id, []).append(span)
        return out

    def tree(self, spans: list[Span] | None = None) -> Tree:
        """The recorded spans as nested (kind, name, children), roots and children by start time."""
        spans = self.spans() if spans is None else spans
        return span_tree(spans)

    def clear(self) -> None:
        llmobs.flush(timeout=10)
        self.sink.clear()


def span_tree(spans: list[Span]) -> Tree:
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in sorted(spans, key=lambda x: (x.start_ns, x.end_ns)):
        parent = s.parent_id if s.parent_id in ids else None
        children.setdefault(parent, []).append(s)

    def build(parent: str | None) -> Tree:
        return [(s.kind.value, s.name, build(s.span_id)) for s in children.get(parent, [])]

    return build(None)


@pytest.fixture(autouse=True)
def isolated_llmobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private store and a fresh runtime for every test; the path of the store is yielded."""
    db = tmp_path / "traces.db"
    monkeypatch.setenv("LLMOBS_DB", str(db))
    for name in ("LLMOBS_SINKS", "LLMOBS_PRICES", "LLMOBS_CAPTURE_CONTENT", "LLMOBS_SAMPLE_RATE", "LLMOBS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    monkeypatch.setenv("LLMOBS_SERVICE_NAME", "tests")
    runtime.reset()
    # No span (ours or OpenTelemetry's) left current by an earlier test may parent this one's.
    span_token = tracer._current_span.set(None)
    otel_token = otel_context.attach(otel_context.Context())
    yield db
    _uninstrument_what_a_test_instrumented()
    runtime.reset()
    otel_context.detach(otel_token)
    tracer.deactivate_span(span_token)


def _uninstrument_what_a_test_instrumented() -> None:
    """`llmobs.instrument()` (called by a test, or by `llmobs demo` run in-process) registers
    process-wide hooks; take them down so the next test starts uninstrumented."""
    for name in ("langchain", "llamaindex", "openai_agents"):
        module = sys.modules.get(f"llmobs.integrations.{name}")
        if module is not None:
            module.uninstrument()


@pytest.fixture
def recorder() -> Recorder:
    """Record spans into memory (not the store) with a short pipeline interval."""
    sink = MemorySink()
    llmobs.configure(sinks=[sink], flush_interval=0.005)
    return Recorder(sink)


@pytest.fixture
def otlp_receiver() -> Iterator[Any]:
    """A real OTLP/HTTP receiver on a free loopback port (see tests/otlp_receiver.py)."""
    from tests.otlp_receiver import OTLPReceiver

    with OTLPReceiver() as receiver:
        yield receiver
