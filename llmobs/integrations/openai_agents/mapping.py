"""How an Agents SDK span becomes an llmobs `Span`: its kind and name, then every other field.

`start_fields` runs on the runner's loop when a span starts and only picks the kind and a first
name. `fill_span` runs later, on llmobs' pipeline thread (as the span's `deferred`), and reads
everything else off the SDK span: timestamps, model, usage, content, tools, errors. The SDK does
not touch a span's data after the span ends, so reading it late is safe and keeps the runner's
loop free.

Dispatch is on `span_data.type`, never on `export()["type"]`: task and turn spans export as
`custom`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from llmobs.core.conventions import ATTR_METADATA, ATTR_SESSION_ID
from llmobs.core.model import ErrorInfo, Span, SpanKind, Usage, int_or_none, tool_arguments
from llmobs.core.tracer import set_error

FRAMEWORK = "openai-agents"
PROVIDER_OPENAI = "openai"

# Attribute names only this integration writes (the shared ones live in core.conventions).
ATTR_SDK_TRACE_ID = "openai_agents.trace_id"
ATTR_AGGREGATE_USAGE = "aggregate_usage"
ATTR_RESPONSE_ID = "response_id"
ATTR_REQUESTS = "requests"
ATTR_MODEL_CONFIG = "model_config"
ATTR_TOOLS = "tools"
ATTR_HANDOFFS = "handoffs"
ATTR_OUTPUT_TYPE = "output_type"
ATTR_MCP_SERVER = "mcp_server"
ATTR_MCP_DATA = "mcp_data"
ATTR_FROM_AGENT = "from_agent"
ATTR_TO_AGENT = "to_agent"
ATTR_TRIGGERED = "triggered"
ATTR_DATA = "data"
ATTR_ERROR_DATA = "error_data"
ATTR_WORKFLOW_NAME = "workflow_name"

#: The ErrorInfo type of an error the SDK recorded with `span.set_error` (it carries no exception).
SPAN_ERROR_TYPE = "agents.SpanError"

TASK_SPAN_NAME = "run"

_KINDS: dict[str, SpanKind] = {
    "task": SpanKind.AGENT,
    "agent": SpanKind.AGENT,
    "turn": SpanKind.CHAIN,
    "response": SpanKind.LLM,
    "generation": SpanKind.LLM,
    "function": SpanKind.TOOL,
    "mcp_tools": SpanKind.TOOL,
    "handoff": SpanKind.HANDOFF,
    "guardrail": SpanKind.GUARDRAIL,
    "custom": SpanKind.CUSTOM,
}


def start_fields(data: Any) -> tuple[SpanKind, str]:
    """The kind and first name of a span from its span data (cheap: runs on the runner's loop)."""
    kind_name = data.type
    kind = _KINDS.get(kind_name, SpanKind.CUSTOM)
    if kind_name in ("agent", "function", "guardrail", "custom"):
        return kind, str(data.name)
    if kind_name == "turn":
        return kind, f"turn {data.turn}"
    if kind_name == "task":
        return kind, TASK_SPAN_NAME
    return kind, kind_name


# -- the pipeline thread ---------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def iso_to_ns(value: str) -> int:
    """Unix epoch nanoseconds of an ISO-8601 timestamp (naive means UTC), to the microsecond."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def fill_span(span: Span, sdk_span: Any) -> None:
    """Copy everything a finished SDK span says onto `span` (pipeline thread, via `deferred`)."""
    started_at = sdk_span.started_at
    ended_at = sdk_span.ended_at
    if started_at:
        span.start_ns = iso_to_ns(started_at)
    if ended_at:
        span.end_ns = iso_to_ns(ended_at)
    if span.end_ns < span.start_ns:
        span.end_ns = span.start_ns
    data = sdk_span.span_data
    filler = _FILLERS.get(data.type, _fill_other)
    filler(span, data)
    error = sdk_span.error
    if error:
        apply_span_error(span, error)


def fill_trace(span: Span, trace: Any) -> None:
    """Copy a trace's group id and metadata onto its root span."""
    group_id = getattr(trace, "group_id", None)
    if group_id:
        span.attributes[ATTR_SESSION_ID] = group_id
    metadata = getattr(trace, "metadata", None)
    if metadata:
        span.attributes[ATTR_METADATA] = dict(metadata)


def apply_span_error(span: Span, error: Mapping[str, Any]) -> None:
    """Mark `span` failed with the SDK's `{"message", "data"}` error; the data goes to attributes."""
    message = str(error.get("message") or "error")
    data = error.get("data")
    if isinstance(data, Mapping):
        detail = data.get("error")
        if isinstance(detail, str) and detail and detail not in message:
            message = f"{message}: {detail}"
        span.attributes[ATTR_ERROR_DATA] = dict(data)
    set_error(span, ErrorInfo(SPAN_ERROR_TYPE, message))


def usage_from_span_usage(raw: Mapping[str, Any] | None) -> Usage | None:
    """Usage from the SDK's per-call usage dict (`ResponseSpanData.usage`, `GenerationSpanData.usage`).

    None when it reports no tokens at all: the SDK records `{"requests": 1}` with zero tokens when
    a provider omitted usage, and an unknown usage must not be priced as free.
    """
    if not raw:
        return None
    input_tokens = int_or_none(raw.get("input_tokens", raw.get("prompt_tokens")))
    output_tokens = int_or_none(raw.get("output_tokens", raw.get("completion_tokens")))
    total_tokens = int_or_none(raw.get("total_tokens"))
    if not input_tokens and not output_tokens and not total_tokens:
        return None
    input_details = _details(raw.get("input_tokens_details"))
    output_details = _details(raw.get("output_tokens_details"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens if total_tokens is not None else (input_tokens or 0) + (output_tokens or 0),
        cache_read_tokens=int_or_none(input_details.get("cached_tokens")),
        cache_write_tokens=int_or_none(input_details.get("cache_write_tokens")),
        reasoning_tokens=int_or_none(output_details.get("reasoning_tokens")),
    )


def usage_from_response(response: Any) -> Usage | None:
    """Usage from an `openai` Response's `usage` (`ResponseUsage`), if it has one."""
    raw = getattr(response, "usage", None)
    if raw is None:
        return None
    input_details = getattr(raw, "input_tokens_details", None)
    output_details = getattr(raw, "output_tokens_details", None)
    input_tokens = int_or_none(getattr(raw, "input_tokens", None))
    output_tokens = int_or_none(getattr(raw, "output_tokens", None))
    total_tokens = int_or_none(getattr(raw, "total_tokens", None))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens if total_tokens is not None else (input_tokens or 0) + (output_tokens or 0),
        cache_read_tokens=int_or_none(getattr(input_details, "cached_tokens", None)),
        cache_write_tokens=int_or_none(getattr(input_details, "cache_write_tokens", None)),
        reasoning_tokens=int_or_none(getattr(output_details, "reasoning_tokens", None)),
    )


def aggregate_usage(raw: Mapping[str, Any] | None) -> dict[str, int] | None:
    """A turn's or task's aggregate usage in llmobs' usage names (kept in attributes, never summed)."""
    if not raw:
        return None
    names = (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("total_tokens", "total_tokens"),
        ("cache_read_tokens", "cached_input_tokens"),
        ("cache_write_tokens", "cache_write_input_tokens"),
        ("requests", "requests"),
    )
    out: dict[str, int] = {}
    for ours, theirs in names:
        value = int_or_none(raw.get(theirs))
        if value is not None:
            out[ours] = value
    return out


def _details(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        return value[0]
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        dumped = dump()
        if isinstance(dumped, Mapping):
            return dumped
    return {}


def _fill_task(span: Span, data: Any) -> None:
    span.attributes[ATTR_WORKFLOW_NAME] = data.name
    usage = aggregate_usage(data.usage)
    if usage:
        span.attributes[ATTR_AGGREGATE_USAGE] = usage
    if data.metadata:
        span.attributes[ATTR_METADATA] = dict(data.metadata)


def _fill_turn(span: Span, data: Any) -> None:
    if data.agent_name:
        span.agent = {"name": data.agent_name}
    usage = aggregate_usage(data.usage)
    if usage:
        span.attributes[ATTR_AGGREGATE_USAGE] = usage
    if data.metadata:
        span.attributes[ATTR_METADATA] = dict(data.metadata)


def _fill_agent(span: Span, data: Any) -> None:
    span.agent = {"name": data.name}
    if data.tools:
        span.attributes[ATTR_TOOLS] = list(data.tools)
    if data.handoffs:
        span.attributes[ATTR_HANDOFFS] = list(data.handoffs)
    if data.output_type:
        span.attributes[ATTR_OUTPUT_TYPE] = data.output_type
    if data.metadata:
        # The SDK may put the agent's aggregate usage here (`metadata["usage"]`): an attribute, never summed.
        span.attributes[ATTR_METADATA] = dict(data.metadata)


def _fill_response(span: Span, data: Any) -> None:
    span.provider = PROVIDER_OPENAI
    response = data.response
    usage = usage_from_span_usage(data.usage)
    if response is not None:
        from_response = usage_from_response(response)
        if usage is None:
            usage = from_response
        elif from_response is not None:
            # A hand-written span usage dict may omit the details the response carries.
            if usage.cache_read_tokens is None:
                usage.cache_read_tokens = from_response.cache_read_tokens
            if usage.cache_write_tokens is None:
                usage.cache_write_tokens = from_response.cache_write_tokens
            if usage.reasoning_tokens is None:
                usage.reasoning_tokens = from_response.reasoning_tokens
    span.usage = usage
    if data.usage and data.usage.get("requests") not in (None, 1):
        span.attributes[ATTR_REQUESTS] = data.usage.get("requests")
    response_id = getattr(data, "_response_id", None)
    if response is not None:
        span.model = response.model or None
        response_id = response.id or response_id
        span.output = response.output
    if response_id:
        span.attributes[ATTR_RESPONSE_ID] = response_id
    if data.input is not None:
        span.input = data.input
    if span.model:
        span.name = span.model


def _fill_generation(span: Span, data: Any) -> None:
    span.model = data.model or None
    span.usage = usage_from_span_usage(data.usage)
    if data.usage and data.usage.get("requests") not in (None, 1):
        span.attributes[ATTR_REQUESTS] = data.usage.get("requests")
    config = data.model_config
    if config:
        span.attributes[ATTR_MODEL_CONFIG] = dict(config)
        base_url = str(config.get("base_url") or "")
        if "api.openai.com" in base_url:
            span.provider = PROVIDER_OPENAI
    span.input = data.input
    span.output = data.output
    if span.model:
        span.name = span.model


def _fill_function(span: Span, data: Any) -> None:
    span.tool = {"name": data.name}
    span.input = tool_arguments(data.input)
    span.output = data.output
    mcp = data.mcp_data
    if mcp:
        server = mcp.get("server") if isinstance(mcp, Mapping) else None
        if server:
            span.attributes[ATTR_MCP_SERVER] = server
        span.attributes[ATTR_MCP_DATA] = dict(mcp) if isinstance(mcp, Mapping) else mcp


def _fill_mcp_tools(span: Span, data: Any) -> None:
    span.tool = {"name": "list_tools"}
    if data.server:
        span.attributes[ATTR_MCP_SERVER] = data.server
        span.name = f"list_tools {data.server}"
    else:
        span.name = "list_tools"
    span.output = data.result


def _fill_handoff(span: Span, data: Any) -> None:
    span.name = f"{data.from_agent} -> {data.to_agent}"
    span.attributes[ATTR_FROM_AGENT] = data.from_agent
    span.attributes[ATTR_TO_AGENT] = data.to_agent


def _fill_guardrail(span: Span, data: Any) -> None:
    span.attributes[ATTR_TRIGGERED] = bool(data.triggered)


def _fill_custom(span: Span, data: Any) -> None:
    if data.data:
        span.attributes[ATTR_DATA] = data.data


def _fill_other(span: Span, data: Any) -> None:
    """Transcription, speech and span types newer than this module: model and content if any."""
    model = getattr(data, "model", None)
    if isinstance(model, str) and model:
        span.model = model
    for name in ("input", "output"):
        value = getattr(data, name, None)
        if value is not None:
            setattr(span, name, value)
    first_content_at = getattr(data, "first_content_at", None)  # speech spans time their first audio
    if isinstance(first_content_at, str) and first_content_at:
        span.ttft_ms = max(0.0, (iso_to_ns(first_content_at) - span.start_ns) / 1e6)


_FILLERS: dict[str, Callable[[Span, Any], None]] = {
    "task": _fill_task,
    "turn": _fill_turn,
    "agent": _fill_agent,
    "response": _fill_response,
    "generation": _fill_generation,
    "function": _fill_function,
    "mcp_tools": _fill_mcp_tools,
    "handoff": _fill_handoff,
    "guardrail": _fill_guardrail,
    "custom": _fill_custom,
}
