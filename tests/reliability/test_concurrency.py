"""Concurrency: LangChain, LlamaIndex and Agents runs at once, in one event loop and in threads.

200 asyncio runs (the three frameworks interleaved in the same loop) and 8 threads running sync
runs of all three meanwhile. Each run carries a unique marker in its input. Every trace must be
exactly one run: the same span tree as that framework's run done alone (so counts and parents are
exact), and the only marker found anywhere in its spans is its own (no cross-talk).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents import Runner

from llmobs.core.model import Span
from llmobs.integrations import llamaindex as li
from llmobs.integrations.langchain import CallbackHandler
from tests.conftest import Recorder, Tree, span_tree
from tests.reliability import fakes

ASYNC_RUNS = 200
THREADS = 8
RUNS_PER_THREAD = 6  # two of each framework
MARKER = re.compile(r"MRK\d{4}[a-z]+")
FRAMEWORKS = ("langchain", "llamaindex", "openai-agents")


@pytest.fixture
def apps(recorder: Recorder) -> Iterator[dict[str, Any]]:
    li.instrument()
    index = fakes.llamaindex_index()
    with fakes.agents_recorded_by_llmobs():
        recorder.clear()
        yield {
            "chain": fakes.langchain_chain(),
            "handler": CallbackHandler(),
            "engine": fakes.llamaindex_engine(index),
            "agent": fakes.agents_agent(),
        }
    li.uninstrument()


def marker(number: int, framework: str) -> str:
    return f"MRK{number:04d}{framework.replace('-', '')}"


async def run_async(apps: dict[str, Any], framework: str, mark: str) -> str:
    if framework == "langchain":
        result = await apps["chain"].ainvoke({"q": mark}, config={"callbacks": [apps["handler"]]})
        return str(result)
    if framework == "llamaindex":
        return str(await apps["engine"].aquery(mark))
    return str((await Runner.run(apps["agent"], mark)).final_output)


def run_sync(apps: dict[str, Any], framework: str, mark: str) -> str:
    if framework == "langchain":
        return str(apps["chain"].invoke({"q": mark}, config={"callbacks": [apps["handler"]]}))
    if framework == "llamaindex":
        return str(apps["engine"].query(mark))
    return str(Runner.run_sync(apps["agent"], mark).final_output)


EXPECTED_ANSWER: dict[str, Callable[[str], str]] = {
    "langchain": lambda mark: f"ok: {mark}",
    "llamaindex": lambda mark: "answer",
    "openai-agents": lambda mark: f"ok: {mark}",
}


def reference_trees(apps: dict[str, Any], recorder: Recorder) -> dict[tuple[str, str], Tree]:
    """Each framework's span tree for one run done alone, sync and async (names differ)."""
    trees: dict[tuple[str, str], Tree] = {}
    for framework in FRAMEWORKS:
        recorder.clear()
        run_sync(apps, framework, marker(9998, framework))
        trees[framework, "sync"] = span_tree(recorder.spans())
        recorder.clear()
        asyncio.run(run_async(apps, framework, marker(9999, framework)))
        trees[framework, "async"] = span_tree(recorder.spans())
    recorder.clear()
    return trees


def markers_in(span: Span) -> set[str]:
    text = json.dumps([span.input, span.output, span.attributes, span.documents, span.name], default=str)
    return set(MARKER.findall(text))


def test_three_frameworks_at_once_in_a_loop_and_threads(recorder: Recorder, apps: dict[str, Any]) -> None:
    trees = reference_trees(apps, recorder)
    assert all(trees.values())
    expected: dict[str, tuple[str, str]] = {}  # marker → (framework, mode)
    results: dict[str, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def thread_body(t: int) -> None:
        try:
            start.wait()
            for r in range(RUNS_PER_THREAD):
                framework = FRAMEWORKS[r % 3]
                mark = marker(1000 + t * RUNS_PER_THREAD + r, framework)
                results[mark] = run_sync(apps, framework, mark)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    for t in range(THREADS):
        for r in range(RUNS_PER_THREAD):
            framework = FRAMEWORKS[r % 3]
            expected[marker(1000 + t * RUNS_PER_THREAD + r, framework)] = (framework, "sync")

    async def all_async() -> None:
        marks = [(marker(i, FRAMEWORKS[i % 3]), FRAMEWORKS[i % 3]) for i in range(ASYNC_RUNS)]
        expected.update({mark: (framework, "async") for mark, framework in marks})
        start.wait()
        answers = await asyncio.gather(*(run_async(apps, framework, mark) for mark, framework in marks))
        results.update({mark: answer for (mark, _), answer in zip(marks, answers, strict=True)})

    threads = [threading.Thread(target=thread_body, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    asyncio.run(all_async())
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(expected) == ASYNC_RUNS + THREADS * RUNS_PER_THREAD
    assert results == {mark: EXPECTED_ANSWER[fw](mark) for mark, (fw, _) in expected.items()}

    traces = recorder.traces()
    assert len(traces) == len(expected)  # one trace per run, no run split or merged
    seen: set[str] = set()
    for trace_id, spans in traces.items():
        found = set().union(*(markers_in(s) for s in spans))
        assert len(found) == 1, f"trace {trace_id} mixes runs: {sorted(found)}"
        (mark,) = found
        framework, mode = expected[mark]
        assert {s.framework for s in spans} == {framework}
        assert span_tree(spans) == trees[framework, mode], f"{mark}: wrong tree"
        ids = {s.span_id for s in spans}
        roots = [s for s in spans if s.parent_id is None]
        assert len(roots) == 1 and all(s.parent_id in ids for s in spans if s.parent_id is not None)
        seen.add(mark)
    assert seen == set(expected)
    spans_per_run = {key: sum(1 for _ in _walk(tree)) for key, tree in trees.items()}
    assert len(recorder.spans()) == sum(spans_per_run[key] for key in expected.values())


def _walk(tree: Tree) -> Iterator[tuple[str, str]]:
    for kind, name, children in tree:
        yield kind, name
        yield from _walk(children)
