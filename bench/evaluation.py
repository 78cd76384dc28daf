"""Evaluation, alerts and drift benchmark.

    python bench/evaluation.py            # full run
    python bench/evaluation.py --quick    # a smoke run with small counts

1. App-thread cost of one `llmobs.span()` enter+exit, with online evaluation off and on (10%):
   evaluation must add nothing to the application's thread (it happens on the pipeline's and the
   evaluation worker's). Median of rounds, wall µs per span.
2. Pipeline throughput into a memory sink (N finished root spans, then `flush()`, which waits
   for evaluation too): no evaluators, three cheap built-ins at 10% and at 100% sampling.
3. `AlertEngine.observe` throughput over a synthetic stream (six rules: span rules, error rate,
   cost per minute, p95 duration over 10 minutes).
4. `drift.compare` time for two sides of N requests each (1000 bootstrap resamples).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llmobs
from llmobs.core import drift
from llmobs.core.alerts import AlertEngine
from llmobs.core.model import Cost, ErrorInfo, Span, SpanKind, Status, Usage
from llmobs.core.runtime import get_runtime
from llmobs.core.sinks import MemorySink
from llmobs.evaluators import LatencyBudget, NonEmptyAnswer, Refusal

S = 1_000_000_000


def evaluators() -> list[llmobs.Evaluator]:
    return [NonEmptyAnswer(), Refusal(), LatencyBudget("5s")]


def configure(rate: float | None) -> MemorySink:
    sink = MemorySink(max_spans=1000)
    if rate is None:
        llmobs.configure(sinks=[sink])
    else:
        llmobs.configure(sinks=[sink], evaluators=evaluators(), eval_sample_rate=rate)
    return sink


def app_thread_us(n: int, rounds: int, rate: float | None) -> float:
    configure(rate)
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            with llmobs.span("answer", kind="chain") as s:
                s.output = "Your refund was issued."
        results.append((time.perf_counter() - t0) / n * 1e6)
        llmobs.flush(timeout=60)
    return statistics.median(results)


def throughput(n: int, rate: float | None) -> float:
    configure(rate)
    submit = get_runtime().pipeline.submit
    spans = [
        Span(
            trace_id=f"{random.getrandbits(128):032x}",
            span_id=f"{i + 1:016x}",
            name="answer",
            kind=SpanKind.CHAIN,
            start_ns=1,
            end_ns=1 + 300_000_000,
            input="when will my refund arrive?",
            output="Your refund was issued; expect it within 5 business days.",
        )
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for span in spans:
        submit(span)
    assert llmobs.flush(timeout=600)
    return n / (time.perf_counter() - t0)


def stream(n: int) -> list[Span]:
    rng = random.Random(1)
    out = []
    t = 1_700_000_000 * S
    for i in range(n):
        t += int(rng.expovariate(50) * S)  # ~50 spans/s
        llm = i % 3 == 0
        span = Span(
            trace_id=f"{i // 3 + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_id=None if i % 3 == 2 else f"{i + 3:016x}",
            name="s",
            kind=SpanKind.LLM if llm else SpanKind.CHAIN,
            start_ns=t - int(rng.uniform(0.1, 4) * S),
            end_ns=t,
            ttft_ms=rng.uniform(100, 900) if llm else None,
        )
        if llm:
            span.usage = Usage(1000, 100)
            span.cost = Cost(0.0, 0.002, 0.002, "bench")
        if rng.random() < 0.02:
            span.status, span.error = Status.ERROR, ErrorInfo("E", "x")
        out.append(span)
    return out


def alerts_per_s(n: int) -> float:
    spans = stream(n)
    engine = AlertEngine(
        ["cost>0.05", "duration>3s", "error", "error_rate>5%/5m", "cost>1.00/1m", "p95(duration)>3s/10m"],
        cooldown="5m",
    )
    t0 = time.perf_counter()
    for span in spans:
        engine.observe(span)
    return n / (time.perf_counter() - t0)


def drift_seconds(n: int) -> float:
    spans = stream(n * 3)
    half = len(spans) // 2
    t0 = time.perf_counter()
    drift.compare(spans[:half], spans[half:], resamples=1000)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()
    pairs, rounds, n, stream_n, drift_n = (
        (2_000, 3, 5_000, 20_000, 500) if args.quick else (20_000, 7, 100_000, 300_000, 2_000)
    )

    print(f"app thread, llmobs.span() enter+exit ({pairs} x {rounds} rounds, median µs per span)")
    off = app_thread_us(pairs, rounds, None)
    on = app_thread_us(pairs, rounds, 0.1)
    print(f"  evaluation off           {off:8.2f} µs")
    print(f"  evaluation on (10%)      {on:8.2f} µs")
    print(f"pipeline throughput into memory ({n} root spans, to flush)")
    for label, rate in (("no evaluators", None), ("3 built-ins, 10%", 0.1), ("3 built-ins, 100%", 1.0)):
        print(f"  {label:24} {throughput(n, rate):10,.0f} spans/s")
    print(f"alert engine, 6 rules ({stream_n} spans)  {alerts_per_s(stream_n):10,.0f} spans/s")
    print(f"drift.compare, {drift_n} vs {drift_n} requests, 1000 resamples  {drift_seconds(drift_n):.2f} s")
    llmobs.shutdown()


if __name__ == "__main__":
    main()
