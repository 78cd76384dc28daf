"""Encode: `Span` → OpenTelemetry `ReadableSpan` with GenAI, OpenInference, Langfuse and llmobs attributes.

Every span carries the four attribute families side by side (see `llmobs.core.conventions`), so a
plain OpenTelemetry collector, Phoenix and Langfuse each find what they read first, with our own
numbers (tokens, cost, time to first token) rather than their guesses. Whatever the standard
attributes cannot carry exactly goes under `llmobs.*`, which is what makes
`decode(encode(span)) == span` hold for every field.

The span name follows the GenAI conventions, `{operation} {model|tool|agent}`; when that differs
from the span's own name, the original travels as `llmobs.span.name`. Each evaluation of the span
(online evaluation) is a GenAI `gen_ai.evaluation.result` span event.

Encoding runs on the pipeline thread (inside a sink's `write`), never on the application's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace.status import Status as OTelStatus
from opentelemetry.trace.status import StatusCode

from llmobs.core import conventions as c
from llmobs.core.evaluation import ERROR_LABEL
from llmobs.core.model import Evaluation, Span, SpanKind, Status, Usage

#: Model calls leave the process (CLIENT); tools, agents and chains run in it (INTERNAL).
_CLIENT_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING, SpanKind.RETRIEVER, SpanKind.RERANKER})
_TOOL_KEYS = {"name": (c.GEN_AI_TOOL_NAME, c.TOOL_NAME), "call_id": (c.GEN_AI_TOOL_CALL_ID, c.TOOL_ID)}
_TOOL_KEYS_GENAI_ONLY = {"description": c.GEN_AI_TOOL_DESCRIPTION, "type": c.GEN_AI_TOOL_TYPE}
_AGENT_KEYS = {"name": (c.GEN_AI_AGENT_NAME, c.AGENT_NAME), "id": (c.GEN_AI_AGENT_ID,)}
_DOC_KEYS = {"id": c.DOCUMENT_ID, "score": c.DOCUMENT_SCORE, "content": c.DOCUMENT_CONTENT}
_SCALARS = (str, bool, int, float)
_SCOPE = InstrumentationScope(c.INSTRUMENTATION_SCOPE)


def encode_spans(spans: Sequence[Span], resource_attributes: Mapping[str, Any] | None = None) -> list[ReadableSpan]:
    """OpenTelemetry spans for `spans`, ready for any `SpanExporter`.

    Args:
        spans: finished spans (JSON-safe content, as sinks receive them).
        resource_attributes: added to every span's resource besides `service.name`
            (e.g. `openinference.project.name` for Phoenix).
    """
    extra = dict(resource_attributes or {})
    resources: dict[str, Resource] = {}
    out: list[ReadableSpan] = []
    for span in spans:
        resource = resources.get(span.service)
        if resource is None:
            resource = resources[span.service] = Resource({**extra, c.SERVICE_NAME: span.service})
        out.append(encode_span(span, resource))
    return out


def spans_to_request(
    spans: Sequence[Span], resource_attributes: Mapping[str, Any] | None = None
) -> ExportTraceServiceRequest:
    """The OTLP `ExportTraceServiceRequest` protobuf message for `spans`."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as _encode_pb

    return _encode_pb(encode_spans(spans, resource_attributes))


def encode_span(span: Span, resource: Resource) -> ReadableSpan:
    """One `ReadableSpan` for `span`, on the given resource."""
    attributes = span_attributes(span)
    name = genai_span_name(span)
    if name != span.name:
        attributes[c.LLMOBS_SPAN_NAME] = span.name
    error = span.error
    if span.status is Status.ERROR:
        status = OTelStatus(StatusCode.ERROR, error.message if error is not None else None)
    else:
        status = OTelStatus(StatusCode.UNSET)
    events: list[Event] = []
    if error is not None:
        events.append(
            Event(
                c.EXCEPTION_EVENT,
                {c.EXCEPTION_TYPE: error.type, c.EXCEPTION_MESSAGE: error.message},
                timestamp=span.end_ns or None,
            )
        )
    if span.evaluations:
        events.extend(evaluation_events(span.evaluations, span.end_ns))
    parent = _context(span.trace_id, span.parent_id) if span.parent_id else None
    return ReadableSpan(
        name=name,
        context=_context(span.trace_id, span.span_id),
        parent=parent,
        resource=resource,
        attributes=attributes,
        events=events,
        kind=OTelSpanKind.CLIENT if span.kind in _CLIENT_KINDS else OTelSpanKind.INTERNAL,
        instrumentation_scope=_SCOPE,
        status=status,
        start_time=span.start_ns,
        end_time=span.end_ns,
    )


def _context(trace_id: str, span_id: str) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def genai_operation(span: Span) -> str | None:
    """`gen_ai.operation.name` for the span's kind; a model span named `text_completion x` keeps it."""
    op = c.OPERATION_BY_KIND.get(span.kind)
    if op == c.OP_CHAT:
        for other in (c.OP_TEXT_COMPLETION, c.OP_GENERATE_CONTENT):
            if span.name.startswith(other + " "):
                return other
    return op


def genai_span_name(span: Span) -> str:
    """The GenAI span name, `{operation} {model|tool|agent}`, or the span's own name when the
    conventions name nothing for its kind or the naming field is unknown."""
    op = genai_operation(span)
    kind = span.kind
    if kind in (SpanKind.LLM, SpanKind.EMBEDDING):
        model = span.model or span.response_model
        return f"{op} {model}" if model else span.name
    if kind is SpanKind.TOOL:
        tool_name = (span.tool or {}).get("name")
        return f"{op} {tool_name}" if isinstance(tool_name, str) and tool_name else span.name
    if kind is SpanKind.AGENT:
        agent_name = (span.agent or {}).get("name")
        return f"{op} {agent_name}" if isinstance(agent_name, str) and agent_name else str(op)
    return span.name


def span_attributes(span: Span) -> dict[str, Any]:
    """Every attribute of the four families for `span` (without `llmobs.span.name`)."""
    a: dict[str, Any] = {c.LLMOBS_SPAN_KIND: span.kind.value, c.LLMOBS_FRAMEWORK: span.framework}
    op = genai_operation(span)
    if op is not None:
        a[c.GEN_AI_OPERATION_NAME] = op
    a[c.OPENINFERENCE_SPAN_KIND] = c.OPENINFERENCE_KIND_BY_KIND[span.kind]
    a[c.LANGFUSE_OBSERVATION_TYPE] = c.LANGFUSE_TYPE_BY_KIND[span.kind]

    if span.provider is not None:
        a[c.GEN_AI_PROVIDER_NAME] = span.provider
        a[c.LLM_PROVIDER] = c.OPENINFERENCE_PROVIDER_BY_PROVIDER.get(span.provider, span.provider)
    if span.model is not None:
        a[c.GEN_AI_REQUEST_MODEL] = span.model
    if span.response_model is not None:
        a[c.GEN_AI_RESPONSE_MODEL] = span.response_model
        a[c.LLM_RESPONSE_MODEL_NAME] = span.response_model
    model = span.model if span.model is not None else span.response_model
    if model is not None:
        a[c.LLM_MODEL_NAME] = model
        a[c.LANGFUSE_MODEL_NAME] = span.response_model or model

    if span.usage is not None:
        _usage_attributes(span.usage, a)
    cost = span.cost
    if cost is not None:
        a[c.LLM_COST_PROMPT] = cost.input_usd
        a[c.LLM_COST_COMPLETION] = cost.output_usd
        a[c.LLM_COST_TOTAL] = cost.total_usd
        a[c.LANGFUSE_COST_DETAILS] = _json(
            {
                c.LANGFUSE_COST_INPUT: cost.input_usd,
                c.LANGFUSE_COST_OUTPUT: cost.output_usd,
                c.LANGFUSE_COST_TOTAL: cost.total_usd,
            }
        )
        a[c.LLMOBS_COST_SOURCE] = cost.source
    if span.ttft_ms is not None:
        a[c.LLMOBS_TTFT_MS] = span.ttft_ms
        a[c.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = span.ttft_ms / 1000.0
        first = _iso(span.start_ns, span.ttft_ms)
        if first is not None:
            a[c.LANGFUSE_COMPLETION_START_TIME] = first

    error = span.error
    if error is not None:
        a[c.ERROR_TYPE] = error.type
        a[c.LANGFUSE_LEVEL] = c.LANGFUSE_LEVEL_ERROR
        a[c.LANGFUSE_STATUS_MESSAGE] = error.message
        if span.status is not Status.ERROR:
            # A non-error OTel status carries no description.
            a[c.LLMOBS_ERROR_MESSAGE] = error.message

    _content_attributes(span, a)
    if span.tool is not None:
        _dict_attributes(span.tool, _TOOL_KEYS, c.LLMOBS_TOOL, a, _TOOL_KEYS_GENAI_ONLY)
    if span.agent is not None:
        _dict_attributes(span.agent, _AGENT_KEYS, c.LLMOBS_AGENT, a, {})
    if span.documents is not None:
        _document_attributes(span.documents, a)
    _plain_attributes(span.attributes, a)
    evaluations = span.evaluations
    if evaluations is not None and not _events_carry_exactly(evaluations):
        a[c.LLMOBS_EVALUATIONS] = _json([e.to_dict() for e in evaluations])
    return a


def evaluation_events(evaluations: Sequence[Evaluation], timestamp_ns: int) -> list[Event]:
    """One OpenTelemetry GenAI `gen_ai.evaluation.result` event per evaluation.

    Absent parts (no score, no label, no explanation) are left out, as the conventions ask; an
    error result (an evaluator that raised or timed out) also carries `error.type`.
    """
    out = []
    for evaluation in evaluations:
        attributes: dict[str, Any] = {c.GEN_AI_EVALUATION_NAME: str(evaluation.name)}
        if isinstance(evaluation.score, int | float):
            attributes[c.GEN_AI_EVALUATION_SCORE_VALUE] = float(evaluation.score)
        if evaluation.label is not None:
            attributes[c.GEN_AI_EVALUATION_SCORE_LABEL] = str(evaluation.label)
        if evaluation.explanation is not None:
            attributes[c.GEN_AI_EVALUATION_EXPLANATION] = str(evaluation.explanation)
        if evaluation.label == ERROR_LABEL and evaluation.score is None:
            attributes[c.ERROR_TYPE] = c.EVALUATION_ERROR_TYPE
        out.append(Event(c.GEN_AI_EVALUATION_RESULT_EVENT, attributes, timestamp=timestamp_ns or None))
    return out


def _events_carry_exactly(evaluations: Sequence[Evaluation]) -> bool:
    """Whether decoding the events gives back exactly these evaluations (else `llmobs.evaluations`
    carries them too): not for an empty list, nor for values that are not strings and floats."""
    if not evaluations:
        return False
    for evaluation in evaluations:
        score = evaluation.score
        if not isinstance(evaluation.name, str):
            return False
        if score is not None and (not isinstance(score, int | float) or score != score):  # NaN != NaN
            return False
        if not all(v is None or isinstance(v, str) for v in (evaluation.label, evaluation.explanation)):
            return False
    return True


def _usage_attributes(usage: Usage, a: dict[str, Any]) -> None:
    if usage.is_empty():
        a[c.LLMOBS_USAGE_EMPTY] = True
        return
    pairs = (
        (usage.input_tokens, (c.GEN_AI_USAGE_INPUT_TOKENS, c.LLM_TOKEN_COUNT_PROMPT)),
        (usage.output_tokens, (c.GEN_AI_USAGE_OUTPUT_TOKENS, c.LLM_TOKEN_COUNT_COMPLETION)),
        (usage.total_tokens, (c.LLM_TOKEN_COUNT_TOTAL,)),
        (usage.cache_read_tokens, (c.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, c.LLM_TOKEN_COUNT_PROMPT_CACHE_READ)),
        (
            usage.cache_write_tokens,
            (
                c.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                c.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
                c.LLM_TOKEN_COUNT_PROMPT_CACHE_WRITE,
            ),
        ),
        (
            usage.reasoning_tokens,
            (c.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, c.LLM_TOKEN_COUNT_COMPLETION_REASONING),
        ),
    )
    for value, keys in pairs:
        if value is not None:
            for key in keys:
                a[key] = value
    a[c.LANGFUSE_USAGE_DETAILS] = _json(langfuse_usage_details(usage))


def langfuse_usage_details(usage: Usage) -> dict[str, int]:
    """Langfuse's usage keys. Langfuse prices each key on its own, so cached input and reasoning
    output are split out of `input`/`output` (where OpenTelemetry counts them) and `total` is
    given explicitly."""
    cache_read = usage.cache_read_tokens or 0
    cache_write = usage.cache_write_tokens or 0
    reasoning = usage.reasoning_tokens or 0
    out: dict[str, int] = {}
    if usage.input_tokens is not None:
        out[c.LANGFUSE_USAGE_INPUT] = max(0, usage.input_tokens - cache_read - cache_write)
    if usage.output_tokens is not None:
        out[c.LANGFUSE_USAGE_OUTPUT] = max(0, usage.output_tokens - reasoning)
    if usage.cache_read_tokens is not None:
        out[c.LANGFUSE_USAGE_CACHE_READ] = cache_read
    if usage.cache_write_tokens is not None:
        out[c.LANGFUSE_USAGE_CACHE_WRITE] = cache_write
    if usage.reasoning_tokens is not None:
        out[c.LANGFUSE_USAGE_REASONING] = reasoning
    total = usage.total_tokens
    if total is None and (usage.input_tokens is not None or usage.output_tokens is not None):
        total = (usage.input_tokens or 0) + (usage.output_tokens or 0)
    if total is not None:
        out[c.LANGFUSE_USAGE_TOTAL] = total
    return out


def _content_attributes(span: Span, a: dict[str, Any]) -> None:
    # input.value/output.value carry the content exactly (what Phoenix and Langfuse show); the
    # GenAI forms are added where the conventions define one for the kind.
    for value, value_key, mime_key in (
        (span.input, c.INPUT_VALUE, c.INPUT_MIME_TYPE),
        (span.output, c.OUTPUT_VALUE, c.OUTPUT_MIME_TYPE),
    ):
        if value is None:
            continue
        if isinstance(value, str):
            a[value_key] = value
            a[mime_key] = c.MIME_TEXT
        else:
            a[value_key] = _json(value)
            a[mime_key] = c.MIME_JSON
    if span.kind is SpanKind.LLM:
        messages = genai_messages(span.input, default_role="user")
        if messages is not None:
            a[c.GEN_AI_INPUT_MESSAGES] = _json(messages)
        messages = genai_messages(span.output, default_role="assistant")
        if messages is not None:
            a[c.GEN_AI_OUTPUT_MESSAGES] = _json(messages)
    elif span.kind is SpanKind.TOOL:
        if span.input is not None:
            a[c.GEN_AI_TOOL_CALL_ARGUMENTS] = a[c.INPUT_VALUE]
        if span.output is not None:
            a[c.GEN_AI_TOOL_CALL_RESULT] = a[c.OUTPUT_VALUE]


def genai_messages(value: Any, *, default_role: str) -> list[dict[str, Any]] | None:
    """Captured messages in the GenAI JSON schema (`role` and `parts`), or None when `value` is
    not messages.

    Accepts a string (one message of `default_role`), a message dict, or a list of them; a message
    is a dict with `role` and `content` (a string or a list of OpenAI-style parts) and optionally
    `tool_calls` / `tool_call_id`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return [{"role": default_role, "parts": [{"type": "text", "content": value}]}]
    if isinstance(value, Mapping):
        if "messages" in value and isinstance(value["messages"], list):
            return genai_messages(value["messages"], default_role=default_role)
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    out: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, list):  # LangChain batches: a list of message lists
            inner = genai_messages(item, default_role=default_role)
            if inner is None:
                return None
            out.extend(inner)
            continue
        if isinstance(item, str):
            out.append({"role": default_role, "parts": [{"type": "text", "content": item}]})
            continue
        if not isinstance(item, Mapping) or "role" not in item:
            return None
        out.append(_genai_message(item))
    return out


def _genai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = str(message.get("role"))
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if role == "tool" and "tool_call_id" in message:
        parts.append({"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content})
    elif isinstance(content, str):
        if content:
            parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", part.get("content"))})
            else:
                parts.append({"type": "text", "content": part if isinstance(part, str) else _json(part)})
    elif content is not None:
        parts.append({"type": "text", "content": _json(content)})
    for call in message.get("tool_calls") or ():
        if not isinstance(call, Mapping):
            continue
        function: Mapping[str, Any] = call["function"] if isinstance(call.get("function"), Mapping) else call
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": function.get("name"),
                "arguments": function.get("arguments", function.get("args")),
            }
        )
    out: dict[str, Any] = {"role": role, "parts": parts}
    if "finish_reason" in message:
        out["finish_reason"] = message["finish_reason"]
    return out


def _dict_attributes(
    value: dict[str, Any],
    keys: Mapping[str, tuple[str, ...]],
    fallback_key: str,
    a: dict[str, Any],
    genai_only: Mapping[str, str],
) -> None:
    """`tool`/`agent`: standard keys for what they can carry, plus the whole dict as JSON under
    `fallback_key` when they cannot carry it exactly."""
    exact = bool(value)
    for key, item in value.items():
        names = keys.get(key) or ((genai_only[key],) if key in genai_only else None)
        if names is None or not isinstance(item, str):
            exact = False
            continue
        for name in names:
            a[name] = item
    if not exact:
        a[fallback_key] = _json(value)


def _document_attributes(documents: list[dict[str, Any]], a: dict[str, Any]) -> None:
    exact = bool(documents)
    for i, doc in enumerate(documents):
        if not isinstance(doc, Mapping) or not doc:
            exact = False
            continue
        prefix = f"{c.RETRIEVAL_DOCUMENTS}.{i}."
        for key, item in doc.items():
            if key in _DOC_KEYS and isinstance(item, _SCALARS):
                a[prefix + _DOC_KEYS[key]] = item
            elif key == "metadata" and isinstance(item, Mapping):
                a[prefix + c.DOCUMENT_METADATA] = _json(item)
            else:
                exact = False
    if not exact:
        a[c.LLMOBS_DOCUMENTS] = _json(documents)


def _plain_attributes(attributes: Mapping[str, Any], a: dict[str, Any]) -> None:
    rest: dict[str, Any] = {}
    for key, value in attributes.items():
        if key == c.ATTR_SESSION_ID and isinstance(value, str):
            a[c.SESSION_ID] = value
            a[c.GEN_AI_CONVERSATION_ID] = value
        elif key == c.ATTR_USER_ID and isinstance(value, str):
            a[c.USER_ID] = value
        elif key == c.ATTR_TAGS and isinstance(value, list) and value and all(isinstance(t, str) for t in value):
            a[c.TAG_TAGS] = list(value)
        elif key == c.ATTR_METADATA and isinstance(value, Mapping):
            a[c.METADATA] = _json(value)
        else:
            rest[key] = value
    if rest:
        a[c.LLMOBS_ATTRIBUTES] = _json(rest)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _iso(ns: int, plus_ms: float = 0.0) -> str | None:
    """Epoch nanoseconds plus milliseconds as ISO 8601 UTC, or None outside what datetime handles."""
    try:
        seconds, rest = divmod(ns + int(plus_ms * 1e6), 1_000_000_000)
        moment = datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat().replace("+00:00", "Z")
