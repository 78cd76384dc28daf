"""`TracingProcessor`: the Agents SDK's tracing hook, feeding llmobs' tracer.

The SDK calls a processor synchronously on the runner's event loop (and, for spans opened inside
sync function tools, on the worker thread running the tool), so each callback only starts or ends
an llmobs span keyed by the SDK's own span id. Reading usage, models and content happens later on
the pipeline thread (`mapping.fill_span`, set as the span's `deferred`).

Each span is made the current llmobs span of the context it starts in, as the SDK makes it its
own current span: a LangChain chain or a `llmobs.span()` run inside a function tool nests under
the tool's span, and an agent run inside a LangChain tool nests under that tool.
"""

from __future__ import annotations

import logging
import re
import time
from functools import partial
from typing import Any

from agents.tracing import Span as SDKSpan
from agents.tracing import Trace as SDKTrace
from agents.tracing import TracingProcessor as SDKTracingProcessor

from llmobs.core.model import Span, SpanKind
from llmobs.core.runtime import get_tracer
from llmobs.integrations.openai_agents import mapping
from llmobs.integrations.openai_agents.mapping import FRAMEWORK, fill_span, fill_trace, start_fields

logger = logging.getLogger("llmobs")

_SDK_TRACE_ID = re.compile(r"trace_([0-9a-f]{32})")
_time_ns = time.time_ns

_warned: set[str] = set()


def _warn_once(kind: str, exc: BaseException) -> None:
    if kind not in _warned:
        _warned.add(kind)
        logger.warning("llmobs: openai-agents %s failed (further failures not logged): %r", kind, exc)


def _adopt_trace_id(span: Span, sdk_trace_id: str) -> None:
    """Give a root span the SDK's trace id, so one run has one id here and in OpenAI's dashboard.

    Only a root: a run nested under another framework's span keeps that span's trace.
    """
    match = _SDK_TRACE_ID.fullmatch(sdk_trace_id)
    if match is not None and int(match.group(1), 16):
        span.trace_id = match.group(1)


class TracingProcessor(SDKTracingProcessor):
    """Records every Agents SDK trace and span as an llmobs span.

        from agents import add_trace_processor
        from llmobs.integrations.openai_agents import TracingProcessor
        add_trace_processor(TracingProcessor())

    Mapping (on `span_data.type`): the trace → `workflow` root (group id → `session_id`), `task`
    → `agent` span "run", `turn` → `chain` "turn N", `agent` → `agent`, `response`/`generation`
    → `llm` with usage and cost, `function` → `tool`, `mcp_tools` → `tool` "list_tools",
    `handoff` → `handoff`, `guardrail` → `guardrail`, `custom` → `custom`. Turn and task usage
    are aggregates and stay in attributes. Never raises and never blocks.
    """

    def __init__(self) -> None:
        # Streamed runs get time to first token from the model's event stream (see streaming.py).
        from llmobs.integrations.openai_agents import streaming

        streaming.install()

    def on_trace_start(self, trace: SDKTrace) -> None:
        try:
            trace_id = trace.trace_id
            span = get_tracer().start_span(
                trace_id,
                trace.name,
                SpanKind.WORKFLOW,
                FRAMEWORK,
                start_ns=_time_ns() // 1_000 * 1_000,  # the SDK's span clocks are microseconds
                activate=True,
            )
            span.attributes[mapping.ATTR_SDK_TRACE_ID] = trace_id
            if span.parent_id is None:
                _adopt_trace_id(span, trace_id)
            span.deferred = partial(fill_trace, trace=trace)
        except Exception as exc:
            _warn_once("on_trace_start", exc)

    def on_trace_end(self, trace: SDKTrace) -> None:
        try:
            get_tracer().end_span(trace.trace_id)
        except Exception as exc:
            _warn_once("on_trace_end", exc)

    def on_span_start(self, span: SDKSpan[Any]) -> None:
        try:
            kind, name = start_fields(span.span_data)
            trace_id = span.trace_id
            ours = get_tracer().start_span(
                span.span_id, name, kind, FRAMEWORK, span.parent_id or trace_id, activate=True
            )
            if ours.parent_id is None:
                # The trace root is not ours (a resumed run, a processor added mid-run).
                _adopt_trace_id(ours, trace_id)
            ours.deferred = partial(fill_span, sdk_span=span)
        except Exception as exc:
            _warn_once("on_span_start", exc)

    def on_span_end(self, span: SDKSpan[Any]) -> None:
        try:
            get_tracer().end_span(span.span_id)
        except Exception as exc:
            _warn_once("on_span_end", exc)

    def shutdown(self) -> None:
        """Nothing to release: llmobs' pipeline flushes at exit on its own."""

    def force_flush(self) -> None:
        try:
            from llmobs.core.runtime import get_runtime

            get_runtime().pipeline.flush(timeout=5.0)
        except Exception as exc:
            _warn_once("force_flush", exc)
