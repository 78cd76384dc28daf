"""Decode: an OTLP `ExportTraceServiceRequest` (protobuf or OTLP/JSON) → `Span`s.

Reads any instrumentation's spans, not only ours. For every field the families are tried in one
order: our own `llmobs.*` first, then OpenTelemetry GenAI (`gen_ai.*`), then OpenInference, then
Langfuse (whose vendor `gen_ai.usage.cost` counts as Langfuse's). Two refinements:

- a span we encoded (it carries `llmobs.span.kind`) takes its content from `input.value` /
  `output.value`, which hold it exactly, rather than from the re-shaped `gen_ai.*.messages`;
- cost has no GenAI attribute, so OpenInference's `llm.cost.*` comes first.

Evaluations come from `gen_ai.evaluation.result` span events, whoever wrote them. Every attribute
that was read into a field is consumed; the rest stays in `Span.attributes`. A span
with none of the families becomes a `custom` span with all its attributes kept. Spans get framework
`otlp` unless they carry `llmobs.framework`.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus

from llmobs.core import conventions as c
from llmobs.core.evaluation import ERROR_LABEL
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage, int_or_none

OTLP_FRAMEWORK = "otlp"
JSON_CONTENT_TYPE = "application/json"
_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_ZERO_TRACE = "0" * 32
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class OTLPDecodeError(ValueError):
    """The body is not an OTLP trace export request."""


def decode_request(body: bytes, content_type: str = "application/x-protobuf") -> list[Span]:
    """Spans from an `ExportTraceServiceRequest` body.

    Args:
        body: the request body, protobuf or OTLP/JSON (a gzip body is also accepted).
        content_type: the request's Content-Type; `application/json` (with any parameters) selects
            OTLP/JSON (hex ids, integer enums, unknown fields ignored), anything else protobuf.

    Raises:
        OTLPDecodeError: the body does not parse.
    """
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise OTLPDecodeError(f"bad gzip body: {exc}") from exc
    if content_type.split(";", 1)[0].strip().lower() == JSON_CONTENT_TYPE:
        request = parse_json_request(body)
    else:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except (DecodeError, ValueError, TypeError) as exc:
            raise OTLPDecodeError(f"not an OTLP protobuf trace request: {exc}") from exc
    return decode_message(request)


def parse_json_request(body: bytes | str) -> ExportTraceServiceRequest:
    """An `ExportTraceServiceRequest` from its OTLP/JSON form (hex trace and span ids)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise OTLPDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OTLPDecodeError("an OTLP/JSON body is a JSON object")
    try:
        for resource_spans in data.get("resourceSpans") or ():
            for scope_spans in resource_spans.get("scopeSpans") or ():
                for span in scope_spans.get("spans") or ():
                    _hex_ids_to_base64(span)
                    for link in span.get("links") or ():
                        _hex_ids_to_base64(link)
        request = ExportTraceServiceRequest()
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
        return request
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise OTLPDecodeError(f"not an OTLP/JSON trace request: {exc}") from exc


def _hex_ids_to_base64(obj: dict[str, Any]) -> None:
    # OTLP/JSON spells ids in hex; protobuf's JSON mapping expects base64 for bytes fields.
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def decode_message(request: ExportTraceServiceRequest) -> list[Span]:
    """Spans from a parsed `ExportTraceServiceRequest`, in request order."""
    out: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = attributes_to_dict(resource_spans.resource.attributes)
        service = resource.get(c.SERVICE_NAME)
        service_name = service if isinstance(service, str) else ""
        for scope_spans in resource_spans.scope_spans:
            for pb_span in scope_spans.spans:
                out.append(decode_span(pb_span, service_name))
    return out


def attributes_to_dict(attributes: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/values as a plain dict of JSON-safe Python values."""
    return {kv.key: any_value(kv.value) for kv in attributes}


def any_value(value: AnyValue) -> Any:
    """One OTLP `AnyValue` as a JSON-safe Python value (bytes become base64 text)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return value.bool_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


class _Attributes:
    """A span's attributes, consumed as fields are read from them."""

    __slots__ = ("rest",)

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.rest = attributes

    def first(self, *keys: str) -> Any:
        """The value of the first of `keys` present; every one of them is consumed."""
        rest = self.rest
        found = None
        for key in keys:
            if key in rest:  # most keys are absent; `in` is cheaper than pop(key, None)
                value = rest.pop(key)
                if found is None:
                    found = value
        return found

    def take_prefix(self, prefix: str) -> dict[str, Any]:
        """Consume every key under `prefix` and return them without it."""
        found = {k[len(prefix) :]: v for k, v in self.rest.items() if k.startswith(prefix)}
        for key in found:
            del self.rest[prefix + key]
        return found


def decode_span(pb: PbSpan, service: str = "") -> Span:
    """One `Span` from an OTLP protobuf span on a resource named `service`."""
    attrs = _Attributes(attributes_to_dict(pb.attributes))
    kind_value = attrs.rest.get(c.LLMOBS_SPAN_KIND)
    ours = _span_kind(kind_value) is not None
    kind = _decode_kind(attrs)
    name = attrs.first(c.LLMOBS_SPAN_NAME)
    framework = attrs.first(c.LLMOBS_FRAMEWORK)
    status = Status.ERROR if pb.status.code == PbStatus.STATUS_CODE_ERROR else Status.OK
    error, status = _decode_error(attrs, pb, status, ours)
    provider = attrs.first(c.GEN_AI_PROVIDER_NAME, c.GEN_AI_SYSTEM)
    oi_provider = attrs.first(c.LLM_PROVIDER, c.LLM_SYSTEM)
    if provider is None and oi_provider is not None:
        provider = c.PROVIDER_BY_OPENINFERENCE_PROVIDER.get(str(oi_provider), oi_provider)
    response_model = attrs.first(c.GEN_AI_RESPONSE_MODEL, c.LLM_RESPONSE_MODEL_NAME)
    model = attrs.first(c.GEN_AI_REQUEST_MODEL)
    fallback_model = attrs.first(c.LLM_MODEL_NAME, c.LANGFUSE_MODEL_NAME)
    if model is None and not ours:
        # OpenInference and Langfuse name one model; it is the requested one unless it is the
        # response model already read.
        model = fallback_model if fallback_model != response_model else None
    start_ns = int(pb.start_time_unix_nano)
    span = Span(
        trace_id=pb.trace_id.hex() or _ZERO_TRACE,
        span_id=pb.span_id.hex() or "0" * 16,
        parent_id=pb.parent_span_id.hex() or None,
        name=name if isinstance(name, str) else pb.name,
        kind=kind,
        framework=framework if isinstance(framework, str) else OTLP_FRAMEWORK,
        service=service,
        start_ns=start_ns,
        end_ns=int(pb.end_time_unix_nano),
        status=status,
        error=error,
        provider=_str_or_none(provider),
        model=_str_or_none(model),
        response_model=_str_or_none(response_model),
        usage=_decode_usage(attrs),
        cost=_decode_cost(attrs),
        ttft_ms=_decode_ttft(attrs, start_ns),
    )
    span.input, span.output = _decode_content(attrs, ours)
    span.tool = _decode_dict(attrs, c.LLMOBS_TOOL, _TOOL_FIELDS)
    span.agent = _decode_dict(attrs, c.LLMOBS_AGENT, _AGENT_FIELDS)
    span.documents = _decode_documents(attrs)
    span.evaluations = _decode_evaluations(attrs, pb)
    span.attributes = _decode_attributes(attrs)
    return span


def _decode_evaluations(attrs: _Attributes, pb: PbSpan) -> list[Evaluation] | None:
    """The span's `gen_ai.evaluation.result` events (ours or anyone's), or our exact JSON form."""
    exact = _maybe_json(attrs.first(c.LLMOBS_EVALUATIONS))
    if isinstance(exact, list):
        return [Evaluation.from_dict(e) for e in exact if isinstance(e, dict)]
    found: list[Evaluation] = []
    for event in pb.events:
        if event.name != c.GEN_AI_EVALUATION_RESULT_EVENT:
            continue
        values = attributes_to_dict(event.attributes)
        name = values.get(c.GEN_AI_EVALUATION_NAME)
        label = values.get(c.GEN_AI_EVALUATION_SCORE_LABEL)
        explanation = values.get(c.GEN_AI_EVALUATION_EXPLANATION)
        if label is None and values.get(c.ERROR_TYPE) is not None:
            label = ERROR_LABEL  # a failed evaluation from another tool, without a label
        found.append(
            Evaluation(
                name="" if name is None else str(name),
                score=_float(values.get(c.GEN_AI_EVALUATION_SCORE_VALUE)),
                label=None if label is None else str(label),
                explanation=None if explanation is None else str(explanation),
            )
        )
    return found or None


def _decode_kind(attrs: _Attributes) -> SpanKind:
    ours = attrs.first(c.LLMOBS_SPAN_KIND)
    operation = attrs.first(c.GEN_AI_OPERATION_NAME)
    oi_kind = attrs.first(c.OPENINFERENCE_SPAN_KIND)
    lf_type = attrs.first(c.LANGFUSE_OBSERVATION_TYPE)
    tl_kind = attrs.rest.get(c.TRACELOOP_SPAN_KIND)
    request_type = attrs.rest.get(c.LLM_REQUEST_TYPE)
    candidates: list[SpanKind | None] = [
        _span_kind(ours),
        c.KIND_BY_OPERATION.get(operation) if isinstance(operation, str) else None,
        c.KIND_BY_OPENINFERENCE_KIND.get(oi_kind.upper()) if isinstance(oi_kind, str) else None,
        c.KIND_BY_LANGFUSE_TYPE.get(lf_type.lower()) if isinstance(lf_type, str) else None,
        c.KIND_BY_TRACELOOP_KIND.get(tl_kind) if isinstance(tl_kind, str) else None,
        c.KIND_BY_OPERATION.get(request_type) if isinstance(request_type, str) else None,
    ]
    for kind in candidates:
        if kind is not None:
            return kind
    rest = attrs.rest
    if c.GEN_AI_TOOL_NAME in rest or c.GEN_AI_TOOL_CALL_ID in rest:
        return SpanKind.TOOL
    if c.GEN_AI_REQUEST_MODEL in rest or c.GEN_AI_SYSTEM in rest or c.GEN_AI_PROVIDER_NAME in rest:
        return SpanKind.LLM
    return SpanKind.CUSTOM


def _span_kind(value: Any) -> SpanKind | None:
    try:
        return SpanKind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _decode_error(attrs: _Attributes, pb: PbSpan, status: Status, ours: bool) -> tuple[ErrorInfo | None, Status]:
    error_type = attrs.first(c.ERROR_TYPE)
    own_message = attrs.first(c.LLMOBS_ERROR_MESSAGE)
    level = attrs.first(c.LANGFUSE_LEVEL)
    lf_message = attrs.first(c.LANGFUSE_STATUS_MESSAGE)
    if ours:
        if error_type is None:
            return None, status
        message = own_message if own_message is not None else pb.status.message
        return ErrorInfo(type=str(error_type), message=str(message)), status
    if isinstance(level, str) and level.upper() == c.LANGFUSE_LEVEL_ERROR:
        status = Status.ERROR
    if status is not Status.ERROR and error_type is None:
        return None, status
    exc_type = exc_message = None
    for event in pb.events:
        if event.name == c.EXCEPTION_EVENT:
            event_attrs = attributes_to_dict(event.attributes)
            exc_type = event_attrs.get(c.EXCEPTION_TYPE)
            exc_message = event_attrs.get(c.EXCEPTION_MESSAGE)
            break
    message = pb.status.message or exc_message or lf_message or ""
    return ErrorInfo(type=str(error_type or exc_type or "Error"), message=str(message)), status


def _decode_usage(attrs: _Attributes) -> Usage | None:
    empty = attrs.first(c.LLMOBS_USAGE_EMPTY)
    usage = Usage(
        input_tokens=int_or_none(
            attrs.first(c.GEN_AI_USAGE_INPUT_TOKENS, c.GEN_AI_USAGE_PROMPT_TOKENS, c.LLM_TOKEN_COUNT_PROMPT)
        ),
        output_tokens=int_or_none(
            attrs.first(c.GEN_AI_USAGE_OUTPUT_TOKENS, c.GEN_AI_USAGE_COMPLETION_TOKENS, c.LLM_TOKEN_COUNT_COMPLETION)
        ),
        total_tokens=int_or_none(attrs.first(c.GEN_AI_USAGE_TOTAL_TOKENS, c.LLM_TOKEN_COUNT_TOTAL)),
        cache_read_tokens=int_or_none(
            attrs.first(c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, c.LLM_TOKEN_COUNT_PROMPT_CACHE_READ)
        ),
        cache_write_tokens=int_or_none(
            attrs.first(
                c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                c.LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE,
            )
        ),
        reasoning_tokens=int_or_none(
            attrs.first(c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, c.LLM_TOKEN_COUNT_COMPLETION_REASONING)
        ),
    )
    details = _json_object(attrs.first(c.LANGFUSE_USAGE_DETAILS))
    if usage.is_empty() and details:
        usage = _usage_from_langfuse(details)
    if usage.is_empty():
        return Usage() if empty is True else None
    return usage


def _usage_from_langfuse(details: dict[str, Any]) -> Usage:
    def get(*keys: str) -> int | None:
        for key in keys:
            value = int_or_none(details.get(key))
            if value is not None:
                return value
        return None

    cache_read = get(c.LANGFUSE_USAGE_CACHE_READ, "cache_read_input_tokens")
    cache_write = get(c.LANGFUSE_USAGE_CACHE_WRITE, "cache_creation_input_tokens")
    reasoning = get(c.LANGFUSE_USAGE_REASONING, "reasoning_tokens")
    uncached = get(c.LANGFUSE_USAGE_INPUT, "input_tokens", "prompt_tokens")
    output = get(c.LANGFUSE_USAGE_OUTPUT, "output_tokens", "completion_tokens")
    return Usage(
        input_tokens=None if uncached is None else uncached + (cache_read or 0) + (cache_write or 0),
        output_tokens=None if output is None else output + (reasoning or 0),
        total_tokens=get(c.LANGFUSE_USAGE_TOTAL, "total_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
    )


def _decode_cost(attrs: _Attributes) -> Cost | None:
    source = attrs.first(c.LLMOBS_COST_SOURCE)
    prompt = _float(attrs.first(c.LLM_COST_PROMPT))
    completion = _float(attrs.first(c.LLM_COST_COMPLETION))
    total = _float(attrs.first(c.LLM_COST_TOTAL))
    details = _json_object(attrs.first(c.LANGFUSE_COST_DETAILS))
    vendor_total = _float(attrs.first(c.GEN_AI_USAGE_COST))
    family = "openinference"
    if prompt is None and completion is None and total is None and details:
        family = "langfuse"
        prompt = _float(details.get(c.LANGFUSE_COST_INPUT))
        completion = _float(details.get(c.LANGFUSE_COST_OUTPUT))
        total = _float(details.get(c.LANGFUSE_COST_TOTAL))
    if prompt is None and completion is None and total is None:
        if vendor_total is None:
            return None
        family = c.GEN_AI_USAGE_COST
        total = vendor_total
    if total is None:
        total = (prompt or 0.0) + (completion or 0.0)
    return Cost(
        input_usd=prompt or 0.0,
        output_usd=completion or 0.0,
        total_usd=total,
        source=source if isinstance(source, str) else family,
    )


def _decode_ttft(attrs: _Attributes, start_ns: int) -> float | None:
    exact = _float(attrs.first(c.LLMOBS_TTFT_MS))
    seconds = _float(attrs.first(c.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))
    first_chunk = attrs.first(c.LANGFUSE_COMPLETION_START_TIME)
    if exact is not None:
        return exact
    if seconds is not None:
        return seconds * 1000.0
    if isinstance(first_chunk, str):
        try:
            moment = datetime.fromisoformat(first_chunk.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        delta = moment - _EPOCH
        moment_ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
        return (moment_ns - start_ns) / 1e6
    return None


def _decode_content(attrs: _Attributes, ours: bool) -> tuple[Any, Any]:
    generic_in = _mime_value(attrs.first(c.INPUT_VALUE), attrs.first(c.INPUT_MIME_TYPE))
    generic_out = _mime_value(attrs.first(c.OUTPUT_VALUE), attrs.first(c.OUTPUT_MIME_TYPE))
    genai_in = _maybe_json(attrs.first(c.GEN_AI_INPUT_MESSAGES, c.GEN_AI_TOOL_CALL_ARGUMENTS))
    genai_out = _maybe_json(attrs.first(c.GEN_AI_OUTPUT_MESSAGES, c.GEN_AI_TOOL_CALL_RESULT))
    oi_in = _flattened_messages(attrs.take_prefix(c.LLM_INPUT_MESSAGES + "."))
    oi_out = _flattened_messages(attrs.take_prefix(c.LLM_OUTPUT_MESSAGES + "."))
    lf_in = _maybe_json(attrs.first(c.LANGFUSE_INPUT))
    lf_out = _maybe_json(attrs.first(c.LANGFUSE_OUTPUT))
    if ours:
        return generic_in, generic_out
    instructions = _maybe_json(attrs.first(c.GEN_AI_SYSTEM_INSTRUCTIONS))
    if isinstance(genai_in, list) and isinstance(instructions, list):
        # GenAI keeps the system prompt apart from the messages; show it first, as chat APIs do.
        genai_in = [{"role": "system", "parts": instructions}, *genai_in]
    # OpenLLMetry's task and workflow spans carry their content under its own keys.
    tl_in = _maybe_json(attrs.first(c.TRACELOOP_ENTITY_INPUT, c.GEN_AI_TASK_INPUT))
    tl_out = _maybe_json(attrs.first(c.TRACELOOP_ENTITY_OUTPUT, c.GEN_AI_TASK_OUTPUT))
    return (
        _first_not_none(genai_in, oi_in, generic_in, lf_in, tl_in),
        _first_not_none(genai_out, oi_out, generic_out, lf_out, tl_out),
    )


def _flattened_messages(flat: dict[str, Any]) -> list[dict[str, Any]] | None:
    """OpenInference's `llm.input_messages.{i}.message.{field}` → a list of message dicts."""
    if not flat:
        return None
    messages: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        index, _, field = key.partition(".")
        if not index.isdigit():
            continue
        field = field.removeprefix("message.")
        messages.setdefault(int(index), {})[field] = value
    return [messages[i] for i in sorted(messages)] or None


_TOOL_FIELDS: dict[str, tuple[str, ...]] = {
    "name": (c.GEN_AI_TOOL_NAME, c.TOOL_NAME),
    "call_id": (c.GEN_AI_TOOL_CALL_ID, c.TOOL_ID),
    "description": (c.GEN_AI_TOOL_DESCRIPTION, c.TOOL_DESCRIPTION),
    "type": (c.GEN_AI_TOOL_TYPE,),
}
_AGENT_FIELDS: dict[str, tuple[str, ...]] = {
    "name": (c.GEN_AI_AGENT_NAME, c.AGENT_NAME),
    "id": (c.GEN_AI_AGENT_ID,),
}


def _decode_dict(attrs: _Attributes, exact_key: str, fields: dict[str, tuple[str, ...]]) -> dict[str, Any] | None:
    exact = _maybe_json(attrs.first(exact_key))
    found = {name: value for name, keys in fields.items() if (value := attrs.first(*keys)) is not None}
    if isinstance(exact, dict):
        return exact
    return found or None


def _decode_documents(attrs: _Attributes) -> list[dict[str, Any]] | None:
    exact = _maybe_json(attrs.first(c.LLMOBS_DOCUMENTS))
    flat = attrs.take_prefix(c.RETRIEVAL_DOCUMENTS + ".")
    if isinstance(exact, list):
        return exact
    if not flat:
        return None
    docs: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        index, _, field = key.partition(".")
        if not index.isdigit():
            continue
        field = field.removeprefix("document.")
        if field == "metadata":
            value = _maybe_json(value)
        docs.setdefault(int(index), {})[field] = value
    return [docs[i] for i in sorted(docs)] or None


def _decode_attributes(attrs: _Attributes) -> dict[str, Any]:
    own = _json_object(attrs.first(c.LLMOBS_ATTRIBUTES)) or {}
    out: dict[str, Any] = dict(own)
    session = attrs.first(c.GEN_AI_CONVERSATION_ID, c.SESSION_ID, "langfuse.session.id")
    if session is not None:
        out[c.ATTR_SESSION_ID] = session
    user = attrs.first(c.USER_ID, "langfuse.user.id")
    if user is not None:
        out[c.ATTR_USER_ID] = user
    tags = attrs.first(c.TAG_TAGS)
    if tags is not None:
        out[c.ATTR_TAGS] = tags
    metadata = attrs.first(c.METADATA)
    if metadata is not None:
        out[c.ATTR_METADATA] = _maybe_json(metadata)
    for key, value in attrs.rest.items():
        out.setdefault(key, value)
    return out


# -- value helpers -----------------------------------------------------------------------------


def _first_not_none(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _maybe_json(value: Any) -> Any:
    """A JSON string parsed, or the value unchanged when it is not one."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json_object(value: Any) -> dict[str, Any] | None:
    parsed = _maybe_json(value)
    return parsed if isinstance(parsed, dict) else None


def _mime_value(value: Any, mime: Any) -> Any:
    if isinstance(value, str) and isinstance(mime, str) and mime.split(";", 1)[0].strip() == c.MIME_JSON:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
