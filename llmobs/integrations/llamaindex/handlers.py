"""LlamaIndex span and event handlers that translate the instrumentation dispatcher into spans.

One `Recorder` holds the state; `SpanHandler` and `EventHandler` are the thin pydantic shells
LlamaIndex's dispatcher requires, and guard every call: LlamaIndex swallows handler exceptions
without a word, so we log ours (once per kind of fault) instead.

On the application's thread we only classify the span (cached per class and method), start or
end a tracer span and keep references to the bound arguments, the result and the events. Reading
messages, usage and nodes happens later on the pipeline thread (`extract.deferred_for`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
    LLMPredictEndEvent,
)
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from llmobs.core.model import Span, SpanKind
from llmobs.core.runtime import get_tracer
from llmobs.core.tracer import set_error
from llmobs.integrations.llamaindex.classify import Classifier, Rule
from llmobs.integrations.llamaindex.extract import deferred_for

logger = logging.getLogger("llmobs")

FRAMEWORK = "llamaindex"
#: The tool AgentWorkflow gives its agents to hand the conversation to another agent.
HANDOFF_TOOL = "handoff"
#: Cap on LlamaIndex spans we track at once (a stream that is never consumed never ends).
MAX_OPEN = 20_000
#: Every this many span enters, forget the spans the tracer evicted.
_SWEEP_EVERY = 256

_time_ns = time.time_ns
_LLM = SpanKind.LLM


class Node:
    """One recorded LlamaIndex span in flight, and what its extraction will need."""

    __slots__ = (
        "aliases",
        "bound_args",
        "call_id",
        "child_error",
        "closed_early",
        "end_ev",
        "end_ns",
        "end_seen",
        "error",
        "exited",
        "first_token_ns",
        "instance",
        "key",
        "messages",
        "parent",
        "predict_end",
        "result",
        "rule",
        "span",
        "start_ev",
        "tags",
    )

    def __init__(
        self,
        key: str,
        rule: Rule,
        span: Span,
        instance: Any,
        bound_args: inspect.BoundArguments,
        tags: Any,
        parent: Node | None,
    ) -> None:
        self.key = key
        self.rule = rule
        self.span = span
        self.instance = instance
        self.bound_args = bound_args
        self.tags = tags
        self.parent = parent
        self.aliases: list[str] = []
        self.call_id: Any = None
        self.child_error: BaseException | None = None
        self.closed_early = False
        self.start_ev: Any = None
        self.end_ev: Any = None
        self.predict_end: Any = None
        self.messages: list[Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.first_token_ns = 0
        self.end_ns = 0
        self.end_seen = False
        self.exited = False


class Recorder:
    """Turns span enter/exit/drop and events into tracer spans. Thread-safe by construction:
    every shared structure is a dict touched with single atomic operations."""

    def __init__(self) -> None:
        self.classifier = Classifier()
        self.rules: dict[tuple[type, str], Rule] = {}
        # LlamaIndex span id → the node it records into: its own, or (for a transparent or
        # collapsed span) its nearest recorded ancestor's.
        self.open: dict[str, Node] = {}
        self._enters = 0
        self.on_event = {
            LLMChatStartEvent: self._llm_start,
            LLMCompletionStartEvent: self._llm_start,
            LLMChatInProgressEvent: self._llm_progress,
            LLMCompletionInProgressEvent: self._llm_progress,
            LLMChatEndEvent: self._llm_end,
            LLMCompletionEndEvent: self._llm_end,
            LLMPredictEndEvent: self._predict_end,
            ExceptionEvent: self._exception,
            EmbeddingStartEvent: self._start,
            EmbeddingEndEvent: self._end_event,
            ReRankStartEvent: self._start,
            ReRankEndEvent: self._end_event,
        }

    # -- spans ---------------------------------------------------------------------------------

    def enter(
        self, id_: str, bound_args: inspect.BoundArguments, instance: Any, parent_id: str | None, tags: Any
    ) -> None:
        open_ = self.open
        parent = open_.get(parent_id) if parent_id is not None else None
        cls = type(instance)
        name = id_[:-37]
        rule = self.rules.get((cls, name))
        if rule is None:
            rule = self.classifier.classify(cls, name, instance, bound_args)
            if len(self.rules) < 10_000:
                self.rules[(cls, name)] = rule
        kind = rule.kind
        if kind is None:
            if parent is not None:
                open_[id_] = parent
            return
        if parent is not None and instance is not None and parent.instance is instance and parent.rule.kind is kind:
            # The same object's other method of the same kind (`achat` calling `chat`,
            # `synthesize` calling `get_response`): one operation, recorded once.
            open_[id_] = parent
            if parent.rule.kind is _LLM:
                parent.aliases.append(id_)
            return
        if kind is SpanKind.TOOL and getattr(getattr(instance, "metadata", None), "name", None) == HANDOFF_TOOL:
            kind = SpanKind.HANDOFF
        # Workflow runs return a future and streams return a generator: their spans exit before
        # the work is done, so they are not made the context's current span.
        span = get_tracer().start_span(
            id_,
            name,
            kind,
            FRAMEWORK,
            parent.key if parent is not None else None,
            activate=not (rule.stream or rule.run),
        )
        node = Node(id_, rule, span, instance, bound_args, tags, parent)
        if (kind is SpanKind.TOOL or kind is SpanKind.HANDOFF) and parent is not None and parent.rule.step:
            node.call_id = getattr(parent.bound_args.arguments.get("ev"), "tool_id", None)
        open_[id_] = node
        self._enters += 1
        if len(open_) > MAX_OPEN or not self._enters % _SWEEP_EVERY:
            self._evict()

    def exit(self, id_: str, instance: Any, result: Any) -> None:
        open_ = self.open
        node = open_.get(id_)
        if node is None:
            return
        if node.key != id_:
            # A transparent or collapsed span. A collapsed stream's events arrive after it exits,
            # so its alias stays until the LLM span ends.
            if not (node.aliases and id_ in node.aliases and self._is_stream(instance, id_)):
                open_.pop(id_, None)
            return
        node.result = result
        if node.rule.stream and not node.end_seen:
            node.exited = True  # ends on the End or Exception event
            return
        if node.rule.run and result is None and node.child_error is not None:
            # A failed workflow run exits with no result (its future holds the exception).
            node.error = node.child_error
        self._finish(node)

    def drop(self, id_: str, err: BaseException | None) -> None:
        open_ = self.open
        node = open_.get(id_)
        if node is None:
            return
        if node.key != id_:
            open_.pop(id_, None)
            return
        if err is not None and not isinstance(err, GeneratorExit):
            # GeneratorExit is an abandoned generator: the consumer stopped, nothing failed.
            node.error = err
            parent = node.parent
            if node.rule.step and parent is not None and parent.rule.run:
                parent.child_error = err
        self._finish(node)

    def _is_stream(self, instance: Any, id_: str) -> bool:
        rule = self.rules.get((type(instance), id_[:-37]))
        return rule is not None and rule.stream

    def _finish(self, node: Node, end_ns: int | None = None) -> None:
        open_ = self.open
        if open_.pop(node.key, None) is None:
            return  # already ended (or evicted)
        for alias in node.aliases:
            open_.pop(alias, None)
        span = node.span
        if node.first_token_ns:
            span.ttft_ms = max(0.0, (node.first_token_ns - span.start_ns) / 1e6)
        if node.error is not None:
            set_error(span, node.error)
        span.deferred = deferred_for(node)
        get_tracer().end_span(node.key, end_ns=end_ns or node.end_ns or None)

    def _evict(self) -> None:
        """Forget spans the tracer evicted (its cap and TTL), then, over `MAX_OPEN`, the oldest tenth."""
        open_ = self.open
        try:
            # A span that ended without passing through `_finish` was evicted by the tracer: a run
            # that never ends must not outlive it here either.
            ended = [key for key, node in list(open_.items()) if node.span.end_ns]
        except RuntimeError:  # another thread changed the map meanwhile; sweep next time
            ended = []
        for key in ended:
            open_.pop(key, None)
        if len(open_) <= MAX_OPEN:
            return
        for _ in range(MAX_OPEN // 10):
            try:
                open_.pop(next(iter(open_)), None)
            except (StopIteration, RuntimeError):
                break

    # -- events --------------------------------------------------------------------------------

    def event(self, event: BaseEvent) -> None:
        span_id = event.span_id
        if span_id is None:
            return
        node = self.open.get(span_id)
        if node is None:
            return
        fn = self.on_event.get(type(event))
        if fn is not None:
            fn(node, event)

    def _llm_start(self, node: Node, event: Any) -> None:
        if node.start_ev is None:
            node.start_ev = event
            messages = getattr(event, "messages", None)
            if messages is not None:
                # The agent keeps appending to its history list: keep the messages as sent.
                node.messages = list(messages)

    def _llm_progress(self, node: Node, event: Any) -> None:
        if not node.first_token_ns:
            node.first_token_ns = _time_ns()

    def _llm_end(self, node: Node, event: Any) -> None:
        node.end_ev = event
        if node.rule.stream and not node.end_seen:
            # LlamaIndex closed the stream's span when it returned the generator; the call
            # really ends here.
            node.end_seen = True
            node.end_ns = _time_ns()
            if node.exited:
                self._finish(node)

    def _exception(self, node: Node, event: Any) -> None:
        # Only streaming generators emit ExceptionEvent (including GeneratorExit on close()).
        if node.rule.kind is not _LLM or not node.rule.stream or node.end_seen:
            return
        exc = event.exception
        if isinstance(exc, GeneratorExit):
            node.closed_early = True
        else:
            node.error = exc
        node.end_seen = True
        node.end_ns = _time_ns()
        if node.exited:
            self._finish(node)

    def _predict_end(self, node: Node, event: Any) -> None:
        node.predict_end = event

    def _start(self, node: Node, event: Any) -> None:
        if node.start_ev is None:
            node.start_ev = event

    def _end_event(self, node: Node, event: Any) -> None:
        node.end_ev = event


# -- the dispatcher's handler classes --------------------------------------------------------

_warned: set[str] = set()
#: Faults in our handlers, per place (see `fault_counts`).
faults: dict[str, int] = {}


def _log_once(where: str, exc: BaseException) -> None:
    faults[where] = faults.get(where, 0) + 1
    if where not in _warned:
        _warned.add(where)
        logger.warning("llmobs: LlamaIndex %s handler failed: %r (further failures here are not logged)", where, exc)


def _bind_fast(handler: Any, name: str, fn: Any) -> None:
    """Put `fn` in the handler's instance dict: pydantic resolves private attributes through
    `__getattr__`, which costs more than the rest of our per-span work."""
    object.__setattr__(handler, name, fn)


class SpanHandler(BaseSpanHandler[BaseSpan]):
    """Receives LlamaIndex span enter/exit/drop; keeps no spans of its own (`open_spans` stays empty)."""

    _recorder: Recorder = PrivateAttr()
    # Set per instance by `_bind_fast` (ClassVar so that pydantic leaves them alone).
    _enter: ClassVar[Callable[..., None]]
    _exit: ClassVar[Callable[..., None]]
    _drop: ClassVar[Callable[..., None]]

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self._recorder = recorder
        _bind_fast(self, "_enter", recorder.enter)
        _bind_fast(self, "_exit", recorder.exit)
        _bind_fast(self, "_drop", recorder.drop)

    @classmethod
    def class_name(cls) -> str:
        return "LlmobsSpanHandler"

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._enter(id_, bound_args, instance, parent_id, tags)
        except Exception as exc:
            _log_once("span enter", exc)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._exit(id_, instance, result)
        except Exception as exc:
            _log_once("span exit", exc)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._drop(id_, err)
        except Exception as exc:
            _log_once("span drop", exc)

    # The abstract per-span hooks of BaseSpanHandler: unused, since span_enter/exit/drop above
    # replace the machinery that calls them.
    def new_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None


class EventHandler(BaseEventHandler):
    """Receives LlamaIndex events (LLM start/progress/end, embeddings, reranking, exceptions)."""

    _recorder: Recorder = PrivateAttr()
    _event: ClassVar[Callable[..., None]]

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self._recorder = recorder
        _bind_fast(self, "_event", recorder.event)

    @classmethod
    def class_name(cls) -> str:
        return "LlmobsEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        try:
            self._event(event)
        except Exception as exc:
            _log_once("event", exc)


__all__ = ["FRAMEWORK", "EventHandler", "Recorder", "SpanHandler"]
