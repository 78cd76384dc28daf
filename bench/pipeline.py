"""Pipeline benchmark: app-thread cost of a span pair, and spans/s from enqueue to SQLite rows.

    python bench/pipeline.py            # full run
    python bench/pipeline.py --quick    # a smoke run with small counts

1. App-thread cost: one start+end pair through the tracer (keyed by a run id, as integrations do)
   and through `llmobs.span()`, against a no-op pair of calls with the same arguments, in the same
   run. Reported as wall-clock µs and as the calling thread's own CPU µs (`time.thread_time`),
   which excludes time the pipeline thread holds the GIL. The pipeline runs (into SQLite) during
   the measurement, as in an application.
2. Throughput: N finished spans (traces of 6 spans: a chain root, then tool and priced llm
   spans, each with small content) are submitted, then `flush()` waits until they are committed to a fresh SQLite store. Spans/s =
   N / (time from the first submit to the committed flush); the row count is checked.
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmobs
from llmobs.core.model import SpanKind, Usage
from llmobs.core.runtime import get_runtime, get_tracer


def noop_start(key: object, name: str, kind: SpanKind, framework: str, parent_key: object = None) -> None:
    return None


def noop_end(key: object) -> None:
    return None


def measure_pairs(n: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall µs, thread-CPU µs) per start+end pair, per configuration."""
    tracer = get_tracer()
    keys = [uuid.uuid4() for _ in range(1024)]
    parent = uuid.uuid4()
    tracer.start_span(parent, "root", SpanKind.CHAIN, "bench")

    def noop() -> None:
        for i in range(n):
            k = keys[i & 1023]
            noop_start(k, "chat model", SpanKind.LLM, "bench", parent)
            noop_end(k)

    def keyed() -> None:
        start, end = tracer.start_span, tracer.end_span
        for i in range(n):
            k = keys[i & 1023]
            start(k, "chat model", SpanKind.LLM, "bench", parent)
            end(k)

    def manual() -> None:
        span = llmobs.span
        for _ in range(n):
            with span("step"):
                pass

    results: dict[str, list[tuple[float, float]]] = {"no-op baseline": [], "tracer start+end": [], "llmobs.span()": []}
    for _ in range(rounds):
        for label, fn in (("no-op baseline", noop), ("tracer start+end", keyed), ("llmobs.span()", manual)):
            gc.collect()
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            w1, c1 = time.perf_counter(), time.thread_time()
            results[label].append(((w1 - w0) / n * 1e6, (c1 - c0) / n * 1e6))
            llmobs.flush(timeout=60)
    tracer.end_span(parent)
    return {
        label: (statistics.median(w for w, _ in vals), statistics.median(c for _, c in vals))
        for label, vals in results.items()
    }


def measure_throughput(n: int, db: Path) -> tuple[float, int]:
    """Spans/s from first submit to committed rows, and the number of rows found."""
    llmobs.configure(db_path=db, queue_size=n + 10, service_name="bench")
    tracer = get_tracer()
    pipeline = get_runtime().pipeline
    # Build finished spans first so only the pipeline is timed.
    spans = []
    root = None
    for i in range(n):
        kind = (SpanKind.CHAIN, SpanKind.TOOL, SpanKind.LLM)[i % 3]
        span = tracer.new_span(f"span {i % 50}", kind, "bench", parent=None if i % 6 == 0 else root)
        if i % 6 == 0:
            root = span
        span.input = {"role": "user", "content": f"question number {i}"}
        span.output = f"answer {i}"
        span.attributes["i"] = i
        if kind is SpanKind.LLM:
            span.model, span.provider = "gpt-4o-mini", "openai"
            span.usage = Usage(input_tokens=100 + i % 7, output_tokens=20, cache_read_tokens=64)
        span.end_ns = span.start_ns + 1000
        spans.append(span)
    gc.collect()
    t0 = time.perf_counter()
    for span in spans:
        pipeline.submit(span)
    assert llmobs.flush(timeout=600)
    elapsed = time.perf_counter() - t0
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    return n / elapsed, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()
    pairs, rounds, spans = (20_000, 3, 30_000) if args.quick else (200_000, 5, 300_000)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LLMOBS_DB"] = str(Path(tmp) / "pairs.db")
        # Room for a whole round, so no pair takes the cheaper "queue full" path.
        llmobs.configure(service_name="bench", queue_size=pairs * 2 + 10)
        costs = measure_pairs(pairs, rounds)
        rate, rows = measure_throughput(spans, Path(tmp) / "throughput.db")
        health = llmobs.health()
        llmobs.shutdown()

    base_wall = costs["no-op baseline"][0]
    print(
        f"app-thread cost per start+end pair ({pairs:,} pairs x {rounds} rounds, median; pipeline into SQLite running)"
    )
    print(f"  {'configuration':<20} {'wall µs':>9} {'cpu µs':>9} {'over no-op (wall)':>18}")
    for label, (wall, cpu) in costs.items():
        print(f"  {label:<20} {wall:>9.2f} {cpu:>9.2f} {wall - base_wall:>+18.2f}")
    print(f"pipeline throughput: {rate:,.0f} spans/s from submit to committed SQLite rows ({rows:,} of {spans:,} rows)")
    print(f"  dropped={health['dropped']} sink_errors={health['sink_errors']} unpriced={health['unpriced']}")
    return 0 if rows == spans else 1


if __name__ == "__main__":
    raise SystemExit(main())
