"""Deferred extraction finished in the store's writer process.

An integration's deferred work (`Span.deferred`) may offer `offload() -> (key, payload)`: the
run's payloads as one JSON document, and the key of the function that reads it into the span
(`EXTRACTORS`). When the store is the only sink, the pipeline thread then only encodes that
payload (one orjson call) and the writer process does the extraction, sanitising and pricing,
on a GIL the application does not share. Anywhere else (another sink, evaluation, the writer
process gone), `finish_span` does the same work in this process.

`finish_fields` is the part every span goes through wherever it is finished: contract types for
the fields an integration copied, then the price of a model call.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
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
    """A span's deferred extraction, encoded for the writer process: the extractor's key and the payload."""

    __slots__ = ("key", "payload")

    def __init__(self, key: str, payload: bytes) -> None:
        self.key = key
        self.payload = payload


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
        if key not in _warned:
            _warned.add(key)
            logger.warning("llmobs: %s payload not understood: %r", key, exc)


def finish_span(span: Span, offloaded: Offloaded, pricer: Pricer) -> bool | None:
    """Finish an offloaded span in this process: extraction, then `finish_fields`' answer."""
    try:
        payload = orjson.loads(offloaded.payload)
    except orjson.JSONDecodeError:  # pragma: no cover - the payload is ours
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
