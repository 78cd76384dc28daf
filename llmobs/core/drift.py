"""Drift: compare two sets of traces (two time windows, two versions) metric by metric.

    a = select_traces(spans, side=parse_side("attribute:version=v12"))
    b = select_traces(spans, side=parse_side("attribute:version=v13"))
    report = compare(a, b)
    print(json.dumps(report.to_dict(), indent=2))

What each metric measures (a request is a trace; its root is the span without a parent, or the
earliest span whose parent is not in the trace):

    count             requests on each side (reported, never flagged: traffic is not a regression)
    duration_p50/p95  percentiles of the roots' durations, ms
    ttft_p50/p95      percentiles of TTFT over the `llm` spans that have one, ms
    tokens_per_request  mean over requests of input + output tokens of its model spans
    cost_per_request  mean over requests of the cost of its priced model spans (MODEL_KINDS, so
                      never a judge's evaluator spans), USD
    error_rate        requests whose root is an error / requests
    eval:NAME         mean score of evaluation NAME over the spans that carry a score

Each metric gets B's value minus A's (`change`, and `change_pct` relative to A) and a bootstrap
confidence interval of that difference: each side is resampled with replacement (`resamples`
times, from a seeded generator, so the same input gives the same report), the statistic recomputed,
and the central `confidence` share of the differences kept. A change is `significant` when the
interval excludes 0, and `flagged` when it is significant and larger than its threshold: relative
(`threshold`, default 10%) for durations, TTFT, tokens and cost; absolute for error rate
(`rate_threshold`, percentage points as a fraction) and evaluation scores (`score_threshold`).
`direction` says whether the change is a regression (slower, costlier, more errors, lower scores)
or an improvement.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmobs.core.model import MODEL_KINDS, Span, SpanKind, lookup_attribute

DEFAULT_RESAMPLES = 1000
#: Bootstrap works on at most this many values per side (a deterministic subsample beyond it).
MAX_BOOTSTRAP_VALUES = 5000


# -- choosing each side ---------------------------------------------------------------------------


@dataclass(slots=True)
class Side:
    """Which traces form one side: a time window of root start times and/or an attribute value."""

    label: str = ""
    since_ns: int | None = None
    until_ns: int | None = None
    attribute: tuple[str, str] | None = None  # key (dotted path into nested maps), value as text
    service: str | None = None


def parse_side(text: str) -> Side:
    """`attribute:version=v13`, `service:bot`, or both comma-separated. Raises ValueError.

    Time windows come from the CLI's `--since`/`--until` as `Side(since_ns=..., until_ns=...)`.
    """
    side = Side(label=text.strip())
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, _, rest = part.partition(":")
        if kind == "attribute":
            key, sep, value = rest.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{part!r}: write attribute:KEY=VALUE, e.g. attribute:version=v13")
            side.attribute = (key.strip(), value.strip())
        elif kind == "service" and rest.strip():
            side.service = rest.strip()
        else:
            raise ValueError(f"cannot read side {part!r}: use attribute:KEY=VALUE or service:NAME")
    return side


def _has_attribute(span: Span, key: str, value: str) -> bool:
    for attributes in (span.attributes, span.attributes.get("metadata")):
        if isinstance(attributes, Mapping):
            found, actual = lookup_attribute(attributes, key)
            if found and (actual == value or str(actual) == value):
                return True
    return False


def group_traces(spans: Iterable[Span]) -> dict[str, list[Span]]:
    """Spans by trace id, each trace's spans in start order."""
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    for members in traces.values():
        members.sort(key=lambda s: (s.start_ns, s.end_ns))
    return traces


def trace_root(members: Sequence[Span]) -> Span:
    """The root of a trace: the span without a parent, else the earliest whose parent is absent."""
    ids = {s.span_id for s in members}
    for span in members:
        if span.parent_id is None:
            return span
    return next((s for s in members if s.parent_id not in ids), members[0])


def select_traces(spans: Iterable[Span], side: Side) -> list[Span]:
    """Every span of the traces on `side`: root start in the window, and some span with the attribute."""
    out: list[Span] = []
    for members in group_traces(spans).values():
        root = trace_root(members)
        if side.since_ns is not None and root.start_ns < side.since_ns:
            continue
        if side.until_ns is not None and root.start_ns >= side.until_ns:
            continue
        if side.service is not None and root.service != side.service:
            continue
        if side.attribute is not None and not any(_has_attribute(s, *side.attribute) for s in members):
            continue
        out.extend(members)
    return out


# -- the comparison --------------------------------------------------------------------------------


@dataclass(slots=True)
class MetricChange:
    """One metric on both sides, its change and the bootstrap interval of the change."""

    name: str
    a: float | None
    b: float | None
    n_a: int
    n_b: int
    change: float | None = None
    change_pct: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    significant: bool = False
    flagged: bool = False
    direction: str | None = None  # "regression", "improvement", or None when unchanged / unknown

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "change": self.change,
            "change_pct": self.change_pct,
            "ci": [self.ci_low, self.ci_high] if self.ci_low is not None else None,
            "significant": self.significant,
            "flagged": self.flagged,
            "direction": self.direction,
        }


@dataclass(slots=True)
class DriftReport:
    """The comparison of side A (baseline) with side B."""

    label_a: str
    label_b: str
    metrics: list[MetricChange]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.flagged]

    def metric(self, name: str) -> MetricChange:
        return next(m for m in self.metrics if m.name == name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`stats --compare --json`)."""
        return {
            "a": self.label_a,
            "b": self.label_b,
            "metrics": [m.to_dict() for m in self.metrics],
            "flagged": [m.name for m in self.flagged],
            "settings": dict(self.settings),
        }


@dataclass(slots=True)
class _Request:
    duration_ms: float
    error: bool
    tokens: float
    cost: float


def _requests(spans: Iterable[Span]) -> tuple[list[_Request], list[float], dict[str, list[float]]]:
    """Per-request values, llm TTFTs, and evaluation scores by name."""
    requests: list[_Request] = []
    ttfts: list[float] = []
    scores: dict[str, list[float]] = {}
    for members in group_traces(spans).values():
        root = trace_root(members)
        tokens = cost = 0.0
        for span in members:
            if span.kind in MODEL_KINDS:
                usage = span.usage
                if usage is not None:
                    tokens += (usage.input_tokens or 0) + (usage.output_tokens or 0)
                if span.cost is not None:
                    cost += span.cost.total_usd
            if span.kind is SpanKind.LLM and span.ttft_ms is not None:
                ttfts.append(span.ttft_ms)
            for evaluation in span.evaluations or ():
                if evaluation.score is not None:
                    scores.setdefault(evaluation.name, []).append(evaluation.score)
        requests.append(_Request(root.duration_ms, root.is_error, tokens, cost))
    return requests, ttfts, scores


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default). `values` need not be sorted."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


_Stat = Callable[[Sequence[float]], float]


def compare(
    spans_a: Iterable[Span],
    spans_b: Iterable[Span],
    *,
    label_a: str = "A",
    label_b: str = "B",
    threshold: float = 0.10,
    rate_threshold: float = 0.02,
    score_threshold: float = 0.05,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> DriftReport:
    """Compare side A (the baseline) with side B. See the module docstring for the metrics.

    Args:
        spans_a, spans_b: every span of each side's traces (see `select_traces`).
        threshold: smallest relative change flagged for durations, TTFT, tokens and cost.
        rate_threshold: smallest absolute change of the error rate flagged.
        score_threshold: smallest absolute change of a mean evaluation score flagged.
        confidence: width of the bootstrap interval.
        resamples: bootstrap resamples per metric (0 skips the intervals: nothing is flagged).
        seed: the bootstrap's random seed.
    """
    req_a, ttft_a, scores_a = _requests(spans_a)
    req_b, ttft_b, scores_b = _requests(spans_b)
    rng = random.Random(seed)
    metrics = [MetricChange("count", float(len(req_a)), float(len(req_b)), len(req_a), len(req_b))]
    _set_change(metrics[0])

    def add(name: str, a: list[float], b: list[float], stat: _Stat, absolute: float | None, worse_up: bool) -> None:
        metrics.append(
            _compare_metric(
                name,
                a,
                b,
                stat,
                rng,
                resamples,
                confidence,
                threshold if absolute is None else absolute,
                absolute is not None,
                worse_up,
            )
        )

    durations_a, durations_b = [r.duration_ms for r in req_a], [r.duration_ms for r in req_b]
    add("duration_p50", durations_a, durations_b, lambda v: percentile(v, 50), None, True)
    add("duration_p95", durations_a, durations_b, lambda v: percentile(v, 95), None, True)
    add("ttft_p50", ttft_a, ttft_b, lambda v: percentile(v, 50), None, True)
    add("ttft_p95", ttft_a, ttft_b, lambda v: percentile(v, 95), None, True)
    add("tokens_per_request", [r.tokens for r in req_a], [r.tokens for r in req_b], _mean, None, True)
    add("cost_per_request", [r.cost for r in req_a], [r.cost for r in req_b], _mean, None, True)
    add("error_rate", [float(r.error) for r in req_a], [float(r.error) for r in req_b], _mean, rate_threshold, True)
    for name in sorted(set(scores_a) | set(scores_b)):
        add(f"eval:{name}", scores_a.get(name, []), scores_b.get(name, []), _mean, score_threshold, False)
    settings = {
        "threshold": threshold,
        "rate_threshold": rate_threshold,
        "score_threshold": score_threshold,
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
    }
    return DriftReport(label_a, label_b, metrics, settings)


def _set_change(metric: MetricChange) -> None:
    if metric.a is None or metric.b is None:
        return
    metric.change = metric.b - metric.a
    metric.change_pct = (metric.change / metric.a * 100.0) if metric.a else None


def _compare_metric(
    name: str,
    a: list[float],
    b: list[float],
    stat: _Stat,
    rng: random.Random,
    resamples: int,
    confidence: float,
    limit: float,
    absolute: bool,
    worse_up: bool,
) -> MetricChange:
    metric = MetricChange(name, stat(a) if a else None, stat(b) if b else None, len(a), len(b))
    _set_change(metric)
    if metric.change is None or resamples <= 0:
        return metric
    sample_a, sample_b = _cap(a, rng), _cap(b, rng)
    diffs = sorted(
        stat(rng.choices(sample_b, k=len(sample_b))) - stat(rng.choices(sample_a, k=len(sample_a)))
        for _ in range(resamples)
    )
    tail = (1.0 - confidence) / 2.0 * 100.0
    metric.ci_low = percentile(diffs, tail)
    metric.ci_high = percentile(diffs, 100.0 - tail)
    metric.significant = metric.ci_low > 0 or metric.ci_high < 0
    size = abs(metric.change) if absolute else (abs(metric.change) / abs(metric.a) if metric.a else float("inf"))
    metric.flagged = metric.significant and size > limit
    if metric.change:
        metric.direction = "regression" if (metric.change > 0) == worse_up else "improvement"
    return metric


def _cap(values: list[float], rng: random.Random) -> list[float]:
    if len(values) <= MAX_BOOTSTRAP_VALUES:
        return values
    return rng.sample(values, MAX_BOOTSTRAP_VALUES)
