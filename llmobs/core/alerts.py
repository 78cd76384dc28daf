"""Alert rules: a small language, its parser, and an engine fed finished spans.

Span rules judge one span at a time; the CLI highlights the spans they match:

    cost>0.05          a model span that cost more than $0.05, or a trace root whose trace's
                       model spend (its llm/embedding/reranker spans seen before it) is over $0.05
    tokens>20000       likewise for tokens (input + output); also input_tokens, output_tokens
    duration>5s        any span that took more than 5 s (units: ms, s, m, h; bare numbers are ms)
    ttft>2s            a streamed model call whose first token came after 2 s
    error              any span with status error
    eval:relevance<0.5 a span with an evaluation named "relevance" scoring under 0.5

Windowed rules aggregate over a sliding window of span end times, `AGGREGATE OP VALUE/WINDOW`:

    error_rate>5%/5m       errored trace roots / trace roots            (roots: spans without a parent)
    errors>10/5m           errored trace roots
    requests>1000/1m       trace roots (`count` is a synonym)
    cost>1.00/1m           sum of the cost of model spans (MODEL_KINDS: never evaluator spans)
    tokens>1e6/1h          sum of input + output tokens of model spans
    p95(duration)>3s/10m   95th percentile of trace roots' durations (p50, p90, p99, ... too)
    avg(ttft)>1s/5m        mean TTFT of llm spans that have one (avg/mean, min, max, sum, pNN)
    eval:faithfulness<0.7/1h  mean score of that evaluation over the spans that carry it

A bare metric in a windowed rule aggregates as its natural total: `cost` and `tokens` sum,
`duration`, `ttft` and `eval:NAME` average. Comparisons: `>`, `>=`, `<`, `<=`; rates take `%`
or a fraction; cost may be written `$1.00`. An empty window never fires.

`AlertEngine.observe(span)` takes spans in end-time order (time is the spans' own `end_ns`, so a
replay of the store alerts exactly as the live stream did) and returns the alerts they raise: a
span rule on every matching span, a windowed rule when its condition becomes true (edge-triggered:
it re-arms once the condition is false again); either waits `cooldown` after firing before it
may fire again. After `observe`, `last_matches` holds the span rules the span matched, cooldown
or not (what `tail --alert` highlights).
"""

from __future__ import annotations

import bisect
import re
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmobs.core.model import MODEL_KINDS, Span, SpanKind

_UNITS_MS = {"ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3, "d": 86400e3}
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
_VALUE_METRICS = ("cost", "tokens", "input_tokens", "output_tokens", "duration", "ttft")
_COUNT_METRICS = ("error_rate", "errors", "requests", "count")
_AGGREGATES = re.compile(r"^(avg|mean|min|max|sum|p\d{1,2}(?:\.\d+)?)$")
_RULE = re.compile(
    r"^\s*(?:(?P<agg>[a-z0-9.]+)\((?P<inner>[^)]*)\)|(?P<metric>[a-z_]+(?::[\w.\-]+)?))\s*"
    r"(?P<op>>=|<=|>|<)\s*(?P<value>\$?[0-9.eE+\-]+)\s*(?P<unit>%|ms|s|m|h)?\s*"
    r"(?:/\s*(?P<window>[0-9.]+\s*(?:ms|s|m|h|d)))?\s*$"
)
MAX_SAMPLE_TRACES = 5
_TRACE_TOTALS_CAP = 10_000


class RuleError(ValueError):
    """A rule that does not parse; the message says what is wrong and what is allowed."""


def parse_duration_s(text: str) -> float:
    """`"5m"`, `"30s"`, `"250ms"`, `"1h"`, `"2d"` as seconds. Raises RuleError."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)\s*", text)
    if not match:
        raise RuleError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _UNITS_MS[match.group(2)] / 1e3


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule. `window_s` is None for a span rule."""

    text: str
    metric: str  # cost, tokens, input_tokens, output_tokens, duration, ttft, error, eval:NAME, error_rate, ...
    op: str | None = None
    threshold: float | None = None
    window_s: float | None = None
    aggregate: str | None = None  # sum, avg, min, max, pNN (windowed value metrics)

    @property
    def windowed(self) -> bool:
        return self.window_s is not None

    @property
    def window(self) -> str | None:
        """The window as written back (`5m`), or None."""
        if self.window_s is None:
            return None
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if self.window_s >= size and self.window_s % size == 0:
                return f"{self.window_s / size:g}{unit}"
        return f"{self.window_s * 1e3:g}ms"

    def compare(self, value: float) -> bool:
        assert self.op is not None and self.threshold is not None
        return _OPS[self.op](float(value), self.threshold)


def parse_rule(text: str) -> Rule:
    """Parse one rule (grammar in the module docstring). Raises RuleError with the reason."""
    source = text.strip()
    if source == "error":
        return Rule(text=source, metric="error")
    match = _RULE.match(source)
    if not match:
        raise RuleError(
            f"cannot parse alert rule {text!r}: expected METRIC OP VALUE[/WINDOW], e.g. cost>0.05, "
            "duration>5s, error, eval:relevance<0.5, error_rate>5%/5m, p95(duration)>3s/10m"
        )
    agg, metric = match["agg"], match["metric"] or (match["inner"] or "").strip()
    window = match["window"]
    window_s = parse_duration_s(window) if window else None
    if window_s is not None and window_s <= 0:
        raise RuleError(f"{text!r}: the window must be longer than 0")
    if not (metric in _VALUE_METRICS or metric in _COUNT_METRICS or metric.startswith("eval:")):
        raise RuleError(
            f"{text!r}: unknown metric {metric!r}; known: {', '.join((*_VALUE_METRICS, *_COUNT_METRICS))}, eval:NAME"
        )
    if metric == "eval:":
        raise RuleError(f"{text!r}: name the evaluation, e.g. eval:relevance<0.5")
    if agg is not None:
        if not _AGGREGATES.match(agg) or (agg.startswith("p") and not 0 < float(agg[1:]) < 100):
            raise RuleError(f"{text!r}: unknown aggregate {agg!r}; use avg, min, max, sum or p50..p99")
        if metric in _COUNT_METRICS:
            raise RuleError(f"{text!r}: {metric} is already an aggregate; write {metric}>VALUE/WINDOW")
        if window_s is None:
            raise RuleError(f"{text!r}: {agg}({metric}) needs a window, e.g. {source}/5m")
    if metric in _COUNT_METRICS and window_s is None:
        raise RuleError(f"{text!r}: {metric} is measured over a window, e.g. {source}/5m")
    threshold = _parse_value(text, metric, match["value"], match["unit"])
    if window_s is not None and agg is None and metric not in _COUNT_METRICS:
        agg = "sum" if metric in ("cost", "tokens", "input_tokens", "output_tokens") else "avg"
    return Rule(
        text=source,
        metric=metric,
        op=match["op"],
        threshold=threshold,
        window_s=window_s,
        aggregate="avg" if agg == "mean" else agg,
    )


def _parse_value(text: str, metric: str, raw: str, unit: str | None) -> float:
    dollar = raw.startswith("$")
    try:
        value = float(raw.lstrip("$"))
    except ValueError:
        raise RuleError(f"{text!r}: {raw!r} is not a number") from None
    if dollar and metric != "cost":
        raise RuleError(f"{text!r}: only cost takes a $ amount")
    if metric in ("duration", "ttft"):
        if unit == "%":
            raise RuleError(f"{text!r}: a duration takes ms, s, m or h, not %")
        return value * _UNITS_MS[unit or "ms"]  # milliseconds, like Span.duration_ms
    if unit == "%":
        if metric != "error_rate" and not metric.startswith("eval:"):
            raise RuleError(f"{text!r}: only error_rate and eval scores take a percentage")
        return value / 100.0
    if unit is not None:
        raise RuleError(f"{text!r}: {metric} takes a plain number, not {unit!r}")
    return value


def parse_rules(texts: list[str] | tuple[str, ...]) -> list[Rule]:
    """Parse several rules (the CLI's repeated `--alert`). Raises RuleError on the first bad one."""
    return [parse_rule(t) for t in texts]


@dataclass(slots=True)
class Alert:
    """A fired rule: what, over which window, the value against the threshold, when, and examples."""

    rule: str
    window: str | None
    value: float | None
    threshold: float | None
    time_ns: int
    trace_ids: list[str] = field(default_factory=list)
    span_id: str | None = None  # span rules: the matching span
    span_name: str | None = None

    @property
    def kind(self) -> str:
        return "window" if self.window is not None else "span"

    def to_dict(self) -> dict[str, Any]:
        """The alert JSON (what `watch --webhook` posts): rule, window, value, threshold, time, trace ids."""
        return {
            "rule": self.rule,
            "kind": self.kind,
            "window": self.window,
            "value": self.value,
            "threshold": self.threshold,
            "time": datetime.fromtimestamp(self.time_ns / 1e9, UTC).isoformat().replace("+00:00", "Z"),
            "time_ns": self.time_ns,
            "trace_ids": list(self.trace_ids),
            "span_id": self.span_id,
            "span_name": self.span_name,
        }


# -- what each metric reads from a span ------------------------------------------------------------


def _tokens(span: Span, metric: str) -> float | None:
    usage = span.usage
    if usage is None:
        return None
    if metric == "input_tokens":
        return float(usage.input_tokens) if usage.input_tokens is not None else None
    if metric == "output_tokens":
        return float(usage.output_tokens) if usage.output_tokens is not None else None
    if usage.input_tokens is None and usage.output_tokens is None:
        return float(usage.total_tokens) if usage.total_tokens is not None else None
    return float((usage.input_tokens or 0) + (usage.output_tokens or 0))


def _model_value(span: Span, metric: str) -> float | None:
    """A model span's own cost or tokens (None for other spans and unpriced calls)."""
    if span.kind not in MODEL_KINDS:
        return None
    if metric == "cost":
        return span.cost.total_usd if span.cost is not None else None
    return _tokens(span, metric)


def _eval_score(span: Span, name: str) -> float | None:
    for evaluation in span.evaluations or ():
        if evaluation.name == name and evaluation.score is not None:
            return evaluation.score
    return None


def _window_value(span: Span, rule: Rule) -> float | None:
    """What `span` contributes to a windowed rule, or None when the rule does not count it."""
    metric = rule.metric
    if metric in ("cost", "tokens", "input_tokens", "output_tokens"):
        return _model_value(span, metric)
    if metric.startswith("eval:"):
        return _eval_score(span, metric[5:])
    if metric == "ttft":
        return span.ttft_ms if span.kind is SpanKind.LLM else None
    if span.parent_id is not None:
        return None  # duration and the counts are over trace roots
    if metric == "duration":
        return span.duration_ms
    if metric in ("error_rate", "errors"):
        return 1.0 if span.is_error else 0.0
    return 1.0  # requests / count


class _Window:
    """The spans a windowed rule counted in the last `window_s`: values by time, and sorted."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.span_ns = int((rule.window_s or 0) * 1e9)
        self.items: deque[tuple[int, float, str]] = deque()  # (end_ns, value, trace_id)
        self.sorted: list[float] = []
        self.total = 0.0
        self.firing = False
        self.last_fired_ns: int | None = None

    def add(self, end_ns: int, value: float, trace_id: str) -> None:
        self.items.append((end_ns, value, trace_id))
        self.total += value
        if self.rule.aggregate not in (None, "sum", "avg"):
            bisect.insort(self.sorted, value)

    def expire(self, now_ns: int) -> None:
        cutoff = now_ns - self.span_ns
        items = self.items
        while items and items[0][0] <= cutoff:
            _, value, _ = items.popleft()
            self.total -= value
            if self.sorted:
                del self.sorted[bisect.bisect_left(self.sorted, value)]
        if not items:
            self.total = 0.0  # no float drift carried across an empty window

    def value(self) -> float | None:
        items = self.items
        if not items:
            return None
        metric, agg = self.rule.metric, self.rule.aggregate
        if metric == "error_rate":
            return self.total / len(items)
        if metric in ("errors", "requests", "count") or agg == "sum":
            return self.total
        if agg == "avg":
            return self.total / len(items)
        values = self.sorted
        if agg == "min":
            return values[0]
        if agg == "max":
            return values[-1]
        assert agg is not None and agg.startswith("p")
        return _percentile(values, float(agg[1:]))

    def sample_trace_ids(self) -> list[str]:
        """Traces that best show the breach: the largest values for `>` rules, the smallest for `<`."""
        descending = (self.rule.op or ">").startswith(">")
        ranked = sorted(reversed(self.items), key=lambda item: -item[1] if descending else item[1])
        out: list[str] = []
        for _, _, trace_id in ranked:
            if trace_id not in out:
                out.append(trace_id)
                if len(out) == MAX_SAMPLE_TRACES:
                    break
        return out


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), over sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    rank = (len(sorted_values) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


class AlertEngine:
    """Evaluates rules over a stream of finished spans (in end-time order).

    Args:
        rules: parsed rules or their text.
        cooldown: seconds (or "5m") after a rule fires during which it does not fire again.

    Raises:
        RuleError: a rule given as text that does not parse.
    """

    def __init__(self, rules: list[Rule | str] | tuple[Rule | str, ...], cooldown: float | str = 0.0) -> None:
        self.rules = [r if isinstance(r, Rule) else parse_rule(r) for r in rules]
        self.cooldown_ns = int((parse_duration_s(cooldown) if isinstance(cooldown, str) else cooldown) * 1e9)
        self._span_rules = [r for r in self.rules if not r.windowed]
        self._windows = [_Window(r) for r in self.rules if r.windowed]
        self._span_last_fired: dict[str, int] = {}
        # Model spend per trace, so that a root can be judged on its trace's cost (bounded, LRU).
        self._trace_spend: OrderedDict[str, list[float]] = OrderedDict()
        self._track_spend = any(
            r.metric in ("cost", "tokens", "input_tokens", "output_tokens") for r in self._span_rules
        )
        self.now_ns = 0
        #: The span rules the last observed span matched, whatever the cooldown (for highlighting).
        self.last_matches: list[Rule] = []

    def matches(self, span: Span) -> list[Rule]:
        """The span rules `span` matches, without observing it.

        A root's trace spend is what `observe` has accumulated so far.
        """
        return [rule for rule in self._span_rules if self._span_value(span, rule)[0]]

    def observe(self, span: Span) -> list[Alert]:
        """Feed one finished span; the alerts it raises (span rules and windowed rules)."""
        if self._track_spend:
            self._add_spend(span)
        end_ns = span.end_ns
        self.now_ns = max(self.now_ns, end_ns)
        alerts: list[Alert] = []
        self.last_matches = []
        for rule in self._span_rules:
            matched, value = self._span_value(span, rule)
            if not matched:
                continue
            self.last_matches.append(rule)
            last = self._span_last_fired.get(rule.text)
            if last is not None and end_ns - last < self.cooldown_ns:
                continue
            self._span_last_fired[rule.text] = end_ns
            alerts.append(
                Alert(rule.text, None, value, rule.threshold, end_ns, [span.trace_id], span.span_id, span.name)
            )
        for window in self._windows:
            value = _window_value(span, window.rule)
            if value is not None:
                window.add(end_ns, value, span.trace_id)
        alerts.extend(self._check_windows(self.now_ns))
        if self._track_spend and span.parent_id is None:
            self._trace_spend.pop(span.trace_id, None)
        return alerts

    def tick(self, now_ns: int) -> list[Alert]:
        """Advance time without a span (a quiet stream): windows expire and may re-arm or fire."""
        self.now_ns = max(self.now_ns, now_ns)
        return self._check_windows(self.now_ns)

    def _check_windows(self, now_ns: int) -> list[Alert]:
        alerts = []
        for window in self._windows:
            window.expire(now_ns)
            value = window.value()
            rule = window.rule
            breached = value is not None and rule.compare(value)
            if not breached:
                window.firing = False
                continue
            if window.firing:
                continue
            window.firing = True
            last = window.last_fired_ns
            if last is not None and now_ns - last < self.cooldown_ns:
                continue
            window.last_fired_ns = now_ns
            alerts.append(Alert(rule.text, rule.window, value, rule.threshold, now_ns, window.sample_trace_ids()))
        return alerts

    def _span_value(self, span: Span, rule: Rule) -> tuple[bool, float | None]:
        metric = rule.metric
        if metric == "error":
            return span.is_error, None
        value: float | None
        if metric == "duration":
            value = span.duration_ms
        elif metric == "ttft":
            value = span.ttft_ms
        elif metric.startswith("eval:"):
            value = _eval_score(span, metric[5:])
        elif span.parent_id is None and span.kind not in MODEL_KINDS:
            spend = self._trace_spend.get(span.trace_id)
            value = spend[_SPEND_INDEX[metric]] if spend is not None and spend[4] else None
        else:
            value = _model_value(span, metric)
        return (value is not None and rule.compare(value)), value

    def _add_spend(self, span: Span) -> None:
        if span.kind not in MODEL_KINDS:
            return
        spend = self._trace_spend.get(span.trace_id)
        if spend is None:
            spend = self._trace_spend[span.trace_id] = [0.0, 0.0, 0.0, 0.0, 0.0]
            if len(self._trace_spend) > _TRACE_TOTALS_CAP:
                self._trace_spend.popitem(last=False)
        if span.cost is not None:
            spend[0] += span.cost.total_usd
        for index, metric in ((1, "tokens"), (2, "input_tokens"), (3, "output_tokens")):
            spend[index] += _tokens(span, metric) or 0.0
        spend[4] += 1


#: Index of each metric in a trace's spend list: [cost, tokens, input_tokens, output_tokens, model spans].
_SPEND_INDEX = {"cost": 0, "tokens": 1, "input_tokens": 2, "output_tokens": 3}
