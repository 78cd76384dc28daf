"""OTLP codec and sink benchmark: what forwarding costs the pipeline thread, and decode speed.

    python bench/otlp_codec.py            # full run
    python bench/otlp_codec.py --quick    # a smoke run with small counts

1. Encode: µs per span for our `Span` → `ReadableSpan` (four attribute families) plus protobuf
   serialisation, against the OpenTelemetry SDK serialising a `ReadableSpan` that already carries
   the same attributes (what any OTel exporter pays; the difference is our conversion), and
   against a plain OTel span with GenAI attributes only (what OpenLLMetry-style exporters send).
   Also the wire bytes per span of each.
2. Decode: spans/s for `decode_request` on protobuf and on OTLP/JSON bodies (what `llmobs tail
   --otlp` does per request), against protobuf parsing alone.
3. Sink hand-off: µs per span for `OTLPSink.write` (encode + queue) while the endpoint is down,
   i.e. the pipeline thread's whole cost per span when a destination is unreachable.

The spans are a realistic mix: an LLM span with usage, cost, TTFT and messages, a tool span and
a retriever span with three documents.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from llmobs.core.model import Cost, Span, SpanKind, Usage
from llmobs.core.otlp import decode_request, encode_spans, spans_to_request
from llmobs.core.sinks.otlp import otlp

T0 = 1_764_000_000_000_000_000


def sample_spans(n: int) -> list[Span]:
    out: list[Span] = []
    for i in range(n):
        trace = f"{i // 3 + 1:032x}"
        which = i % 3
        if which == 0:
            out.append(
                Span(
                    trace,
                    f"{i + 1:016x}",
                    "ChatOpenAI",
                    SpanKind.LLM,
                    framework="langchain",
                    service="bench",
                    start_ns=T0 + i,
                    end_ns=T0 + i + 900_000_000,
                    provider="openai",
                    model="gpt-4o-mini",
                    usage=Usage(1200, 300, 1500, 1024, None, None),
                    cost=Cost(0.000257, 0.00018, 0.000437, "genai-prices 0.2.3"),
                    ttft_ms=210.5,
                    input=[{"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}],
                    output={"role": "assistant", "content": "an answer of a few words " * 4},
                    attributes={"session_id": "s-1", "run_id": f"run-{i}"},
                )
            )
        elif which == 1:
            out.append(
                Span(
                    trace,
                    f"{i + 1:016x}",
                    "lookup_order",
                    SpanKind.TOOL,
                    framework="langchain",
                    service="bench",
                    start_ns=T0 + i,
                    end_ns=T0 + i + 5_000_000,
                    tool={"name": "lookup_order", "call_id": f"call-{i}"},
                    input={"order_id": "42"},
                    output={"status": "refunded"},
                )
            )
        else:
            out.append(
                Span(
                    trace,
                    f"{i + 1:016x}",
                    "retrieve",
                    SpanKind.RETRIEVER,
                    framework="llamaindex",
                    service="bench",
                    start_ns=T0 + i,
                    end_ns=T0 + i + 20_000_000,
                    input="refund policy",
                    documents=[
                        {"id": f"kb-{k}", "score": 0.9 - k / 10, "content": "a paragraph " * 20} for k in range(3)
                    ],
                )
            )
    return out


def best_of(repeats: int, func: object) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def genai_only(spans: list[Span]) -> list[ReadableSpan]:
    """Plain OTel spans with GenAI attributes only, as an OpenLLMetry-style exporter would send."""
    resource = Resource({"service.name": "bench"})
    out = []
    for span in spans:
        attrs: dict[str, object] = {"gen_ai.operation.name": "chat"}
        if span.model:
            attrs.update({"gen_ai.request.model": span.model, "gen_ai.provider.name": span.provider or ""})
        if span.usage:
            attrs.update(
                {
                    "gen_ai.usage.input_tokens": span.usage.input_tokens or 0,
                    "gen_ai.usage.output_tokens": span.usage.output_tokens or 0,
                }
            )
        ctx = SpanContext(int(span.trace_id, 16), int(span.span_id, 16), False, TraceFlags(1))
        out.append(
            ReadableSpan(
                span.name, ctx, resource=resource, attributes=attrs, start_time=span.start_ns, end_time=span.end_ns
            )
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    args = parser.parse_args()
    n = 300 if args.quick else 3000
    repeats = 3 if args.quick else 7
    spans = sample_spans(n)

    print(f"OTLP codec benchmark, {n} spans (1/3 llm, 1/3 tool, 1/3 retriever), best of {repeats}")
    ours = best_of(repeats, lambda: spans_to_request(spans).SerializeToString())
    pre_encoded = encode_spans(spans)
    sdk_same = best_of(repeats, lambda: pb_encode(pre_encoded).SerializeToString())
    plain = genai_only(spans)
    sdk_plain = best_of(repeats, lambda: pb_encode(plain).SerializeToString())
    ours_bytes = len(spans_to_request(spans).SerializeToString()) / n
    plain_bytes = len(pb_encode(plain).SerializeToString()) / n
    print("\n1. encode (µs per span, pipeline thread)")
    print(f"   llmobs Span → OTLP bytes (4 families)        {ours / n * 1e6:8.1f} µs   {ours_bytes:7.0f} B/span")
    print(f"   OTel SDK, same attributes, serialise only     {sdk_same / n * 1e6:8.1f} µs")
    print(f"   OTel SDK, GenAI-only attributes (no content)  {sdk_plain / n * 1e6:8.1f} µs   {plain_bytes:7.0f} B/span")

    body = spans_to_request(spans).SerializeToString()
    message = ExportTraceServiceRequest.FromString(body)
    js = json.loads(json_format.MessageToJson(message))
    for rs in js["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in sp:
                        import base64

                        sp[key] = base64.b64decode(sp[key]).hex()
    json_body = json.dumps(js).encode()
    assert len(decode_request(body)) == n and len(decode_request(json_body, "application/json")) == n
    dec_pb = best_of(repeats, lambda: decode_request(body))
    dec_json = best_of(repeats, lambda: decode_request(json_body, "application/json"))
    parse_only = best_of(repeats, lambda: ExportTraceServiceRequest.FromString(body))
    print("\n2. decode (spans/s)")
    print(f"   decode_request, protobuf                      {n / dec_pb:10,.0f}")
    print(f"   decode_request, OTLP/JSON                     {n / dec_json:10,.0f}")
    print(f"   protobuf parse alone (no Span)                {n / parse_only:10,.0f}")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = otlp(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=0.2, max_pending=10 * n)
    per_batch = []
    for _ in range(repeats):
        start = time.perf_counter()
        sink.write(spans)
        per_batch.append(time.perf_counter() - start)
    sink.close()
    print("\n3. OTLPSink.write with the endpoint down (µs per span on the pipeline thread)")
    print(f"   best {min(per_batch) / n * 1e6:.1f} µs, median {statistics.median(per_batch) / n * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
