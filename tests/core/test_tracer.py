"""The tracer: parents from framework ids, context nesting across threads and tasks, bounds."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider

import llmobs
from llmobs.core.model import Span, SpanKind, Status
from llmobs.core.runtime import get_tracer
from llmobs.core.sinks import SQLiteSink
from llmobs.core.tracer import EVICTED_ERROR_TYPE, current_span, is_trace_sampled
from tests.conftest import Recorder


def test_keyed_spans_take_their_parent_from_the_framework_id(recorder: Recorder) -> None:
    tracer = get_tracer()
    root, child, grandchild = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    tracer.start_span(root, "chain", SpanKind.CHAIN, "test")
    tracer.start_span(child, "chat m", SpanKind.LLM, "test", parent_key=root)
    # A span that is current in this context must not steal the framework's parent.
    with llmobs.span("unrelated"):
        tracer.start_span(grandchild, "execute_tool t", SpanKind.TOOL, "test", parent_key=child)
        tracer.end_span(grandchild)
    tracer.end_span(child)
    tracer.end_span(root)
    spans = {s.name: s for s in recorder.spans()}
    assert spans["chat m"].parent_id == spans["chain"].span_id
    assert spans["execute_tool t"].parent_id == spans["chat m"].span_id
    assert {s.trace_id for s in spans.values() if s.name != "unrelated"} == {spans["chain"].trace_id}
    assert tracer.in_flight_count() == 0


def test_ids_are_w3c_hex(recorder: Recorder) -> None:
    with llmobs.span("a"):
        pass
    (span,) = recorder.spans()
    assert len(span.trace_id) == 32 and int(span.trace_id, 16) != 0
    assert len(span.span_id) == 16 and int(span.span_id, 16) != 0
    assert span.trace_id == span.trace_id.lower()


def test_a_root_of_one_framework_nests_under_an_activated_span_of_another(recorder: Recorder) -> None:
    tracer = get_tracer()
    tool = uuid.uuid4()
    tracer.start_span(tool, "execute_tool search", SpanKind.TOOL, "langchain", activate=True)
    # A root of another framework started inside the tool (no parent id of its own).
    tracer.start_span("li-query", "query", SpanKind.CHAIN, "llamaindex")
    tracer.end_span("li-query")
    tracer.end_span(tool)
    with llmobs.span("after"):
        pass
    spans = {s.name: s for s in recorder.spans()}
    assert spans["query"].parent_id == spans["execute_tool search"].span_id
    assert spans["query"].trace_id == spans["execute_tool search"].trace_id
    assert spans["after"].parent_id is None
    assert current_span() is None


def test_nesting_across_a_context_copying_thread_pool(recorder: Recorder) -> None:
    def work(i: int) -> None:
        with llmobs.span(f"task-{i}", kind="tool"):
            time.sleep(0.001)

    with llmobs.span("root", kind="chain"), ThreadPoolExecutor(max_workers=4) as pool:
        # ContextThreadPoolExecutor-style: each task runs in a copy of the submitter's context.
        futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(16)]
        for f in futures:
            f.result()
    spans = recorder.spans()
    root = next(s for s in spans if s.name == "root")
    tasks = [s for s in spans if s.name.startswith("task-")]
    assert len(tasks) == 16
    assert all(s.parent_id == root.span_id and s.trace_id == root.trace_id for s in tasks)


async def test_100_concurrent_asyncio_tasks_do_not_cross_talk(recorder: Recorder) -> None:
    async def request(i: int) -> None:
        with llmobs.span(f"request-{i}", kind="workflow"):
            await asyncio.sleep(0.001 * (i % 5))
            with llmobs.span(f"step-{i}", kind="chain"):
                await asyncio.sleep(0.001 * (i % 3))
                async with llmobs.span(f"llm-{i}", kind="llm"):
                    await asyncio.sleep(0)

    await asyncio.gather(*(request(i) for i in range(100)))
    spans = {s.name: s for s in recorder.spans()}
    assert len(spans) == 300
    assert len({spans[f"request-{i}"].trace_id for i in range(100)}) == 100
    for i in range(100):
        req, step, llm = spans[f"request-{i}"], spans[f"step-{i}"], spans[f"llm-{i}"]
        assert req.parent_id is None
        assert step.parent_id == req.span_id and step.trace_id == req.trace_id
        assert llm.parent_id == step.span_id and llm.trace_id == req.trace_id


def test_a_context_whose_reset_ran_in_a_copy_resumes_at_the_span_before(recorder: Recorder) -> None:
    # LangChain runs async end callbacks in a copy of the context: the reset never reaches this one.
    tracer = get_tracer()
    outer = tracer.start_span("outer", "outer", SpanKind.CHAIN, "test", activate=True)
    tracer.start_span("inner", "inner", SpanKind.CHAIN, "test", activate=True)
    contextvars.copy_context().run(tracer.end_span, "inner")
    assert current_span() is outer
    with llmobs.span("next"):
        pass
    tracer.end_span("outer")
    assert current_span() is None
    assert recorder.by_name("next").parent_id == outer.span_id


def test_written_spans_are_not_kept_alive(isolated_llmobs: Path) -> None:
    # Bounded memory, and no span outliving the application's young collections (promoted spans
    # bring on full collections): once written, nothing of llmobs holds a span or its content.
    llmobs.configure(sinks=[SQLiteSink(isolated_llmobs, writer="inline")])
    tracer = get_tracer()
    for i in range(2000):
        tracer.start_span(("root", i), "root", SpanKind.CHAIN, "kept-alive", activate=True)
        tracer.start_span(("child", i), "child", SpanKind.LLM, "kept-alive", parent_key=("root", i), activate=True)
        tracer.end_span(("child", i))
        tracer.end_span(("root", i))
    assert llmobs.flush(timeout=10)
    gc.collect()
    assert sum(1 for o in gc.get_objects() if type(o) is Span and o.framework == "kept-alive") == 0
    assert sqlite3.connect(isolated_llmobs).execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 4000


def test_a_reused_run_id_does_not_corrupt_the_tree(recorder: Recorder) -> None:
    tracer = get_tracer()
    key = uuid.uuid4()
    tracer.start_span(key, "outer", SpanKind.CHAIN, "test")
    tracer.start_span(key, "inner", SpanKind.CHAIN, "test", parent_key=key)
    tracer.end_span(key)  # ends the newer run
    tracer.end_span(key)  # and then the older one
    assert tracer.end_span(key) is None
    spans = {s.name: s for s in recorder.spans()}
    assert spans["inner"].parent_id == spans["outer"].span_id
    assert spans["outer"].end_ns >= spans["inner"].end_ns
    assert tracer.in_flight_count() == 0


def test_fail_span_records_the_exception_type_and_message(recorder: Recorder) -> None:
    tracer = get_tracer()
    tracer.start_span("k", "execute_tool x", SpanKind.TOOL, "test")
    tracer.fail_span("k", KeyError("missing"))
    assert tracer.fail_span("never-started", ValueError("x")) is None
    (span,) = recorder.spans()
    assert span.status is Status.ERROR
    assert span.error is not None and span.error.type == "KeyError" and span.error.message == "'missing'"


def test_in_flight_state_is_capped_and_evictions_are_counted(recorder: Recorder) -> None:
    llmobs.configure(sinks=[recorder.sink], max_in_flight=100, flush_interval=0.005)
    tracer = get_tracer()
    for i in range(1000):
        tracer.start_span(("never-ends", i), f"run-{i}", SpanKind.CHAIN, "test")
    assert tracer.in_flight_count() == 100
    assert tracer.evicted == 900
    assert llmobs.health()["evicted"] == 900
    evicted = recorder.spans()
    assert len(evicted) == 900
    assert all(s.status is Status.ERROR and s.error and s.error.type == EVICTED_ERROR_TYPE for s in evicted)
    # The newest 100 are still there and end normally.
    assert tracer.end_span(("never-ends", 999)) is not None


def test_in_flight_entries_older_than_the_ttl_are_evicted(recorder: Recorder) -> None:
    llmobs.configure(sinks=[recorder.sink], in_flight_ttl=0.05, flush_interval=0.005)
    tracer = get_tracer()
    for i in range(10):
        tracer.start_span(("stale", i), "stale", SpanKind.CHAIN, "test")
    time.sleep(0.1)
    for i in range(300):  # the sweep runs every few hundred starts
        tracer.start_span(("fresh", i), "fresh", SpanKind.CHAIN, "test")
        tracer.end_span(("fresh", i))
    assert tracer.evicted == 10
    assert tracer.in_flight_count() == 0


def test_a_root_adopts_the_active_opentelemetry_span(recorder: Recorder) -> None:
    provider = TracerProvider()
    otel_tracer = provider.get_tracer("test")
    with otel_tracer.start_as_current_span("http request") as otel_span:
        ctx = otel_span.get_span_context()
        with llmobs.span("handler"):
            pass
    (span,) = recorder.spans()
    assert span.trace_id == f"{ctx.trace_id:032x}"
    assert span.parent_id == f"{ctx.span_id:016x}"
    assert otel_trace.get_current_span().get_span_context().is_valid is False


def test_sampling_is_per_trace_and_deterministic(recorder: Recorder) -> None:
    llmobs.configure(sinks=[recorder.sink], sample_rate=0.5, flush_interval=0.005)
    for i in range(400):
        with llmobs.span(f"root-{i}"), llmobs.span(f"child-{i}"):
            pass
    spans = recorder.spans()
    by_trace: dict[str, int] = {}
    for s in spans:
        by_trace[s.trace_id] = by_trace.get(s.trace_id, 0) + 1
    assert all(count == 2 for count in by_trace.values())  # whole traces or nothing
    assert 120 <= len(by_trace) <= 280
    assert all(is_trace_sampled(t, 0.5) for t in by_trace)


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_sampling_extremes(recorder: Recorder, rate: float) -> None:
    llmobs.configure(sinks=[recorder.sink], sample_rate=rate, flush_interval=0.005)
    for _ in range(20):
        with llmobs.span("x"):
            pass
    assert len(recorder.spans()) == (20 if rate == 1.0 else 0)
