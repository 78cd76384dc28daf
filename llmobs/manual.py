"""Spans for user code: the `span()` context manager and the `@trace` decorator.

Both nest under whatever span is current (a LangChain tool, an agent step, another manual span)
and make themselves current for the code they wrap, in threads and asyncio tasks alike. Neither
ever raises into the code it wraps: an exception from that code is recorded and re-raised
unchanged.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, overload

from llmobs.core.model import Span, SpanKind, Status
from llmobs.core.runtime import get_tracer
from llmobs.core.tracer import activate_span, deactivate_span, new_span_id, new_trace_id, set_error

logger = logging.getLogger("llmobs")

F = TypeVar("F", bound=Callable[..., Any])

_warned: set[str] = set()


def _warn_once(kind: str, message: str, *args: Any) -> None:
    if kind not in _warned:
        _warned.add(kind)
        logger.warning(message, *args)


def _as_kind(kind: SpanKind | str) -> SpanKind:
    if isinstance(kind, SpanKind):
        return kind
    try:
        return SpanKind(str(kind).lower())
    except ValueError:
        _warn_once(f"kind:{kind}", "llmobs: unknown span kind %r, using 'custom'", kind)
        return SpanKind.CUSTOM


class span:  # noqa: N801 - used like a function: `with llmobs.span("step"):`
    """Record the enclosed block as a span; yields the `Span` so the block can fill it in.

        with llmobs.span("plan", kind="chain", input=question) as s:
            s.output = plan(question)

    Set `s.model`, `s.provider` and `s.usage` on an `llm` span and it is priced like any other.
    Works with `with` and `async with`.
    """

    __slots__ = ("_fields", "_kind", "_name", "_span", "_token")

    def __init__(
        self,
        name: str,
        kind: SpanKind | str = SpanKind.CUSTOM,
        *,
        input: Any = None,
        model: str | None = None,
        provider: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._name = name
        self._kind = kind
        self._fields = (input, model, provider, attributes)
        self._span: Span | None = None
        self._token: contextvars.Token[Span | None] | None = None

    def __enter__(self) -> Span:
        try:
            s = get_tracer().new_span(self._name, _as_kind(self._kind))
            s.input, s.model, s.provider, attributes = self._fields
            if attributes:
                s.attributes.update(attributes)
            self._span = s
            self._token = activate_span(s)
            return s
        except Exception as exc:
            _warn_once("span-enter", "llmobs: could not start span: %r", exc)
            # Give the block a span it can write to, which simply is not recorded.
            return Span(trace_id=new_trace_id(), span_id=new_span_id(), name=self._name)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        s, token = self._span, self._token
        if s is None or token is None:
            return
        try:
            deactivate_span(token)
            # GeneratorExit: a consumer abandoned a traced generator; that is not a failure.
            if exc is not None and s.status is Status.OK and not isinstance(exc, GeneratorExit):
                set_error(s, exc)
            get_tracer().finish(s)
        except Exception as err:
            _warn_once("span-exit", "llmobs: could not end span: %r", err)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


@overload
def trace(func: F) -> F: ...


@overload
def trace(
    func: None = None,
    *,
    name: str | None = None,
    kind: SpanKind | str = SpanKind.CUSTOM,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def trace(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    kind: SpanKind | str = SpanKind.CUSTOM,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Any:
    """Record every call of the decorated function as a span.

        @llmobs.trace
        def answer(question: str) -> str: ...

        @llmobs.trace(name="retrieve", kind="retriever")
        async def retrieve(query: str) -> list[str]: ...

    Works on functions, coroutine functions, generators and async generators (the span covers
    the whole iteration). The call's arguments become the span's input and its return value the
    output, unless switched off; both pass through the content policy before they are stored.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        span_name: str = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or "call"
        span_kind = _as_kind(kind)
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not capture_input:
                return None
            if signature is None:
                return {"args": list(args), "kwargs": dict(kwargs)}
            try:
                bound = signature.bind_partial(*args, **kwargs)
            except TypeError:
                return {"args": list(args), "kwargs": dict(kwargs)}
            return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}

        def make() -> span:
            return span(span_name, span_kind)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make() as s:
                    s.input = arguments(args, kwargs)
                    items: list[Any] | None = [] if capture_output else None
                    async for item in fn(*args, **kwargs):
                        if items is not None:
                            items.append(item)
                        yield item
                    s.output = items

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make() as s:
                    s.input = arguments(args, kwargs)
                    items: list[Any] | None = [] if capture_output else None
                    for item in fn(*args, **kwargs):
                        if items is not None:
                            items.append(item)
                        yield item
                    s.output = items

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with make() as s:
                    s.input = arguments(args, kwargs)
                    result = await fn(*args, **kwargs)
                    if capture_output:
                        s.output = result
                    return result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with make() as s:
                s.input = arguments(args, kwargs)
                result = fn(*args, **kwargs)
                if capture_output:
                    s.output = result
                return result

        return wrapper

    if func is not None:
        return decorate(func)
    return decorate


__all__ = ["span", "trace"]
