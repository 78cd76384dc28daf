"""Span filters shared by `llmobs tail` and `llmobs stats`, and the click options that build them.

    llmobs tail --kind llm --model 'gpt-4o*' --min-cost 0.001
    llmobs stats --service support-bot --attr session_id=abc --by model

Every filter narrows: a span is shown when it passes all of them. Options that can repeat
(`--service`, `--kind`, `--framework`, `--attr`) accept any of their values (`--attr` needs all).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

from llmobs.cli.options import parse_duration_s
from llmobs.core.model import Span, SpanKind, Status, lookup_attribute

F = TypeVar("F", bound=Callable[..., Any])

KIND_NAMES = tuple(k.value for k in SpanKind)


@dataclass(slots=True)
class SpanFilter:
    """Which spans to keep. Empty collections and None mean "any"."""

    services: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # globs, case-insensitive, matched against model and response_model
    frameworks: tuple[str, ...] = ()
    errors_only: bool = False
    min_cost_usd: float | None = None
    min_duration_ms: float | None = None
    trace_prefix: str | None = None
    attrs: tuple[tuple[str, str], ...] = ()
    _models_lower: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._models_lower = tuple(m.lower() for m in self.models)
        if self.trace_prefix is not None:
            self.trace_prefix = self.trace_prefix.strip().lower()

    @property
    def active(self) -> bool:
        return bool(
            self.services
            or self.kinds
            or self.models
            or self.frameworks
            or self.errors_only
            or self.min_cost_usd is not None
            or self.min_duration_ms is not None
            or self.trace_prefix
            or self.attrs
        )

    def matches(self, span: Span) -> bool:
        if self.services and span.service not in self.services:
            return False
        if self.kinds and span.kind.value not in self.kinds:
            return False
        if self.frameworks and span.framework not in self.frameworks:
            return False
        if self._models_lower:
            names = [m.lower() for m in (span.model, span.response_model) if m]
            if not any(fnmatch.fnmatchcase(name, pat) for name in names for pat in self._models_lower):
                return False
        if self.errors_only and span.status is not Status.ERROR:
            return False
        if self.min_cost_usd is not None and (span.cost is None or span.cost.total_usd < self.min_cost_usd):
            return False
        if self.min_duration_ms is not None and span.duration_ms < self.min_duration_ms:
            return False
        if self.trace_prefix and not span.trace_id.startswith(self.trace_prefix):
            return False
        return all(attribute_matches(span.attributes, key, value) for key, value in self.attrs)


def attribute_text(value: Any) -> str:
    """How an attribute value compares with the text of `--attr key=value`: JSON for non-strings."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def attribute_matches(attributes: Mapping[str, Any], key: str, expected: str) -> bool:
    found, value = lookup_attribute(attributes, key)
    if not found:
        return False
    if isinstance(value, list):
        return any(attribute_text(v) == expected for v in value) or attribute_text(value) == expected
    return attribute_text(value) == expected


def parse_attr(text: str) -> tuple[str, str]:
    """`key=value` → (key, value). Raises ValueError without `=` or with an empty key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--attr wants key=value, got {text!r}")
    return key.strip(), value


def parse_min_duration_ms(text: str) -> float:
    """`500ms`, `2s`, `1m`, or a bare number of milliseconds."""
    try:
        return float(text)
    except ValueError:
        return parse_duration_s(text) * 1000.0


def _split(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated options, each possibly comma-separated: `--kind llm,tool --kind agent`."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def filter_options(func: F) -> F:
    """Add the span filter options to a command; it receives them as keyword arguments."""
    options = [
        click.option("--service", "services", multiple=True, help="Only this service (repeatable)."),
        click.option(
            "--kind",
            "kinds",
            multiple=True,
            help=f"Only these kinds (repeatable or comma-separated): {', '.join(KIND_NAMES)}.",
        ),
        click.option("--model", "models", multiple=True, help="Only models matching this glob, e.g. 'gpt-4o*'."),
        click.option(
            "--framework",
            "frameworks",
            multiple=True,
            help="Only this framework: langchain, llamaindex, openai-agents, manual, otlp (repeatable).",
        ),
        click.option("--errors", "errors_only", is_flag=True, help="Only failed spans."),
        click.option("--min-cost", type=float, default=None, help="Only spans costing at least this many USD."),
        click.option("--min-duration", default=None, help="Only spans lasting at least this long: 500ms, 2s."),
        click.option("--trace", "trace_prefix", default=None, help="Only this trace (an id prefix is enough)."),
        click.option(
            "--attr", "attrs", multiple=True, help="Only spans whose attribute KEY equals VALUE: --attr key=value."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filter(
    *,
    services: Sequence[str] = (),
    kinds: Sequence[str] = (),
    models: Sequence[str] = (),
    frameworks: Sequence[str] = (),
    errors_only: bool = False,
    min_cost: float | None = None,
    min_duration: str | None = None,
    trace_prefix: str | None = None,
    attrs: Sequence[str] = (),
) -> SpanFilter:
    """A SpanFilter from the options' values. Raises click.BadParameter on a bad value."""
    kind_values = tuple(k.lower() for k in _split(kinds))
    unknown = [k for k in kind_values if k not in KIND_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown kind {unknown[0]!r}; kinds are {', '.join(KIND_NAMES)}", param_hint="--kind")
    try:
        min_duration_ms = parse_min_duration_ms(min_duration) if min_duration else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--min-duration") from exc
    try:
        attr_pairs = tuple(parse_attr(a) for a in attrs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--attr") from exc
    if trace_prefix is not None and any(c not in "0123456789abcdef" for c in trace_prefix.strip().lower()):
        raise click.BadParameter(f"{trace_prefix!r} is not a trace id prefix (hex)", param_hint="--trace")
    return SpanFilter(
        services=_split(services),
        kinds=kind_values,
        models=_split(models),
        frameworks=_split(frameworks),
        errors_only=errors_only,
        min_cost_usd=min_cost,
        min_duration_ms=min_duration_ms,
        trace_prefix=trace_prefix,
        attrs=attr_pairs,
    )
