"""Span fields from what LlamaIndex handed us, run on the pipeline thread (`Span.deferred`).

The handlers only keep references (bound arguments, the result, the events); everything that
walks messages, nodes or responses happens here, off the application's thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmobs.core.model import ErrorInfo, Span, SpanKind, Status
from llmobs.integrations.llamaindex.classify import provider_of
from llmobs.integrations.llamaindex.usage import field, response_model_of, usage_from_response

if TYPE_CHECKING:
    from llmobs.integrations.llamaindex.handlers import Node

#: Attribute names this integration writes (everything else goes in the contract's fields).
ATTR_RUN_ID = "llamaindex.run_id"
ATTR_STEP_EVENT = "llamaindex.step.input_event"
ATTR_STEP_SUMMARY = "llamaindex.step.input_summary"  # a tag LlamaIndex sets, read not written
ATTR_STREAM_CLOSED_EARLY = "llamaindex.stream.closed_early"
ATTR_EMBEDDING_COUNT = "llamaindex.embedding.count"
ATTR_EMBEDDING_DIMENSIONS = "llamaindex.embedding.dimensions"
ATTR_RERANK_TOP_N = "llamaindex.rerank.top_n"

TOOL_ERROR_TYPE = "ToolError"


def deferred_for(node: Node) -> Callable[[Span], None]:
    """The extraction to run for `node`'s span on the pipeline thread."""
    kind = node.rule.kind
    if node.rule.step:
        return lambda span: _step(node, span)
    fn = _BY_KIND.get(kind, _chain) if kind is not None else _chain
    return lambda span: fn(node, span)


# -- LLM --------------------------------------------------------------------------------------


def _llm(node: Node, span: Span) -> None:
    start = node.start_ev
    completion = False
    if start is not None:
        completion = hasattr(start, "prompt")
        model = field(start.model_dict, "model_name")
        if isinstance(model, str) and model and model != "unknown":
            span.model = model
        span.input = start.prompt if completion else [message_dict(m) for m in node.messages or ()]
    span.provider = provider_of(type(node.instance))
    response = node.end_ev.response if node.end_ev is not None else None
    if response is None and node.result is not None and hasattr(node.result, "raw"):
        response = node.result
    if response is not None:
        if hasattr(response, "message"):
            span.output = message_dict(response.message)
        else:
            completion = True
            span.output = getattr(response, "text", None)
        usage = usage_from_response(response)
        if usage is not None:
            span.usage = usage
        response_model = response_model_of(response)
        if response_model and response_model != span.model:
            span.response_model = response_model
    elif node.predict_end is not None:
        span.output = getattr(node.predict_end, "output", None)
    operation = "text_completion" if completion else "chat"
    span.name = f"{operation} {span.model or type(node.instance).__name__}"
    if node.closed_early:
        span.attributes[ATTR_STREAM_CLOSED_EARLY] = True


def message_dict(message: Any) -> dict[str, Any]:
    """A chat message as `{"role", "content", "tool_calls"?, "tool_call_id"?}`."""
    role = getattr(message, "role", None)
    out: dict[str, Any] = {"role": getattr(role, "value", role), "content": _content(message)}
    calls = []
    for block in getattr(message, "blocks", None) or ():
        if getattr(block, "block_type", None) == "tool_call":
            calls.append(
                {"id": block.tool_call_id, "name": block.tool_name, "arguments": _jsonable_args(block.tool_kwargs)}
            )
    extra = getattr(message, "additional_kwargs", None) or {}
    if not calls:
        for call in extra.get("tool_calls") or ():
            function = field(call, "function")
            calls.append(
                {"id": field(call, "id"), "name": field(function, "name"), "arguments": field(function, "arguments")}
            )
    if calls:
        out["tool_calls"] = calls
    tool_call_id = extra.get("tool_call_id")
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
    return out


def _content(message: Any) -> Any:
    try:
        return message.content
    except Exception:  # a block type this version cannot render as text
        return None


def _jsonable_args(args: Any) -> Any:
    return args if isinstance(args, (dict, str)) else str(args)


# -- retrieval, embeddings, reranking ---------------------------------------------------------


def query_text(value: Any) -> Any:
    """The query string of a `str` or `QueryBundle`."""
    if value is None or isinstance(value, str):
        return value
    text = getattr(value, "query_str", None)
    return text if text is not None else str(value)


def documents_of(nodes: Any) -> list[dict[str, Any]] | None:
    """`NodeWithScore`s as `{"id", "score", "content"}`."""
    if not isinstance(nodes, list):
        return None
    docs = []
    for item in nodes:
        node: Any = getattr(item, "node", item)
        try:
            content = node.get_content()
        except Exception:
            content = None
        docs.append({"id": getattr(node, "node_id", None), "score": getattr(item, "score", None), "content": content})
    return docs


def _retriever(node: Node, span: Span) -> None:
    args = node.bound_args.arguments
    span.input = query_text(args.get("str_or_query_bundle", args.get("query_bundle")))
    span.documents = documents_of(node.result)


def _embedding(node: Node, span: Span) -> None:
    start, end = node.start_ev, node.end_ev
    if start is not None:
        model = field(start.model_dict, "model_name")
        if isinstance(model, str) and model and model != "unknown":
            span.model = model
    span.provider = provider_of(type(node.instance))
    if end is not None:
        chunks = list(end.chunks or ())
        span.input = chunks
        span.attributes[ATTR_EMBEDDING_COUNT] = len(chunks)
        embeddings = end.embeddings or []
        if embeddings and isinstance(embeddings[0], list):
            span.attributes[ATTR_EMBEDDING_DIMENSIONS] = len(embeddings[0])
    else:
        args = node.bound_args.arguments
        span.input = args.get("query", args.get("text", args.get("texts")))
    span.name = f"embeddings {span.model or type(node.instance).__name__}"


def _reranker(node: Node, span: Span) -> None:
    start = node.start_ev
    args = node.bound_args.arguments
    span.input = query_text(args.get("query_bundle", args.get("query_str")))
    if start is not None:
        if start.model_name:
            span.model = start.model_name
        if span.input is None:
            span.input = query_text(start.query)
        if start.top_n is not None:
            span.attributes[ATTR_RERANK_TOP_N] = start.top_n
    span.provider = provider_of(type(node.instance))
    span.documents = documents_of(node.result)
    if span.model:
        span.name = f"rerank {span.model}"


# -- tools, agents, workflow steps, chains ----------------------------------------------------


def _tool(node: Node, span: Span) -> None:
    metadata = getattr(node.instance, "metadata", None)
    name = getattr(metadata, "name", None) or span.name
    span.tool = {"name": name, "call_id": node.call_id}
    # Tools that take the workflow Context get it injected as `ctx`: not an argument of the call.
    kwargs = {k: v for k, v in node.bound_args.kwargs.items() if k != "ctx"}
    args = node.bound_args.args
    if args:
        kwargs["args"] = list(args)
    span.input = kwargs
    if span.kind is SpanKind.HANDOFF:
        to_agent = kwargs.get("to_agent")
        span.name = f"handoff {to_agent}" if to_agent else "handoff"
    else:
        span.name = f"execute_tool {name}"
    result = node.result
    if result is not None:
        span.output = getattr(result, "content", result)
        if getattr(result, "is_error", False) and span.status is Status.OK:
            span.status = Status.ERROR
            span.error = ErrorInfo(TOOL_ERROR_TYPE, str(span.output))


def _agent(node: Node, span: Span) -> None:
    instance = node.instance
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name:
        root = getattr(instance, "root_agent", None)
        name = root if isinstance(root, str) and root else type(instance).__name__
    span.name = f"invoke_agent {name}"
    span.agent = {"name": name}
    _workflow_io(node, span)


def _workflow(node: Node, span: Span) -> None:
    _workflow_io(node, span)


def _workflow_io(node: Node, span: Span) -> None:
    start = node.bound_args.arguments.get("start_event")
    user_msg = getattr(start, "user_msg", None)
    span.input = _message_text(user_msg) if user_msg is not None else start
    result = node.result
    output = getattr(result, "result", result) if result is not None else None
    response = getattr(output, "response", None)
    span.output = _message_text(response) if response is not None else output


def _message_text(value: Any) -> Any:
    return value if isinstance(value, str) else _content(value)


def _step(node: Node, span: Span) -> None:
    # A step's events carry the whole chat history, which the llm spans already hold: record the
    # summary LlamaIndex made of the input event and the type of the output event, not copies.
    ev = node.bound_args.arguments.get("ev")
    tags = node.tags or {}
    span.input = tags.get(ATTR_STEP_SUMMARY) or type(ev).__name__
    run_id = tags.get(ATTR_RUN_ID)
    if run_id:
        span.attributes[ATTR_RUN_ID] = run_id
    span.attributes[ATTR_STEP_EVENT] = type(ev).__name__
    agent_name = getattr(ev, "current_agent_name", None)
    if isinstance(agent_name, str):
        span.agent = {"name": agent_name}
    result = node.result
    if result is not None:
        span.output = type(result).__name__


def _chain(node: Node, span: Span) -> None:
    args = node.bound_args.arguments
    for key in ("str_or_query_bundle", "query_bundle", "query", "query_str", "message"):
        if key in args:
            span.input = query_text(args[key])
            break
    result = node.result
    if result is None:
        return
    text = getattr(result, "response", None)
    if isinstance(text, str):
        span.output = text
        docs = documents_of(getattr(result, "source_nodes", None))
        if docs:
            span.documents = docs
    elif isinstance(result, (str, int, float, bool)):
        span.output = result


_BY_KIND: dict[SpanKind, Callable[[Node, Span], None]] = {
    SpanKind.LLM: _llm,
    SpanKind.EMBEDDING: _embedding,
    SpanKind.RETRIEVER: _retriever,
    SpanKind.RERANKER: _reranker,
    SpanKind.TOOL: _tool,
    SpanKind.AGENT: _agent,
    SpanKind.WORKFLOW: _workflow,
    SpanKind.CHAIN: _chain,
}
