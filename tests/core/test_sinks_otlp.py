"""OTLPSink and its langfuse/phoenix presets against a real OTLP/HTTP receiver on loopback."""

from __future__ import annotations

import base64
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import llmobs
from llmobs.core import store
from llmobs.core.model import Span, SpanKind, Usage
from llmobs.core.otlp.destinations import DestinationError
from llmobs.core.sinks import SQLiteSink
from llmobs.core.sinks.otlp import OTLPSink, langfuse, otlp, phoenix
from tests.core.test_otlp_codec import LLM_ATTRIBUTES, T0, llm_span
from tests.otlp_receiver import OTLPReceiver

TRACE = "0af7651916cd43dd8448eb211c80319c"


def tool_span() -> Span:
    return Span(
        trace_id=TRACE,
        span_id="1111111111111111",
        parent_id="b7ad6b7169203331",
        name="get_weather",
        kind=SpanKind.TOOL,
        framework="langchain",
        service="support-bot",
        start_ns=T0 + 900_000_000,
        end_ns=T0 + 910_000_000,
        tool={"name": "get_weather", "call_id": "call_42"},
        input={"city": "Paris"},
        output="sunny, 21°C",
    )


def retriever_span() -> Span:
    return Span(
        trace_id=TRACE,
        span_id="2222222222222222",
        parent_id="00f067aa0ba902b7",
        name="retrieve",
        kind=SpanKind.RETRIEVER,
        framework="llamaindex",
        service="support-bot",
        start_ns=T0 - 100_000_000,
        end_ns=T0 - 50_000_000,
        input="refund policy",
        documents=[
            {"id": "kb-17", "score": 0.82, "content": "Refunds are issued within 5 business days."},
            {"id": "kb-03", "score": 0.64, "content": "Orders ship from Rotterdam."},
        ],
    )


def agent_span() -> Span:
    return Span(
        trace_id=TRACE,
        span_id="00f067aa0ba902b7",
        name="Triage",
        kind=SpanKind.AGENT,
        framework="openai-agents",
        service="support-bot",
        start_ns=T0 - 200_000_000,
        end_ns=T0 + 1_000_000_000,
        agent={"name": "Triage"},
        output="handed off to Billing",
        attributes={"session_id": "conv-9"},
    )


TOOL_ATTRIBUTES = {
    "llmobs.span.kind": "tool",
    "llmobs.span.name": "get_weather",
    "llmobs.framework": "langchain",
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "get_weather",
    "gen_ai.tool.call.id": "call_42",
    "gen_ai.tool.call.arguments": '{"city":"Paris"}',
    "gen_ai.tool.call.result": "sunny, 21°C",
    "openinference.span.kind": "TOOL",
    "tool.name": "get_weather",
    "tool.id": "call_42",
    "input.value": '{"city":"Paris"}',
    "input.mime_type": "application/json",
    "output.value": "sunny, 21°C",
    "output.mime_type": "text/plain",
    "langfuse.observation.type": "tool",
}
RETRIEVER_ATTRIBUTES = {
    "llmobs.span.kind": "retriever",
    "llmobs.framework": "llamaindex",
    "gen_ai.operation.name": "retrieval",
    "openinference.span.kind": "RETRIEVER",
    "input.value": "refund policy",
    "input.mime_type": "text/plain",
    "retrieval.documents.0.document.id": "kb-17",
    "retrieval.documents.0.document.score": 0.82,
    "retrieval.documents.0.document.content": "Refunds are issued within 5 business days.",
    "retrieval.documents.1.document.id": "kb-03",
    "retrieval.documents.1.document.score": 0.64,
    "retrieval.documents.1.document.content": "Orders ship from Rotterdam.",
    "langfuse.observation.type": "retriever",
}
AGENT_ATTRIBUTES = {
    "llmobs.span.kind": "agent",
    "llmobs.span.name": "Triage",
    "llmobs.framework": "openai-agents",
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "Triage",
    "gen_ai.conversation.id": "conv-9",
    "openinference.span.kind": "AGENT",
    "agent.name": "Triage",
    "output.value": "handed off to Billing",
    "output.mime_type": "text/plain",
    "session.id": "conv-9",
    "langfuse.observation.type": "agent",
}


def four_spans() -> list[Span]:
    return [agent_span(), retriever_span(), llm_span(), tool_span()]


def send(sink: OTLPSink, spans: list[Span]) -> None:
    sink.write(spans)
    sink.flush()


# -- presets: paths, headers, compression, exact attributes ------------------------------------------


def test_langfuse_preset_posts_gzip_protobuf_with_basic_auth_and_ingestion_version(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1234")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-5678")
    monkeypatch.setenv("LANGFUSE_BASE_URL", otlp_receiver.base_url + "/")
    sink = langfuse()
    try:
        send(sink, four_spans())
        otlp_receiver.wait_for_spans(4)
    finally:
        sink.close()
    [request] = otlp_receiver.requests
    assert request.path == "/api/public/otel/v1/traces"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"pk-lf-1234:sk-lf-5678").decode()
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["content-encoding"] == "gzip"
    assert request.raw_body[:2] == b"\x1f\x8b"
    assert request.attributes() == {
        "invoke_agent Triage": AGENT_ATTRIBUTES,
        "retrieve": RETRIEVER_ATTRIBUTES,
        "chat gpt-4o": LLM_ATTRIBUTES,
        "execute_tool get_weather": TOOL_ATTRIBUTES,
    }
    kinds = {s.name: s.kind for rs in request.message.resource_spans for ss in rs.scope_spans for s in ss.spans}  # type: ignore[union-attr]
    assert kinds == {"invoke_agent Triage": 1, "retrieve": 3, "chat gpt-4o": 3, "execute_tool get_weather": 1}
    assert sorted(request.spans, key=lambda s: s.start_ns) == sorted(four_spans(), key=lambda s: s.start_ns)
    assert sink.stats() == {"sent": 4, "failed": 0, "dropped": 0, "pending": 0, "last_error": None}


def test_langfuse_host_is_read_when_base_url_is_not_set(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGFUSE_BASE_URL", raising=False)
    monkeypatch.setenv("LANGFUSE_HOST", otlp_receiver.base_url)
    sink = langfuse(public_key="pk", secret_key="sk", compression="none")
    try:
        send(sink, [tool_span()])
        otlp_receiver.wait_for_spans(1)
    finally:
        sink.close()
    [request] = otlp_receiver.requests
    assert request.path == "/api/public/otel/v1/traces"
    assert "content-encoding" not in request.headers


def test_phoenix_preset_sends_bearer_key_and_project_in_header_and_resource(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", otlp_receiver.base_url)
    monkeypatch.setenv("PHOENIX_API_KEY", "px-key-1")
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "support-bot-dev")
    sink = phoenix()
    try:
        send(sink, four_spans())
        otlp_receiver.wait_for_spans(4)
    finally:
        sink.close()
    [request] = otlp_receiver.requests
    assert request.path == "/v1/traces"
    assert request.headers["authorization"] == "Bearer px-key-1"
    assert request.headers["x-project-name"] == "support-bot-dev"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert "content-encoding" not in request.headers
    assert request.message is not None
    [resource_spans] = request.message.resource_spans
    from llmobs.core.otlp.decode import attributes_to_dict

    assert attributes_to_dict(resource_spans.resource.attributes) == {
        "openinference.project.name": "support-bot-dev",
        "service.name": "support-bot",
    }
    assert request.attributes()["chat gpt-4o"] == LLM_ATTRIBUTES


def test_phoenix_without_key_or_project_sends_neither(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PHOENIX_API_KEY", "PHOENIX_PROJECT_NAME"):
        monkeypatch.delenv(name, raising=False)
    sink = phoenix(endpoint=otlp_receiver.base_url + "/v1/traces")
    try:
        send(sink, [tool_span()])
        otlp_receiver.wait_for_spans(1)
    finally:
        sink.close()
    [request] = otlp_receiver.requests
    assert request.path == "/v1/traces"
    assert "authorization" not in request.headers
    assert "x-project-name" not in request.headers


def test_otlp_sink_honours_the_standard_otel_exporter_variables(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.base_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml,authorization=Bearer%20abc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    sink = otlp()
    try:
        send(sink, [retriever_span()])
        otlp_receiver.wait_for_spans(1)
    finally:
        sink.close()
    [request] = otlp_receiver.requests
    assert request.path == "/v1/traces"
    assert request.headers["x-team"] == "ml"
    assert request.headers["authorization"] == "Bearer abc"
    assert request.headers["content-encoding"] == "gzip"
    assert request.spans == [retriever_span()]


def test_grpc_protocol_exports_to_a_real_grpc_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    grpc = pytest.importorskip("grpc")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    from concurrent import futures

    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    from llmobs.core.otlp.decode import decode_message

    received: list[tuple[Any, dict[str, str]]] = []
    done = threading.Event()

    class Receiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
            received.append((request, dict(context.invocation_metadata())))
            done.set()
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml")
    sink = otlp(endpoint=f"http://127.0.0.1:{port}", timeout=5)
    try:
        send(sink, [tool_span(), agent_span()])
        assert done.wait(10)
    finally:
        sink.close()
        server.stop(None)
    [(request, metadata)] = received
    assert metadata["x-team"] == "ml"
    assert decode_message(request) == [tool_span(), agent_span()]
    with pytest.raises(DestinationError, match="unsupported OTLP protocol"):
        otlp(protocol="http/json")


# -- configuration errors ----------------------------------------------------------------------------


def test_missing_langfuse_keys_fail_at_configure_time_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-1")
    with pytest.raises(DestinationError, match=r"needs LANGFUSE_PUBLIC_KEY \(your Langfuse"):
        llmobs.configure(sinks=["sqlite", "langfuse"])
    assert issubclass(DestinationError, ValueError)


def test_llmobs_sinks_env_with_missing_keys_warns_and_keeps_the_local_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, isolated_llmobs: Path
) -> None:
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    monkeypatch.setenv("LLMOBS_SINKS", "sqlite,langfuse")
    with caplog.at_level(logging.WARNING, logger="llmobs"), llmobs.span("step"):
        pass
    assert llmobs.flush(timeout=10)
    assert any("LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY" in r.getMessage() for r in caplog.records)
    conn = store.connect(isolated_llmobs, readonly=True)
    assert [s.name for s in store.trace_spans(conn, store.recent_traces(conn)[0].trace_id)] == ["step"]


# -- through the pipeline: LLMOBS_SINKS, and the store gets the same spans ------------------------------


def test_llmobs_sinks_env_forwards_pipeline_spans_and_the_store_has_the_same(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    monkeypatch.setenv("LLMOBS_SINKS", "sqlite,phoenix")
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", otlp_receiver.base_url)
    with llmobs.span("answer", kind="agent"):
        with llmobs.span("chat gpt-4o-mini", kind="llm", model="gpt-4o-mini", provider="openai") as s:
            s.usage = Usage(input_tokens=10_000, output_tokens=1_000)
        with llmobs.span("lookup", kind="tool") as t:
            t.tool = {"name": "lookup"}
    assert llmobs.flush(timeout=10)
    received = otlp_receiver.wait_for_spans(3)
    conn = store.connect(isolated_llmobs, readonly=True)
    stored = store.trace_spans(conn, received[0].trace_id)
    assert sorted(received, key=lambda s: s.span_id) == sorted(stored, key=lambda s: s.span_id)
    llm = next(s for s in received if s.kind is SpanKind.LLM)
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    price = calc_price(GPUsage(input_tokens=10_000, output_tokens=1_000), "gpt-4o-mini", provider_id="openai")
    assert llm.cost is not None and llm.cost.total_usd == pytest.approx(float(price.total_price), abs=1e-12)
    assert llm.cost.total_usd == 0.0021
    health = llmobs.health()
    assert health["sinks"]["phoenix"]["errors"] == 0


# -- a dead or stuck endpoint never holds up the application or the local store ------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_endpoint_keeps_the_store_complete_counts_failures_and_logs_once(
    isolated_llmobs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/v1/traces"  # nothing listens there
    sink = otlp(endpoint=dead, timeout=0.3, flush_timeout=2.0, export_batch=50)
    llmobs.configure(sinks=[SQLiteSink(isolated_llmobs), sink], batch_size=50, flush_interval=0.005)
    with caplog.at_level(logging.DEBUG):
        for i in range(200):
            with llmobs.span(f"step {i}"):
                pass
        assert llmobs.flush(timeout=10)
        stats = sink.stats()
        llmobs.shutdown()
    conn = store.connect(isolated_llmobs, readonly=True)
    assert store.count_spans(conn) == 200
    assert stats["failed"] >= 1 and stats["sent"] == 0
    final = sink.stats()
    assert final["sent"] == 0
    assert final["failed"] + final["dropped"] == 200  # every span accounted for
    ours = [r for r in caplog.records if "exporting spans to otlp" in r.getMessage()]
    assert len(ours) == 1
    assert "the local store still has them" in ours[0].getMessage()
    # The OpenTelemetry exporter's own per-failure lines are not repeated into the app's log.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]


def test_stuck_endpoint_never_blocks_the_app_thread_and_the_store_gets_every_span(
    isolated_llmobs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold = threading.Event()
    receiver = OTLPReceiver(hold=hold).start()
    threads: dict[str, set[str]] = {"encode": set(), "export": set()}
    from llmobs.core.sinks import otlp as otlp_module

    real_encode = otlp_module.encode_spans

    def encode_spy(spans: Any, resource_attributes: Any = None) -> Any:
        threads["encode"].add(threading.current_thread().name)
        return real_encode(spans, resource_attributes)

    monkeypatch.setattr(otlp_module, "encode_spans", encode_spy)
    try:
        sink = otlp(endpoint=receiver.url(), timeout=20, flush_timeout=0.05, export_batch=100, max_pending=250)
        real_export = sink._exporter.export

        def export_spy(batch: Any) -> Any:
            threads["export"].add(threading.current_thread().name)
            return real_export(batch)

        sink._exporter.export = export_spy  # type: ignore[method-assign]
        llmobs.configure(sinks=[SQLiteSink(isolated_llmobs), sink], batch_size=100, flush_interval=0.005)
        for i in range(300):
            with llmobs.span(f"step {i}"):
                pass
        # The endpoint holds the first request open; the pipeline and the store carry on regardless.
        assert llmobs.flush(timeout=10)
        conn = store.connect(isolated_llmobs, readonly=True)
        assert store.count_spans(conn) == 300
        assert len(receiver.requests) == 1  # one export in flight, stuck
        stats = sink.stats()
        assert stats["sent"] == 0
        in_flight = receiver.requests[0].span_count()
        assert 0 < in_flight <= 100
        assert stats["pending"] <= 250
        assert stats["pending"] + in_flight + stats["dropped"] == 300
        hold.set()
        received = receiver.wait_for_spans(300 - stats["dropped"])
        assert len(received) == 300 - stats["dropped"]
    finally:
        hold.set()
        llmobs.shutdown()
        receiver.close()
    assert threads["encode"] == {"llmobs-pipeline"}
    assert threads["export"] == {"llmobs-otlp-otlp"}


def test_refusing_endpoint_counts_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    with OTLPReceiver(status=401) as receiver:
        sink = otlp(endpoint=receiver.url(), timeout=2)
        try:
            send(sink, [tool_span(), agent_span()])
            receiver.wait_for_spans(2)
            sink.flush()
            stats = sink.stats()
        finally:
            sink.close()
    assert (stats["sent"], stats["failed"]) == (0, 2)
    assert stats["last_error"] == "the endpoint refused the spans or could not be reached"


def test_a_span_that_cannot_be_encoded_costs_only_itself(otlp_receiver: OTLPReceiver) -> None:
    broken = Span(trace_id="not-hex", span_id="also-not-hex", name="broken")
    sink = otlp(endpoint=otlp_receiver.url())
    try:
        send(sink, [tool_span(), broken, agent_span()])
        received = otlp_receiver.wait_for_spans(2)
        stats = sink.stats()
    finally:
        sink.close()
    assert sorted(s.name for s in received) == ["Triage", "get_weather"]
    assert (stats["sent"], stats["failed"]) == (2, 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_exports_its_own_spans(otlp_receiver: OTLPReceiver, isolated_llmobs: Path) -> None:
    sink = otlp(endpoint=otlp_receiver.url())
    llmobs.configure(sinks=[SQLiteSink(isolated_llmobs), sink], flush_interval=0.005)
    with llmobs.span("parent work"):
        pass
    assert llmobs.flush(timeout=10)
    otlp_receiver.wait_for_spans(1)
    pid = os.fork()
    if pid == 0:  # the child: record, flush, report through the exit status
        code = 1
        try:
            with llmobs.span("child work"):
                pass
            code = 0 if llmobs.flush(timeout=10) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(s.name for s in otlp_receiver.wait_for_spans(2)) == ["child work", "parent work"]


def test_import_llmobs_does_not_import_the_otlp_exporter() -> None:
    import subprocess

    code = (
        "import sys, llmobs; llmobs.configure(sinks=['sqlite']); "
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.exporter', 'llmobs.core.otlp', 'llmobs.core.sinks.otlp'))]; "
        "print(loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
