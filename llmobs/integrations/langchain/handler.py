"""`CallbackHandler`: LangChain callbacks → llmobs spans.

Every callback does the least it can on the application's thread: look the run up, stamp the
clock, keep references to the payloads (copying a message list an agent loop will keep
appending to) and start or end a span keyed by `run_id`. Extraction (usage, messages, tool calls,
model and provider, documents, finish reason) runs later on the pipeline thread or in the store's writer process, from `record.RunRecord`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables.config import var_child_runnable_config

from llmobs.core.model import Span, SpanKind
from llmobs.core.runtime import get_tracer
from llmobs.core.tracer import Tracer, _current_span, current_span
from llmobs.integrations.langchain.extract import ATTR_INTERRUPTED
from llmobs.integrations.langchain.record import RunRecord

logger = logging.getLogger("llmobs")

FRAMEWORK = "langchain"

_time_ns = time.time_ns
_LLM = SpanKind.LLM
_CHAIN = SpanKind.CHAIN
_AGENT = SpanKind.AGENT
_TOOL = SpanKind.TOOL
_RETRIEVER = SpanKind.RETRIEVER

#: Exceptions LangGraph raises to pause or redirect a graph (`GraphInterrupt`, `ParentCommand`,
#: ...): they all derive from `GraphBubbleUp` and are control flow, not failures.
_CONTROL_FLOW_BASES = frozenset({"GraphBubbleUp"})

_fault_lock = threading.Lock()
_faults: dict[str, int] = {}


def fault_counts() -> dict[str, int]:
    """How many times each callback failed inside llmobs (the application never sees these)."""
    with _fault_lock:
        return dict(_faults)


def _fault(where: str, exc: BaseException) -> None:
    key = f"{where}:{type(exc).__name__}"
    with _fault_lock:
        seen = key in _faults
        _faults[key] = _faults.get(key, 0) + 1
    if not seen:
        logger.warning("llmobs: LangChain %s callback failed (%r); the run is not affected", where, exc)


def _is_control_flow(error: BaseException) -> bool:
    return any(cls.__name__ in _CONTROL_FLOW_BASES for cls in type(error).__mro__)


def _start_root(tracer: Tracer, key: int, name: str, kind: SpanKind) -> tuple[Span, Span | None]:
    """Start the span of a LangChain root run (keyed `key`) under what encloses it.

    Returns the span and the non-LangChain span it nests under (see `RunRecord.context_parent`).
    """
    # Inside another runnable's body (a chain invoked with a fresh config from a tool, say),
    # that runnable is the parent; LangChain just did not link them.
    config = var_child_runnable_config.get()
    if config:
        enclosing = getattr(config.get("callbacks"), "parent_run_id", None)
        if enclosing is not None and tracer.get_span(enclosing.int) is not None:
            return tracer.start_span(key, name, kind, FRAMEWORK, enclosing.int, activate=True), None
    current = current_span()
    if current is None or current.framework != FRAMEWORK:
        return tracer.start_span(key, name, kind, FRAMEWORK, None, activate=True), current
    # The current span is a LangChain run this one is not part of (batch() starts all its inputs
    # in a row before running any): nest where that run nested, not under it.
    outer: Span | None = current
    while outer is not None and outer.framework == FRAMEWORK:
        record = outer.deferred
        outer = record.context_parent if type(record) is RunRecord else None
    if outer is not None and outer.end_ns:
        outer = None
    _current_span.set(outer)
    return tracer.start_span(key, name, kind, FRAMEWORK, None, activate=True), outer


def _serialized_name(serialized: Any) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ids = serialized.get("id")
    return str(ids[-1]) if ids else None


class CallbackHandler(BaseCallbackHandler):
    """Records LangChain and LangGraph runs as llmobs spans.

        from llmobs.integrations.langchain import CallbackHandler
        chain.invoke(question, config={"callbacks": [CallbackHandler()]})

    One instance may serve any number of concurrent runs, from any thread or task: all run
    state lives in the tracer's bounded in-flight map, keyed by `run_id`. Parent and child come
    from `run_id` / `parent_run_id` only. When two handlers see the same run (a global one from
    `llmobs.instrument()` and an explicit one), the first records it and the other ignores it.
    A callback never raises into the application: failures are logged once per kind and counted
    in `fault_counts()`.
    """

    # Called inline on the event loop under ainvoke/astream instead of in an executor thread:
    # no thread hop per event, and the span activated at start is visible to the run's children.
    # Sync batch() and RunnableParallel still call us from worker threads; the tracer is locked.
    run_inline = True
    raise_error = False
    #: The run id whose first streamed token was stamped last (see on_llm_new_token).
    _stamped_run: UUID | None = None

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # -- starts ----------------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or _serialized_name(serialized) or "chain"
            if metadata and metadata.get("ls_integration") == "langgraph" and "langgraph_node" not in metadata:
                kind = _AGENT
                span_name = f"invoke_agent {name}"
            else:
                kind = _CHAIN
                span_name = name
            if type(inputs) is list:
                inputs = inputs.copy()
            span = self._open(run_id, parent_run_id, span_name, RunRecord(self, kind, name, inputs, metadata, tags))
            if span is not None and kind is _AGENT:
                span.agent = {"name": name}
        except Exception as exc:
            _fault("on_chain_start", exc)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            # An agent loop keeps appending to the list it passed in: copy it, not just point at it.
            prompt = messages[0].copy() if messages else []
            record = RunRecord(
                self,
                _LLM,
                kwargs.get("name") or _serialized_name(serialized),
                prompt,
                metadata,
                tags,
                kwargs.get("invocation_params"),
            )
            self._open(run_id, parent_run_id, "chat", record)
        except Exception as exc:
            _fault("on_chat_model_start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            record = RunRecord(
                self,
                _LLM,
                kwargs.get("name") or _serialized_name(serialized),
                list(prompts),
                metadata,
                tags,
                kwargs.get("invocation_params"),
            )
            record.text_prompts = True
            self._open(run_id, parent_run_id, "text_completion", record)
        except Exception as exc:
            _fault("on_llm_start", exc)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            # kwargs["name"] is the run name (usually None); the tool's own name is serialized["name"].
            name = _serialized_name(serialized) or kwargs.get("name") or "tool"
            record = RunRecord(
                self,
                _TOOL,
                name,
                inputs if inputs is not None else input_str,
                metadata,
                tags,
                tool_call_id=kwargs.get("tool_call_id"),
            )
            self._open(run_id, parent_run_id, f"execute_tool {name}", record)
        except Exception as exc:
            _fault("on_tool_start", exc)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or _serialized_name(serialized) or "retriever"
            record = RunRecord(self, _RETRIEVER, name, query, metadata, tags)
            self._open(run_id, parent_run_id, f"retrieval {name}", record)
        except Exception as exc:
            _fault("on_retriever_start", exc)

    # -- streaming -------------------------------------------------------------------------------

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # Only the first token of a run matters (time to first token); a streamed answer has
        # hundreds. The run whose first token was stamped last is remembered by identity, so its
        # later tokens cost one comparison instead of a lookup.
        if run_id is self._stamped_run:
            return
        try:
            record = self._own_record(get_tracer(), run_id)
            if record is not None:
                if not record.first_chunk_ns:
                    record.first_chunk_ns = _time_ns()
                self._stamped_run = run_id
        except Exception as exc:
            _fault("on_llm_new_token", exc)

    def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # stream_events(version="v3") fires this instead of on_llm_new_token.
        try:
            record = self._own_record(get_tracer(), run_id)
            if record is None:
                return
            kind = event.get("event")
            if kind == "content-block-delta" or kind == "content-block-start":
                # The first content block (text or a tool call) opens with the first chunk.
                if not record.first_chunk_ns:
                    record.first_chunk_ns = _time_ns()
            elif kind == "message-finish":
                record.stream_usage = event.get("usage")
        except Exception as exc:
            _fault("on_stream_event", exc)

    # -- ends ------------------------------------------------------------------------------------

    def on_chain_end(self, outputs: Any, *, run_id: UUID, inputs: Any = None, **kwargs: Any) -> None:
        try:
            # A streamed run starts with a placeholder input ({"input": ""}) and ends with the
            # input it actually consumed, accumulated from the stream.
            self._end(run_id, outputs, inputs)
        except Exception as exc:
            _fault("on_chain_end", exc)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._end(run_id, response)
        except Exception as exc:
            _fault("on_llm_end", exc)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._end(run_id, output)
        except Exception as exc:
            _fault("on_tool_end", exc)

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        try:
            try:
                docs: Any = list(documents)
            except Exception:
                docs = None  # unreadable documents: the run still ends, without them
            self._end(run_id, docs)
        except Exception as exc:
            _fault("on_retriever_end", exc)

    # -- errors ----------------------------------------------------------------------------------

    def on_chain_error(self, error: BaseException, *, run_id: UUID, inputs: Any = None, **kwargs: Any) -> None:
        try:
            self._fail(run_id, error, None, inputs)
        except Exception as exc:
            _fault("on_chain_error", exc)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._fail(run_id, error, kwargs.get("response"))
        except Exception as exc:
            _fault("on_llm_error", exc)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._fail(run_id, error, None)
        except Exception as exc:
            _fault("on_tool_error", exc)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._fail(run_id, error, None)
        except Exception as exc:
            _fault("on_retriever_error", exc)

    # -- internals -------------------------------------------------------------------------------

    def _open(self, run_id: UUID, parent_run_id: UUID | None, span_name: str, record: RunRecord) -> Span | None:
        """Start the run's span with `record` as its deferred extraction; None if another handler has it."""
        if run_id is self._stamped_run:
            self._stamped_run = None  # a reused run id starts a new run: its first token counts
        tracer = get_tracer()
        # Spans are keyed by the run id's integer: a UUID key hashes through Python code every time.
        key = run_id.int
        running = tracer.get_span(key)
        if running is not None:
            # Another CallbackHandler that started this run records it (it got the event
            # first). This handler seeing a run id still in flight is LangChain reusing a run id
            # (a config carrying `run_id` used twice): a new run, and the tracer keeps both.
            other = running.deferred
            if type(other) is RunRecord and other.owner is not self:
                return None
        if parent_run_id is not None:
            span = tracer.start_span(key, span_name, record.kind, FRAMEWORK, parent_run_id.int, activate=True)
        else:
            span, record.context_parent = _start_root(tracer, key, span_name, record.kind)
        span.deferred = record
        return span

    def _own_record(self, tracer: Tracer, run_id: UUID) -> RunRecord | None:
        span = tracer.get_span(run_id.int)
        if span is None:
            return None
        record = span.deferred
        if type(record) is RunRecord and record.owner is self:
            return record
        return None

    def _own_span(self, tracer: Tracer, run_id: UUID) -> tuple[Span, RunRecord] | None:
        span = tracer.get_span(run_id.int)
        if span is None:
            return None
        record = span.deferred
        if type(record) is RunRecord and record.owner is self:
            return span, record
        return None

    def _end(self, run_id: UUID, outputs: Any, inputs: Any = None) -> None:
        tracer = get_tracer()
        key = run_id.int
        span = tracer.get_span(key)
        if span is None:
            return
        record = span.deferred
        if type(record) is not RunRecord or record.owner is not self:
            return
        record.outputs = outputs
        if inputs is not None:
            record.inputs = inputs.copy() if type(inputs) is list else inputs
        tracer.end_span(key)

    def _fail(self, run_id: UUID, error: BaseException, partial: Any, inputs: Any = None) -> None:
        tracer = get_tracer()
        found = self._own_span(tracer, run_id)
        if found is None:
            return
        span, record = found
        if partial is not None:
            record.outputs = partial
        if inputs is not None:
            record.inputs = inputs.copy() if type(inputs) is list else inputs
        if _is_control_flow(error):
            # GraphInterrupt and friends pause or redirect a graph: the run ended, it did not fail.
            span.attributes[ATTR_INTERRUPTED] = type(error).__name__
            tracer.end_span(run_id.int)
        else:
            tracer.fail_span(run_id.int, error)
