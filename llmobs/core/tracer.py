"""The one place that creates spans.

Integrations start, end and fail spans keyed by the framework's own run id, with the parent the
framework names. A context variable holds the "current span" so that manual spans, and spans of
another framework started inside this one (a LlamaIndex query inside a LangChain tool), nest
under it. At a root, the trace id and parent of an active OpenTelemetry span are adopted.

In-flight state is bounded: entries leave on end, and a cap plus a TTL evict runs that never end.
An evicted span is still emitted, as an error, so a hung run is visible rather than silently lost.

Everything here runs on the application's thread, so it only stamps clocks, makes ids and moves
references; the pipeline does the rest.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from llmobs.core.config import Settings
from llmobs.core.model import ErrorInfo, Span, SpanKind, Status

logger = logging.getLogger("llmobs")

_current_span: contextvars.ContextVar[Span | None] = contextvars.ContextVar("llmobs_current_span", default=None)
# True inside `suppress_tracing()`: llmobs' own model calls (an LLM judge) must not become app spans.
_suppressed: contextvars.ContextVar[bool] = contextvars.ContextVar("llmobs_suppressed", default=False)
_is_suppressed = _suppressed.get

_getrandbits = random.getrandbits
_time_ns = time.time_ns

EVICTED_ERROR_TYPE = "llmobs.SpanEvicted"
_TTL_SWEEP_EVERY = 256


def new_trace_id() -> str:
    """A random W3C trace id: 32 lowercase hex characters, never all zeros."""
    # printf-style formatting: a third cheaper than an f-string's format spec, on the hot path.
    return "%032x" % (_getrandbits(128) or 1)


def new_span_id() -> str:
    """A random W3C span id: 16 lowercase hex characters, never all zeros."""
    return "%016x" % (_getrandbits(64) or 1)


def current_span() -> Span | None:
    """The span active in this context (thread or asyncio task), if it has not ended.

    When the span recorded in this context has ended somewhere else (LangChain runs async end
    callbacks in a copy of the context, so the reset never reaches this one), the answer is the
    span that was current before it, and so on up.
    """
    span = _current_span.get()
    hops = 0
    while span is not None and span.end_ns:
        hops += 1
        span = span.previous if hops < 64 else None
    return span


def is_trace_sampled(trace_id: str, rate: float) -> bool:
    """Deterministic per-trace sampling from the trace id, so every span of a trace agrees."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return int(trace_id[:16], 16) < rate * 2**64


def _active_otel_parent() -> tuple[str, str] | None:
    """(trace_id, span_id) of the active OpenTelemetry span, if there is a valid one."""
    try:
        ctx = _otel_current_span().get_span_context()
    except Exception:  # an OTel API problem must never break span creation
        return None
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def _otel_current_span() -> Any:
    # Imported on first use (a root span), then called directly: roots are on the hot path.
    global _otel_current_span
    from opentelemetry.trace import get_current_span

    _otel_current_span = get_current_span
    return get_current_span()


class _Entry:
    """An in-flight keyed span, the context value it replaced, and a span it shadows.

    A framework may reuse a run id while a run with that id is still open; the newer run shadows
    the older one and gives the key back to it when it ends, so neither is lost.
    """

    __slots__ = ("activated", "previous", "shadowed", "span")

    def __init__(self, span: Span, previous: Span | None, activated: bool, shadowed: _Entry | None) -> None:
        self.span = span
        self.previous = previous
        self.activated = activated
        self.shadowed = shadowed


class Tracer:
    """Creates spans and hands finished ones to `submit` (the pipeline's enqueue).

    Thread-safe: one tracer serves every thread and task of the process.
    """

    def __init__(self, submit: Callable[[Span], None], settings: Settings) -> None:
        self._submit = submit
        self.settings = settings
        self._in_flight: dict[Hashable, _Entry] = {}
        self._lock = threading.Lock()
        self._starts = 0
        self.evicted = 0
        self._warned_eviction = False

    # -- keyed spans, for integrations -------------------------------------------------------

    def start_span(
        self,
        key: Hashable,
        name: str,
        kind: SpanKind,
        framework: str,
        parent_key: Hashable | None = None,
        *,
        start_ns: int | None = None,
        activate: bool = False,
    ) -> Span:
        """Start a span keyed by the framework's run id `key`.

        The parent is the in-flight span keyed `parent_key`. With no such span (a framework root),
        the parent is the current span of this context, else the active OpenTelemetry span, else
        none and a new trace begins. With `activate`, the span becomes the current span of this
        context until it ends, so that work started inside it nests under it.

        Inside `suppress_tracing()` the span is returned but not tracked: `get_span(key)` and
        `end_span(key)` then answer None, so the run records nothing.
        """
        if _is_suppressed():
            return self._new_span(name, kind, framework, None, start_ns)
        in_flight = self._in_flight
        settings = self.settings
        entry = in_flight.get(parent_key) if parent_key is not None else None
        if entry is not None:
            # A child of an in-flight span (most spans): `_new_span` inlined, positional in field order.
            parent = entry.span
            span = Span(
                parent.trace_id,
                new_span_id(),
                name,
                kind,
                parent.span_id,
                framework,
                settings.service_name,
                start_ns if start_ns is not None else _time_ns(),
            )
        else:
            span = self._new_span(name, kind, framework, None, start_ns)
        previous = _current_span.get() if activate else None
        with self._lock:
            in_flight[key] = _Entry(span, previous, activate, in_flight.get(key))
            self._starts += 1
            if len(in_flight) > settings.max_in_flight or not self._starts % _TTL_SWEEP_EVERY:
                self._evict_locked()
        if activate:
            # Only once tracked: a span whose key was refused (unhashable) must not become current
            # and parent spans that would point at a span never emitted.
            _current_span.set(span)
        return span

    def get_span(self, key: Hashable) -> Span | None:
        """The in-flight span keyed `key`, if any."""
        entry = self._in_flight.get(key)
        return entry.span if entry is not None else None

    def end_span(self, key: Hashable, *, end_ns: int | None = None) -> Span | None:
        """End the span keyed `key` and submit it. Returns it, or None if it is not in flight."""
        with self._lock:
            entry = self._in_flight.pop(key, None)
            if entry is None:
                return None
            if entry.shadowed is not None:
                self._in_flight[key] = entry.shadowed
        span = entry.span
        if entry.activated:
            if _current_span.get() is span:
                _current_span.set(entry.previous)
            previous = entry.previous
            if previous is not None and not previous.end_ns:
                # On the span, not in a table of ended spans: the link lives exactly as long as
                # a context or the pipeline holds this span, and keeps nothing alive after that.
                span.previous = previous
        self.finish(span, end_ns=end_ns)
        return span

    def fail_span(self, key: Hashable, error: BaseException | ErrorInfo, *, end_ns: int | None = None) -> Span | None:
        """End the span keyed `key` as an error. Returns it, or None if it is not in flight."""
        span = self.get_span(key)
        if span is None:
            return None
        set_error(span, error)
        return self.end_span(key, end_ns=end_ns)

    def in_flight_count(self) -> int:
        return len(self._in_flight)

    # -- unkeyed spans, for user code ----------------------------------------------------------

    def new_span(
        self,
        name: str,
        kind: SpanKind = SpanKind.CUSTOM,
        framework: str = "manual",
        parent: Span | None = None,
        *,
        start_ns: int | None = None,
    ) -> Span:
        """Start a span that is not keyed by a framework id (the caller ends it with `finish`)."""
        return self._new_span(name, kind, framework, parent, start_ns)

    def finish(self, span: Span, *, end_ns: int | None = None) -> None:
        """Stamp the end of `span` and submit it, unless its trace is sampled out or tracing is suppressed."""
        span.end_ns = end_ns if end_ns is not None else _time_ns()
        if span.end_ns < span.start_ns:
            span.end_ns = span.start_ns
        if _is_suppressed():
            return
        settings = self.settings
        if not settings.enabled:
            return
        if settings.sample_rate < 1.0 and not is_trace_sampled(span.trace_id, settings.sample_rate):
            return
        self._submit(span)

    # -- internals -----------------------------------------------------------------------------

    def _new_span(self, name: str, kind: SpanKind, framework: str, parent: Span | None, start_ns: int | None) -> Span:
        if parent is None:
            parent = current_span()
        if parent is not None:
            trace_id = parent.trace_id
            parent_id: str | None = parent.span_id
        else:
            otel_parent = _active_otel_parent()
            if otel_parent is not None:
                trace_id, parent_id = otel_parent
            else:
                trace_id, parent_id = new_trace_id(), None
        # Positional, in field order (trace_id, span_id, name, kind, parent_id, framework,
        # service, start_ns): measurably cheaper than keywords on this hot path.
        return Span(
            trace_id,
            new_span_id(),
            name,
            kind,
            parent_id,
            framework,
            self.settings.service_name,
            start_ns if start_ns is not None else _time_ns(),
        )

    def _evict_locked(self) -> None:
        """Drop the oldest entries over the cap, and entries older than the TTL (lock held)."""
        in_flight = self._in_flight
        cap = self.settings.max_in_flight
        deadline = _time_ns() - int(self.settings.in_flight_ttl_s * 1e9)
        evicted: list[_Entry] = []
        while in_flight:
            key = next(iter(in_flight))
            entry = in_flight[key]
            if len(in_flight) <= cap and entry.span.start_ns >= deadline:
                break
            del in_flight[key]
            evicted.append(entry)
        if not evicted:
            return
        self.evicted += len(evicted)
        if not self._warned_eviction:
            self._warned_eviction = True
            logger.warning(
                "llmobs: evicted %d span(s) that never ended (in-flight cap %d, TTL %.0fs); "
                "they are recorded as errors of type %s",
                len(evicted),
                cap,
                self.settings.in_flight_ttl_s,
                EVICTED_ERROR_TYPE,
            )
        message = "span never ended; evicted from llmobs in-flight state"
        for entry in evicted:
            chain: _Entry | None = entry
            while chain is not None:
                span = chain.span
                span.status = Status.ERROR
                span.error = ErrorInfo(EVICTED_ERROR_TYPE, message)
                self.finish(span)
                chain = chain.shadowed


@contextlib.contextmanager
def suppress_tracing() -> Iterator[None]:
    """Record no span started or finished in this block (in this thread or task, and its copies).

    For llmobs' own work that goes through an instrumented framework, such as an `LLMJudge`
    calling a LangChain chat model while the global LangChain handler is on: those calls are not
    the application's and must not add to its spans or totals.

        with suppress_tracing():
            verdict = judge_model.invoke(prompt)
    """
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def tracing_suppressed() -> bool:
    """True inside `suppress_tracing()`."""
    return _is_suppressed()


def set_error(span: Span, error: BaseException | ErrorInfo) -> None:
    """Mark `span` as failed with `error` (an exception or an `ErrorInfo`)."""
    span.status = Status.ERROR
    span.error = error if isinstance(error, ErrorInfo) else ErrorInfo.from_exception(error)


def activate_span(span: Span) -> contextvars.Token[Span | None]:
    """Make `span` the current span of this context; pass the token to `deactivate_span`."""
    return _current_span.set(span)


def deactivate_span(token: contextvars.Token[Span | None]) -> None:
    """Undo `activate_span`. Tolerates being called from another context."""
    try:
        _current_span.reset(token)
    except ValueError:
        # The token was made in another context (a callback run elsewhere); nothing to undo here.
        pass
