"""Receiver abuse: bad bodies get the right 4xx, slow and many clients do not stop it, tokens hold."""

from __future__ import annotations

import gzip
import resource
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from llmobs.cli.main import cli
from llmobs.cli.receiver import HTTPReceiver, SpanIngestor, bearer_ok, is_loopback
from llmobs.core.model import Span
from llmobs.core.otlp import spans_to_request

LIMIT = 256 * 1024


def one_span_body(name: str = "chat gpt-4o") -> bytes:
    span = Span(trace_id="ab" * 16, span_id="cd" * 8, name=name, start_ns=10**18 + 1, end_ns=10**18 + 2)
    return bytes(spans_to_request([span]).SerializeToString())


def post(url: str, body: bytes, *, encoding: str | None = None, token: str | None = None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if encoding:
        headers["Content-Encoding"] = encoding
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def stored_count(db: Path) -> int:
    return int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0])


@pytest.fixture
def receiver(isolated_llmobs: Path) -> Iterator[HTTPReceiver]:
    rec = HTTPReceiver(SpanIngestor(isolated_llmobs), port=0, max_body_bytes=LIMIT)
    yield rec
    rec.stop()
    rec.ingestor.close()


def test_bad_bodies_get_4xx_and_good_ones_still_land(receiver: HTTPReceiver, isolated_llmobs: Path) -> None:
    url = receiver.address
    good = one_span_body()
    bomb = gzip.compress(b"\x00" * (50 * 1024 * 1024))  # 50 MB of zeros in ~50 KB
    cases = [
        (b"\xff\xfe not protobuf at all", None, 400),
        (gzip.compress(good)[:-12], "gzip", 400),  # truncated gzip
        (b"definitely not gzip", "gzip", 400),
        (bomb, "gzip", 413),
        (b"x" * (LIMIT + 1), None, 413),
        (good, "br", 415),
    ]
    for body, encoding, expected in cases:
        assert post(url, body, encoding=encoding) == expected, (encoding, expected)
        assert post(url, good) == 200  # the receiver keeps serving after each
    assert stored_count(isolated_llmobs) == len(cases)


def test_a_slow_client_does_not_hold_up_the_others(receiver: HTTPReceiver) -> None:
    slow = socket.create_connection(("127.0.0.1", receiver.port))
    slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n")
    try:
        # Headers never finish; meanwhile other clients are served.
        for _ in range(5):
            assert post(receiver.address, one_span_body()) == 200
    finally:
        slow.close()


def test_1000_requests_from_20_parallel_clients(receiver: HTTPReceiver, isolated_llmobs: Path) -> None:
    body = one_span_body()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(lambda _: post(receiver.address, body), range(1000)))
    assert codes == [200] * 1000
    assert stored_count(isolated_llmobs) == 1000
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100, f"peak RSS grew {grown_mb:.0f} MB"


@pytest.fixture
def guarded(isolated_llmobs: Path) -> Iterator[HTTPReceiver]:
    rec = HTTPReceiver(SpanIngestor(isolated_llmobs), port=0, token="s3cret-token")
    yield rec
    rec.stop()
    rec.ingestor.close()


def test_a_token_is_required_when_set(guarded: HTTPReceiver, isolated_llmobs: Path) -> None:
    body = one_span_body()
    assert post(guarded.address, body) == 401
    assert post(guarded.address, body, token="wrong") == 401
    assert post(guarded.address, body, token="s3cret-token") == 200
    assert stored_count(isolated_llmobs) == 1
    # The real OpenTelemetry exporter with the header gets through.
    exporter = OTLPSpanExporter(endpoint=guarded.address, headers={"Authorization": "Bearer s3cret-token"})
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("from the sdk").end()
    provider.shutdown()
    assert stored_count(isolated_llmobs) == 2
    # Without it, the exporter is refused (401 is not retryable) and nothing is stored.
    refused = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=guarded.address, timeout=5)
    results: list[SpanExportResult] = []
    original = exporter.export
    exporter.export = lambda spans: results.append(original(spans)) or results[-1]  # type: ignore[method-assign]
    refused.add_span_processor(SimpleSpanProcessor(exporter))
    refused.get_tracer("t").start_span("no token").end()
    refused.shutdown()
    assert results == [SpanExportResult.FAILURE]
    assert stored_count(isolated_llmobs) == 2


def test_token_and_address_rules() -> None:
    assert bearer_ok(None, None) and bearer_ok("anything", "")
    assert bearer_ok("Bearer abc", "abc") and bearer_ok("bearer abc ", "abc")
    assert not bearer_ok("Bearer abd", "abc") and not bearer_ok("Basic abc", "abc") and not bearer_ok(None, "abc")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.com")


def test_binding_a_reachable_address_needs_an_explicit_flag(isolated_llmobs: Path) -> None:
    result = CliRunner().invoke(cli, ["tail", "--otlp", "--host", "0.0.0.0", "--no-follow"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_the_receiver_binds_loopback_by_default(isolated_llmobs: Path) -> None:
    rec = HTTPReceiver(SpanIngestor(isolated_llmobs), port=0)
    try:
        assert rec.server.server_address[0] == "127.0.0.1"
    finally:
        rec.stop()
        rec.ingestor.close()


def test_env_token_reaches_tail(isolated_llmobs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOBS_TAIL_TOKEN", "from-env")
    seen: dict[str, object] = {}

    def fake_start(path: object, **kwargs: object) -> object:
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("llmobs.cli.receiver.start_receivers", fake_start)
    CliRunner().invoke(cli, ["tail", "--otlp", "--no-follow"])
    assert seen["token"] == "from-env"
