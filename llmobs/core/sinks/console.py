"""`ConsoleSink`: one line per finished span on standard error, for quick looks."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from llmobs.core.model import Span
from llmobs.core.sinks.base import Sink


def format_span_line(span: Span) -> str:
    """A compact one-line summary: kind, name, model, tokens, cost, duration, status."""
    parts = [f"{span.trace_id[:8]}", f"{span.kind.value:<9}", span.name]
    if span.model:
        parts.append(f"model={span.model}")
    usage = span.usage
    if usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None):
        parts.append(f"tokens={usage.input_tokens or 0}/{usage.output_tokens or 0}")
    if span.cost is not None:
        parts.append(f"cost=${span.cost.total_usd:.6f}")
    elif span.usage is not None and span.model:
        parts.append("cost=?")
    if span.ttft_ms is not None:
        parts.append(f"ttft={span.ttft_ms:.0f}ms")
    parts.append(f"{span.duration_ms:.1f}ms")
    if span.error is not None:
        parts.append(f"ERROR {span.error.type}: {span.error.message}")
    return "  ".join(parts)


class ConsoleSink(Sink):
    """Prints each span as one line (to standard error unless `stream` is given)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, spans: Sequence[Span]) -> None:
        stream = self._stream or sys.stderr
        stream.write("".join(format_span_line(span) + "\n" for span in spans))

    def flush(self) -> None:
        (self._stream or sys.stderr).flush()
