"""How long the CLI's reads take in a large store: `llmobs traces`, `show`, and a short id.

    python bench/store_reads.py                  # a store of 200,000 spans
    python bench/store_reads.py --spans 1000000  # the default retention cap
    python bench/store_reads.py --quick          # a smoke run: 20,000 spans

A fresh store gets traces of 4 spans (a chain root, a model call, a tool call, a parser), each
trace starting after the last, written in batches as the store's writer writes them. Then each
read runs `--repeat` times and the table shows the median:

- `traces`: `store.recent_traces` with the CLI's default `--limit 20`, and with `--limit 200`;
- `traces (grouped)`: the same, made to group the whole store (what `llmobs traces` did before
  it read from the newest span back), side by side;
- `show`: `store.trace_spans` of one trace from the middle of the store;
- `short id`: `store.resolve_trace_id` of its first 8 characters.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmobs.core import store
from llmobs.core.model import Span, SpanKind, Usage

BATCH = 512


def build(path: Path, spans: int, seed: int = 1) -> list[str]:
    """A store of `spans` spans in traces of 4; returns the trace ids in start order."""
    rng = random.Random(seed)
    conn = store.connect(path)
    trace_ids: list[str] = []
    batch: list[Span] = []
    t = 1_700_000_000_000_000_000
    for n in range(spans // 4):
        trace_id = f"{rng.getrandbits(128):032x}"
        trace_ids.append(trace_id)
        root = Span(trace_id, f"{rng.getrandbits(64):016x}", "agent", SpanKind.CHAIN, None, "langchain", "bench", t)
        root.end_ns = t + 2_000_000
        root.input = f"question {n}"
        children = []
        for i, (name, kind) in enumerate(
            (("chat gpt-4o", SpanKind.LLM), ("execute_tool lookup", SpanKind.TOOL), ("StrOutputParser", SpanKind.CHAIN))
        ):
            child = Span(
                trace_id, f"{rng.getrandbits(64):016x}", name, kind, root.span_id, "langchain", "bench", t + i * 500_000
            )
            child.end_ns = child.start_ns + 400_000
            child.output = f"answer {n}.{i}"
            if kind is SpanKind.LLM:
                child.model = "gpt-4o"
                child.usage = Usage(input_tokens=1200, output_tokens=300)
            children.append(child)
        batch.extend((*children, root))  # children end first
        if len(batch) >= BATCH:
            store.insert_spans(conn, batch)
            batch = []
        t += 3_000_000
    if batch:
        store.insert_spans(conn, batch)
    conn.close()
    return trace_ids


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, help="spans in the store (default 200,000; quick 20,000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each read (default 5)")
    parser.add_argument("--quick", action="store_true", help="a smoke run with a small store")
    args = parser.parse_args()
    spans = args.spans or (20_000 if args.quick else 200_000)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reads.db"
        t0 = time.perf_counter()
        trace_ids = build(path, spans)
        print(f"store of {spans:,} spans ({len(trace_ids):,} traces) built in {time.perf_counter() - t0:.1f} s")
        conn = store.connect(path, readonly=True)
        middle = trace_ids[len(trace_ids) // 2]

        def grouped(limit: int) -> Callable[[], Any]:
            def run() -> Any:
                walk_max = store._WALK_MAX_SPANS
                store._WALK_MAX_SPANS = 0  # the walk gives up at once: the whole store is grouped
                try:
                    return store.recent_traces(conn, limit=limit)
                finally:
                    store._WALK_MAX_SPANS = walk_max

            return run

        newest = store.recent_traces(conn, limit=20)
        assert [s.trace_id for s in newest] == trace_ids[::-1][:20], "the newest traces, newest first"
        assert [s.trace_id for s in grouped(20)()] == [s.trace_id for s in newest]
        rows = [
            ("traces --limit 20", timed(lambda: store.recent_traces(conn, limit=20), args.repeat)),
            ("traces --limit 20 (grouped)", timed(grouped(20), args.repeat)),
            ("traces --limit 200", timed(lambda: store.recent_traces(conn, limit=200), args.repeat)),
            ("traces --limit 200 (grouped)", timed(grouped(200), args.repeat)),
            ("show <trace>", timed(lambda: store.trace_spans(conn, middle), args.repeat)),
            ("short id (8 characters)", timed(lambda: store.resolve_trace_id(conn, middle[:8]), args.repeat)),
        ]
        conn.close()
    print(f"\n| read ({spans:,} spans) | median ms |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e3:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
