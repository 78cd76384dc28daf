"""Send every span to Langfuse as well as to the local store.

    export LANGFUSE_PUBLIC_KEY=pk-lf-...  LANGFUSE_SECRET_KEY=sk-lf-...
    export LANGFUSE_BASE_URL=https://cloud.langfuse.com    # or https://us.cloud.langfuse.com, or your own
    python examples/forward_to_langfuse.py

Spans go over OTLP to `{LANGFUSE_BASE_URL}/api/public/otel/v1/traces` with Langfuse's own
attributes (observation type, model, usage and cost details), so Langfuse shows our token counts
and genai-prices costs rather than re-deriving them. The same works with no code change:

    LLMOBS_SINKS=sqlite,langfuse python your_app.py

and a session already recorded locally can be sent afterwards with `llmobs export --to langfuse`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import llmobs
from llmobs.core.otlp.destinations import DestinationError
from llmobs.core.sinks.otlp import OTLPSink, langfuse


def run() -> list[str]:
    """Record the manual-spans demo trace to the local store and to Langfuse; return its id.

    Raises:
        DestinationError: the Langfuse keys are not set.
    """
    sink = langfuse(timeout=5.0, flush_timeout=8.0)
    llmobs.configure(service_name="forward-to-langfuse", sinks=["sqlite", sink])
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
            "Check LANGFUSE_BASE_URL and that the host is reachable; the spans are in the local store "
            "(`llmobs traces`), and `llmobs export --to langfuse` can send them later.",
            file=sys.stderr,
        )
    else:
        print(f"sent {stats['sent']} spans to {sink.destination.describe()}; trace {', '.join(trace_ids)}")


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        run()
    except DestinationError as exc:
        print(f"Langfuse is not configured: {exc}.", file=sys.stderr)
        return 2
    finally:
        llmobs.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
