"""The OTLP receiver: spans from the real OpenTelemetry SDK exporters (protobuf, gzip, gRPC) and an
OTLP/JSON body land in the store, priced; bad requests get 400/413/415 and the receiver keeps going."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from llmobs.cli import receiver as receiver_mod
from llmobs.cli.receiver import GRPCReceiver, HTTPReceiver, SpanIngestor, decompress_bounded
from llmobs.core import store
from llmobs.core.model import Span, SpanKind, Status

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver(isolated_llmobs: Path) -> Iterator[HTTPReceiver]:
    rec = HTTPReceiver(SpanIngestor(isolated_llmobs), port=0, max_body_bytes=64 * 1024)
    yield rec
    rec.stop()
    rec.ingestor.close()


def stored(db: Path) -> list[Span]:
    conn = store.connect(db, readonly=True)
    try:
        return [Span.from_dict(json.loads(data)) for _seq, data in store.iter_span_json(conn)]
    finally:
        conn.close()


def sdk_spans() -> list[ReadableSpan]:
    """An agent span with a GenAI chat call (no cost on the wire) and a failing tool, from the SDK."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "invoke_agent Triage", attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Triage"}
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        ) as tool:
            tool.set_status(StatusCode.ERROR, "weather service down")
    provider.shutdown()
    return list(memory.get_finished_spans())


def expected_gpt_cost() -> float:
    return float(
        calc_price(GPUsage(input_tokens=1000, output_tokens=200), "gpt-4o-mini", provider_id="openai").total_price
    )


def check_sdk_spans(spans: list[Span], sent: list[ReadableSpan]) -> None:
    by_name = {s.name: s for s in spans}
    assert sorted(by_name) == ["chat gpt-4o-mini", "execute_tool get_weather", "invoke_agent Triage"]
    root = by_name["invoke_agent Triage"]
    llm = by_name["chat gpt-4o-mini"]
    tool = by_name["execute_tool get_weather"]
    sent_ids = {s.name: s.context.span_id for s in sent}
    assert root.span_id == f"{sent_ids['invoke_agent Triage']:016x}"
    assert root.parent_id is None
    assert llm.parent_id == root.span_id and tool.parent_id == root.span_id
    assert {s.trace_id for s in spans} == {f"{sent[0].context.trace_id:032x}"}
    assert {s.service for s in spans} == {"sdk-app"}
    assert {s.framework for s in spans} == {"otlp"}
    assert (root.kind, llm.kind, tool.kind) == (SpanKind.AGENT, SpanKind.LLM, SpanKind.TOOL)
    assert (llm.model, llm.provider) == ("gpt-4o-mini", "openai")
    assert (llm.usage.input_tokens, llm.usage.output_tokens) == (1000, 200)
    # No cost on the wire: the receiver priced it exactly as genai-prices does.
    assert llm.cost is not None and llm.cost.total_usd == pytest.approx(expected_gpt_cost(), rel=1e-12)
    assert tool.status is Status.ERROR and tool.error is not None and "weather service down" in tool.error.message


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_sdk_exporter_protobuf(receiver: HTTPReceiver, isolated_llmobs: Path, compression, monkeypatch) -> None:
    encodings: list[str] = []
    real = receiver_mod.decompress_bounded

    def spy(body: bytes, encoding: str, limit: int) -> bytes:
        encodings.append(encoding)
        return real(body, encoding, limit)

    monkeypatch.setattr(receiver_mod, "decompress_bounded", spy)
    sent = sdk_spans()
    exporter = OTLPSpanExporter(endpoint=receiver.address, compression=compression)
    assert exporter.export(sent) is SpanExportResult.SUCCESS
    assert encodings == (["gzip"] if compression is Compression.Gzip else [""])
    check_sdk_spans(stored(isolated_llmobs), sent)


def test_sdk_grpc_exporter(isolated_llmobs: Path) -> None:
    grpc_exporter = pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    ingestor = SpanIngestor(isolated_llmobs)
    rec = GRPCReceiver(ingestor, port=0)
    try:
        sent = sdk_spans()
        exporter = grpc_exporter.OTLPSpanExporter(endpoint=f"127.0.0.1:{rec.port}", insecure=True)
        assert exporter.export(sent) is SpanExportResult.SUCCESS
        exporter.shutdown()
        check_sdk_spans(stored(isolated_llmobs), sent)
    finally:
        rec.stop()
        ingestor.close()


OTLP_JSON = {
    "resourceSpans": [
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
            "scopeSpans": [
                {
                    "scope": {"name": "hand"},
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "eee19b7ec3c1b173",
                            "name": "chat claude-sonnet-4-5",
                            "kind": 3,
                            "startTimeUnixNano": "1764250000000000000",
                            "endTimeUnixNano": "1764250001500000000",
                            "attributes": [
                                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
                                {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
                                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "5000"}},
                                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 800}},
                            ],
                            "someFutureField": {"ignored": True},
                        }
                    ],
                }
            ],
        }
    ]
}


def post(url: str, body: bytes, content_type: str, encoding: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.mark.parametrize("gzipped", [False, True])
def test_otlp_json_body(receiver: HTTPReceiver, isolated_llmobs: Path, gzipped: bool) -> None:
    body = json.dumps(OTLP_JSON).encode()
    status, ctype, reply = post(
        receiver.address, gzip.compress(body) if gzipped else body, "application/json", "gzip" if gzipped else None
    )
    assert (status, ctype, json.loads(reply)) == (200, "application/json", {})
    [span] = stored(isolated_llmobs)
    assert (span.trace_id, span.span_id, span.parent_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b173",
    )
    assert (span.service, span.kind, span.model, span.duration_ms) == (
        "json-app",
        SpanKind.LLM,
        "claude-sonnet-4-5",
        1500.0,
    )
    assert (span.usage.input_tokens, span.usage.output_tokens) == (5000, 800)
    expected = calc_price(GPUsage(input_tokens=5000, output_tokens=800), "claude-sonnet-4-5", provider_id="anthropic")
    assert span.cost is not None and span.cost.total_usd == pytest.approx(float(expected.total_price), rel=1e-12)


def _status_message(reply: bytes, ctype: str) -> str:
    if ctype == "application/json":
        return str(json.loads(reply)["message"])
    assert reply[0] == 0x08  # google.rpc.Status: code, then message
    return reply[4:].decode() if reply[3] < 0x80 else reply[5:].decode()


def test_bad_requests_get_4xx_and_the_receiver_keeps_serving(receiver: HTTPReceiver, isolated_llmobs: Path) -> None:
    url = receiver.address
    ok_body = json.dumps(OTLP_JSON).encode()
    cases = [
        (b"\xff\xff\xff garbage", "application/x-protobuf", None, 400),
        (b"{not json", "application/json", None, 400),
        (b"\x1f\x8b not really gzip", "application/x-protobuf", "gzip", 400),
        (ok_body, "text/plain", None, 415),
        (ok_body, "application/json", "br", 415),
        (b"x" * (64 * 1024 + 1), "application/x-protobuf", None, 413),
        # A gzip bomb: 20 MB of zeros in ~20 kB; the limit is 64 kB after decompression.
        (gzip.compress(b"\0" * 20_000_000), "application/x-protobuf", "gzip", 413),
        # gzip inside gzip, which the codec would otherwise unpack without a bound.
        (gzip.compress(gzip.compress(b"\0" * 20_000_000)), "application/x-protobuf", "gzip", 413),
    ]
    for body, ctype, encoding, code in cases:
        status, reply_type, reply = post(url, body, ctype, encoding)
        assert status == code, (ctype, encoding, status, reply)
        assert _status_message(reply, reply_type)
        # Still serving after each: a good request is stored.
        assert post(url, ok_body, "application/json")[0] == 200
    assert len(stored(isolated_llmobs)) == len(cases)
    assert post(url.replace("/v1/traces", "/v1/metrics"), ok_body, "application/json")[0] == 404


def test_decompress_bounded_limits() -> None:
    data = b"a" * 1000
    assert decompress_bounded(gzip.compress(data), "gzip", 1000) == data
    with pytest.raises(receiver_mod.BodyTooLarge):
        decompress_bounded(gzip.compress(data), "gzip", 999)
    with pytest.raises(ValueError):
        decompress_bounded(gzip.compress(data)[:-12], "gzip", 5000)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tail_otlp_prints_received_spans(isolated_llmobs: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs), "PYTHONPATH": str(ROOT)}
    tail = subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", "tail", "--otlp", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/v1/traces"
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the receiver never listened"
                time.sleep(0.05)
        sent = sdk_spans()
        assert OTLPSpanExporter(endpoint=url, compression=Compression.Gzip).export(sent) is SpanExportResult.SUCCESS
        lines = []
        assert tail.stdout is not None
        while len(lines) < 4:  # three spans and the trace's summary
            line = tail.stdout.readline()
            assert line, "tail ended early"
            lines.append(line.rstrip("\n"))
    finally:
        tail.send_signal(signal.SIGINT)
        _out, err = tail.communicate(timeout=10)
    assert tail.returncode == 0, err
    text = "\n".join(lines)
    assert "llm       chat gpt-4o-mini" in text and "1.0k→200 tok" in text
    cost = expected_gpt_cost()
    assert f"${cost:.6f}".rstrip("0") in text
    assert "✗" in text and "weather service down" in text
    assert "trace done: 3 spans  1.0k→200 tok" in lines[-1]
    assert f"OTLP receiver on http://127.0.0.1:{port}/v1/traces" in err


def test_worker_processes_decode_and_store(isolated_llmobs: Path) -> None:
    """The default for `tail --otlp` on several cores: decoding and storing in worker processes."""
    ingestor = SpanIngestor(isolated_llmobs, workers=1)
    assert ingestor._pool is not None
    rec = HTTPReceiver(ingestor, port=0)
    try:
        sent = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=rec.address, compression=Compression.Gzip)
        assert exporter.export(sent) is SpanExportResult.SUCCESS
        check_sdk_spans(stored(isolated_llmobs), sent)
        status, _ctype, reply = post(rec.address, b"\xff\xff garbage", "application/x-protobuf")
        assert status == 400 and b"cannot decode OTLP" in reply
        assert ingestor.counters.spans == 3 and ingestor.counters.rejected == 1
    finally:
        rec.stop()
        ingestor.close()


OTHER_INSTRUMENTATION = """
import sys
from typing import Any
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

instrumentation, endpoint = sys.argv[1], sys.argv[2]
if instrumentation == "openinference":
    from openinference.instrumentation.langchain import LangChainInstrumentor as Instrumentor
else:
    from opentelemetry.instrumentation.langchain import LangchainInstrumentor as Instrumentor


class FakeGPT(GenericFakeChatModel):
    model_name: str = "gpt-4o-mini"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}


provider = TracerProvider(resource=Resource.create({"service.name": f"{instrumentation}-app"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip)))
Instrumentor().instrument(tracer_provider=provider)
usage = {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150}
message = AIMessage(content="hi there", usage_metadata=usage, response_metadata={"model_name": "gpt-4o-mini"})
FakeGPT(messages=iter([message])).invoke("hello")
provider.shutdown()
"""


@pytest.mark.parametrize(
    ("instrumentation", "module"),
    [
        ("openinference", "openinference.instrumentation.langchain"),
        ("openllmetry", "opentelemetry.instrumentation.langchain"),
    ],
)
def test_other_instrumentations_show_model_and_tokens(
    receiver: HTTPReceiver, isolated_llmobs: Path, instrumentation: str, module: str
) -> None:
    """Another instrumentation's LangChain spans, exported by the SDK to the receiver.

    The other instrumentation runs in its own process: its uninstrument() does not remove every
    hook it installs in LangChain, and it must not leak into the tests that follow."""
    pytest.importorskip(module)
    result = subprocess.run(
        [sys.executable, "-c", OTHER_INSTRUMENTATION, instrumentation, receiver.address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [span] = [s for s in stored(isolated_llmobs) if s.kind is SpanKind.LLM]
    assert (span.service, span.framework) == (f"{instrumentation}-app", "otlp")
    assert (span.usage.input_tokens, span.usage.output_tokens) == (120, 30)
    if instrumentation == "openinference":
        assert span.model == "gpt-4o-mini"
        expected = calc_price(GPUsage(input_tokens=120, output_tokens=30), "gpt-4o-mini", provider_id="openai")
        assert span.cost is not None and span.cost.total_usd == pytest.approx(float(expected.total_price), rel=1e-12)
    else:
        # OpenLLMetry records no model for a fake chat model ("unknown"): unpriced, never $0.
        assert span.model == "unknown" and span.cost is None
