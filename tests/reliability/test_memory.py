"""Bounded memory: thousands of traced runs per framework, some never ending, in subprocesses.

Runs bench/memory.py's measurement (one fresh interpreter per framework, all three at once) with
smaller counts: 5,000 runs each, 500 of them started and never ended, a small in-flight cap and
a short TTL. In-flight state never exceeds the cap, the cap and then the TTL evict every run that
never ended (the tracer's map and the integration's own are empty at the end), and RSS grows
less than 20 MB after warm-up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory.py"
RUNS, HUNG, WARMUP, CAP, TTL = 5_000, 500, 1_000, 30, 1.0


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_memory", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    bench = load_bench()
    children = {fw: bench.run_child(fw, RUNS, HUNG, WARMUP, CAP, TTL) for fw in bench.FRAMEWORKS}
    return {fw: bench.collect(process, timeout=240) for fw, process in children.items()}


@pytest.mark.parametrize("framework", ["langchain", "llamaindex", "openai_agents"])
def test_memory_stays_bounded(results: dict[str, dict[str, Any]], framework: str) -> None:
    r = results[framework]
    assert (r["runs"], r["hung"], r["cap"]) == (RUNS, HUNG, CAP)
    assert 0 < r["max_in_flight"] <= CAP
    # Hung runs were still in flight before the quiet TTL, and nothing is after it: the cap cannot
    # have done that (the count was already under it), the TTL did.
    assert 0 < r["in_flight_before_quiet"] <= CAP
    assert r["in_flight_end"] == 0
    assert r["integration_open_end"] == 0
    hung_spans = HUNG * (1 if framework == "llamaindex" else 2)
    assert r["evicted"] == hung_spans  # every span of a run that never ended, and nothing else
    assert r["rss_growth_mb"] < 20.0, r
    assert load_bench().verdict(r) == []
