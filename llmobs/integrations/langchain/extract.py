"""Turning a LangChain run's payload into span fields, off the application's thread.

The handler keeps references to what a run received and produced in a `record.RunRecord`. The
pipeline has it encoded to JSON (`record.encode_payload`: one orjson call, with LangChain's
messages, prompt values and documents as tagged field maps), and `apply_payload` here reads the
decoded payload into the span. That happens in the store's writer process when the store is the
only sink (the payload crosses the pipe as JSON, and the extraction runs on that process's GIL,
not the application's), else on the pipeline thread. This module works on plain JSON values
only and never imports LangChain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmobs.core.conventions import ATTR_METADATA, ATTR_SESSION_ID, ATTR_TAGS, ATTR_USER_ID
from llmobs.core.model import ErrorInfo, Span, Status, Usage

#: LangChain `ls_provider` values → OpenTelemetry `gen_ai.provider.name` values.
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "google_genai": "gcp.gemini",
    "google_gemini": "gcp.gemini",
    "google_vertexai": "gcp.vertex_ai",
    "google_anthropic_vertex": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "amazon_bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "xai": "x_ai",
    "ibm": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "cohere": "cohere",
    "perplexity": "perplexity",
}

#: Metadata keys that name a conversation (the first one present wins) or a user.
SESSION_KEYS = ("session_id", "thread_id", "conversation_id")
USER_KEYS = ("user_id",)

#: Invocation parameters recorded as the request's parameters.
REQUEST_PARAMS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "n",
    "stop",
    "reasoning_effort",
)

_REQUEST_PARAM_NAMES = frozenset(REQUEST_PARAMS)

#: Attribute keys this integration writes besides the conventional ones.
ATTR_REQUEST = "request"
ATTR_FINISH_REASONS = "finish_reasons"
ATTR_INTERRUPTED = "interrupted"

#: Tags LangChain and LangGraph add to every step (`seq:step:2`, `graph:step:1`): position, not meaning.
_INTERNAL_TAG_PREFIXES = ("seq:step:", "graph:step:", "map:key:")

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "function",
    "HumanMessageChunk": "user",
    "AIMessageChunk": "assistant",
    "SystemMessageChunk": "system",
    "ToolMessageChunk": "tool",
    "FunctionMessageChunk": "function",
}


def provider_name(ls_provider: Any) -> str | None:
    """The OTel provider name for a LangChain `ls_provider` (unknown ones pass through)."""
    if not ls_provider or not isinstance(ls_provider, str):
        return None
    key = ls_provider.lower()
    return PROVIDER_NAMES.get(key, key)


# -- payloads --------------------------------------------------------------------------------

#: The first element of a two-element list that stands for a LangChain object in a payload
#: (`record.encode_payload`); the second is the object's fields.
MESSAGE_TAG = "\x00lc:message"
PROMPT_TAG = "\x00lc:prompt"
DOCUMENT_TAG = "\x00lc:document"
_TAGS = frozenset({MESSAGE_TAG, PROMPT_TAG, DOCUMENT_TAG})

#: `apply_payload`'s payload: a JSON array of these, in this order (`record.RunRecord.payload`).
PAYLOAD_FIELDS = (
    "kind",
    "name",
    "inputs",
    "outputs",
    "metadata",
    "tags",
    "params",
    "tool_call_id",
    "first_chunk_ns",
    "stream_usage",
    "text_prompts",
)


def apply_payload(span: Span, payload: Any) -> None:
    """Fill `span` from a run's decoded payload (see `PAYLOAD_FIELDS`)."""
    (kind, name, inputs, outputs, metadata, tags, params, tool_call_id, first_chunk_ns, stream_usage, text_prompts) = (
        payload
    )
    _common(tags, metadata, span)
    if kind == "llm":
        _llm(span, name, inputs, outputs, metadata, params, first_chunk_ns, stream_usage, text_prompts)
    elif kind == "tool":
        _tool(span, name, inputs, outputs, tool_call_id)
    elif kind == "retriever":
        span.input = compact(inputs)
        if type(outputs) is list:
            span.documents = [
                document_record(d[1]) if _tag(d) == DOCUMENT_TAG else {"id": None, "score": None, "content": d}
                for d in outputs
            ]
    else:
        span.input = compact(inputs)
        span.output = compact(outputs)


def _tag(value: Any) -> str | None:
    """The tag of a tagged LangChain object (`[TAG, fields]`), else None."""
    if type(value) is list and len(value) == 2:
        tag = value[0]
        if type(tag) is str and tag in _TAGS:
            return tag
    return None


def _untagged(value: Any, tag: str) -> Any:
    """The fields of a `[tag, fields]` pair, else `value` itself."""
    return value[1] if _tag(value) == tag else value


def compact(value: Any) -> Any:
    """Payload values as the plain records the span model uses, at any depth.

    Messages become `{"role", "content", ...}`, prompt values their message lists, documents
    `{"id", "score", "content"}`; other values are already plain.
    """
    kind = type(value)
    if kind is list:
        if len(value) == 2:
            tag = value[0]
            if tag == MESSAGE_TAG:
                return message_dict(value[1])
            if tag == PROMPT_TAG:
                return [compact(m) for m in value[1]] if type(value[1]) is list else value[1]
            if tag == DOCUMENT_TAG:
                return document_record(value[1])
        return [compact(v) for v in value]
    if kind is dict:
        return {k: compact(v) for k, v in value.items()} if value else value
    return value


def _common(tags: Any, metadata: Any, span: Span) -> None:
    attributes = span.attributes
    if tags and type(tags) is list:
        kept_tags = [t for t in tags if not (type(t) is str and t.startswith(_INTERNAL_TAG_PREFIXES))]
        if kept_tags:
            attributes[ATTR_TAGS] = kept_tags
    if not metadata or type(metadata) is not dict:
        return
    kept = {k: v for k, v in metadata.items() if not (k.startswith("ls_") or k == "lc_versions")}
    if not kept:
        return  # LangChain's own ls_* keys only: no session or user either
    attributes[ATTR_METADATA] = kept
    for key in SESSION_KEYS:
        value = kept.get(key)
        if value is not None:
            attributes[ATTR_SESSION_ID] = str(value)
            break
    for key in USER_KEYS:
        value = kept.get(key)
        if value is not None:
            attributes[ATTR_USER_ID] = str(value)
            break


# -- model runs ------------------------------------------------------------------------------


def _llm(
    span: Span,
    name: Any,
    inputs: Any,
    response: Any,
    metadata: Any,
    params: Any,
    first_chunk_ns: Any,
    stream_usage: Any,
    text_prompts: Any,
) -> None:
    metadata = _mapping(metadata)
    params = _mapping(params)
    chat = not text_prompts
    if type(inputs) is list:
        span.input = compact(inputs)
    span.provider = provider_name(metadata.get("ls_provider"))

    response = _mapping(response)
    generation = _mapping(_first_generation(response))
    message = _untagged(generation.get("message"), MESSAGE_TAG)
    fields = _mapping(message)
    response_metadata = _mapping(fields.get("response_metadata"))
    response_model = response_metadata.get("model_name") or response_metadata.get("model")
    model = metadata.get("ls_model_name") or response_model or params.get("model") or params.get("model_name")
    span.model = model
    if response_model and response_model != model:
        span.response_model = response_model

    usage = usage_from_metadata(fields.get("usage_metadata"))
    if usage is None and stream_usage is not None:
        usage = usage_from_metadata(stream_usage)
    if usage is None:
        llm_output = response.get("llm_output")
        if type(llm_output) is dict:
            usage = usage_from_token_usage(llm_output.get("token_usage") or llm_output.get("usage"))
    span.usage = usage

    if fields:
        span.output = message_dict(fields)
    elif generation:
        span.output = generation.get("text")
    finish = response_metadata.get("finish_reason") or response_metadata.get("stop_reason")
    if finish is None:
        finish = _mapping(generation.get("generation_info")).get("finish_reason")
    if finish is not None:
        span.attributes[ATTR_FINISH_REASONS] = [str(finish)]

    # Over the call's parameters (a handful), not over every parameter name we know.
    request = {k: v for k, v in params.items() if v is not None and k in _REQUEST_PARAM_NAMES}
    for key, meta_key in (("temperature", "ls_temperature"), ("max_tokens", "ls_max_tokens")):
        if key not in request and metadata.get(meta_key) is not None:
            request[key] = metadata[meta_key]
    if request:
        span.attributes[ATTR_REQUEST] = request
    if first_chunk_ns and type(first_chunk_ns) is int:
        span.ttft_ms = max(0.0, (first_chunk_ns - span.start_ns) / 1e6)

    operation = "chat" if chat else "text_completion"
    span.name = f"{operation} {model or name or 'model'}"


def _first_generation(response: Mapping[str, Any]) -> Any:
    generations = response.get("generations")
    if type(generations) is list and generations:
        first = generations[0]
        if type(first) is list and first:
            return first[0]
    return None


def usage_from_metadata(usage: Any) -> Usage | None:
    """A `Usage` from LangChain's `UsageMetadata` (input includes cache reads, output reasoning)."""
    if type(usage) is not dict and not isinstance(usage, Mapping):
        return None
    inp = usage.get("input_tokens")
    out = usage.get("output_tokens")
    total = usage.get("total_tokens")
    if inp is None and out is None and total is None:
        return None
    details = _mapping(usage.get("input_token_details"))
    out_details = _mapping(usage.get("output_token_details"))
    if total is None and (inp is not None or out is not None):
        total = _sum(inp, out)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        cache_read_tokens=details.get("cache_read"),
        cache_write_tokens=details.get("cache_creation"),
        reasoning_tokens=out_details.get("reasoning"),
    )


def usage_from_token_usage(token_usage: Any) -> Usage | None:
    """A `Usage` from an OpenAI-style `llm_output["token_usage"]` (prompt/completion tokens)."""
    if not isinstance(token_usage, Mapping):
        return None
    inp = token_usage.get("prompt_tokens", token_usage.get("input_tokens"))
    out = token_usage.get("completion_tokens", token_usage.get("output_tokens"))
    if inp is None and out is None:
        return None
    total = token_usage.get("total_tokens")
    prompt_details = _mapping(token_usage.get("prompt_tokens_details"))
    completion_details = _mapping(token_usage.get("completion_tokens_details"))
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total if total is not None else _sum(inp, out),
        cache_read_tokens=prompt_details.get("cached_tokens"),
        reasoning_tokens=completion_details.get("reasoning_tokens"),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    # A dict is checked first: isinstance() against the Mapping ABC costs several times more.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _sum(inp: Any, out: Any) -> Any:
    """input + output when both are numbers (the pipeline sanitises whatever a provider sent)."""
    try:
        return (inp or 0) + (out or 0)
    except TypeError:
        return None


def message_dict(fields: Any) -> Any:
    """A chat message's fields as `{"role", "content", ...}` with tool calls and ids where present."""
    if type(fields) is not dict:
        return fields
    kind = fields.get("type")
    if kind is None:
        return fields
    role = _ROLES.get(kind) or fields.get("role") or kind
    out: dict[str, Any] = {"role": role, "content": fields.get("content")}
    name = fields.get("name")
    if name:
        out["name"] = name
    tool_calls = fields.get("tool_calls")
    if tool_calls and type(tool_calls) is list:
        out["tool_calls"] = [
            {"id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")}
            for call in tool_calls
            if type(call) is dict
        ]
    tool_call_id = fields.get("tool_call_id")
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out


# -- tool and retriever runs -----------------------------------------------------------------


def _tool(span: Span, name: Any, inputs: Any, output: Any, call_id: Any) -> None:
    span.input = compact(inputs)
    fields = _untagged(output, MESSAGE_TAG)
    if _tag(output) == MESSAGE_TAG and type(fields) is dict and fields.get("type") == "tool":
        call_id = call_id or fields.get("tool_call_id")
        span.output = compact(fields.get("content"))
        if fields.get("status") == "error" and span.status is not Status.ERROR:
            # handle_tool_error turns a ToolException into a ToolMessage(status="error"): the
            # tool failed even though on_tool_end fired.
            span.status = Status.ERROR
            span.error = ErrorInfo("ToolError", str(fields.get("content")))
    else:
        span.output = compact(output)
    span.tool = {"name": name, "call_id": call_id}


def document_record(document: Any) -> dict[str, Any]:
    """`{"id", "score", "content"}` from a LangChain `Document`'s fields (id and score where present)."""
    if type(document) is not dict:
        return {"id": None, "score": None, "content": document}
    metadata = _mapping(document.get("metadata"))
    doc_id = document.get("id") or metadata.get("id") or metadata.get("source")
    score = metadata.get("score", metadata.get("relevance_score"))
    record: dict[str, Any] = {"id": doc_id, "score": score, "content": document.get("page_content")}
    extra = {k: v for k, v in metadata.items() if k not in ("id", "score", "relevance_score")}
    if extra:
        record["metadata"] = extra
    return record
