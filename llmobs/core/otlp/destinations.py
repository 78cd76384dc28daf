"""Where OTLP spans go: a generic collector, Langfuse or Phoenix, resolved from arguments and the environment.

A `Destination` says where and how to post (endpoint, headers, protocol, compression, timeout,
resource attributes) and builds the OpenTelemetry exporter that does it; `OTLPSink` and
`llmobs export --to` both use one. Resolution happens when the destination is made (at
`configure()` time), so a missing key is an immediate, clear `DestinationError` rather than a
sink that silently sends nothing.

    otlp_destination()                    # OTEL_EXPORTER_OTLP_* as the OpenTelemetry SDK reads them
    langfuse_destination()                # LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_BASE_URL
    phoenix_destination()                 # PHOENIX_COLLECTOR_ENDPOINT, PHOENIX_API_KEY, PHOENIX_PROJECT_NAME
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmobs.core import conventions as c

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

# -- environment variables (read here only) -------------------------------------------------------

OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""`http/protobuf` (default) or `grpc`; `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` wins over it. The
endpoint, headers, compression and timeout variables are read by the OpenTelemetry exporter itself."""
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
"""The protocol for traces only."""
LANGFUSE_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
"""Langfuse project public key (`pk-lf-...`). Required by the `langfuse` sink."""
LANGFUSE_SECRET_KEY = "LANGFUSE_SECRET_KEY"
"""Langfuse project secret key (`sk-lf-...`). Required by the `langfuse` sink."""
LANGFUSE_BASE_URL = "LANGFUSE_BASE_URL"
"""Langfuse host. Default `https://cloud.langfuse.com`; `LANGFUSE_HOST` (deprecated) is read after it."""
LANGFUSE_HOST = "LANGFUSE_HOST"
"""The deprecated name of `LANGFUSE_BASE_URL`."""
LANGFUSE_OTEL_COMPRESSION = "LANGFUSE_OTEL_COMPRESSION"
"""`gzip` (default) or `none`, as in Langfuse's SDK."""
PHOENIX_COLLECTOR_ENDPOINT = "PHOENIX_COLLECTOR_ENDPOINT"
"""Phoenix host. Default `http://localhost:6006`; spans go to `{endpoint}/v1/traces`."""
PHOENIX_API_KEY = "PHOENIX_API_KEY"
"""Phoenix API key, sent as a bearer token when set (a local `phoenix serve` needs none)."""
PHOENIX_PROJECT_NAME = "PHOENIX_PROJECT_NAME"
"""Phoenix project: header `x-project-name` and resource attribute `openinference.project.name`."""

DEFAULT_LANGFUSE_BASE_URL = "https://cloud.langfuse.com"
LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
LANGFUSE_INGESTION_VERSION_HEADER = "x-langfuse-ingestion-version"
LANGFUSE_INGESTION_VERSION = "4"
DEFAULT_PHOENIX_ENDPOINT = "http://localhost:6006"
PHOENIX_TRACES_PATH = "/v1/traces"
PHOENIX_PROJECT_HEADER = "x-project-name"
PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
DEFAULT_TIMEOUT_S = 10.0

logger = logging.getLogger("llmobs")


class DestinationError(ValueError):
    """A destination cannot be used as configured (a missing key, an unknown protocol, ...)."""


@dataclass(slots=True)
class Destination:
    """How to reach one OTLP endpoint.

    Attributes:
        name: `otlp`, `langfuse` or `phoenix` (used in log lines and the CLI).
        endpoint: the full traces URL (`.../v1/traces`), or None to let the OpenTelemetry exporter
            resolve `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` itself.
        headers: sent with every request; None lets the exporter read `OTEL_EXPORTER_OTLP_HEADERS`.
        protocol: `http/protobuf` or `grpc`.
        compression: `gzip`, `deflate`, `none`, or None for `OTEL_EXPORTER_OTLP_COMPRESSION`.
        timeout: seconds per export, retries included; None for `OTEL_EXPORTER_OTLP_TIMEOUT` (10 s).
        resource_attributes: added to every span's resource.
    """

    name: str
    endpoint: str | None = None
    headers: dict[str, str] | None = None
    protocol: str = PROTOCOL_HTTP
    compression: str | None = None
    timeout: float | None = None
    resource_attributes: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The destination for humans: its name and endpoint (never its headers)."""
        return f"{self.name} ({self.endpoint or 'OTEL_EXPORTER_OTLP_ENDPOINT or the default'})"

    def make_exporter(self) -> SpanExporter:
        """The OpenTelemetry `SpanExporter` for this destination.

        Raises:
            DestinationError: gRPC was asked for and `opentelemetry-exporter-otlp-proto-grpc` is
                not installed (`pip install 'llmobs[grpc]'`).
        """
        if self.protocol == PROTOCOL_GRPC:
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcSpanExporter,
                )
            except ImportError as exc:
                raise DestinationError(
                    f"OTLP over gRPC needs the grpc extra: pip install 'llmobs[grpc]' ({exc})"
                ) from exc
            from grpc import Compression as GrpcCompression

            grpc_compression = None
            if self.compression is not None:
                grpc_compression = {
                    "gzip": GrpcCompression.Gzip,
                    "deflate": GrpcCompression.Deflate,
                    "none": GrpcCompression.NoCompression,
                }[self.compression]
            return GrpcSpanExporter(
                endpoint=self.endpoint,
                headers=self.headers,
                timeout=self.timeout,
                compression=grpc_compression,
            )
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        compression = None
        if self.compression is not None:
            compression = {
                "gzip": Compression.Gzip,
                "deflate": Compression.Deflate,
                "none": Compression.NoCompression,
            }[self.compression]
        return OTLPSpanExporter(
            endpoint=self.endpoint, headers=self.headers, timeout=self.timeout, compression=compression
        )


def otlp_destination(
    endpoint: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    protocol: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
) -> Destination:
    """Any OTLP receiver (an OpenTelemetry Collector, Jaeger, Tempo, `llmobs tail --otlp`, ...).

    Arguments left None come from the standard `OTEL_EXPORTER_OTLP_*` variables, read by the
    OpenTelemetry exporter exactly as for any OpenTelemetry SDK app. `endpoint` is the full traces
    URL for HTTP (`http://collector:4318/v1/traces`) or `host:port` for gRPC.
    """
    resolved = (
        protocol
        or os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL)
        or PROTOCOL_HTTP
    )
    return Destination(
        name="otlp",
        endpoint=endpoint,
        headers=dict(headers) if headers is not None else None,
        protocol=_protocol(resolved),
        compression=_compression(compression),
        timeout=timeout,
        resource_attributes=dict(resource_attributes or {}),
    )


def langfuse_destination(
    *,
    public_key: str | None = None,
    secret_key: str | None = None,
    base_url: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
) -> Destination:
    """Langfuse's OTLP endpoint, `{base}/api/public/otel/v1/traces`, with Basic auth and
    `x-langfuse-ingestion-version: 4`. Langfuse takes OTLP over HTTP only.

    Raises:
        DestinationError: no public or secret key (argument or `LANGFUSE_PUBLIC_KEY` /
            `LANGFUSE_SECRET_KEY`).
    """
    public_key = public_key or os.environ.get(LANGFUSE_PUBLIC_KEY)
    secret_key = secret_key or os.environ.get(LANGFUSE_SECRET_KEY)
    missing = [
        name for name, value in ((LANGFUSE_PUBLIC_KEY, public_key), (LANGFUSE_SECRET_KEY, secret_key)) if not value
    ]
    if missing:
        raise DestinationError(
            f"the langfuse sink needs {' and '.join(missing)} (your Langfuse project's API keys); "
            f"set {LANGFUSE_BASE_URL} too unless you use {DEFAULT_LANGFUSE_BASE_URL}"
        )
    base = base_url or os.environ.get(LANGFUSE_BASE_URL) or os.environ.get(LANGFUSE_HOST) or DEFAULT_LANGFUSE_BASE_URL
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return Destination(
        name="langfuse",
        endpoint=base.rstrip("/") + LANGFUSE_TRACES_PATH,
        headers={"Authorization": f"Basic {token}", LANGFUSE_INGESTION_VERSION_HEADER: LANGFUSE_INGESTION_VERSION},
        protocol=PROTOCOL_HTTP,
        compression=_compression(compression or os.environ.get(LANGFUSE_OTEL_COMPRESSION) or "gzip"),
        timeout=timeout,
    )


def phoenix_destination(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    project_name: str | None = None,
    compression: str | None = None,
    timeout: float | None = None,
) -> Destination:
    """Arize Phoenix's OTLP/HTTP endpoint, `{endpoint}/v1/traces` (protobuf; Phoenix refuses JSON).

    The project goes both in the `x-project-name` header and in the resource attribute
    `openinference.project.name`, so older Phoenix versions route it too.
    """
    base = endpoint or os.environ.get(PHOENIX_COLLECTOR_ENDPOINT) or DEFAULT_PHOENIX_ENDPOINT
    base = base.rstrip("/")
    url = base if base.endswith(PHOENIX_TRACES_PATH) else base + PHOENIX_TRACES_PATH
    api_key = api_key or os.environ.get(PHOENIX_API_KEY)
    project_name = project_name or os.environ.get(PHOENIX_PROJECT_NAME)
    headers: dict[str, str] = {}
    resource: dict[str, Any] = {}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if project_name:
        headers[PHOENIX_PROJECT_HEADER] = project_name
        resource[c.OPENINFERENCE_PROJECT_NAME] = project_name
    return Destination(
        name="phoenix",
        endpoint=url,
        headers=headers,
        protocol=PROTOCOL_HTTP,
        compression=_compression(compression),
        timeout=timeout,
        resource_attributes=resource,
    )


#: Destination builders by the names `LLMOBS_SINKS` and `llmobs export --to` accept.
DESTINATIONS: dict[str, Callable[[], Destination]] = {
    "otlp": otlp_destination,
    "langfuse": langfuse_destination,
    "phoenix": phoenix_destination,
}


def destination_by_name(name: str) -> Destination:
    """The destination called `name`, resolved from the environment. Raises DestinationError."""
    builder = DESTINATIONS.get(name)
    if builder is None:
        raise DestinationError(f"unknown OTLP destination {name!r}; known: {', '.join(DESTINATIONS)}")
    return builder()


def _protocol(value: str) -> str:
    value = value.strip().lower()
    if value in ("http/protobuf", "http"):
        return PROTOCOL_HTTP
    if value == PROTOCOL_GRPC:
        return PROTOCOL_GRPC
    raise DestinationError(f"unsupported OTLP protocol {value!r}: use http/protobuf or grpc")


def _compression(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value not in ("gzip", "deflate", "none"):
        raise DestinationError(f"unsupported OTLP compression {value!r}: use gzip, deflate or none")
    return value


# -- the exporters' own log lines -----------------------------------------------------------------

_quiet = threading.local()


class _QuietFilter(logging.Filter):
    """Drops the OpenTelemetry exporters' per-failure log lines while llmobs exports: we count
    failures and log once ourselves, and an endpoint that is down must not flood the app's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)
_filter_installed = False
_filter_lock = threading.Lock()


@contextmanager
def quiet_exporter_logs() -> Iterator[None]:
    """Within this block, on this thread, the OpenTelemetry exporters' log lines are dropped."""
    global _filter_installed
    if not _filter_installed:
        with _filter_lock:
            if not _filter_installed:
                quiet = _QuietFilter()
                for name in _EXPORTER_LOGGERS:
                    logging.getLogger(name).addFilter(quiet)
                _filter_installed = True
    previous = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = previous
