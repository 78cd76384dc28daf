"""Replay stored spans to an OTLP destination, in batches, counting what was sent and refused.

    from llmobs.core.otlp.destinations import langfuse_destination
    result = replay_spans(spans, langfuse_destination().make_exporter())
    print(result.sent, result.refused)

This is what `llmobs export --to langfuse|phoenix|otlp` runs: the way to hand a local debugging
session to the team's Langfuse or Phoenix. Unlike `OTLPSink`, it exports on the calling thread
and waits for each answer, since the caller wants the final count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from llmobs.core.model import Span
from llmobs.core.otlp.destinations import quiet_exporter_logs
from llmobs.core.otlp.encode import encode_spans

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_REPLAY_BATCH = 256


@dataclass(slots=True)
class ReplayResult:
    """Spans the destination accepted (`sent`) and did not (`refused`), and the last error seen."""

    sent: int = 0
    refused: int = 0
    batches: int = 0
    last_error: str | None = None


def replay_spans(
    spans: Iterable[Span],
    exporter: SpanExporter,
    *,
    batch_size: int = DEFAULT_REPLAY_BATCH,
    resource_attributes: Mapping[str, Any] | None = None,
    on_batch: Callable[[int, bool], None] | None = None,
) -> ReplayResult:
    """Send `spans` with `exporter`, `batch_size` at a time.

    Args:
        spans: any iterable (read lazily, so a large store is never all in memory).
        exporter: an OpenTelemetry `SpanExporter` (see `Destination.make_exporter`).
        batch_size: spans per export request.
        resource_attributes: added to each span's resource (e.g. Phoenix's project name).
        on_batch: called after each batch with its size and whether it was accepted.
    """
    from opentelemetry.sdk.trace.export import SpanExportResult

    result = ReplayResult()
    iterator = iter(spans)
    size = max(1, batch_size)
    while batch := list(islice(iterator, size)):
        result.batches += 1
        ok = False
        try:
            encoded = encode_spans(batch, resource_attributes)
            with quiet_exporter_logs():
                ok = exporter.export(encoded) is SpanExportResult.SUCCESS
            if not ok:
                result.last_error = "the endpoint refused the spans or could not be reached"
        except Exception as exc:
            result.last_error = f"{type(exc).__name__}: {exc}"
        if ok:
            result.sent += len(batch)
        else:
            result.refused += len(batch)
        if on_batch is not None:
            on_batch(len(batch), ok)
    return result
