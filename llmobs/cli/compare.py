"""`llmobs stats --compare A B`: two sets of requests side by side, what changed and whether it matters.

Each side is one or more comma-separated parts, all of which a request (a trace) must meet:

    2h..1h                  roots that started from 2 h ago until 1 h ago
    1h  (or 1h..)           roots that started in the last hour
    ..1d                    roots that started more than a day ago
    2026-11-27T09:00..2026-11-27T12:00   ISO times work on either end; `now` too
    attribute:version=v13   some span of the trace has attribute version = v13 (also in metadata;
                            KEY may be a dotted path into nested attributes)
    service:support-bot     the root's service
    attribute:version=v13,6h  both

The numbers and the statistics are `llmobs.core.drift`'s: per metric, B minus A, a seeded bootstrap
confidence interval of that difference, and a flag when the interval excludes 0 and the change is
over its threshold.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmobs.cli.filters import SpanFilter
from llmobs.cli.options import parse_since_ns
from llmobs.cli.render import fmt_cost, fmt_ms, fmt_tokens
from llmobs.core.drift import DEFAULT_RESAMPLES, DriftReport, MetricChange, Side, compare, parse_side, select_traces
from llmobs.core.model import Span

F = TypeVar("F", bound=Callable[..., Any])

SIDE_HELP = (
    "Compare side A (the baseline) with side B. A side is a time window of trace start times "
    "(2h..1h, 1h, ..1d, ISO..ISO), attribute:KEY=VALUE, service:NAME, or several joined with commas "
    "(attribute:version=v13,6h)."
)
#: Exit status of `--fail-on-regression` when a regression is flagged.
REGRESSION_EXIT_CODE = 1


def parse_fraction(text: str, *, option: str) -> float:
    """`10%`, `2pp` or `0.1` as a fraction. Raises click.BadParameter."""
    raw = text.strip().lower()
    scale = 1.0
    for suffix in ("%", "pp"):
        if raw.endswith(suffix):
            raw, scale = raw[: -len(suffix)], 0.01
    try:
        value = float(raw) * scale
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a number or a percentage (10%, 0.1)", param_hint=option) from None
    if value < 0:
        raise click.BadParameter(f"{text!r} must not be negative", param_hint=option)
    return value


def _point(text: str, now_ns: int) -> int:
    if text.strip().lower() == "now":
        return now_ns
    return parse_since_ns(text, now_ns=now_ns)


def parse_compare_side(text: str, *, now_ns: int | None = None) -> Side:
    """One side of `--compare` (syntax in the module docstring). Raises ValueError."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    side = Side(label=text.strip())
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("a side cannot be empty")
    for part in parts:
        if part.startswith(("attribute:", "service:")):
            found = parse_side(part)
            side.attribute = found.attribute or side.attribute
            side.service = found.service or side.service
            continue
        start, sep, end = part.partition("..")
        try:
            since = _point(start, now_ns) if start.strip() else None
            until = _point(end, now_ns) if sep and end.strip() else None
        except ValueError:
            raise ValueError(
                f"cannot read {part!r}: a side is a window (2h..1h, 1h, ..1d, ISO..ISO), "
                "attribute:KEY=VALUE or service:NAME"
            ) from None
        if since is None and until is None:
            raise ValueError(f"{part!r}: give a start, an end or both, e.g. 2h..1h")
        if since is not None and until is not None and until <= since:
            raise ValueError(f"{part!r}: the window ends before it starts (write the older time first: 2h..1h)")
        side.since_ns, side.until_ns = since, until
    return side


def side_to_dict(side: Side) -> dict[str, Any]:
    return {
        "label": side.label,
        "since_ns": side.since_ns,
        "until_ns": side.until_ns,
        "attribute": {"key": side.attribute[0], "value": side.attribute[1]} if side.attribute else None,
        "service": side.service,
    }


def compare_options(func: F) -> F:
    """The `--compare` option of `stats` and its settings."""
    options = [
        click.option("--compare", nargs=2, metavar="A B", default=None, help=SIDE_HELP),
        click.option(
            "--threshold",
            default="10%",
            show_default=True,
            help="With --compare: smallest relative change flagged for durations, TTFT, tokens and cost.",
        ),
        click.option(
            "--rate-threshold",
            default="2pp",
            show_default=True,
            help="With --compare: smallest change of the error rate flagged, in percentage points.",
        ),
        click.option(
            "--score-threshold",
            type=float,
            default=0.05,
            show_default=True,
            help="With --compare: smallest change of a mean evaluation score flagged.",
        ),
        click.option(
            "--confidence",
            type=click.FloatRange(0.5, 0.999),
            default=0.95,
            show_default=True,
            help="With --compare: width of the bootstrap confidence interval.",
        ),
        click.option(
            "--resamples",
            type=click.IntRange(min=0),
            default=DEFAULT_RESAMPLES,
            show_default=True,
            help="With --compare: bootstrap resamples (0: no intervals, nothing flagged).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="With --compare: the bootstrap's seed."),
        click.option(
            "--fail-on-regression",
            is_flag=True,
            help="With --compare: exit with status 1 when a regression is flagged (for CI).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _whole_traces(spans: Sequence[Span], span_filter: SpanFilter) -> list[Span]:
    """The spans of every trace that has a span the filter keeps (a filter never cuts a trace)."""
    if not span_filter.active:
        return list(spans)
    keep = {s.trace_id for s in spans if span_filter.matches(s)}
    return [s for s in spans if s.trace_id in keep]


def run_compare(
    conn: sqlite3.Connection,
    load: Callable[[sqlite3.Connection, int | None, SpanFilter], list[Span]],
    *,
    sides: tuple[str, str],
    since_ns: int | None,
    span_filter: SpanFilter,
    as_json: bool,
    console: Console,
    threshold: str,
    rate_threshold: str,
    score_threshold: float,
    confidence: float,
    resamples: int,
    seed: int,
    fail_on_regression: bool,
) -> None:
    """What `stats --compare` does: select both sides, compare, print (or JSON)."""
    try:
        side_a, side_b = (parse_compare_side(text) for text in sides)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--compare") from exc
    relative = parse_fraction(threshold, option="--threshold")
    rate = parse_fraction(rate_threshold, option="--rate-threshold")
    # Load only what either side can use: from the earliest start any side allows.
    starts = [s.since_ns for s in (side_a, side_b)]
    lower = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    if since_ns is not None:
        lower = since_ns if lower is None else max(lower, since_ns)
    spans = _whole_traces(load(conn, lower, SpanFilter()), span_filter)
    report = compare(
        select_traces(spans, side_a),
        select_traces(spans, side_b),
        label_a=side_a.label,
        label_b=side_b.label,
        threshold=relative,
        rate_threshold=rate,
        score_threshold=score_threshold,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
    if as_json:
        import json

        click.echo(json.dumps({**report.to_dict(), "sides": {"a": side_to_dict(side_a), "b": side_to_dict(side_b)}}))
    else:
        render_report(console, report)
    if fail_on_regression and any(m.direction == "regression" for m in report.flagged):
        raise SystemExit(REGRESSION_EXIT_CODE)


# -- rendering -------------------------------------------------------------------------------------

_TITLES = {
    "count": "requests",
    "duration_p50": "duration p50",
    "duration_p95": "duration p95",
    "ttft_p50": "ttft p50",
    "ttft_p95": "ttft p95",
    "tokens_per_request": "tokens / request",
    "cost_per_request": "cost / request",
    "error_rate": "error rate",
}


def metric_title(name: str) -> str:
    return _TITLES.get(name, name)


def fmt_metric(name: str, value: float | None, *, signed: bool = False) -> str:
    """A metric's value (or a change of it, `signed`) in its unit."""
    if value is None:
        return "-"
    sign = ("+" if value > 0 else "-" if value < 0 else "±") if signed else ""
    magnitude = abs(value) if signed else value
    if name.startswith(("duration", "ttft")):
        text = fmt_ms(magnitude)
    elif name == "cost_per_request":
        text = fmt_cost(magnitude)
    elif name == "tokens_per_request":
        text = fmt_tokens(round(magnitude)) if magnitude >= 1000 else f"{magnitude:.0f}"
    elif name == "error_rate":
        text = f"{magnitude * 100:.1f}{' pp' if signed else '%'}"
    elif name == "count":
        text = f"{magnitude:.0f}"
    else:  # eval:NAME
        text = f"{magnitude:.3f}"
    return sign + text


def _flag(metric: MetricChange) -> Text:
    if metric.flagged and metric.direction == "regression":
        return Text("✗ regression", style="bold red")
    if metric.flagged:
        return Text("✓ improvement", style="bold green")
    if metric.significant:
        return Text("significant, small", style="dim")
    return Text("")


def render_report(console: Console, report: DriftReport) -> None:
    count = report.metric("count")
    console.print(Text.assemble(("A ", "bold"), f"{report.label_a}  ({count.n_a} requests)"))
    console.print(Text.assemble(("B ", "bold"), f"{report.label_b}  ({count.n_b} requests)"))
    for side, n in (("A", count.n_a), ("B", count.n_b)):
        if n == 0:
            console.print(Text(f"side {side} has no requests: check its window or attribute", style="yellow"))
    console.print()
    settings = report.settings
    table = Table(box=None, header_style="bold", pad_edge=False)
    for i, name in enumerate(["metric", "A", "B", "change", "%", f"{settings['confidence'] * 100:g}% CI", ""]):
        table.add_column(name, justify="left" if i in (0, 6) else "right", no_wrap=True)
    for m in report.metrics:
        ci = (
            f"[{fmt_metric(m.name, m.ci_low, signed=True)}, {fmt_metric(m.name, m.ci_high, signed=True)}]"
            if m.ci_low is not None and m.ci_high is not None
            else ""
        )
        pct = f"{m.change_pct:+.1f}%" if m.change_pct is not None else ""
        table.add_row(
            metric_title(m.name),
            fmt_metric(m.name, m.a),
            fmt_metric(m.name, m.b),
            fmt_metric(m.name, m.change, signed=True) if m.change is not None else "-",
            pct,
            ci,
            _flag(m),
            style="red" if m.flagged and m.direction == "regression" else None,
        )
    console.print(table)
    console.print()
    flagged = report.flagged
    if flagged:
        summary = ", ".join(
            f"{metric_title(m.name)} {fmt_metric(m.name, m.change, signed=True)} ({m.direction})" for m in flagged
        )
        console.print(Text(f"flagged: {summary}", style="bold"))
    else:
        console.print("no change both significant and over its threshold")
    console.print(
        Text(
            f"bootstrap {settings['resamples']} resamples, seed {settings['seed']}; flagged when the CI excludes 0 "
            f"and the change is over {settings['threshold'] * 100:g}% (durations, TTFT, tokens, cost), "
            f"{settings['rate_threshold'] * 100:g} pp (error rate) or {settings['score_threshold']:g} (scores)",
            style="dim",
        )
    )
