"""Deferred extraction finished in the store's writer process.

An integration's deferred work (`Span.deferred`) may offer `offload() -> Offloaded`: the run's
payloads, the orjson `default` that turns them into one JSON document, and the key of the
function that reads that document into the span (`EXTRACTORS`). When the store is the only sink,
the pipeline thread then only serialises the span with its payload (one orjson call per span,
`writer._serialise`) and the writer process does the extraction, sanitising and pricing, on a
GIL the application does not share. Anywhere else (another sink, evaluation, the writer process
gone), `finish_span` does the same work in this process.

`finish_fields` is the part every span goes through wherever it is finished: contract types for
the fields an integration copied, then the price of a model call.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from llmobs.core.model import MODEL_KINDS, Span, SpanKind, sanitize_span_fields, span_from_values
from llmobs.core.pricing import Pricer

#: Extractor key → (module, function). Only these are ever imported by key.
EXTRACTORS: dict[str, tuple[str, str]] = {
    "langchain": ("llmobs.integrations.langchain.extract", "apply_payload"),
}

logger = logging.getLogger("llmobs")

_loaded: dict[str, Callable[[Span, Any], None]] = {}
_warned: set[str] = set()


class Offloaded:
    """A span's deferred extraction, for the writer process: the extractor's key, the payload and
    the orjson `default` that makes it JSON.

    `default` must turn anything else into JSON values as `writer.json_fallback` does: the writer
    serialises the span's own fields with it in the same call.
    """

    __slots__ = ("default", "key", "payload")

    def __init__(self, key: str, payload: Any, default: Callable[[Any], Any]) -> None:
        self.key = key
        self.payload = payload
        self.default = default

    def encode(self) -> bytes:
        """The payload as JSON, with what JSON cannot hold as it is made to fit (see `jsonable`)."""
        return encode(self.payload, self.default)


def encode(value: Any, default: Callable[[Any], Any]) -> bytes:
    """`value` as JSON through orjson with `default`; what orjson refuses goes through `jsonable` first."""
    try:
        return orjson.dumps(value, default=default)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(jsonable(value, default, 0), default=default)


#: How deep `jsonable` follows containers before it takes a value for a reference cycle.
_MAX_DEPTH = 100
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def jsonable(value: Any, default: Callable[[Any], Any], depth: int = 0) -> Any:
    """`value` with what orjson refuses replaced: integers beyond 64 bits become floats (or text),
    mapping keys text, reference cycles a note; other objects go through `default` first.
    Slow, and only for payloads orjson refused."""
    kind = type(value)
    if kind is int:
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return str(value)
    if value is None or kind is str or kind is float or kind is bool:
        return value
    if depth >= _MAX_DEPTH:
        return f"<{kind.__name__}: nested too deep>"
    if isinstance(value, Mapping):
        return {k if type(k) is str else str(k): jsonable(v, default, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, default, depth + 1) for v in value]
    try:
        converted = default(value)
    except Exception as exc:
        return f"<{kind.__name__}: {exc!r}>"
    if converted is value or type(converted) is str:
        return converted if type(converted) is str else repr(value)
    return jsonable(converted, default, depth + 1)


def extractor(key: str) -> Callable[[Span, Any], None]:
    """The function `key` names in `EXTRACTORS` (KeyError for any other key)."""
    found = _loaded.get(key)
    if found is None:
        module, name = EXTRACTORS[key]
        found = _loaded[key] = getattr(importlib.import_module(module), name)
    return found


def finish_fields(span: Span, pricer: Pricer) -> bool | None:
    """Sanitise the span's fields and price a model call: True priced, False unpriced, None not a priced kind."""
    # Payloads come from providers through frameworks untouched: never store or price a
    # negative or inconsistent count, or a model name that is not a string.
    sanitize_span_fields(span)
    # Evaluator spans (an LLM judge's calls) are priced too; MODEL_KINDS keeps them out of totals.
    if span.cost is None and span.usage is not None and (span.kind in MODEL_KINDS or span.kind is SpanKind.EVALUATOR):
        span.cost = pricer.price(
            span.model, span.usage, span.provider, response_model=span.response_model, at_ns=span.start_ns
        )
        return span.cost is not None
    return None


def extract(span: Span, key: str, payload: Any) -> None:
    """Run extractor `key` on a decoded payload.

    One that fails leaves the span with what it had (timing, ids, status), as the pipeline does
    with a deferred extraction that fails, and is reported once per extractor.
    """
    try:
        extractor(key)(span, payload)
    except Exception as exc:
        _warn_once(key, exc)


def _warn_once(key: str, exc: Exception) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning("llmobs: %s payload not understood: %r", key, exc)


def finish_span(span: Span, offloaded: Offloaded, pricer: Pricer) -> bool | None:
    """Finish an offloaded span in this process: extraction, then `finish_fields`' answer."""
    try:
        payload = orjson.loads(offloaded.encode())
    except Exception as exc:  # pragma: no cover - `encode` makes everything fit
        _warn_once(offloaded.key, exc)
        payload = None
    if payload is not None:
        extract(span, offloaded.key, payload)
    return finish_fields(span, pricer)


def finish_values(values: Sequence[Any], pricer: Pricer) -> tuple[dict[str, Any], bool | None]:
    """An offloaded span's JSON form, from the array the writer process received (`Span.to_values()`
    then the extractor's key and the decoded payload), and `finish_fields`' answer."""
    span = span_from_values(values[:-2])
    payload = values[-1]
    if payload is not None:
        extract(span, values[-2], payload)
    priced = finish_fields(span, pricer)
    return span.to_dict(), priced
