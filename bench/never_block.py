"""Never block: per-call latency of a traced fake-model chain with the OTLP endpoint healthy,
down, or accepting but answering after 5 s.

    python bench/never_block.py            # full run
    python bench/never_block.py --quick    # a smoke run

Each configuration runs in its own subprocess: llmobs with the local SQLite store plus an
`OTLPSink` pointed at a loopback receiver (healthy: answers at once; slow: answers after 5 s;
down: a closed port). The chain is prompt | fake chat model | parser with the LangChain
`CallbackHandler`. Reported: median and p99 µs per call over the measured calls, the change
against the healthy run, and what reached the store and the health counters.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sqlite3, statistics, sys, time
import llmobs
from llmobs.core.sinks import SQLiteSink
from llmobs.core.sinks.otlp import otlp
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from llmobs.integrations.langchain import CallbackHandler

endpoint, calls, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = os.environ["LLMOBS_DB"]
llmobs.configure(sinks=[SQLiteSink(db), otlp(endpoint=endpoint, timeout=10)], service_name="never-block")

class Fake(GenericFakeChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kw):
        from langchain_core.outputs import ChatGeneration, ChatResult
        msg = AIMessage(content="ok", usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
                        response_metadata={"model_name": "gpt-4o-mini"})
        return ChatResult(generations=[ChatGeneration(message=msg)])

chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | Fake(messages=iter(())) | StrOutputParser()
config = {"callbacks": [CallbackHandler()]}
times = []
for i in range(warmup + calls):
    t0 = time.perf_counter()
    chain.invoke({"q": f"question {i}"}, config=config)
    if i >= warmup:
        times.append((time.perf_counter() - t0) * 1e6)
llmobs.flush(timeout=30)
health = llmobs.health()
stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0]
times.sort()
print(json.dumps({"median": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1],
                  "max": times[-1], "stored": stored, "calls": warmup + calls,
                  "dropped": health["dropped"], "sink_errors": health["sink_errors"]}))
"""


class Collector(BaseHTTPRequestHandler):
    delay_s = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay_s)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(delay_s: float) -> tuple[ThreadingHTTPServer, str]:
    handler = type("Handler", (Collector,), {"delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


def closed_port_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/v1/traces"


def run(endpoint: str, calls: int, warmup: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LLMOBS_DB": str(Path(tmp) / "t.db"), "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", CHILD, endpoint, str(calls), str(warmup)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    calls, warmup, rounds = (500, 100, 1) if args.quick else (3000, 300, 3)
    healthy, healthy_url = serve(0.0)
    slow, slow_url = serve(5.0)
    down_url = closed_port_url()
    results: dict[str, list[dict[str, float]]] = {"healthy": [], "down": [], "slow (5 s)": []}
    for _ in range(rounds):  # alternate configurations round by round
        for label, url in (("healthy", healthy_url), ("down", down_url), ("slow (5 s)", slow_url)):
            results[label].append(run(url, calls, warmup))
    healthy.shutdown()
    slow.shutdown()
    base = statistics.median(r["median"] for r in results["healthy"])
    print(f"traced fake-model chain, {calls} calls after {warmup} warm-up, {rounds} round(s), median of rounds")
    print(
        f"  {'endpoint':<12} {'median µs':>10} {'p99 µs':>9} {'max µs':>9} {'vs healthy':>11} {'stored/spans':>13} {'sink errors':>11}"
    )
    for label, runs in results.items():
        med = statistics.median(r["median"] for r in runs)
        p99 = statistics.median(r["p99"] for r in runs)
        worst = max(r["max"] for r in runs)
        stored = runs[-1]["stored"]
        print(
            f"  {label:<12} {med:>10.0f} {p99:>9.0f} {worst:>9.0f} {100 * (med - base) / base:>+10.1f}% "
            f"{stored:>13} {runs[-1]['sink_errors']:>11}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
