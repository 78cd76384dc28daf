"""The public API: span(), @trace, instrument(), health(), and import without frameworks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator

import pytest

import llmobs
from llmobs import SpanKind, Status, Usage
from tests.conftest import Recorder


def test_span_context_manager_records_fields_and_nesting(recorder: Recorder) -> None:
    with llmobs.span("plan", kind="chain", input="question", attributes={"session_id": "s1"}) as outer:
        assert llmobs.current_span() is outer
        with llmobs.span("chat gpt-4o", kind=SpanKind.LLM, model="gpt-4o", provider="openai") as llm:
            llm.usage = Usage(input_tokens=10, output_tokens=2)
            llm.output = "answer"
    assert llmobs.current_span() is None
    assert recorder.tree() == [("chain", "plan", [("llm", "chat gpt-4o", [])])]
    plan = recorder.by_name("plan")
    assert plan.input == "question"
    assert plan.attributes == {"session_id": "s1"}
    assert plan.service == "tests"
    assert plan.framework == "manual"
    assert recorder.by_name("chat gpt-4o").output == "answer"


def test_unknown_kind_falls_back_to_custom(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    with llmobs.span("x", kind="banana"):
        pass
    (span,) = recorder.spans()
    assert span.kind is SpanKind.CUSTOM
    assert "unknown span kind 'banana'" in caplog.text


def test_trace_decorator_on_functions_and_coroutines(recorder: Recorder) -> None:
    @llmobs.trace
    def add(a: int, b: int = 2) -> int:
        return a + b

    @llmobs.trace(name="fetch", kind="retriever")
    async def fetch(query: str) -> list[str]:
        await asyncio.sleep(0)
        return [query.upper()]

    class Agent:
        @llmobs.trace(kind="agent")
        def run(self, task: str) -> str:
            return add(1) and task

    assert add(1, b=5) == 6
    assert asyncio.run(fetch("q")) == ["Q"]
    assert Agent().run("t") == "t"
    spans = recorder.spans()
    first_add = next(s for s in spans if s.name.endswith("add") and s.input == {"a": 1, "b": 5})
    assert first_add.output == 6
    assert first_add.kind is SpanKind.CUSTOM
    fetch_span = recorder.by_name("fetch")
    assert fetch_span.kind is SpanKind.RETRIEVER
    assert fetch_span.input == {"query": "q"} and fetch_span.output == ["Q"]
    run_span = next(s for s in spans if s.name.endswith("Agent.run"))
    assert run_span.input == {"task": "t"}  # self is not captured
    nested_add = next(s for s in spans if s.name.endswith("add") and s.input == {"a": 1})
    assert nested_add.parent_id == run_span.span_id


def test_trace_decorator_on_generators_covers_the_iteration(recorder: Recorder) -> None:
    @llmobs.trace(kind="llm")
    def stream() -> Iterator[str]:
        yield "a"
        yield "b"

    @llmobs.trace
    async def astream() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def consume() -> list[int]:
        return [i async for i in astream()]

    assert list(stream()) == ["a", "b"]
    assert asyncio.run(consume()) == [0, 1, 2]
    gen = stream()
    next(gen)
    gen.close()  # abandoned stream: not an error
    spans = [s for s in recorder.spans() if s.name.endswith("stream")]
    assert [s.output for s in spans] == [["a", "b"], [0, 1, 2], None]
    assert all(s.status is Status.OK for s in spans)


def test_trace_decorator_records_and_reraises(recorder: Recorder) -> None:
    @llmobs.trace
    def explode() -> None:
        raise LookupError("nothing here")

    with pytest.raises(LookupError, match="nothing here"):
        explode()
    (span,) = recorder.spans()
    assert span.status is Status.ERROR
    assert span.error is not None and (span.error.type, span.error.message) == ("LookupError", "nothing here")


def test_trace_can_skip_capturing_arguments_and_results(recorder: Recorder) -> None:
    @llmobs.trace(capture_input=False, capture_output=False)
    def private(password_hint: str) -> str:
        return "secret stuff"

    private("x")
    (span,) = recorder.spans()
    assert span.input is None and span.output is None


def test_disabled_records_nothing(recorder: Recorder) -> None:
    llmobs.configure(sinks=[recorder.sink], enabled=False)
    with llmobs.span("x"):
        pass
    assert recorder.spans() == []


def test_configure_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown llmobs sink 'nowhere'"):
        llmobs.configure(sinks=["nowhere"])
    with pytest.raises(ValueError, match="sample_rate must be between 0 and 1"):
        llmobs.configure(sample_rate=2)
    with pytest.raises(ValueError, match="unknown integration"):
        llmobs.instrument("nope")


def test_health_snapshot_has_every_counter(recorder: Recorder) -> None:
    with llmobs.span("x"):
        pass
    llmobs.flush()
    health = llmobs.health()
    for key in ("queued", "exported", "dropped", "unpriced", "evicted", "sink_errors", "in_flight", "sinks"):
        assert key in health
    assert health["exported"] == 1 and health["dropped"] == 0 and health["in_flight"] == 0


def test_import_llmobs_works_with_no_framework_installed(tmp_path: object) -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"langchain_core", "llama_index", "agents", "langgraph"}:
                    raise ImportError(f"blocked {name}")
                return None

        sys.meta_path.insert(0, Block())
        import llmobs
        assert llmobs.instrument() == [], "nothing to instrument"
        with llmobs.span("works"):
            pass
        assert llmobs.flush()
        assert not any(m.split(".")[0] in {"langchain_core", "llama_index", "agents"} for m in sys.modules)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
