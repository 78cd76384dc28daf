"""The OTLP codec (llmobs/core/otlp): exact attributes, the round trip, OTLP/JSON and bad bodies."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace.status import StatusCode

from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage
from llmobs.core.otlp import OTLPDecodeError, decode_request, encode_spans, spans_to_request

T0 = 1_764_000_000_000_000_000


def roundtrip(spans: list[Span], content_type: str = "application/x-protobuf") -> list[Span]:
    return decode_request(spans_to_request(spans).SerializeToString(), content_type)


# -- strategies ------------------------------------------------------------------------------------

hex_id = st.integers(min_value=1, max_value=2**128 - 1).map(lambda n: f"{n:032x}")
hex_span_id = st.integers(min_value=1, max_value=2**64 - 1).map(lambda n: f"{n:016x}")
text = st.text(max_size=20)
opt_text = st.none() | text
finite = st.floats(allow_nan=False, allow_infinity=False)
count = st.none() | st.integers(min_value=0, max_value=2**62)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | finite | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
usages = st.builds(Usage, count, count, count, count, count, count)
costs = st.builds(Cost, finite, finite, finite, text)
errors = st.builds(ErrorInfo, text, text)
standard_tool = st.fixed_dictionaries({"name": text}, optional={"call_id": text, "description": text, "type": text})
standard_agent = st.fixed_dictionaries({"name": text}, optional={"id": text})
standard_doc = st.fixed_dictionaries(
    {},
    optional={
        "id": text | st.integers(min_value=0, max_value=2**62),
        "score": finite,
        "content": text,
        "metadata": st.dictionaries(text, json_values, max_size=3),
    },
).filter(bool)
any_dict = st.dictionaries(text, json_values, max_size=4)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "session_id": text | st.integers(),
        "user_id": text,
        "tags": st.lists(text, max_size=3),
        "metadata": any_dict | text,
    },
).flatmap(lambda base: any_dict.map(lambda extra: {**extra, **base}))


# Evaluations travel as gen_ai.evaluation.result events (an empty list as llmobs.evaluations);
# error results (no score, label "error") also carry error.type, which must not leak into the label.
evaluation = st.builds(Evaluation, text, st.none() | finite | st.integers(0, 1), opt_text, opt_text)
error_result = st.builds(Evaluation, text, st.none(), st.just("error"), opt_text)
evaluations = st.none() | st.lists(evaluation | error_result, max_size=3)


spans = st.builds(
    Span,
    trace_id=hex_id,
    span_id=hex_span_id,
    name=text,
    kind=st.sampled_from(SpanKind),
    parent_id=st.none() | hex_span_id,
    framework=text,
    service=text,
    start_ns=st.integers(min_value=0, max_value=2**63 - 1),
    end_ns=st.integers(min_value=0, max_value=2**63 - 1),
    status=st.sampled_from(Status),
    error=st.none() | errors,
    provider=opt_text,
    model=opt_text,
    response_model=opt_text,
    usage=st.none() | usages,
    cost=st.none() | costs,
    ttft_ms=st.none() | finite,
    input=json_values,
    output=json_values,
    tool=st.none() | standard_tool | any_dict,
    agent=st.none() | standard_agent | any_dict,
    documents=st.none() | st.lists(standard_doc, max_size=3) | st.lists(any_dict, max_size=3),
    attributes=attributes,
    evaluations=evaluations,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans, min_size=1, max_size=3))
def test_decode_of_encode_is_identity_for_every_field(batch: list[Span]) -> None:
    decoded = roundtrip(batch)
    # OTLP groups spans by resource (service), so only the order across services may change.
    assert [s.to_dict() for s in in_order(decoded)] == [s.to_dict() for s in in_order(batch)]
    assert in_order(decoded) == in_order(batch)


def in_order(batch: list[Span]) -> list[Span]:
    return sorted(batch, key=lambda s: json.dumps(s.to_dict(), sort_keys=True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans, min_size=1, max_size=2))
def test_roundtrip_through_otlp_json(batch: list[Span]) -> None:
    from google.protobuf import json_format

    body = json.loads(json_format.MessageToJson(spans_to_request(batch)))
    hexify_ids(body)
    assert in_order(decode_request(json.dumps(body).encode(), "application/json; charset=utf-8")) == in_order(batch)


def hexify_ids(body: dict[str, Any]) -> None:
    """protobuf's JSON writes ids in base64; OTLP/JSON wants hex."""
    for rs in body.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()


# -- exact attributes ------------------------------------------------------------------------------


def llm_span() -> Span:
    return Span(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_id="00f067aa0ba902b7",
        name="ChatOpenAI",
        kind=SpanKind.LLM,
        framework="langchain",
        service="support-bot",
        start_ns=T0,
        end_ns=T0 + 850_000_000,
        provider="openai",
        model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        usage=Usage(
            input_tokens=1200,
            output_tokens=300,
            total_tokens=1500,
            cache_read_tokens=1000,
            cache_write_tokens=100,
            reasoning_tokens=120,
        ),
        cost=Cost(input_usd=0.00175, output_usd=0.003, total_usd=0.00475, source="genai-prices 0.2.3"),
        ttft_ms=250.0,
        input=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather in Paris?"}],
        output={"role": "assistant", "content": "Sunny."},
        attributes={"session_id": "sess-1", "user_id": "u-7", "tags": ["prod"], "run_id": "r-1"},
    )


#: What `llm_span()` carries on the wire, to the attribute.
LLM_ATTRIBUTES: dict[str, Any] = {
    "llmobs.span.kind": "llm",
    "llmobs.span.name": "ChatOpenAI",
    "llmobs.framework": "langchain",
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 300,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 100,
    "gen_ai.usage.cache_write.input_tokens": 100,
    "gen_ai.usage.reasoning.output_tokens": 120,
    "gen_ai.response.time_to_first_chunk": 0.25,
    "gen_ai.conversation.id": "sess-1",
    "gen_ai.input.messages": json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
            {"role": "user", "parts": [{"type": "text", "content": "weather in Paris?"}]},
        ],
        separators=(",", ":"),
    ),
    "gen_ai.output.messages": '[{"role":"assistant","parts":[{"type":"text","content":"Sunny."}]}]',
    "openinference.span.kind": "LLM",
    "llm.provider": "openai",
    "llm.model_name": "gpt-4o",
    "llm.response.model_name": "gpt-4o-2024-08-06",
    "llm.token_count.prompt": 1200,
    "llm.token_count.completion": 300,
    "llm.token_count.total": 1500,
    "llm.token_count.prompt_details.cache_read": 1000,
    "llm.token_count.prompt_details.cache_write": 100,
    "llm.token_count.completion_details.reasoning": 120,
    "llm.cost.prompt": 0.00175,
    "llm.cost.completion": 0.003,
    "llm.cost.total": 0.00475,
    "input.value": '[{"role":"system","content":"be brief"},{"role":"user","content":"weather in Paris?"}]',
    "input.mime_type": "application/json",
    "output.value": '{"role":"assistant","content":"Sunny."}',
    "output.mime_type": "application/json",
    "session.id": "sess-1",
    "user.id": "u-7",
    "tag.tags": ["prod"],
    "langfuse.observation.type": "generation",
    "langfuse.observation.model.name": "gpt-4o-2024-08-06",
    # Langfuse prices each key separately: cached input and reasoning are split out.
    "langfuse.observation.usage_details": '{"input":100,"output":180,"input_cached_tokens":1000,'
    '"input_cache_creation":100,"output_reasoning_tokens":120,"total":1500}',
    "langfuse.observation.cost_details": '{"input":0.00175,"output":0.003,"total":0.00475}',
    "langfuse.observation.completion_start_time": "2025-11-24T16:00:00.250000Z",
    "llmobs.cost.source": "genai-prices 0.2.3",
    "llmobs.ttft_ms": 250.0,
    "llmobs.attributes": '{"run_id":"r-1"}',
}


def test_llm_span_carries_all_four_families_exactly() -> None:
    [otel] = encode_spans([llm_span()])
    assert otel.name == "chat gpt-4o"
    assert otel.kind is OTelSpanKind.CLIENT
    assert otel.status.status_code is StatusCode.UNSET
    assert otel.resource.attributes["service.name"] == "support-bot"
    assert dict(otel.attributes or {}) == LLM_ATTRIBUTES


def test_error_span_sets_status_error_type_langfuse_level_and_exception_event() -> None:
    span = Span(
        trace_id="1" * 32,
        span_id="2" * 16,
        name="execute_tool search",
        kind=SpanKind.TOOL,
        start_ns=T0,
        end_ns=T0 + 5,
        status=Status.ERROR,
        error=ErrorInfo("TimeoutError", "search took too long"),
        tool={"name": "search"},
    )
    [otel] = encode_spans([span])
    assert otel.status.status_code is StatusCode.ERROR
    assert otel.status.description == "search took too long"
    attrs = dict(otel.attributes or {})
    assert attrs["error.type"] == "TimeoutError"
    assert attrs["langfuse.observation.level"] == "ERROR"
    assert attrs["langfuse.observation.status_message"] == "search took too long"
    assert "llmobs.span.name" not in attrs  # the name already follows the conventions
    [event] = otel.events
    assert (event.name, dict(event.attributes or {})) == (
        "exception",
        {"exception.type": "TimeoutError", "exception.message": "search took too long"},
    )
    assert roundtrip([span]) == [span]


@pytest.mark.parametrize(
    ("span", "name", "kind"),
    [
        (
            Span("1" * 32, "2" * 16, "x", SpanKind.EMBEDDING, model="text-embedding-3-small"),
            "embeddings text-embedding-3-small",
            OTelSpanKind.CLIENT,
        ),
        (
            Span("1" * 32, "2" * 16, "x", SpanKind.AGENT, agent={"name": "Triage"}),
            "invoke_agent Triage",
            OTelSpanKind.INTERNAL,
        ),
        (Span("1" * 32, "2" * 16, "x", SpanKind.AGENT), "invoke_agent", OTelSpanKind.INTERNAL),
        (
            Span("1" * 32, "2" * 16, "text_completion davinci", SpanKind.LLM, model="davinci"),
            "text_completion davinci",
            OTelSpanKind.CLIENT,
        ),
        (Span("1" * 32, "2" * 16, "my chain", SpanKind.CHAIN), "my chain", OTelSpanKind.INTERNAL),
        (Span("1" * 32, "2" * 16, "search docs", SpanKind.RETRIEVER), "search docs", OTelSpanKind.CLIENT),
    ],
)
def test_span_names_and_kinds_follow_genai_conventions(span: Span, name: str, kind: OTelSpanKind) -> None:
    [otel] = encode_spans([span])
    assert (otel.name, otel.kind) == (name, kind)
    assert roundtrip([span]) == [span]


def test_fields_standard_attributes_cannot_carry_go_under_llmobs() -> None:
    span = Span(
        "1" * 32,
        "2" * 16,
        "t",
        SpanKind.TOOL,
        tool={"name": "calc", "schema": {"type": "object"}},
        agent={},
        documents=[],
        usage=Usage(),
        attributes={"tags": [], "session_id": 42},
    )
    attrs = dict(encode_spans([span])[0].attributes or {})
    assert json.loads(attrs["llmobs.tool"]) == {"name": "calc", "schema": {"type": "object"}}
    assert attrs["gen_ai.tool.name"] == "calc"
    assert attrs["llmobs.agent"] == "{}"
    assert attrs["llmobs.documents"] == "[]"
    assert attrs["llmobs.usage.empty"] is True
    assert json.loads(attrs["llmobs.attributes"]) == {"tags": [], "session_id": 42}
    assert "session.id" not in attrs
    assert roundtrip([span]) == [span]


def test_content_as_plain_text_keeps_its_type() -> None:
    span = Span("1" * 32, "2" * 16, "t", SpanKind.TOOL, tool={"name": "echo"}, input='{"not": "json"}', output="42")
    attrs = dict(encode_spans([span])[0].attributes or {})
    assert (attrs["input.value"], attrs["input.mime_type"]) == ('{"not": "json"}', "text/plain")
    assert attrs["gen_ai.tool.call.arguments"] == '{"not": "json"}'
    assert attrs["gen_ai.tool.call.result"] == "42"
    assert roundtrip([span]) == [span]


def test_resource_attributes_are_added_to_every_span() -> None:
    spans_ = [Span("1" * 32, "2" * 16, "a", service="one"), Span("1" * 32, "3" * 16, "b", service="two")]
    otel = encode_spans(spans_, {"openinference.project.name": "proj"})
    assert [dict(s.resource.attributes) for s in otel] == [
        {"openinference.project.name": "proj", "service.name": "one"},
        {"openinference.project.name": "proj", "service.name": "two"},
    ]
    request = spans_to_request(spans_)
    assert len(request.resource_spans) == 2


# -- decoding OTLP/JSON and bad bodies --------------------------------------------------------------


def test_hand_written_otlp_json_with_hex_ids_int_strings_and_unknown_fields() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "rag-api"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "some.instrumentation"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "chat claude-sonnet-4-5",
                                "kind": 3,
                                "startTimeUnixNano": "1764000000000000000",
                                "endTimeUnixNano": "1764000001500000000",
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.provider.name", "value": {"stringValue": "anthropic"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "claude-sonnet-4-5"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10000"}},
                                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 1000}},
                                    {"key": "gen_ai.usage.cache_read.input_tokens", "value": {"intValue": "6000"}},
                                    {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.2}},
                                ],
                                "status": {"code": 2, "message": "overloaded"},
                                "someFutureField": {"x": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    [span] = decode_request(json.dumps(body).encode(), "application/json")
    assert span == Span(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_id="eee19b7ec3c1b173",
        name="chat claude-sonnet-4-5",
        kind=SpanKind.LLM,
        framework="otlp",
        service="rag-api",
        start_ns=1_764_000_000_000_000_000,
        end_ns=1_764_000_001_500_000_000,
        status=Status.ERROR,
        error=ErrorInfo("Error", "overloaded"),
        provider="anthropic",
        model="claude-sonnet-4-5",
        usage=Usage(input_tokens=10000, output_tokens=1000, cache_read_tokens=6000),
        attributes={"gen_ai.request.temperature": 0.2},
    )


def test_span_with_no_known_attributes_is_custom_with_attributes_kept() -> None:
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "GET /health",
                                "kind": 2,
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": [
                                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                                    {"key": "http.response.status_code", "value": {"intValue": "200"}},
                                    {"key": "flags", "value": {"arrayValue": {"values": [{"boolValue": True}]}}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    [span] = decode_request(json.dumps(body).encode(), "application/json")
    assert (span.kind, span.framework, span.service, span.parent_id, span.usage) == (
        SpanKind.CUSTOM,
        "otlp",
        "",
        None,
        None,
    )
    assert span.attributes == {"http.request.method": "GET", "http.response.status_code": 200, "flags": [True]}


def test_openinference_and_langfuse_only_spans_are_read() -> None:
    oi = Span("1" * 32, "2" * 16, "x")
    oi_attrs = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini",
        "llm.provider": "mistralai",
        "llm.token_count.prompt": 10,
        "llm.token_count.completion": 5,
        "llm.token_count.total": 15,
        "llm.cost.total": 0.5,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "hi",
        "session.id": "s",
    }
    lf_attrs = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "m",
        "langfuse.observation.usage_details": '{"input":4,"output":3,"input_cached_tokens":6,"total":13}',
        "langfuse.observation.cost_details": '{"input":0.1,"output":0.2,"total":0.3}',
        "langfuse.observation.completion_start_time": "2025-11-24T16:00:00.250000Z",
        "langfuse.observation.level": "ERROR",
        "langfuse.observation.status_message": "boom",
    }
    decoded = []
    for attrs in (oi_attrs, lf_attrs):
        [otel] = encode_spans([oi])
        otel._attributes = attrs  # a foreign span: none of our own attributes
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode

        otel._start_time = T0
        [span] = decode_request(pb_encode([otel]).SerializeToString())
        decoded.append(span)
    oi_span, lf_span = decoded
    assert (oi_span.kind, oi_span.model, oi_span.provider) == (SpanKind.LLM, "gpt-4o-mini", "mistral_ai")
    assert oi_span.usage == Usage(input_tokens=10, output_tokens=5, total_tokens=15)
    assert oi_span.cost == Cost(0.0, 0.0, 0.5, "openinference")
    assert oi_span.input == [{"role": "user", "content": "hi"}]
    assert oi_span.attributes == {"session_id": "s"}
    assert (lf_span.kind, lf_span.model, lf_span.status) == (SpanKind.LLM, "m", Status.ERROR)
    assert lf_span.usage == Usage(input_tokens=10, output_tokens=3, total_tokens=13, cache_read_tokens=6)
    assert lf_span.cost == Cost(0.1, 0.2, 0.3, "langfuse")
    assert lf_span.ttft_ms == 250.0
    assert lf_span.error == ErrorInfo("Error", "boom")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "application/json"),
        (b"\xff\xff\xff\xff", "application/x-protobuf"),
        (b"\x1f\x8bnot gzip", "application/x-protobuf"),
    ],
)
def test_a_body_that_does_not_parse_raises_otlp_decode_error(body: bytes, content_type: str) -> None:
    with pytest.raises(OTLPDecodeError):
        decode_request(body, content_type)
    assert issubclass(OTLPDecodeError, ValueError)


def test_empty_request_decodes_to_no_spans_and_gzip_bodies_are_accepted() -> None:
    import gzip

    assert decode_request(b"") == []
    body = spans_to_request([llm_span()]).SerializeToString()
    assert decode_request(gzip.compress(body)) == [llm_span()]


def foreign(attributes: dict[str, Any], name: str = "x") -> Span:
    """Decode a span that carries exactly `attributes` (none of ours)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as pb_encode

    [otel] = encode_spans([Span("1" * 32, "2" * 16, name, start_ns=T0, end_ns=T0 + 1)])
    otel._attributes = attributes
    otel._name = name
    [span] = decode_request(pb_encode([otel]).SerializeToString())
    return span


def test_openllmetry_task_and_chat_spans_are_read() -> None:
    task = foreign(
        {
            "traceloop.span.kind": "task",
            "gen_ai.operation.name": "execute_task",  # not a GenAI operation: the next family decides
            "traceloop.entity.input": '{"inputs": {"q": "weather?"}}',
            "gen_ai.task.input": '{"inputs": {"q": "weather?"}}',
            "traceloop.entity.output": '{"outputs": "sunny"}',
            "traceloop.entity.name": "ChatPromptTemplate",
        },
        "execute_task ChatPromptTemplate",
    )
    assert (task.kind, task.input, task.output) == (SpanKind.CHAIN, {"inputs": {"q": "weather?"}}, {"outputs": "sunny"})
    assert task.attributes == {"traceloop.span.kind": "task", "traceloop.entity.name": "ChatPromptTemplate"}
    chat = foreign(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 25,
            "gen_ai.usage.output_tokens": 7,
            "gen_ai.usage.total_tokens": 32,
            "gen_ai.system_instructions": '[{"type": "text", "content": "be brief"}]',
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "weather?"}]}]',
        }
    )
    assert chat.usage == Usage(input_tokens=25, output_tokens=7, total_tokens=32)
    assert chat.input == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "weather?"}]},
    ]
    assert chat.attributes == {}
