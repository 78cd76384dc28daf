"""Time to first token for `Runner.run_streamed`.

The SDK's spans carry only a start and an end, so the first output delta is timestamped where the
runner reads the model's event stream: `agents.run_internal.run_loop` wraps every
`Model.stream_response(...)` in `model_run_context_stream(stream, owner)`, and we wrap that. The
model's own `response_span` (or `generation_span`) is open around its yields and is the current
span of the runner's task, so the first `*.delta` event sets `ttft_ms` on the matching `llm` span.

If the SDK moves that function, streamed runs are still recorded, only without `ttft_ms`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from llmobs.core.model import SpanKind
from llmobs.core.tracer import current_span
from llmobs.integrations.openai_agents.mapping import FRAMEWORK

logger = logging.getLogger("llmobs")

_HOOK_MODULE = "agents.run_internal.run_loop"
_HOOK_NAME = "model_run_context_stream"
_WRAPPED_MARK = "__llmobs_wrapped__"

_lock = threading.Lock()
_time_ns = time.time_ns


def _record_first_token() -> None:
    """Set `ttft_ms` on the llm span current in this task, if it has none yet."""
    span = current_span()
    if span is not None and span.kind is SpanKind.LLM and span.framework == FRAMEWORK and span.ttft_ms is None:
        span.ttft_ms = (_time_ns() - span.start_ns) / 1e6


async def first_delta_stream(inner: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    """Yield `inner`'s events unchanged, timestamping the first output delta."""
    async with aclosing(inner):
        waiting = True
        async for event in inner:
            if waiting:
                event_type = getattr(event, "type", None)
                if isinstance(event_type, str) and event_type.endswith(".delta"):
                    waiting = False
                    try:
                        _record_first_token()
                    except Exception:  # never let TTFT bookkeeping break a stream
                        pass
            yield event


def _wrap(original: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncGenerator[Any, None]]:
    def model_run_context_stream(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        return first_delta_stream(original(*args, **kwargs))  # type: ignore[arg-type]

    setattr(model_run_context_stream, _WRAPPED_MARK, original)
    model_run_context_stream.__doc__ = original.__doc__
    return model_run_context_stream


def install() -> bool:
    """Wrap the runner's model stream (idempotent). False when this SDK version has no such hook."""
    try:
        import importlib

        module = importlib.import_module(_HOOK_MODULE)
    except Exception as exc:
        logger.debug("llmobs: no %s in this Agents SDK (%r); streamed runs get no ttft_ms", _HOOK_MODULE, exc)
        return False
    with _lock:
        original = getattr(module, _HOOK_NAME, None)
        if original is None or not callable(original):
            logger.debug("llmobs: no %s.%s; streamed runs get no ttft_ms", _HOOK_MODULE, _HOOK_NAME)
            return False
        if getattr(original, _WRAPPED_MARK, None) is None:
            setattr(module, _HOOK_NAME, _wrap(original))
    return True


def uninstall() -> None:
    """Put the runner's model stream back as it was."""
    try:
        import importlib

        module = importlib.import_module(_HOOK_MODULE)
    except Exception:
        return
    with _lock:
        current = getattr(module, _HOOK_NAME, None)
        original = getattr(current, _WRAPPED_MARK, None)
        if original is not None:
            setattr(module, _HOOK_NAME, original)
