"""`OTLPSink`: forward spans over OTLP to a collector, Langfuse or Phoenix.

    import llmobs
    from llmobs.core.sinks.otlp import langfuse, phoenix

    llmobs.configure(sinks=["sqlite", langfuse()])     # or LLMOBS_SINKS=sqlite,langfuse

The sink encodes spans (`llmobs.core.otlp.encode_spans`) in `write`, on the pipeline thread, and
hands them to its own exporter thread, which posts them with OpenTelemetry's OTLP exporter
(`opentelemetry-exporter-otlp-proto-http`, or `-grpc` with the `grpc` extra). So an endpoint that
is down or slow never holds up the pipeline: the local store keeps getting every span, and the
application never waits on the network. The exporter retries within its timeout; after a failed
export the sink waits before trying again (backing off up to a minute), spans beyond
`max_pending` are dropped, and failures and drops are counted (`stats()`) and logged once each.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmobs.core.model import Span
from llmobs.core.otlp.destinations import (
    Destination,
    DestinationError,
    langfuse_destination,
    otlp_destination,
    phoenix_destination,
    quiet_exporter_logs,
)
from llmobs.core.otlp.encode import encode_spans
from llmobs.core.sinks.base import Sink
from llmobs.core.threads import leave_signals_to_main_thread

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger("llmobs")

DEFAULT_MAX_PENDING = 20_000
DEFAULT_EXPORT_BATCH = 512
DEFAULT_FLUSH_TIMEOUT_S = 5.0
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 60.0

__all__ = ["DestinationError", "OTLPSink", "langfuse", "otlp", "phoenix"]


class OTLPSink(Sink):
    """Sends spans to an OTLP endpoint from a background thread, never blocking the pipeline.

    Args:
        destination: where to send (`otlp_destination()`, `langfuse_destination()`, ...);
            default: `otlp_destination()`, i.e. the `OTEL_EXPORTER_OTLP_*` variables.
        exporter: an OpenTelemetry `SpanExporter` to use instead of the destination's own.
        max_pending: spans waiting for the exporter beyond this are dropped and counted.
        export_batch: most spans per export request.
        flush_timeout: longest `flush()` waits for pending spans to be sent.
    """

    name = "otlp"

    def __init__(
        self,
        destination: Destination | None = None,
        *,
        exporter: SpanExporter | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        export_batch: int = DEFAULT_EXPORT_BATCH,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT_S,
    ) -> None:
        self.destination = destination or otlp_destination()
        self.name = self.destination.name
        self._own_exporter = exporter is None
        self._exporter = exporter if exporter is not None else self.destination.make_exporter()
        self._resource_attributes = dict(self.destination.resource_attributes)
        self._max_pending = max(1, max_pending)
        self._batch = max(1, export_batch)
        self._flush_timeout = flush_timeout
        self._pending: deque[ReadableSpan] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._retry_at = 0.0
        self._backoff = _FIRST_BACKOFF_S
        self._warned: set[str] = set()
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = None
        self._start_thread()
        _live_sinks.add(self)

    # -- the pipeline's side -------------------------------------------------------------------

    def write(self, spans: Sequence[Span]) -> None:
        """Encode the batch and queue it for the exporter thread. Never waits on the network."""
        if not spans:
            return
        encoded = self._encode(spans)
        with self._cond:
            if self._closed:
                self._count_dropped(len(encoded))
                return
            room = self._max_pending - len(self._pending)
            if room < len(encoded):
                self._count_dropped(len(encoded) - max(room, 0))
                encoded = encoded[: max(room, 0)]
            self._pending.extend(encoded)
            self._cond.notify_all()

    def flush(self) -> None:
        """Wait (at most `flush_timeout`) until pending spans are sent; skipped while the endpoint
        is failing, so exit is not held up by a destination known to be down."""
        deadline = time.monotonic() + self._flush_timeout
        with self._cond:
            self._cond.notify_all()
            while (self._pending or self._busy) and not self._failing():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)

    def close(self) -> None:
        """Flush, stop the exporter thread and shut the exporter down; unsent spans count as dropped."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            self._exporter.shutdown()  # also aborts an export waiting between retries
        except Exception as exc:
            self._warn_once("shutdown", "llmobs: shutting down the %s exporter failed: %s", self.name, exc)
        self._thread.join(self._flush_timeout)
        with self._cond:
            unsent = len(self._pending)
            if unsent:
                self.dropped += unsent
                self._pending.clear()
        _live_sinks.discard(self)
        if unsent:
            logger.warning("llmobs: %d spans not yet sent to %s were dropped at shutdown", unsent, self.name)

    def stats(self) -> dict[str, Any]:
        """Counts so far: spans sent, failed (refused or unreachable), dropped, pending."""
        with self._cond:
            return {
                "sent": self.sent,
                "failed": self.failed,
                "dropped": self.dropped,
                "pending": len(self._pending),
                "last_error": self.last_error,
            }

    def _encode(self, spans: Sequence[Span]) -> list[ReadableSpan]:
        try:
            return encode_spans(spans, self._resource_attributes)
        except Exception:
            pass
        # One span the codec cannot encode must not cost the others theirs.
        encoded: list[ReadableSpan] = []
        for span in spans:
            try:
                encoded.extend(encode_spans([span], self._resource_attributes))
            except Exception as exc:
                with self._cond:
                    self.failed += 1
                self._warn_once("encode", "llmobs: could not encode span %r for %s: %r", span.name, self.name, exc)
        return encoded

    def _after_fork_in_child(self) -> None:
        # The exporter thread does not survive fork, and the parent's lock, pending spans and
        # pooled connections are the parent's: start afresh.
        self._cond = threading.Condition()
        self._pending = deque()
        self._busy = False
        if self._own_exporter:
            try:
                self._exporter = self.destination.make_exporter()
            except Exception as exc:  # pragma: no cover - it worked in the parent
                self._warn_once("fork", "llmobs: the %s exporter could not be rebuilt after fork: %s", self.name, exc)
        if not self._closed:
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"llmobs-otlp-{self.name}", daemon=True)
        self._thread.start()

    # -- the exporter thread -------------------------------------------------------------------

    def _run(self) -> None:
        leave_signals_to_main_thread()
        while True:
            with self._cond:
                while not self._closed and (not self._pending or self._failing()):
                    self._cond.wait(self._wait_s())
                if self._closed:
                    return
                batch = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
                self._busy = True
            ok, error = self._export(batch)
            with self._cond:
                self._busy = False
                if ok:
                    self.sent += len(batch)
                    self._backoff = _FIRST_BACKOFF_S
                    self._retry_at = 0.0
                else:
                    self.failed += len(batch)
                    self.last_error = error
                    self._retry_at = time.monotonic() + self._backoff
                    self._backoff = min(self._backoff * 2, _MAX_BACKOFF_S)
                    self._warn_once(
                        "export",
                        "llmobs: exporting spans to %s failed (%s); the local store still has them. "
                        "Further failures are counted, not logged.",
                        self.destination.describe(),
                        error,
                    )
                self._cond.notify_all()

    def _export(self, batch: list[ReadableSpan]) -> tuple[bool, str | None]:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            with quiet_exporter_logs():
                result = self._exporter.export(batch)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        if result is SpanExportResult.SUCCESS:
            return True, None
        return False, "the endpoint refused the spans or could not be reached"

    def _failing(self) -> bool:
        return self._retry_at > time.monotonic()

    def _wait_s(self) -> float | None:
        if self._failing():
            return max(0.01, self._retry_at - time.monotonic())
        return None

    def _count_dropped(self, count: int) -> None:
        if count <= 0:
            return
        self.dropped += count
        self._warn_once(
            "dropped", "llmobs: the %s exporter is behind (%d spans pending); dropping spans", self.name, count
        )

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)

    def __repr__(self) -> str:
        return f"OTLPSink({self.destination.describe()})"


_live_sinks: weakref.WeakSet[OTLPSink] = weakref.WeakSet()


def _after_fork() -> None:
    for sink in list(_live_sinks):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def otlp(
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    protocol: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    **sink_options: Any,
) -> OTLPSink:
    """A sink to any OTLP endpoint; what is not given comes from `OTEL_EXPORTER_OTLP_*`."""
    destination = otlp_destination(
        endpoint,
        headers=headers,
        protocol=protocol,
        compression=compression,
        timeout=timeout,
        resource_attributes=resource_attributes,
    )
    return OTLPSink(destination, **sink_options)


def langfuse(
    *,
    public_key: str | None = None,
    secret_key: str | None = None,
    base_url: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
    **sink_options: Any,
) -> OTLPSink:
    """A sink to Langfuse: keys from the arguments or `LANGFUSE_PUBLIC_KEY`/`LANGFUSE_SECRET_KEY`,
    host from `LANGFUSE_BASE_URL` (or `LANGFUSE_HOST`).

    Raises:
        DestinationError: a key is missing (at configure time, not at the first export).
    """
    destination = langfuse_destination(
        public_key=public_key, secret_key=secret_key, base_url=base_url, compression=compression, timeout=timeout
    )
    return OTLPSink(destination, **sink_options)


def phoenix(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    project_name: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
    **sink_options: Any,
) -> OTLPSink:
    """A sink to Arize Phoenix: `PHOENIX_COLLECTOR_ENDPOINT` (default `http://localhost:6006`),
    `PHOENIX_API_KEY` (bearer) and `PHOENIX_PROJECT_NAME`."""
    destination = phoenix_destination(
        endpoint=endpoint, api_key=api_key, project_name=project_name, compression=compression, timeout=timeout
    )
    return OTLPSink(destination, **sink_options)
