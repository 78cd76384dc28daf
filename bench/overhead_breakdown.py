"""Where llmobs' per-call overhead goes: the callbacks, the pipeline's Python work, the SQLite write.

    python bench/overhead_breakdown.py langchain simple
    python bench/overhead_breakdown.py openai-agents tool --runs 500
    python bench/overhead_breakdown.py langchain stream --quick

A diagnostic, not a comparison with other tools (that is `*_overhead.py`). Everything runs in one
process on the workloads of `langchain_overhead.py` / `openai_agents_overhead.py`, and the modes
alternate from round to round (reversed on odd rounds); the table shows medians of µs per call
over "none" in the same round. Each block is timed up to the `flush()` that writes its spans, so
work left queued at the end of a block is counted too.

Modes:

- `none`: no tracing; `noop` (LangChain only): a `BaseCallbackHandler` that does nothing;
- `app`: llmobs' callbacks and tracer, finished spans dropped instead of queued: the
  application-thread cost alone;
- `full`: llmobs as shipped: the pipeline thread extracts, prices and serialises each batch; the
  store's writer process applies the content policy and writes it;
- `inline`: the store written by the pipeline thread (`LLMOBS_STORE_WRITER=inline`): content
  policy, rows and SQLite statements in this process too.

The writer process's CPU is not in these figures (they are this process's wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmobs
from llmobs.core.model import Span
from llmobs.core.runtime import get_runtime
from llmobs.core.sinks import SQLiteSink

MODES = ["none", "noop", "app", "full", "inline"]


def _use(mode: str, submit: Callable[[Span], None]) -> None:
    """Set llmobs up for `mode`: spans dropped or queued, the store written here or by the writer."""
    runtime = get_runtime()
    pipeline = runtime.pipeline
    (sink,) = pipeline.sinks
    assert isinstance(sink, SQLiteSink)
    runtime.tracer._submit = (lambda span: None) if mode == "app" else submit
    with pipeline._drain_lock:
        process = mode != "inline"
        sink.writer_mode = "process" if process else "inline"
        pipeline._raw = sink.takes_raw_spans(pipeline.policy if process else None)


def _langchain(variant: str) -> tuple[Callable[[str], None], list[str]]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_overhead import build_workloads

    from llmobs.integrations.langchain import CallbackHandler

    workload = build_workloads()[variant]
    ours = [CallbackHandler()]
    handlers = {"none": [], "noop": [BaseCallbackHandler()]}

    def call(mode: str) -> None:
        workload(handlers.get(mode, ours))

    return call, MODES


def _openai_agents(variant: str) -> tuple[Callable[[str], None], list[str]]:
    from agents.tracing import set_trace_processors
    from openai_agents_overhead import build_workloads

    from llmobs.integrations.openai_agents import TracingProcessor

    workload = build_workloads()[variant]
    processor = TracingProcessor()
    loop = asyncio.new_event_loop()
    current: list[str] = []

    def call(mode: str) -> None:
        if current != [mode]:
            set_trace_processors([] if mode == "none" else [processor])
            current[:] = [mode]
        loop.run_until_complete(workload())

    return call, [m for m in MODES if m != "noop"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("framework", choices=["langchain", "openai-agents"])
    parser.add_argument("variant", help="a variant of that framework's overhead benchmark (simple, tool, ...)")
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--runs", type=int, help="calls per timed block (default 1000; quick 100)")
    parser.add_argument("--rounds", type=int, help="rounds (default 7; quick 2)")
    args = parser.parse_args()
    runs = args.runs or (100 if args.quick else 1000)
    rounds = args.rounds or (2 if args.quick else 7)

    with tempfile.TemporaryDirectory() as tmp:
        llmobs.configure(service_name="bench", db_path=os.path.join(tmp, "bench.db"))
        submit = get_runtime().tracer._submit
        setup = _langchain if args.framework == "langchain" else _openai_agents
        call, modes = setup(args.variant)
        for mode in modes:  # warm every path (imports, price cache, statements)
            _use(mode, submit)
            for _ in range(max(10, runs // 10)):
                call(mode)
        llmobs.flush(timeout=120)

        results: dict[str, list[float]] = {mode: [] for mode in modes}
        for r in range(rounds):
            for mode in modes if r % 2 == 0 else modes[::-1]:
                _use(mode, submit)
                gc.collect()
                t0 = time.perf_counter()
                for _ in range(runs):
                    call(mode)
                llmobs.flush(timeout=120)
                results[mode].append((time.perf_counter() - t0) / runs * 1e6)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)
        _use("full", submit)
        llmobs.shutdown()

    base = statistics.median(results["none"])
    print(f"\n{args.framework} {args.variant}: {runs} calls per block, {rounds} rounds; none = {base:.0f} µs per call")
    print("| mode | µs per call over none |")
    print("|---|---|")
    for mode in modes[1:]:
        over = statistics.median(b - a for a, b in zip(results["none"], results[mode], strict=True))
        print(f"| {mode} | +{over:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
