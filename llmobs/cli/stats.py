"""`llmobs stats`: how many, how fast, how often failed, how much it cost, grouped your way.

Percentiles interpolate linearly between the two nearest ranks (numpy's default): the p50 of
10, 20, 30, 40 ms is 25 ms. Tokens and cost add up model calls only (llm, embedding, reranker),
as everywhere in llmobs, so an agent span's aggregate usage is not counted twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmobs.cli.compare import compare_options, run_compare
from llmobs.cli.filters import SpanFilter, attribute_text, build_filter, filter_options
from llmobs.cli.options import SINCE, db_option, make_console, open_store
from llmobs.cli.render import fmt_cost, fmt_ms, fmt_tokens
from llmobs.core.model import MODEL_KINDS, Span, lookup_attribute

GROUPINGS = ("model", "framework", "kind", "service")
NONE_KEY = "(none)"
#: Upper edges (ms) of the latency histogram's buckets; the last bucket is open.
HISTOGRAM_EDGES_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
SPARK = "▁▂▃▄▅▆▇█"
DEFAULT_INTERVALS = 40


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(slots=True)
class GroupStats:
    """The numbers of one group of spans."""

    key: str
    count: int
    errors: int
    duration_ms: dict[str, float | None]
    ttft_ms: dict[str, float | None]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    reasoning_tokens: int
    cost_usd: float | None
    unpriced: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "count": self.count,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "duration_ms": self.duration_ms,
            "ttft_ms": self.ttft_ms,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": self.cost_usd,
            "unpriced": self.unpriced,
        }


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "p99": percentile(values, 99)}


def group_stats(key: str, spans: Sequence[Span]) -> GroupStats:
    model_spans = [s for s in spans if s.kind in MODEL_KINDS]
    costs = [s.cost.total_usd for s in model_spans if s.cost is not None]
    usages = [s.usage for s in model_spans if s.usage is not None]
    return GroupStats(
        key=key,
        count=len(spans),
        errors=sum(1 for s in spans if s.is_error),
        duration_ms=_quantiles([s.duration_ms for s in spans]),
        ttft_ms=_quantiles([s.ttft_ms for s in spans if s.ttft_ms is not None]),
        input_tokens=sum(u.input_tokens or 0 for u in usages),
        output_tokens=sum(u.output_tokens or 0 for u in usages),
        cache_read_tokens=sum(u.cache_read_tokens or 0 for u in usages),
        reasoning_tokens=sum(u.reasoning_tokens or 0 for u in usages),
        cost_usd=math.fsum(costs) if costs else None,
        unpriced=sum(1 for s in model_spans if s.cost is None and s.usage is not None),
    )


def group_key(span: Span, by: str) -> str:
    """The group a span falls in for `--by`."""
    if by == "model":
        return span.model or span.response_model or NONE_KEY
    if by == "framework":
        return span.framework or NONE_KEY
    if by == "kind":
        return span.kind.value
    if by == "service":
        return span.service or NONE_KEY
    if by.startswith("attribute:"):
        found, value = lookup_attribute(span.attributes, by.split(":", 1)[1])
        return attribute_text(value) if found and value is not None else NONE_KEY
    raise ValueError(f"cannot group by {by!r}")


def latency_histogram(durations_ms: Sequence[float]) -> list[dict[str, Any]]:
    """Counts per bucket, `le_ms` the bucket's upper edge (None for the open last one)."""
    counts = [0] * (len(HISTOGRAM_EDGES_MS) + 1)
    for d in durations_ms:
        for i, edge in enumerate(HISTOGRAM_EDGES_MS):
            if d <= edge:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
    edges: list[float | None] = [*HISTOGRAM_EDGES_MS, None]
    return [{"le_ms": edge, "count": c} for edge, c in zip(edges, counts, strict=True)]


def cost_series(spans: Sequence[Span], start_ns: int, end_ns: int, intervals: int) -> dict[str, Any]:
    """Model-call cost summed per equal interval of [start_ns, end_ns], by span end time."""
    intervals = max(1, intervals)
    width = max(1, math.ceil((end_ns - start_ns) / intervals))
    sums = [0.0] * intervals
    for s in spans:
        if s.kind in MODEL_KINDS and s.cost is not None and start_ns <= s.end_ns <= end_ns:
            sums[min(intervals - 1, (s.end_ns - start_ns) // width)] += s.cost.total_usd
    return {"start_ns": start_ns, "interval_s": width / 1e9, "cost_usd": sums}


def sparkline(values: Sequence[float]) -> str:
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(" " if v <= 0 else SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in values)


def load_spans(conn: sqlite3.Connection, since_ns: int | None, span_filter: SpanFilter) -> list[Span]:
    if since_ns is None:
        rows = conn.execute("SELECT data FROM spans ORDER BY seq")
    else:
        rows = conn.execute("SELECT data FROM spans WHERE end_ns >= ? ORDER BY seq", (since_ns,))
    spans = []
    for (data,) in rows:
        try:
            span = Span.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError):
            continue
        if span_filter.matches(span):
            spans.append(span)
    return spans


def compute_stats(
    spans: Sequence[Span], *, by: str | None, since_ns: int | None, now_ns: int, intervals: int = DEFAULT_INTERVALS
) -> dict[str, Any]:
    """Everything `stats` shows, as a JSON-ready dict."""
    groups: dict[str, list[Span]] = {}
    if by is not None:
        for span in spans:
            groups.setdefault(group_key(span, by), []).append(span)
    ordered = sorted(
        (group_stats(key, members) for key, members in groups.items()),
        key=lambda g: (-(g.cost_usd or 0.0), -g.count, g.key),
    )
    start = since_ns if since_ns is not None else min((s.end_ns for s in spans), default=now_ns)
    end = now_ns if since_ns is not None else max((s.end_ns for s in spans), default=now_ns)
    return {
        "since_ns": since_ns,
        "by": by,
        "total": group_stats("total", spans).to_dict(),
        "groups": [g.to_dict() for g in ordered],
        "latency_histogram": latency_histogram([s.duration_ms for s in spans]),
        "cost_series": cost_series(spans, start, max(end, start + 1), intervals),
    }


def _row(g: dict[str, Any]) -> list[str]:
    d, t = g["duration_ms"], g["ttft_ms"]
    return [
        g["key"],
        str(g["count"]),
        f"{g['errors']} ({g['error_rate'] * 100:.1f}%)" if g["errors"] else "0",
        fmt_ms(d["p50"]),
        fmt_ms(d["p95"]),
        fmt_ms(d["p99"]),
        fmt_ms(t["p50"]),
        fmt_ms(t["p95"]),
        f"{fmt_tokens(g['input_tokens'])}→{fmt_tokens(g['output_tokens'])}",
        fmt_cost(g["cost_usd"], unpriced=bool(g["unpriced"])),
    ]


def render_stats(console: Console, result: dict[str, Any]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    headers = ["group" if result["by"] else "", "spans", "errors", "p50", "p95", "p99", "ttft p50", "ttft p95"]
    for i, name in enumerate([*headers, "tokens", "cost"]):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for g in result["groups"]:
        table.add_row(*_row(g))
    total = _row(result["total"])
    total[0] = "total"
    table.add_row(*total, style="bold")
    console.print(table)

    hist = result["latency_histogram"]
    filled = [i for i, b in enumerate(hist) if b["count"]]
    if filled:
        console.print()
        console.print(Text("latency", style="bold"))
        top = max(b["count"] for b in hist)
        for b in hist[filled[0] : filled[-1] + 1]:
            label = f"≤ {fmt_ms(b['le_ms'])}" if b["le_ms"] is not None else f"> {fmt_ms(HISTOGRAM_EDGES_MS[-1])}"
            bar = "█" * max(1 if b["count"] else 0, round(b["count"] / top * 40))
            line = Text(f"  {label:>9} ")
            line.append(bar, style="cyan")
            line.append(f" {b['count']}")
            console.print(line)

    series = result["cost_series"]
    if any(series["cost_usd"]):
        console.print()
        line = Text(f"cost per {fmt_ms(series['interval_s'] * 1000)}  ", style="bold")
        line.append(sparkline(series["cost_usd"]), style="green")
        line.append(f"  max {fmt_cost(max(series['cost_usd']))}", style="dim")
        console.print(line)


@click.command()
@db_option
@filter_options
@click.option("--since", type=SINCE, default=None, help="Only spans that ended since: 10m, 2h, 7d or an ISO time.")
@click.option(
    "--by",
    default=None,
    help="Group by model, framework, kind, service, or attribute:KEY (e.g. attribute:session_id).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as one JSON object.")
@compare_options
def stats(
    db: Path | None,
    since: int | None,
    by: str | None,
    as_json: bool,
    compare: tuple[str, str] | None,
    threshold: str,
    rate_threshold: str,
    score_threshold: float,
    confidence: float,
    resamples: int,
    seed: int,
    fail_on_regression: bool,
    **filters: Any,
) -> None:
    """Count, error rate, p50/p95/p99 duration and TTFT, tokens and cost, grouped.

    Below the table: a latency histogram and a sparkline of cost per interval. Tokens and cost
    count model calls only. Every `tail` filter works here too.

    \b
    Examples:
      llmobs stats --since 1h
      llmobs stats --by model --kind llm
      llmobs stats --by attribute:session_id --since 1d
      llmobs stats --by service --json | jq '.groups[] | {key, cost_usd}'

    With --compare A B, two sets of requests (traces) side by side instead: count, p50/p95
    duration and TTFT, tokens and cost per request, error rate and mean evaluation scores, each
    with B's change from A, a bootstrap confidence interval of the change, and a flag when the
    change is both significant (the interval excludes 0) and over its threshold. A side is a
    window of trace start times, an attribute value, a service, or several joined by commas:

    \b
      llmobs stats --compare 2h..1h 1h                       # the last hour against the one before
      llmobs stats --compare attribute:version=v12 attribute:version=v13
      llmobs stats --compare 'service:bot,7d..1d' 'service:bot,1d' --json
      llmobs stats --compare ..2026-11-27T12:00 2026-11-27T12:00.. --threshold 5%
      llmobs stats --compare attribute:prompt=a attribute:prompt=b --fail-on-regression   # CI

    Windows are START..END, each a --since value (30m, 2h, 7d: that long ago; an ISO time) or
    `now`; a lone value means from then until now. With --compare, filters keep whole traces
    that have a matching span, and --since bounds both sides.
    """
    if by is not None and by not in GROUPINGS and not (by.startswith("attribute:") and len(by) > len("attribute:")):
        raise click.BadParameter(f"{by!r}: use one of {', '.join(GROUPINGS)} or attribute:KEY", param_hint="--by")
    span_filter = build_filter(**filters)
    conn = open_store(db)
    if compare is not None:
        if by is not None:
            raise click.UsageError("--by and --compare do not go together")
        run_compare(
            conn,
            load_spans,
            sides=compare,
            since_ns=since,
            span_filter=span_filter,
            as_json=as_json,
            console=make_console(),
            threshold=threshold,
            rate_threshold=rate_threshold,
            score_threshold=score_threshold,
            confidence=confidence,
            resamples=resamples,
            seed=seed,
            fail_on_regression=fail_on_regression,
        )
        return
    spans = load_spans(conn, since, span_filter)
    console = make_console()
    terminal = console.is_terminal and not as_json
    intervals = max(10, min(60, console.width - 30)) if terminal else DEFAULT_INTERVALS
    result = compute_stats(spans, by=by, since_ns=since, now_ns=time.time_ns(), intervals=intervals)
    if as_json:
        click.echo(json.dumps(result))
        return
    if not spans:
        console.print("no spans match" + (" in that window" if since is not None else ""))
        return
    render_stats(console, result)
