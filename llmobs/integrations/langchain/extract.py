"""Turning LangChain payloads into span fields, on the pipeline thread.

The handler keeps references to what a run received and produced (messages, `LLMResult`,
documents, tool output) in a `RunRecord`, which it hangs on the span as `Span.deferred`. The
pipeline calls it once, before pricing, so nothing here runs on the application's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue

from llmobs.core.conventions import ATTR_METADATA, ATTR_SESSION_ID, ATTR_TAGS, ATTR_USER_ID
from llmobs.core.model import ErrorInfo, Span, SpanKind, Status, Usage

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


class RunRecord:
    """What one LangChain run received and produced, kept by reference until the pipeline reads it.

    `owner` is the handler that started the run: when two `CallbackHandler`s see the same run
    (a global one and an explicit one), only the owner records it.
    """

    __slots__ = (
        "context_parent",
        "first_chunk_ns",
        "inputs",
        "kind",
        "metadata",
        "name",
        "outputs",
        "owner",
        "params",
        "stream_usage",
        "tags",
        "text_prompts",
        "tool_call_id",
    )

    def __init__(
        self,
        owner: object,
        kind: SpanKind,
        name: str | None,
        inputs: Any,
        metadata: Mapping[str, Any] | None,
        tags: list[str] | None,
        params: Any = None,
        tool_call_id: str | None = None,
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.name = name
        self.inputs = inputs
        self.metadata = metadata
        self.tags = tags
        self.params = params
        self.tool_call_id = tool_call_id
        self.outputs: Any = None
        self.first_chunk_ns = 0
        self.stream_usage: Any = None
        self.text_prompts = False
        # For a LangChain root run: the span that was current when it started (a manual span,
        # another framework's), so that a sibling root started later in the same context (batch()
        # starts every input before running any) finds the real outer parent, not the sibling.
        self.context_parent: Span | None = None

    def __call__(self, span: Span) -> None:
        """Fill `span` from the run's payloads (the pipeline calls this once)."""
        _common(self, span)
        kind = self.kind
        if kind is SpanKind.LLM:
            _llm(self, span)
        elif kind is SpanKind.TOOL:
            _tool(self, span)
        elif kind is SpanKind.RETRIEVER:
            span.input = self.inputs
            if self.outputs is not None:
                span.documents = [document_record(d) for d in self.outputs]
        else:
            span.input = compact(self.inputs)
            span.output = compact(self.outputs)


def compact(value: Any) -> Any:
    """LangChain objects in chain inputs and outputs as the plain records the span model uses.

    Messages become `{"role", "content", ...}`, prompt values their message lists, documents
    `{"id", "score", "content"}`; one level of dicts and lists is looked into. Anything else is
    left for the content policy to convert.
    """
    kind = type(value)
    if kind is str or (kind is dict and not value):
        return value
    if kind is dict:
        return {k: _compact_one(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_compact_one(v) for v in value]
    return _compact_one(value)


def _compact_one(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value  # without the isinstance checks below (pydantic classes: the ABC's slow path)
    if isinstance(value, BaseMessage):
        return message_dict(value)
    if isinstance(value, PromptValue):
        return [message_dict(m) for m in value.to_messages()]
    if isinstance(value, Document):
        return document_record(value)
    if type(value) is list and value and isinstance(value[0], (BaseMessage, Document)):
        return [_compact_one(v) for v in value]
    return value


def _common(run: RunRecord, span: Span) -> None:
    attributes = span.attributes
    if run.tags:
        tags = [t for t in run.tags if not t.startswith(_INTERNAL_TAG_PREFIXES)]
        if tags:
            attributes[ATTR_TAGS] = tags
    metadata = run.metadata
    if not metadata:
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


def _llm(run: RunRecord, span: Span) -> None:
    metadata = run.metadata or {}
    params = _mapping(run.params)
    chat = not run.text_prompts
    span.input = [message_dict(m) for m in run.inputs] if chat else list(run.inputs or ())
    span.provider = provider_name(metadata.get("ls_provider"))

    response = run.outputs
    generation = _first_generation(response)
    message = getattr(generation, "message", None)
    response_metadata = getattr(message, "response_metadata", None) or {}
    response_model = response_metadata.get("model_name") or response_metadata.get("model")
    model = metadata.get("ls_model_name") or response_model or params.get("model") or params.get("model_name")
    span.model = model
    if response_model and response_model != model:
        span.response_model = response_model

    usage = None
    if message is not None:
        usage = usage_from_metadata(getattr(message, "usage_metadata", None))
    if usage is None and run.stream_usage is not None:
        usage = usage_from_metadata(run.stream_usage)
    if usage is None:
        llm_output = getattr(response, "llm_output", None)
        if isinstance(llm_output, Mapping):
            usage = usage_from_token_usage(llm_output.get("token_usage") or llm_output.get("usage"))
    span.usage = usage

    if message is not None:
        span.output = message_dict(message)
    elif generation is not None:
        span.output = getattr(generation, "text", None)
    finish = response_metadata.get("finish_reason") or response_metadata.get("stop_reason")
    if finish is None:
        info = getattr(generation, "generation_info", None)
        if isinstance(info, Mapping):
            finish = info.get("finish_reason")
    if finish is not None:
        span.attributes[ATTR_FINISH_REASONS] = [str(finish)]

    # Over the call's parameters (a handful), not over every parameter name we know.
    request = {k: v for k, v in params.items() if v is not None and k in _REQUEST_PARAM_NAMES}
    for key, meta_key in (("temperature", "ls_temperature"), ("max_tokens", "ls_max_tokens")):
        if key not in request and metadata.get(meta_key) is not None:
            request[key] = metadata[meta_key]
    if request:
        span.attributes[ATTR_REQUEST] = request
    if run.first_chunk_ns:
        span.ttft_ms = max(0.0, (run.first_chunk_ns - span.start_ns) / 1e6)

    operation = "chat" if chat else "text_completion"
    span.name = f"{operation} {model or run.name or 'model'}"


def _first_generation(response: Any) -> Any:
    generations = getattr(response, "generations", None)
    if generations and generations[0]:
        return generations[0][0]
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


def message_dict(message: Any) -> Any:
    """A chat message as `{"role", "content", ...}` with tool calls and ids where present."""
    # Read the pydantic fields straight from __dict__: getattr() of a field a message class does
    # not have goes through pydantic's slow __getattr__ and an AttributeError.
    fields: dict[str, Any] | None = getattr(message, "__dict__", None)
    if not fields:
        return message
    kind = fields.get("type")
    if kind is None:
        return message
    role = _ROLES.get(kind) or fields.get("role") or kind
    out: dict[str, Any] = {"role": role, "content": fields.get("content")}
    name = fields.get("name")
    if name:
        out["name"] = name
    tool_calls = fields.get("tool_calls")
    if tool_calls:
        out["tool_calls"] = [
            {"id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")} for call in tool_calls
        ]
    tool_call_id = fields.get("tool_call_id")
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out


# -- tool and retriever runs -----------------------------------------------------------------


def _tool(run: RunRecord, span: Span) -> None:
    span.input = run.inputs
    output = run.outputs
    call_id = run.tool_call_id
    if getattr(output, "type", None) == "tool":
        call_id = call_id or getattr(output, "tool_call_id", None)
        span.output = output.content
        if getattr(output, "status", None) == "error" and span.status is not Status.ERROR:
            # handle_tool_error turns a ToolException into a ToolMessage(status="error"): the
            # tool failed even though on_tool_end fired.
            span.status = Status.ERROR
            span.error = ErrorInfo("ToolError", str(output.content))
    else:
        span.output = output
    span.tool = {"name": run.name, "call_id": call_id}


def document_record(document: Any) -> dict[str, Any]:
    """`{"id", "score", "content"}` for a LangChain `Document` (id and score where present)."""
    metadata = getattr(document, "metadata", None) or {}
    doc_id = getattr(document, "id", None) or metadata.get("id") or metadata.get("source")
    score = metadata.get("score", metadata.get("relevance_score"))
    record: dict[str, Any] = {"id": doc_id, "score": score, "content": getattr(document, "page_content", document)}
    extra = {k: v for k, v in metadata.items() if k not in ("id", "score", "relevance_score")}
    if extra:
        record["metadata"] = extra
    return record
