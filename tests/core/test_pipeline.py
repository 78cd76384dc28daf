"""The pipeline: never blocks the app, counts what it drops, delivers everything by exit."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
import weakref
from collections.abc import Sequence

import pytest

import llmobs
from llmobs.core.model import Span, Usage
from llmobs.core.pipeline import DRAIN_BEFORE_PROMOTION_PERIODS
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


class Tag:
    """Lives exactly as long as the span whose attributes hold it (a span takes no weak reference)."""


class DeferringSink(Sink):
    """Keeps `write` to bookkeeping and does its I/O in `deliver`, as the store's sink does."""

    name = "deferring"

    def __init__(self) -> None:
        self.names: list[str] = []
        self.undelivered: list[weakref.ref[Tag]] = []
        self.alive_at_delivery: list[int] = []

    def write(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self.names.append(span.name)
            tag = span.attributes["tag"] = Tag()
            self.undelivered.append(weakref.ref(tag))

    def deliver(self) -> None:
        if self.undelivered:
            self.alive_at_delivery.append(sum(ref() is not None for ref in self.undelivered))
            self.undelivered.clear()


def test_sinks_deliver_once_the_pipeline_holds_none_of_the_batch() -> None:
    # A delivery that releases the GIL lets the application run; spans still referenced then
    # would outlive its young collections and be promoted.
    sink = DeferringSink()
    llmobs.configure(sinks=[sink], batch_size=8, flush_interval=60)
    for i in range(20):
        with llmobs.span(f"s{i}"):
            pass
    assert llmobs.flush()
    assert sink.names == [f"s{i}" for i in range(20)]
    assert sink.alive_at_delivery and set(sink.alive_at_delivery) == {0}


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="CPython 3.14's incremental collector counts differently")
def test_the_queue_is_drained_before_the_garbage_collector_would_promote_it() -> None:
    memory = MemorySink()
    llmobs.configure(sinks=[memory], batch_size=10_000, flush_interval=60)
    for i in range(20):
        with llmobs.span(f"s{i}"):
            pass
    time.sleep(0.2)
    assert memory.spans == []  # no batch is full and the timer is a minute away
    threshold = gc.get_threshold()[1]

    def periods_left() -> int:
        """Young collection periods until the middle generation is collected too."""
        return threshold + 2 - gc.get_count()[1]

    gc.collect(1)
    while periods_left() > DRAIN_BEFORE_PROMOTION_PERIODS + 1:
        gc.collect(0)
    assert periods_left() == DRAIN_BEFORE_PROMOTION_PERIODS + 1
    with llmobs.span("early"):  # one period too early to drain
        pass
    time.sleep(0.2)
    assert memory.spans == []
    # A busy application thread hands the GIL over only every switch interval, about one
    # young period of a tight loop: the drain is asked for several periods ahead.
    gc.collect(0)
    assert periods_left() == DRAIN_BEFORE_PROMOTION_PERIODS >= 3
    with llmobs.span("next"):  # the next span wakes the worker
        pass
    deadline = time.monotonic() + 10
    while len(memory.spans) < 22 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [s.name for s in memory.spans] == [f"s{i}" for i in range(20)] + ["early", "next"]
