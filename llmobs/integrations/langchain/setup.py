"""Global registration: `instrument()` makes every LangChain run traced without passing callbacks.

langchain_core's `register_configure_hook` adds the value of a "context variable" to every
callback manager it configures. A real `ContextVar` set at `instrument()` time would only be seen
by the thread (or the copies of its context) that set it: a web server's worker threads and
plain `threading.Thread`s start with an empty context. The hook only ever calls `.get()`, so we
register a process-wide holder instead, which every thread sees and `uninstrument()` clears.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any, cast

from llmobs.integrations.langchain.handler import CallbackHandler

_lock = threading.Lock()
_registered = False


class _ProcessWideHandler:
    """Quacks like `ContextVar[CallbackHandler | None]` for langchain_core's configure hook."""

    __slots__ = ("handler",)

    def __init__(self) -> None:
        self.handler: CallbackHandler | None = None

    def get(self, default: Any = None) -> CallbackHandler | None:
        return self.handler


_hook = _ProcessWideHandler()


def instrument() -> CallbackHandler:
    """Trace every LangChain/LangGraph run in this process. Idempotent; returns the handler.

    An explicit `CallbackHandler` passed in a run's config is not doubled by this one: the hook
    is registered with `handle_class=CallbackHandler`, so LangChain skips the global handler for
    a manager that already has one, and handlers dedupe runs they both see.
    """
    global _registered
    with _lock:
        if not _registered:
            from langchain_core.tracers.context import register_configure_hook

            register_configure_hook(cast("ContextVar[Any]", _hook), inheritable=True, handle_class=CallbackHandler)
            _registered = True
        if _hook.handler is None:
            _hook.handler = CallbackHandler()
        return _hook.handler


def uninstrument() -> None:
    """Stop tracing runs that were not given a handler explicitly."""
    with _lock:
        _hook.handler = None


def global_handler() -> CallbackHandler | None:
    """The handler `instrument()` installed, if it is active."""
    return _hook.handler
