"""Bounded memory: many traced invocations per framework, some of which never end.

    python bench/memory.py                 # 100,000 runs per framework, 1,000 of them never end
    python bench/memory.py --quick         # 5,000 runs, 500 never end (a smoke run)
    python bench/memory.py --json          # one JSON object per framework

Each framework runs in its own subprocess (fake models, no network): a LangChain chain
(prompt | fake chat model | parser, `CallbackHandler`), a LlamaIndex query on MockLLM and
MockEmbedding (`instrument()`), an OpenAI Agents run on a fake `Model` (llmobs' processor).
Spread evenly through the runs, runs are started and never ended, the way a crashed worker or an
abandoned stream leaves them: the handler's start callbacks are called directly (LangChain
`on_chain_start` + `on_chat_model_start`, LlamaIndex `span_enter`, Agents `on_trace_start` +
`on_span_start`). llmobs is configured with `max_in_flight` (the cap) and a short
`in_flight_ttl`; spans go to a sink that only counts them, so what is measured is llmobs' own
state, not a store's.

Reported per framework: the largest in-flight count seen (sampled after every run) against the
cap, evictions, in-flight count and the integration's own open-run map at the end (after one TTL
of quiet and a few more runs, so TTL eviction has swept), and RSS growth in MB between the end of
the warm-up and the end (after `gc.collect()`). Goal: in-flight never above the cap, every run
that never ended evicted, RSS growth under 20 MB.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("langchain", "llamaindex", "openai_agents")
RSS_GOAL_MB = 20.0


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# -- the child: one framework ------------------------------------------------------------------


def _app(framework: str) -> tuple[Callable[[int], Any], Callable[[int], None], Callable[[], int]]:
    """(run one traced invocation, start one that never ends, size of the integration's own run map)."""
    import uuid

    from tests.reliability import fakes

    if framework == "langchain":
        from llmobs.integrations.langchain import CallbackHandler

        handler = CallbackHandler()
        chain = fakes.langchain_chain()
        config = {"callbacks": [handler]}

        def run(i: int) -> Any:
            return chain.invoke({"q": f"question {i}"}, config=config)

        def hang(i: int) -> None:
            root, model = uuid.uuid4(), uuid.uuid4()
            handler.on_chain_start({"name": "HungChain"}, {"q": i}, run_id=root)
            handler.on_chat_model_start({"name": "Hung"}, [[]], run_id=model, parent_run_id=root)

        return run, hang, lambda: 0

    if framework == "llamaindex":
        from llama_index_instrumentation import get_dispatcher

        from llmobs.integrations import llamaindex as li

        li.instrument()
        index = fakes.llamaindex_index()
        engine = fakes.llamaindex_engine(index)
        (span_handler,) = [h for h in get_dispatcher().span_handlers if type(h) is li.SpanHandler]
        recorder = span_handler._recorder
        import inspect

        bound = inspect.signature(lambda query: None).bind("q")

        def run(i: int) -> Any:
            return engine.query(f"question {i}")

        def hang(i: int) -> None:
            span_handler.span_enter(f"RetrieverQueryEngine.query-{uuid.uuid4()}", bound, engine)

        return run, hang, lambda: len(recorder.open)

    import asyncio

    from agents import Runner
    from agents.tracing import agent_span, trace

    from llmobs.integrations import openai_agents

    processor = openai_agents.instrument(replace=True)
    assert processor is not None
    agent = fakes.agents_agent()
    loop = asyncio.new_event_loop()

    def run(i: int) -> Any:
        return loop.run_until_complete(Runner.run(agent, f"question {i}")).final_output

    def hang(i: int) -> None:
        hung_trace = trace(f"hung {i}")  # created, never started or finished by the SDK itself
        processor.on_trace_start(hung_trace)
        hung_span = agent_span(name="Hung", parent=hung_trace)
        processor.on_span_start(hung_span)

    return run, hang, lambda: 0


def child(framework: str, runs: int, hung: int, warmup: int, cap: int, ttl: float) -> dict[str, Any]:
    import gc

    import llmobs
    from llmobs.core.runtime import get_tracer
    from llmobs.core.sinks.base import Sink

    class CountingSink(Sink):
        name = "count"

        def __init__(self) -> None:
            self.count = 0

        def write(self, spans: Sequence[Any]) -> None:
            self.count += len(spans)

    sink = CountingSink()
    llmobs.configure(sinks=[sink], max_in_flight=cap, in_flight_ttl=ttl, service_name="bench-memory")
    tracer = get_tracer()
    run, hang, open_runs = _app(framework)

    for i in range(warmup):
        run(i)
    llmobs.flush(timeout=60)
    gc.collect()
    rss_start = rss_mb()

    every = max(1, runs // hung) if hung else 0
    max_in_flight = 0
    hung_started = 0
    t0 = time.perf_counter()
    for i in range(runs):
        if hung_started < hung and i % every == 0:
            # In a context of its own, as a crashed task's run would be: not the parent of what follows.
            contextvars.copy_context().run(hang, i)
            hung_started += 1
        run(i)
        count = tracer.in_flight_count()
        if count > max_in_flight:
            max_in_flight = count
    elapsed = time.perf_counter() - t0
    in_flight_before_quiet = tracer.in_flight_count()
    # One TTL of quiet, then enough starts for a TTL sweep (every 256 starts): whatever never
    # ended is gone by now.
    time.sleep(ttl * 1.5)
    for i in range(300):
        run(runs + i)
    llmobs.flush(timeout=60)
    gc.collect()
    rss_end = rss_mb()
    return {
        "framework": framework,
        "runs": runs,
        "hung": hung_started,
        "cap": cap,
        "ttl_s": ttl,
        "max_in_flight": max_in_flight,
        "in_flight_before_quiet": in_flight_before_quiet,
        "in_flight_end": tracer.in_flight_count(),
        "integration_open_end": open_runs(),
        "evicted": tracer.evicted,
        "spans_written": sink.count,
        "rss_start_mb": round(rss_start, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_start, 2),
        "us_per_run": round(elapsed / max(1, runs) * 1e6, 1),
    }


def run_child(framework: str, runs: int, hung: int, warmup: int, cap: int, ttl: float) -> subprocess.Popen[str]:
    """Start one framework's measurement in its own interpreter (read its JSON from stdout)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        framework,
        "--runs",
        str(runs),
        "--hung",
        str(hung),
        "--warmup",
        str(warmup),
        "--cap",
        str(cap),
        "--ttl",
        str(ttl),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_AGENTS_DISABLE_TRACING": "0"}
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(process: subprocess.Popen[str], timeout: float | None = None) -> dict[str, Any]:
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"child failed ({process.returncode}):\n{err[-4000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def verdict(result: dict[str, Any]) -> list[str]:
    """What misses the goal (empty: all met)."""
    problems = []
    if result["max_in_flight"] > result["cap"]:
        problems.append(f"in-flight {result['max_in_flight']} above the cap {result['cap']}")
    if result["evicted"] < result["hung"]:
        problems.append(f"only {result['evicted']} of {result['hung']} never-ended runs evicted")
    if result["in_flight_end"] != 0:
        problems.append(f"{result['in_flight_end']} spans still in flight after the TTL")
    if result["integration_open_end"] != 0:
        problems.append(f"{result['integration_open_end']} runs still in the integration's own map")
    if result["rss_growth_mb"] >= RSS_GOAL_MB:
        problems.append(f"RSS grew {result['rss_growth_mb']} MB")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 runs per framework, 500 never ending")
    parser.add_argument("--json", action="store_true", help="print one JSON object per framework")
    parser.add_argument("--framework", choices=FRAMEWORKS, action="append", help="only this framework (repeatable)")
    parser.add_argument("--runs", type=int, help="traced invocations per framework")
    parser.add_argument("--hung", type=int, help="runs started and never ended")
    parser.add_argument("--warmup", type=int, help="runs before the RSS baseline")
    parser.add_argument("--cap", type=int, default=500, help="max_in_flight")
    parser.add_argument("--ttl", type=float, default=2.0, help="in_flight_ttl in seconds")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = args.runs or (5_000 if args.quick else 100_000)
    hung = args.hung if args.hung is not None else (500 if args.quick else 1_000)
    warmup = args.warmup if args.warmup is not None else (1_000 if args.quick else 5_000)

    if args.child:
        print(json.dumps(child(args.child, runs, hung, warmup, args.cap, args.ttl)))
        return 0

    frameworks = args.framework or list(FRAMEWORKS)
    results = []
    for framework in frameworks:  # one at a time: a quiet machine measures RSS and speed best
        results.append(collect(run_child(framework, runs, hung, warmup, args.cap, args.ttl)))
    failed = False
    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        print(f"bounded memory: {runs:,} runs per framework, {hung:,} never end, cap {args.cap}, TTL {args.ttl}s")
        header = f"{'framework':<14}{'max in-flight':>14}{'cap':>6}{'evicted':>9}{'end':>5}{'open':>6}"
        header += f"{'RSS start':>11}{'growth MB':>11}{'µs/run':>9}  goal"
        print(header)
        for r in results:
            problems = verdict(r)
            failed |= bool(problems)
            print(
                f"{r['framework']:<14}{r['max_in_flight']:>14}{r['cap']:>6}{r['evicted']:>9}{r['in_flight_end']:>5}"
                f"{r['integration_open_end']:>6}{r['rss_start_mb']:>11.1f}{r['rss_growth_mb']:>11.2f}"
                f"{r['us_per_run']:>9.0f}  {'met' if not problems else '; '.join(problems)}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
