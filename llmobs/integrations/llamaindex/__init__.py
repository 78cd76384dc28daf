"""LlamaIndex integration: one span handler and one event handler on the root dispatcher.

    from llmobs.integrations.llamaindex import instrument
    instrument()            # or llmobs.instrument()

Queries, retrievals, embeddings, reranking, LLM calls (streamed or not), tools, workflow agents
and their steps become spans. Spans opened in a plain `threading.Thread` lose their LlamaIndex
parent (LlamaIndex's own context does not cross threads); use
`llama_index.core.instrumentation.span_handlers.base.Thread` or `contextvars.copy_context().run`.
"""

from __future__ import annotations

import threading

from llmobs.integrations.llamaindex import handlers
from llmobs.integrations.llamaindex.handlers import FRAMEWORK, EventHandler, Recorder, SpanHandler

__all__ = [
    "FRAMEWORK",
    "EventHandler",
    "Recorder",
    "SpanHandler",
    "fault_counts",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_lock = threading.Lock()


def instrument() -> None:
    """Attach llmobs' handlers to LlamaIndex's root dispatcher. Calling it again does nothing."""
    from llama_index_instrumentation import get_dispatcher

    with _lock:
        dispatcher = get_dispatcher()
        if is_instrumented():
            return
        recorder = Recorder()
        dispatcher.add_span_handler(SpanHandler(recorder))
        dispatcher.add_event_handler(EventHandler(recorder))


def uninstrument() -> None:
    """Detach llmobs' handlers from the root dispatcher. Spans in flight are not recorded further."""
    from llama_index_instrumentation import get_dispatcher

    with _lock:
        dispatcher = get_dispatcher()
        # Handlers are matched by class name so that a reloaded module still finds its own.
        dispatcher.span_handlers = [h for h in dispatcher.span_handlers if not _ours(h)]
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if not _ours(h)]


def is_instrumented() -> bool:
    """Whether llmobs' handlers are attached to the root dispatcher."""
    from llama_index_instrumentation import get_dispatcher

    dispatcher = get_dispatcher()
    return any(_ours(h) for h in dispatcher.span_handlers) or any(_ours(h) for h in dispatcher.event_handlers)


def fault_counts() -> dict[str, int]:
    """How often our handlers failed (and were silenced), per place: `span enter`, `event`, ..."""
    return dict(handlers.faults)


def _ours(handler: object) -> bool:
    return (
        type(handler).__name__ in ("SpanHandler", "EventHandler") and type(handler).__module__ == SpanHandler.__module__
    )
