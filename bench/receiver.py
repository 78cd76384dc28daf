"""Receiver benchmark: OTLP spans/s ingested, and the delay from a span's commit to its `tail` line.

    python bench/receiver.py            # full run
    python bench/receiver.py --quick    # a smoke run with small counts

1. Ingestion: the OTLP/HTTP receiver of `llmobs tail --otlp` runs in this process, writing a fresh
   store. A client *process* posts pre-encoded `ExportTraceServiceRequest`s of 100 spans each
   (protobuf, gzip, 4 keep-alive connections; a realistic mix of GenAI model calls with usage and
   no cost, tools, retrievals and agent steps, with small content). Each request is decoded,
   priced, cleaned and committed before its 200. Spans/s = spans / (first request sent → last
   200 received), measured in the client; the stored row count is checked. Goal: ≥ 10,000/s.
2. Delay: `llmobs tail --json` runs as a subprocess following a store; this process commits one
   span at a time (a few ms apart, plus a few bursts of 50) and timestamps each commit; the reader
   timestamps each line as it arrives. Delay = line read − commit. Goal: median < 250 ms.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmobs.cli.ingest import default_workers  # noqa: E402
from llmobs.cli.receiver import HTTPReceiver, SpanIngestor  # noqa: E402
from llmobs.core import store  # noqa: E402
from llmobs.core.model import Span, SpanKind, Usage  # noqa: E402
from llmobs.core.otlp import spans_to_request  # noqa: E402

BATCH = 100

CLIENT = textwrap.dedent(
    """
    import http.client, sys, threading, time
    host, port, path, connections = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    bodies = open(path, "rb").read().split(b"\\n--8<--\\n")
    per = [bodies[i::connections] for i in range(connections)]
    failures = []

    def worker(mine):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for body in mine:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf",
                                                     "Content-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=worker, args=(m,)) for m in per]
    start = time.perf_counter()
    for t in threads: t.start()
    for t in threads: t.join()
    print(time.perf_counter() - start, len(failures))
    """
)


def make_batch(b: int) -> list[Span]:
    """100 spans: 10 traces of agent → (llm, tool, retriever, llm, ...), priced on arrival."""
    spans: list[Span] = []
    t0 = time.time_ns()
    for t in range(BATCH // 10):
        trace = f"{b:016x}{t:016x}"
        root = f"{t:08x}{0:08x}"
        for i in range(1, 10):
            kind = (SpanKind.LLM, SpanKind.TOOL, SpanKind.RETRIEVER)[i % 3]
            span = Span(
                trace_id=trace,
                span_id=f"{t:08x}{i:08x}",
                parent_id=root,
                name=f"{kind.value}-{i}",
                kind=kind,
                framework="bench",
                service="bench-client",
                start_ns=t0 + i * 1_000_000,
                end_ns=t0 + i * 1_000_000 + 800_000,
                input=[{"role": "user", "content": f"question {i} about order {b}-{t}"}],
                output={"role": "assistant", "content": "an answer of moderate length " * 3},
                attributes={"session_id": f"s-{t}", "step": i},
            )
            if kind is SpanKind.LLM:
                span.model, span.provider = "gpt-4o-mini", "openai"
                span.usage = Usage(input_tokens=1200 + i, output_tokens=150, total_tokens=1350 + i)
                span.ttft_ms = 120.0
            spans.append(span)
        root_span = Span(trace_id=trace, span_id=root, name="agent", kind=SpanKind.AGENT, framework="bench")
        root_span.service, root_span.start_ns, root_span.end_ns = "bench-client", t0, t0 + 10_000_000
        spans.append(root_span)
    return spans


def bench_ingest(requests: int, connections: int, workers: int, workdir: Path) -> dict[str, float]:
    bodies = [gzip.compress(spans_to_request(make_batch(b)).SerializeToString()) for b in range(requests)]
    assert all(b"\n--8<--\n" not in body for body in bodies)
    payload = workdir / "bodies.bin"
    payload.write_bytes(b"\n--8<--\n".join(bodies))
    db = workdir / f"ingest-{workers}.db"
    ingestor = SpanIngestor(db, workers=workers)
    receiver = HTTPReceiver(ingestor, port=0)
    try:
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, "127.0.0.1", str(receiver.port), str(payload), str(connections)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        elapsed, failures = out.stdout.split()
    finally:
        receiver.stop()
        ingestor.close()
    conn = store.connect(db, readonly=True)
    rows = store.count_spans(conn)
    priced = conn.execute("SELECT COUNT(*) FROM spans WHERE kind = 'llm' AND cost_usd IS NOT NULL").fetchone()[0]
    conn.close()
    total = requests * BATCH
    assert int(failures) == 0, f"{failures} requests failed"
    assert rows == total, f"stored {rows} of {total}"
    assert priced == requests * 30, f"priced {priced} llm spans of {requests * 30}"
    return {"spans": total, "seconds": float(elapsed), "spans_per_s": total / float(elapsed)}


def bench_delay(samples: int, workdir: Path) -> dict[str, float]:
    db = workdir / "delay.db"
    conn = store.connect(db)
    env = {**os.environ, "LLMOBS_DB": str(db), "PYTHONPATH": str(ROOT)}
    tail = subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", "tail", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    arrivals: queue.Queue[tuple[int, str]] = queue.Queue()

    def read() -> None:
        assert tail.stdout is not None
        for line in tail.stdout:
            arrivals.put((time.time_ns(), json.loads(line)["name"]))

    threading.Thread(target=read, daemon=True).start()
    committed: dict[str, int] = {}
    try:
        # Wait until tail follows: sentinels until one comes back.
        for k in range(200):
            store.insert_spans(conn, [Span(trace_id="e" * 32, span_id=f"{k:016x}", name=f"ready-{k}")])
            try:
                arrivals.get(timeout=0.2)
                break
            except queue.Empty:
                continue
        time.sleep(0.3)
        while not arrivals.empty():
            arrivals.get()
        n = 0
        while n < samples:
            burst = 50 if n % 100 == 50 else 1  # mostly single spans, now and then a burst
            for _ in range(min(burst, samples - n)):
                name = f"span-{n}"
                store.insert_spans(conn, [Span(trace_id="d" * 32, span_id=f"{n:016x}", name=name)])
                committed[name] = time.time_ns()
                n += 1
            time.sleep(0.013)  # not in step with the 50 ms poll
        delays: list[float] = []
        deadline = time.monotonic() + 30
        while len(delays) < samples and time.monotonic() < deadline:
            try:
                arrived, name = arrivals.get(timeout=1)
            except queue.Empty:
                continue
            if name in committed:
                delays.append((arrived - committed[name]) / 1e6)
    finally:
        tail.terminate()
        tail.wait(10)
        conn.close()
    assert len(delays) == samples, f"only {len(delays)} of {samples} lines arrived"
    delays.sort()
    return {
        "samples": samples,
        "median_ms": statistics.median(delays),
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
        "max_ms": delays[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--connections", type=int, default=4, help="client connections posting at once")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: as tail --otlp)")
    args = parser.parse_args()
    requests, samples = (20, 60) if args.quick else (500, 400)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        modes = sorted({0, default_workers() if args.workers is None else args.workers, *([2] if args.quick else [])})
        ingests = {w: bench_ingest(requests, args.connections, w, workdir) for w in modes}
        delay = bench_delay(samples, workdir)
    for workers, ingest in ingests.items():
        where = "in the receiver process" if workers == 0 else f"in {workers} worker processes"
        print(f"receiver ingest, decoding {where}: {ingest['spans']} spans in {ingest['seconds']:.2f}s "
              f"over {args.connections} connections = {ingest['spans_per_s']:,.0f} spans/s  (goal ≥ 10,000)")  # fmt: skip
    print(f"commit → tail line: median {delay['median_ms']:.1f} ms, p99 {delay['p99_ms']:.1f} ms, "
          f"max {delay['max_ms']:.1f} ms over {delay['samples']} spans  (goal median < 250 ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
