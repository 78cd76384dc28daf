"""Send every span to Arize Phoenix as well as to the local store.

    phoenix serve                                          # or any Phoenix you can reach
    export PHOENIX_COLLECTOR_ENDPOINT=http://localhost:6006  # the default
    export PHOENIX_PROJECT_NAME=llmobs-demo                  # optional
    export PHOENIX_API_KEY=...                               # only when auth is enabled
    python examples/forward_to_phoenix.py

Spans go over OTLP/HTTP (protobuf) to `{PHOENIX_COLLECTOR_ENDPOINT}/v1/traces` with the
OpenInference attributes Phoenix reads (span kind, model, token counts, input/output, documents).
The same works with no code change:

    LLMOBS_SINKS=sqlite,phoenix python your_app.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import llmobs
from llmobs.core.sinks.otlp import OTLPSink, phoenix


def run() -> list[str]:
    """Record the manual-spans demo trace to the local store and to Phoenix; return its id."""
    sink = phoenix(timeout=3.0, flush_timeout=6.0)
    llmobs.configure(service_name="forward-to-phoenix", sinks=["sqlite", sink])
    import manual_spans

    trace_ids = manual_spans.run()
    llmobs.flush(timeout=10)
    report(sink, trace_ids)
    return trace_ids


def report(sink: OTLPSink, trace_ids: list[str]) -> None:
    stats = sink.stats()
    if stats["failed"] or stats["pending"]:
        print(
            f"could not deliver to {sink.destination.describe()}: {stats['last_error'] or 'no answer yet'}.\n"
            "Start Phoenix (`phoenix serve`) or set PHOENIX_COLLECTOR_ENDPOINT; the spans are in the local "
            "store (`llmobs traces`), and `llmobs export --to phoenix` can send them later.",
            file=sys.stderr,
        )
    else:
        print(f"sent {stats['sent']} spans to {sink.destination.describe()}; trace {', '.join(trace_ids)}")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        run()
    finally:
        llmobs.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
