"""The shared span model: one `Span` record per unit of work, and its JSON form.

The JSON form produced by `Span.to_dict()` is a public contract (DESIGN.md, "The shared span
model"); `Span.from_dict()` reads it back losslessly, so a span that went through the store, an
export file or the OTLP codec compares equal to the original.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class SpanKind(str, enum.Enum):
    """What a span stands for. The values are the JSON strings."""

    LLM = "llm"
    EMBEDDING = "embedding"
    TOOL = "tool"
    RETRIEVER = "retriever"
    RERANKER = "reranker"
    AGENT = "agent"
    CHAIN = "chain"
    HANDOFF = "handoff"
    GUARDRAIL = "guardrail"
    WORKFLOW = "workflow"
    EVALUATOR = "evaluator"
    CUSTOM = "custom"

    def __str__(self) -> str:
        return self.value


class Status(str, enum.Enum):
    """Outcome of a span. The values are the JSON strings."""

    OK = "ok"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


#: Kinds whose usage and cost are the application's own model spend (summed in totals).
MODEL_KINDS = frozenset({SpanKind.LLM, SpanKind.EMBEDDING, SpanKind.RERANKER})


@dataclass(slots=True)
class Usage:
    """Token counts of one model call.

    `input_tokens` includes cached tokens (read and written) and `output_tokens` includes
    reasoning tokens, as in OpenTelemetry's `gen_ai.usage.*` and genai-prices' `Usage`.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    def to_dict(self) -> dict[str, int]:
        """The JSON form: only the counts that are known."""
        # Spelled out: this runs for every model span on the pipeline thread.
        out: dict[str, int] = {}
        if self.input_tokens is not None:
            out["input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            out["output_tokens"] = self.output_tokens
        if self.total_tokens is not None:
            out["total_tokens"] = self.total_tokens
        if self.cache_read_tokens is not None:
            out["cache_read_tokens"] = self.cache_read_tokens
        if self.cache_write_tokens is not None:
            out["cache_write_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens is not None:
            out["reasoning_tokens"] = self.reasoning_tokens
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        return cls(**{name: data.get(name) for name in _USAGE_FIELDS})

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in _USAGE_FIELDS)


_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)


def _token_count(value: Any) -> int | None:
    """A non-negative int count from whatever a provider or framework put there, else None."""
    if value is None or type(value) is bool:
        return None
    if type(value) is not int:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if number != number or number in (float("inf"), float("-inf")):
            return None
        value = int(number)
    return value if 0 <= value <= _MAX_TOKEN_COUNT else None


#: Counts travel as signed 64-bit ints (OTLP, SQLite); anything larger is garbage, not usage.
_MAX_TOKEN_COUNT = 2**63 - 1


def sanitized_usage(usage: Any) -> Usage | None:
    """`usage` with every count a non-negative int (or None) and the parts within their wholes.

    Frameworks pass provider usage through untouched, so a count may arrive as a string, a
    float, a negative number or garbage. A count that cannot be read is unknown (None), never
    guessed; a part larger than its whole (cache reads above input, reasoning above output), or
    whose whole is unknown, is dropped, and so is a total below input plus output (recomputed when
    both are known). None when no count is left, or when `usage` is not a `Usage` at all.
    """
    if not isinstance(usage, Usage):
        return None
    inp = usage.input_tokens
    out = usage.output_tokens
    total = usage.total_tokens
    cache_read = usage.cache_read_tokens
    cache_write = usage.cache_write_tokens
    reasoning = usage.reasoning_tokens
    # The common case, checked without a call per count: every count an int in range (or
    # None), the parts within their wholes, the total at least input plus output.
    if (
        (inp is None or (type(inp) is int and 0 <= inp <= _MAX_TOKEN_COUNT))
        and (out is None or (type(out) is int and 0 <= out <= _MAX_TOKEN_COUNT))
        and (total is None or (type(total) is int and 0 <= total <= _MAX_TOKEN_COUNT))
        and (cache_read is None or (type(cache_read) is int and 0 <= cache_read <= _MAX_TOKEN_COUNT))
        and (cache_write is None or (type(cache_write) is int and 0 <= cache_write <= _MAX_TOKEN_COUNT))
        and (reasoning is None or (type(reasoning) is int and 0 <= reasoning <= _MAX_TOKEN_COUNT))
        and (
            (cache_read is None and cache_write is None)
            if inp is None
            else ((cache_read is None or cache_read <= inp) and (cache_write is None or cache_write <= inp))
        )
        and (reasoning is None if out is None else (reasoning is None or reasoning <= out))
        and (total is None or total >= (inp or 0) + (out or 0))
    ):
        return usage  # nothing to fix
    clean = Usage(
        _token_count(inp),
        _token_count(out),
        _token_count(total),
        _token_count(cache_read),
        _token_count(cache_write),
        _token_count(reasoning),
    )
    inp, out = clean.input_tokens, clean.output_tokens
    # A part is only meaningful within a known whole (genai-prices refuses it otherwise).
    if clean.cache_read_tokens is not None and (inp is None or clean.cache_read_tokens > inp):
        clean.cache_read_tokens = None
    if clean.cache_write_tokens is not None and (inp is None or clean.cache_write_tokens > inp):
        clean.cache_write_tokens = None
    if clean.reasoning_tokens is not None and (out is None or clean.reasoning_tokens > out):
        clean.reasoning_tokens = None
    if clean.total_tokens is not None and clean.total_tokens < (inp or 0) + (out or 0):
        clean.total_tokens = inp + out if inp is not None and out is not None else None
    return None if clean.is_empty() else clean


def _text_or_none(value: Any) -> str | None:
    if isinstance(value, str):
        return str(value) or None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace") or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None  # an object is not a model name: unknown rather than its repr


def sanitize_span_fields(span: Span) -> None:
    """Make the fields an integration copied from a framework's payload what the contract says.

    Names and models must be strings, usage non-negative consistent ints (`sanitized_usage`),
    time to first token a non-negative number. The pipeline calls this once per span, after the
    integration's deferred extraction and before pricing.
    """
    # Attribute by attribute, not a loop over names: this runs for every span.
    value: Any = span.provider
    if value is not None and type(value) is not str:
        span.provider = _text_or_none(value)
    value = span.model
    if value is not None and type(value) is not str:
        span.model = _text_or_none(value)
    value = span.response_model
    if value is not None and type(value) is not str:
        span.response_model = _text_or_none(value)
    value = span.name
    if type(value) is not str or not value:
        span.name = _text_or_none(value) or span.kind.value
    if span.usage is not None:
        span.usage = sanitized_usage(span.usage)
    ttft = span.ttft_ms
    if ttft is not None:
        if type(ttft) not in (int, float) or not 0 <= ttft < float("inf"):
            span.ttft_ms = None
        elif span.end_ns and ttft > (span.end_ns - span.start_ns) / 1e6:
            # A first token after the span ended is a clock artefact: it came at the end at the latest.
            span.ttft_ms = (span.end_ns - span.start_ns) / 1e6


def int_or_none(value: Any) -> int | None:
    """`value` as an int (a count read off a provider's or a wire payload), None when it is absent,
    a bool, or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def lookup_attribute(attributes: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of `key` in span attributes: the key as is, else a dotted path into nested maps."""
    if key in attributes:
        return True, attributes[key]
    node: Any = attributes
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def tool_arguments(value: Any) -> Any:
    """Tool arguments as the span model keeps them: a JSON string (as frameworks pass them) is
    decoded, text that is not JSON and anything else stay as they are."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(slots=True)
class Cost:
    """The price of one model call in US dollars, and where the price came from."""

    input_usd: float
    output_usd: float
    total_usd: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_usd": self.input_usd,
            "output_usd": self.output_usd,
            "total_usd": self.total_usd,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        return cls(
            input_usd=float(data.get("input_usd") or 0.0),
            output_usd=float(data.get("output_usd") or 0.0),
            total_usd=float(data["total_usd"]),
            source=str(data.get("source") or ""),
        )


@dataclass(slots=True)
class ErrorInfo:
    """Why a span failed: the exception type's name and its message."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorInfo:
        return cls(type=str(data.get("type", "")), message=str(data.get("message", "")))

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        return cls(type=type(exc).__name__, message=str(exc))


@dataclass(slots=True)
class Evaluation:
    """One evaluator's verdict on a span: a score in [0, 1] (or None), a label, an explanation."""

    name: str
    score: float | None = None
    label: str | None = None
    explanation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": self.score, "label": self.label, "explanation": self.explanation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        score = data.get("score")
        return cls(
            name=str(data.get("name", "")),
            score=None if score is None else float(score),
            label=data.get("label"),
            explanation=data.get("explanation"),
        )


@dataclass(slots=True)
class Span:
    """One unit of work: a model call, a tool call, a retrieval, an agent step, ...

    Fields mirror the JSON contract one to one, except `duration_ms`, which is derived from
    `start_ns`/`end_ns`. `input`, `output`, `documents` and `attributes` may hold arbitrary Python
    objects while the span is in flight; the pipeline turns them into JSON values (and applies the
    content policy) before the span reaches a sink.
    """

    trace_id: str
    span_id: str
    name: str
    kind: SpanKind = SpanKind.CUSTOM
    parent_id: str | None = None
    framework: str = "manual"
    service: str = ""
    start_ns: int = 0
    end_ns: int = 0
    status: Status = Status.OK
    error: ErrorInfo | None = None
    provider: str | None = None
    model: str | None = None
    response_model: str | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    ttft_ms: float | None = None
    input: Any = None
    output: Any = None
    tool: dict[str, Any] | None = None
    agent: dict[str, Any] | None = None
    documents: list[dict[str, Any]] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Evaluation] | None = None
    # Not part of the contract: work an integration defers from the application's thread to the
    # pipeline thread (extracting usage from a response object, say). The pipeline runs it once,
    # before pricing, and clears it; or, when the store's writer process finishes the span,
    # replaces it with the encoded payload (`offload.Offloaded`) that process reads.
    deferred: Callable[[Span], None] | Any = field(default=None, compare=False, repr=False)
    # Not part of the contract either: the span that was current before this one was activated,
    # kept when this one ends before it. A context that still holds this span as current (one
    # whose reset happened in a copy of it) resumes there; see `tracer.current_span`.
    previous: Span | None = field(default=None, compare=False, repr=False)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def is_error(self) -> bool:
        return self.status is Status.ERROR

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md, with every key present."""
        usage = self.usage
        cost = self.cost
        error = self.error
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "kind": self.kind._value_,
            "framework": self.framework,
            "service": self.service,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": (self.end_ns - self.start_ns) / 1e6,
            "status": self.status._value_,
            "error": error.to_dict() if error is not None else None,
            "provider": self.provider,
            "model": self.model,
            "response_model": self.response_model,
            "usage": usage.to_dict() if usage is not None else None,
            "cost": cost.to_dict() if cost is not None else None,
            "ttft_ms": self.ttft_ms,
            "input": self.input,
            "output": self.output,
            "tool": self.tool,
            "agent": self.agent,
            "documents": self.documents,
            "attributes": self.attributes,
            "evaluations": [e.to_dict() for e in self.evaluations] if self.evaluations is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """Read the JSON form back. Unknown keys are ignored; `duration_ms` is derived."""
        usage = data.get("usage")
        cost = data.get("cost")
        error = data.get("error")
        evaluations = data.get("evaluations")
        return cls(
            trace_id=data["trace_id"],
            span_id=data["span_id"],
            parent_id=data.get("parent_id"),
            name=data["name"],
            kind=SpanKind(data.get("kind", "custom")),
            framework=data.get("framework", "manual"),
            service=data.get("service", ""),
            start_ns=int(data.get("start_ns", 0)),
            end_ns=int(data.get("end_ns", 0)),
            status=Status(data.get("status", "ok")),
            error=ErrorInfo.from_dict(error) if error is not None else None,
            provider=data.get("provider"),
            model=data.get("model"),
            response_model=data.get("response_model"),
            usage=Usage.from_dict(usage) if usage is not None else None,
            cost=Cost.from_dict(cost) if cost is not None else None,
            ttft_ms=data.get("ttft_ms"),
            input=data.get("input"),
            output=data.get("output"),
            tool=data.get("tool"),
            agent=data.get("agent"),
            documents=data.get("documents"),
            attributes=dict(data.get("attributes") or {}),
            evaluations=[Evaluation.from_dict(e) for e in evaluations] if evaluations is not None else None,
        )

    def to_values(self) -> tuple[Any, ...]:
        """The JSON form's values without its keys, for a pipe between processes (`record_from_values`).

        The store's writer process gets spans this way: building and serialising this tuple costs
        the pipeline thread a third of what `to_dict()` does, and that thread shares the GIL with
        the application. Error, usage and cost are tuples of their fields in declaration order,
        which `record_from_values` turns back into those classes' `to_dict()`.
        """
        usage = self.usage
        cost = self.cost
        error = self.error
        evaluations = self.evaluations
        return (
            self.trace_id,
            self.span_id,
            self.parent_id,
            self.name,
            self.kind._value_,
            self.framework,
            self.service,
            self.start_ns,
            self.end_ns,
            self.status._value_,
            (error.type, error.message) if error is not None else None,
            self.provider,
            self.model,
            self.response_model,
            (
                usage.input_tokens,
                usage.output_tokens,
                usage.total_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            )
            if usage is not None
            else None,
            (cost.input_usd, cost.output_usd, cost.total_usd, cost.source) if cost is not None else None,
            self.ttft_ms,
            self.input,
            self.output,
            self.tool,
            self.agent,
            self.documents,
            self.attributes,
            [e.to_dict() for e in evaluations] if evaluations is not None else None,
        )


# `SpanKind(value)` goes through the enum machinery (about a microsecond); the writer process
# rebuilds every offloaded span from its values.
_KIND_BY_VALUE: dict[str, SpanKind] = {kind.value: kind for kind in SpanKind}
_STATUS_BY_VALUE: dict[str, Status] = {status.value: status for status in Status}


def span_from_values(values: Sequence[Any]) -> Span:
    """The `Span` whose `to_values()` (or its JSON array) `values` are."""
    (
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        framework,
        service,
        start_ns,
        end_ns,
        status,
        error,
        provider,
        model,
        response_model,
        usage,
        cost,
        ttft_ms,
        input_,
        output,
        tool,
        agent,
        documents,
        attributes,
        evaluations,
    ) = values
    return Span(
        trace_id,
        span_id,
        name,
        _KIND_BY_VALUE[kind],
        parent_id,
        framework,
        service,
        start_ns,
        end_ns,
        _STATUS_BY_VALUE[status],
        ErrorInfo(*error) if error is not None else None,
        provider,
        model,
        response_model,
        Usage(*usage) if usage is not None else None,
        Cost(*cost) if cost is not None else None,
        ttft_ms,
        input_,
        output,
        tool,
        agent,
        documents,
        attributes,
        [Evaluation.from_dict(e) for e in evaluations] if evaluations is not None else None,
    )


def record_from_values(values: Sequence[Any]) -> dict[str, Any]:
    """The JSON form (`Span.to_dict()`'s) from `Span.to_values()`, or from its JSON array."""
    (
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        framework,
        service,
        start_ns,
        end_ns,
        status,
        error,
        provider,
        model,
        response_model,
        usage,
        cost,
        ttft_ms,
        input_,
        output,
        tool,
        agent,
        documents,
        attributes,
        evaluations,
    ) = values
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": parent_id,
        "name": name,
        "kind": kind,
        "framework": framework,
        "service": service,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "duration_ms": (end_ns - start_ns) / 1e6,
        "status": status,
        "error": ErrorInfo(*error).to_dict() if error is not None else None,
        "provider": provider,
        "model": model,
        "response_model": response_model,
        "usage": Usage(*usage).to_dict() if usage is not None else None,
        "cost": Cost(*cost).to_dict() if cost is not None else None,
        "ttft_ms": ttft_ms,
        "input": input_,
        "output": output,
        "tool": tool,
        "agent": agent,
        "documents": documents,
        "attributes": attributes,
        "evaluations": evaluations,
    }
