"""A real OTLP/HTTP receiver for tests: a `ThreadingHTTPServer` on 127.0.0.1 and a free port.

It records every request (path, headers, raw and gunzipped body, the parsed
`ExportTraceServiceRequest`) and answers like a collector: 200 with an empty
`ExportTraceServiceResponse` in the request's content type. `status` makes it refuse (e.g. 401),
`delay_s` makes it slow, `hold` (an Event) makes it hang until released.

    with OTLPReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.url("/v1/traces"))
        ...
        receiver.wait_for_spans(3)
        [request] = receiver.requests
        request.headers["authorization"]
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmobs.core.model import Span
from llmobs.core.otlp import decode_request


@dataclass
class ReceivedRequest:
    """One POST as the receiver saw it; header names are lower-cased."""

    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    message: ExportTraceServiceRequest | None
    content_type: str
    spans: list[Span] = field(default_factory=list)

    def span_count(self) -> int:
        if self.message is None:
            return 0
        return sum(len(ss.spans) for rs in self.message.resource_spans for ss in rs.scope_spans)

    def attributes(self) -> dict[str, dict[str, Any]]:
        """Raw OTLP attributes by span name, exactly as they came over the wire."""
        from llmobs.core.otlp.decode import attributes_to_dict

        assert self.message is not None
        out: dict[str, dict[str, Any]] = {}
        for rs in self.message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.name] = attributes_to_dict(span.attributes)
        return out


class OTLPReceiver:
    """Start with `start()` (or a `with` block); `close()` stops it."""

    def __init__(self, *, status: int = 200, delay_s: float = 0.0, hold: threading.Event | None = None) -> None:
        self.status = status
        self.delay_s = delay_s
        self.hold = hold
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                body = raw
                if encoding == "gzip":
                    body = gzip.decompress(raw)
                elif encoding == "deflate":
                    body = zlib.decompress(raw)
                content_type = self.headers.get("Content-Type") or ""
                message: ExportTraceServiceRequest | None = None
                spans: list[Span] = []
                try:
                    if content_type.startswith("application/json"):
                        from llmobs.core.otlp.decode import parse_json_request

                        message = parse_json_request(body)
                    else:
                        message = ExportTraceServiceRequest.FromString(body)
                    spans = decode_request(body, content_type)
                except Exception:
                    message = None
                record = ReceivedRequest(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    raw_body=raw,
                    body=body,
                    message=message,
                    content_type=content_type,
                    spans=spans,
                )
                with receiver._lock:
                    receiver.requests.append(record)
                    receiver._lock.notify_all()
                if receiver.hold is not None:
                    receiver.hold.wait(30)  # a stuck endpoint: answers only when released
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                status = receiver.status
                if status == 200:
                    response = ExportTraceServiceResponse()
                    if content_type.startswith("application/json"):
                        payload = json_format.MessageToJson(response).encode()
                        out_type = "application/json"
                    else:
                        payload = response.SerializeToString()
                        out_type = "application/x-protobuf"
                else:
                    payload, out_type = b"refused", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", out_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/v1/traces") -> str:
        return self.base_url + path

    def start(self) -> OTLPReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spans(self) -> list[Span]:
        """Every span received so far, decoded by our codec."""
        with self._lock:
            return [span for request in self.requests for span in request.spans]

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[Span]:
        """Block until at least `count` spans arrived; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while sum(r.span_count() for r in self.requests) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"expected {count} spans, got {sum(r.span_count() for r in self.requests)}"
                self._lock.wait(remaining)
        return self.spans()
