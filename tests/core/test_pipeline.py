"""The pipeline: never blocks the app, counts what it drops, delivers everything by exit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

import llmobs
from llmobs.core.model import Span, Usage
from llmobs.core.sinks import MemorySink, Sink
from tests.conftest import Recorder


class BlockingSink(Sink):
    """Holds the pipeline thread until released, like a hung network endpoint."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.spans: list[Span] = []

    def write(self, spans: Sequence[Span]) -> None:
        self.entered.set()
        self.release.wait(30)
        self.spans.extend(spans)


class FailingSink(Sink):
    name = "failing"

    def write(self, spans: Sequence[Span]) -> None:
        raise ConnectionError("endpoint down")


def test_a_full_queue_drops_and_counts_without_blocking(caplog: pytest.LogCaptureFixture) -> None:
    sink = BlockingSink()
    llmobs.configure(sinks=[sink], queue_size=50, batch_size=10, flush_interval=0.001)
    with llmobs.span("first"):
        pass
    assert sink.entered.wait(10)  # the worker is now stuck inside the sink

    def produce() -> None:
        for i in range(1000):
            with llmobs.span(f"s{i}"):
                pass

    producer = threading.Thread(target=produce)
    producer.start()
    producer.join(timeout=20)
    assert not producer.is_alive(), "recording a span blocked on a stuck sink"
    health = llmobs.health()
    assert health["dropped"] == 1000 - 50
    assert health["queued"] == 50
    assert "span queue full" in caplog.text
    sink.release.set()
    assert llmobs.flush(timeout=10)
    assert len(sink.spans) == 1 + 50
    assert llmobs.health()["dropped"] == 950


def test_flush_returns_false_when_a_sink_hangs_past_the_timeout() -> None:
    sink = BlockingSink()
    llmobs.configure(sinks=[sink], flush_interval=0.001)
    with llmobs.span("x"):
        pass
    assert llmobs.flush(timeout=0.2) is False
    sink.release.set()
    assert llmobs.flush(timeout=10) is True


def test_a_failing_sink_is_counted_and_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    memory = MemorySink()
    llmobs.configure(sinks=[FailingSink(), memory], flush_interval=0.001, batch_size=5)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        for i in range(20):
            with llmobs.span(f"s{i}"):
                pass
        assert llmobs.flush()
    assert len(memory.spans) == 20
    health = llmobs.health()
    assert health["sinks"]["failing"]["errors"] >= 1
    assert health["sinks"]["failing"]["last_error"] == "ConnectionError: endpoint down"
    assert health["sinks"]["memory"]["written"] == 20
    assert health["sink_errors"] == health["sinks"]["failing"]["errors"]
    assert caplog.text.count("sink failing failed") == 1  # logged once, counted always


def test_deferred_extraction_runs_on_the_pipeline_thread_before_pricing(recorder: Recorder) -> None:
    seen: list[str] = []

    def extract(span: Span) -> None:
        seen.append(threading.current_thread().name)
        span.usage = Usage(input_tokens=1000, output_tokens=100)

    with llmobs.span("chat gpt-4o", kind="llm", model="gpt-4o", provider="openai") as s:
        s.deferred = extract
    (span,) = recorder.spans()
    assert seen == ["llmobs-pipeline"]
    assert span.usage == Usage(input_tokens=1000, output_tokens=100)
    assert span.cost is not None and span.cost.total_usd == pytest.approx(0.0035)
    assert span.deferred is None


def test_a_deferred_extraction_that_fails_keeps_the_span(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    def broken(span: Span) -> None:
        raise KeyError("usage")

    for _ in range(3):
        with llmobs.span("chat", kind="llm") as s:
            s.deferred = broken
    assert len(recorder.spans()) == 3
    assert caplog.text.count("payload not understood") == 1


def test_exceptions_in_user_code_pass_through_unchanged(recorder: Recorder) -> None:
    class AppError(Exception):
        pass

    original = AppError("the app's own error")
    with pytest.raises(AppError) as raised, llmobs.span("failing"):
        raise original
    assert raised.value is original
    (span,) = recorder.spans()
    assert span.error is not None and span.error.type == "AppError"
    assert span.error.message == "the app's own error"


def test_shutdown_flushes_and_recording_starts_afresh(recorder: Recorder) -> None:
    with llmobs.span("before"):
        pass
    assert llmobs.shutdown()
    assert [s.name for s in recorder.sink.spans] == ["before"]
    with llmobs.span("after"):  # a fresh default runtime: the local store
        pass
    assert llmobs.flush()
    assert llmobs.health()["exported"] == 1
