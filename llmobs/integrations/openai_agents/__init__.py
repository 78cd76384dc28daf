"""OpenAI Agents SDK integration: agent runs as llmobs spans, with usage, cost and TTFT.

    from llmobs.integrations.openai_agents import instrument
    instrument()                # beside the SDK's own exporter to the OpenAI dashboard
    instrument(replace=True)    # instead of it: traces stay on your machine

or register the processor yourself:

    from agents import add_trace_processor
    from llmobs.integrations.openai_agents import TracingProcessor
    add_trace_processor(TracingProcessor())

`OPENAI_AGENTS_DISABLE_TRACING=1`, `agents.set_tracing_disabled(True)` and
`RunConfig(tracing_disabled=True)` switch off the SDK's tracing as a whole, this processor
included.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from llmobs.integrations.openai_agents import streaming
from llmobs.integrations.openai_agents.processor import TracingProcessor

logger = logging.getLogger("llmobs")

__all__ = ["TracingProcessor", "instrument", "uninstrument"]

_lock = threading.Lock()
_processor: TracingProcessor | None = None
_mode: str | None = None
# The processors `instrument(replace=True)` took out, given back by `uninstrument()`.
_replaced: list[Any] = []
_logged_modes: set[str] = set()


def _registered_processors() -> list[Any]:
    """The SDK's processor list. It has no public getter, so this reads the default provider's."""
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    return list(getattr(multi, "_processors", ()))


def instrument(replace: bool = False) -> TracingProcessor | None:
    """Record every Agents SDK run with llmobs. Calling it again registers nothing twice.

    Args:
        replace: False (default) adds llmobs' processor beside the SDK's own, which exports to
            the OpenAI traces dashboard when an OpenAI key is set; True replaces the SDK's
            processors (`set_trace_processors`), so nothing leaves the machine through them.

    Returns the registered processor, or None if registration failed (logged, never raised).
    """
    global _processor, _mode
    try:
        from agents.tracing import add_trace_processor, set_trace_processors

        with _lock:
            current = _registered_processors()
            if _processor is None:
                # A TracingProcessor the user registered themselves is reused, never doubled.
                mine = [p for p in current if isinstance(p, TracingProcessor)]
                _processor = mine[0] if mine else TracingProcessor()
            processor = _processor
            streaming.install()  # idempotent; a reused processor may predate an uninstrument()
            if replace:
                if _mode != "replace":
                    _replaced[:] = [p for p in current if p is not processor]
                set_trace_processors([processor])
                mode = "replace"
            else:
                if _mode == "replace":
                    set_trace_processors([*_replaced, processor])
                    _replaced.clear()
                elif not any(p is processor for p in current):
                    add_trace_processor(processor)
                mode = "add"
            _mode = mode
            if mode not in _logged_modes:
                _logged_modes.add(mode)
                if mode == "replace":
                    logger.info("llmobs: recording OpenAI Agents SDK runs; replaced the SDK's trace processors")
                else:
                    logger.info(
                        "llmobs: recording OpenAI Agents SDK runs beside the SDK's own trace exporter "
                        "(instrument(replace=True) to use llmobs alone)"
                    )
        return processor
    except Exception as exc:
        logger.warning("llmobs: could not instrument the OpenAI Agents SDK: %r", exc)
        return None


def uninstrument() -> None:
    """Remove llmobs' processor (and give back the processors `replace=True` took out)."""
    global _processor, _mode
    try:
        from agents.tracing import set_trace_processors

        with _lock:
            processor = _processor
            if processor is None:
                return
            remaining = [p for p in _registered_processors() if p is not processor]
            if _mode == "replace":
                remaining = [*_replaced, *remaining]
                _replaced.clear()
            set_trace_processors(remaining)
            _processor = None
            _mode = None
            if not any(isinstance(p, TracingProcessor) for p in remaining):
                streaming.uninstall()
    except Exception as exc:
        logger.warning("llmobs: could not uninstrument the OpenAI Agents SDK: %r", exc)
