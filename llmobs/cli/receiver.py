"""The OTLP receiver behind `llmobs tail --otlp`: spans from any OpenTelemetry client into the store.

OTLP/HTTP (`POST /v1/traces`, default 127.0.0.1:4318) answers as the OTLP specification says:

* `application/x-protobuf` or `application/json` (OTLP/JSON, hex ids), gzip-encoded or not;
* 200 with an empty `ExportTraceServiceResponse` in the request's content type once the spans
  are stored;
* 400 with a `google.rpc.Status` when the body does not parse, 415 for another content type or
  encoding, 413 when the body is over the size limit (before or after gunzip: decompression is
  bounded, so a gzip bomb costs at most the limit), 503 when the store cannot be written
  (retryable).

OTLP/gRPC (4317) is added when grpcio is installed (`pip install 'llmobs[grpc]'`).

With a token (`--token`, `LLMOBS_TAIL_TOKEN`), every request must carry
`Authorization: Bearer <token>` (gRPC: the `authorization` metadata); others get 401
(gRPC: UNAUTHENTICATED) and nothing is stored.

Received spans go through the same steps as our own before they are stored: a model call that
carries usage and no cost is priced, and the content policy (truncation, redaction) applies.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from llmobs.cli.ingest import SpanIngestor, default_workers
from llmobs.core.otlp import OTLPDecodeError

logger = logging.getLogger("llmobs")

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_PROTOBUF_TYPES = {PROTOBUF, "application/protobuf"}
#: Largest request body accepted, compressed or decompressed.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
GRPC_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"

# google.rpc.Code values used in error bodies.
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14


class BodyTooLarge(Exception):
    """The request body, or what it decompresses to, is over the limit."""


class UnsupportedEncoding(Exception):
    """A Content-Encoding other than gzip, deflate or identity."""


def decompress_bounded(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decoded per Content-Encoding, never producing more than `limit` bytes.

    Raises BodyTooLarge past the limit, UnsupportedEncoding for an unknown encoding and
    ValueError for a corrupt stream.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLarge(f"body of {len(body)} bytes is over the {limit}-byte limit")
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported (gzip or none)")
    decompressor = zlib.decompressobj(wbits)
    try:
        out = decompressor.decompress(body, limit + 1)
        if len(out) > limit or decompressor.unconsumed_tail:
            raise BodyTooLarge(f"body decompresses to over the {limit}-byte limit")
        out += decompressor.flush()
    except zlib.error as exc:
        raise ValueError(f"corrupt {encoding} body: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLarge(f"body decompresses to over the {limit}-byte limit")
    if not decompressor.eof:
        raise ValueError(f"truncated {encoding} body")
    return out


def _strip_nested_gzip(body: bytes, limit: int) -> bytes:
    """Gunzip (bounded) a body that is still gzip: neither protobuf nor JSON starts with 1f 8b,
    and the codec would otherwise decompress it without a bound."""
    for _ in range(2):
        if body[:2] != b"\x1f\x8b":
            return body
        body = decompress_bounded(body, "gzip", limit)
    if body[:2] == b"\x1f\x8b":
        raise ValueError("body is gzip inside gzip inside gzip")
    return body


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_ok(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries `token` (always true when no token is set)."""
    if not token:
        return True
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def rpc_status(code: int, message: str, content_type: str) -> bytes:
    """A `google.rpc.Status` body in protobuf or JSON form."""
    if content_type == JSON:
        return json.dumps({"code": code, "message": message}).encode()
    text = message.encode("utf-8")
    return bytes([0x08, code, 0x12]) + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _OTLPHandler(BaseHTTPRequestHandler):
    server: OTLPHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "llmobs-otlp"
    # A client that stops sending (slowloris) loses its connection instead of holding a thread.
    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tail's output is the spans, not an access log

    def do_GET(self) -> None:
        self._reply(405, JSON, rpc_status(_INVALID_ARGUMENT, "POST OTLP spans to /v1/traces", JSON))

    def do_POST(self) -> None:
        try:
            self._post()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never let one request take the receiver down
            self.server.warn_once("handler", f"llmobs: OTLP receiver error: {exc!r}")
            try:
                self._reply(500, JSON, rpc_status(13, "internal error", JSON))
            except OSError:
                self.close_connection = True

    def _post(self) -> None:
        if not bearer_ok(self.headers.get("Authorization"), self.server.token):
            self._drain_or_close()
            self.server.counters_rejected()
            self._reply(401, JSON, rpc_status(16, "missing or wrong bearer token", JSON), bearer=True)
            return
        if urlsplit(self.path).path.rstrip("/") != TRACES_PATH:
            self._drain_or_close()
            self._reply(404, JSON, rpc_status(5, f"not found: send spans to {TRACES_PATH}", JSON))
            return
        raw_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        content_type = PROTOBUF if raw_type in _PROTOBUF_TYPES else JSON if raw_type == JSON else None
        if content_type is None:
            self._drain_or_close()
            message = f"Content-Type {raw_type or '(none)'!r} is not supported: use {PROTOBUF} or {JSON}"
            self._reply(415, JSON, rpc_status(_INVALID_ARGUMENT, message, JSON))
            return
        limit = self.server.max_body_bytes
        try:
            body = self._read_body(limit)
            body = decompress_bounded(body, self.headers.get("Content-Encoding") or "", limit)
            body = _strip_nested_gzip(body, limit)
        except BodyTooLarge as exc:
            self.close_connection = True
            self._reply(413, content_type, rpc_status(_RESOURCE_EXHAUSTED, str(exc), content_type))
            return
        except UnsupportedEncoding as exc:
            self._reply(415, content_type, rpc_status(_INVALID_ARGUMENT, str(exc), content_type))
            return
        except ValueError as exc:
            self._reply(400, content_type, rpc_status(_INVALID_ARGUMENT, str(exc), content_type))
            return
        try:
            self.server.ingestor.ingest_body(body, content_type)
        except OTLPDecodeError as exc:
            self.server.counters_rejected()
            self._reply(400, content_type, rpc_status(_INVALID_ARGUMENT, f"cannot decode OTLP: {exc}", content_type))
            return
        except Exception as exc:
            self.server.warn_once("store", f"llmobs: OTLP receiver cannot store spans: {exc}")
            self._reply(503, content_type, rpc_status(_UNAVAILABLE, f"cannot store spans: {exc}", content_type))
            return
        # An empty ExportTraceServiceResponse (full success) in the request's encoding.
        self._reply(200, content_type, b"{}" if content_type == JSON else b"")

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if length > limit:
            raise BodyTooLarge(f"body of {length} bytes is over the {limit}-byte limit")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise ValueError("bad chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise BodyTooLarge(f"chunked body is over the {limit}-byte limit")
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _drain_or_close(self) -> None:
        """Skip a small body we will not use, so the connection stays usable; close otherwise."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= 1024 * 1024 and "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            if length:
                self.rfile.read(length)
        else:
            self.close_connection = True

    def _reply(self, code: int, content_type: str, body: bytes, *, bearer: bool = False) -> None:
        self.send_response(code)
        if bearer:
            self.send_header("WWW-Authenticate", 'Bearer realm="llmobs"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class OTLPHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections once a few dozen clients export at once.
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], ingestor: SpanIngestor, max_body_bytes: int, token: str | None = None
    ) -> None:
        self.ingestor = ingestor
        self.max_body_bytes = max_body_bytes
        self.token = token
        self._warned: set[str] = set()
        super().__init__(address, _OTLPHandler)

    def warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message)

    def counters_rejected(self) -> None:
        self.ingestor.counters.rejected += 1


class Receiver(Protocol):
    address: str

    def stop(self) -> None: ...


class HTTPReceiver:
    """OTLP/HTTP on a background thread. `port=0` picks a free port (see `.port`)."""

    def __init__(
        self,
        ingestor: SpanIngestor,
        host: str = "127.0.0.1",
        port: int = 4318,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        token: str | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.server = OTLPHTTPServer((host, port), ingestor, max_body_bytes, token)
        self.host = host
        self.port = int(self.server.server_address[1])
        self.address = f"http://{host}:{self.port}{TRACES_PATH}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="llmobs-otlp-http", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return self.address

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class GRPCReceiver:
    """OTLP/gRPC `TraceService/Export`. Needs grpcio; raises ImportError without it."""

    def __init__(
        self,
        ingestor: SpanIngestor,
        host: str = "127.0.0.1",
        port: int = 4317,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        token: str | None = None,
    ) -> None:
        import grpc

        self.ingestor = ingestor

        def export(request: bytes, context: Any) -> bytes:
            # Raw bytes in and out (no deserializer): the codec decodes the protobuf itself.
            metadata = dict(context.invocation_metadata() or ())
            if not bearer_ok(metadata.get("authorization"), token):
                ingestor.counters.rejected += 1
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
            try:
                ingestor.ingest_body(_strip_nested_gzip(request, max_body_bytes), PROTOBUF)
            except (BodyTooLarge, ValueError) as exc:  # OTLPDecodeError is a ValueError
                ingestor.counters.rejected += 1
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode OTLP: {exc}")
            except Exception as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot store spans: {exc}")
            return b""

        handler = grpc.method_handlers_generic_handler(
            GRPC_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
        )
        self.server = grpc.server(
            ThreadPoolExecutor(max_workers=4, thread_name_prefix="llmobs-otlp-grpc"),
            handlers=(handler,),
            options=[("grpc.max_receive_message_length", max_body_bytes)],
        )
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if not self.port:
            raise OSError(f"cannot listen on {host}:{port}")
        self.server.start()
        self.address = f"grpc://{host}:{self.port}"

    def stop(self) -> None:
        self.server.stop(grace=1).wait(5)


def grpc_available() -> bool:
    try:
        import grpc  # noqa: F401
    except ImportError:
        return False
    return True


class ReceiverGroup:
    """The receivers `tail --otlp` started and the ingestor they share."""

    def __init__(self, ingestor: SpanIngestor) -> None:
        self.ingestor = ingestor
        self.receivers: list[Receiver] = []

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.receivers]

    def stop(self) -> None:
        for receiver in self.receivers:
            try:
                receiver.stop()
            except Exception as exc:  # pragma: no cover - best effort at exit
                logger.debug("llmobs: stopping %s: %r", receiver.address, exc)
        self.ingestor.close()


def start_receivers(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 4318,
    grpc_port: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    workers: int | None = None,
    token: str | None = None,
) -> ReceiverGroup:
    """Start OTLP/HTTP (and gRPC when `grpc_port` is given) writing into `db_path`.

    `workers`: decoding processes (default: one per core, up to 4). `token`: require
    `Authorization: Bearer <token>`. Raises click.ClickException when a port is taken or grpcio
    is missing.
    """
    import click

    if grpc_port is not None and not grpc_available():
        raise click.ClickException("--grpc needs grpcio: pip install 'llmobs[grpc]'")
    group = ReceiverGroup(SpanIngestor(db_path, workers=default_workers() if workers is None else workers))
    try:
        try:
            group.receivers.append(HTTPReceiver(group.ingestor, host, port, max_body_bytes=max_body_bytes, token=token))
        except OSError as exc:
            raise click.ClickException(f"cannot listen for OTLP/HTTP on {host}:{port}: {exc}") from exc
        if grpc_port is not None:
            try:
                group.receivers.append(
                    GRPCReceiver(group.ingestor, host, grpc_port, max_body_bytes=max_body_bytes, token=token)
                )
            except (OSError, RuntimeError) as exc:
                raise click.ClickException(f"cannot listen for OTLP/gRPC on {host}:{grpc_port}: {exc}") from exc
    except BaseException:
        group.stop()
        raise
    return group
