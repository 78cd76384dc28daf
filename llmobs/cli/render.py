"""Terminal rendering of spans and traces: numbers a reader of LLM traces cares about.

Tokens, dollars and milliseconds are formatted the same way everywhere (`fmt_*`), and a trace
renders as a `rich` tree whose lines show kind, name, model, tokens, cost, TTFT, duration and
errors. Rich drops colour by itself when the output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from rich.tree import Tree

from llmobs.core.model import MODEL_KINDS, Span
from llmobs.core.store import TraceSummary

KIND_STYLES = {
    "llm": "bold magenta",
    "embedding": "magenta",
    "tool": "yellow",
    "retriever": "cyan",
    "reranker": "cyan",
    "agent": "bold blue",
    "chain": "blue",
    "workflow": "bold white",
    "handoff": "green",
    "guardrail": "green",
    "evaluator": "white",
    "custom": "white",
}


def fmt_tokens(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 10_000_000:
        return f"{n / 1_000_000:.0f}M"
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def fmt_cost(usd: float | None, *, unpriced: bool = False) -> str:
    """Dollars with enough digits for sub-cent calls; `?` when a price is unknown (never $0)."""
    if usd is None:
        return "$?" if unpriced else "-"
    if usd == 0:
        return "$0" + ("+?" if unpriced else "")
    if usd < 0.01:
        text = f"${usd:.6f}".rstrip("0")
    elif usd < 1:
        text = f"${usd:.4f}"
    else:
        text = f"${usd:,.2f}"
    return text + ("+?" if unpriced else "")


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f}s"
    return f"{ms / 60_000:.1f}m"


def usage_text(span: Span) -> str:
    """`in→out` tokens with cached and reasoning parts when present, e.g. `1.2k(800c)→350(120r)`."""
    usage = span.usage
    if usage is None:
        return ""
    text = fmt_tokens(usage.input_tokens)
    if usage.cache_read_tokens:
        text += f"({fmt_tokens(usage.cache_read_tokens)}c)"
    text += "→" + fmt_tokens(usage.output_tokens)
    if usage.reasoning_tokens:
        text += f"({fmt_tokens(usage.reasoning_tokens)}r)"
    return text


def span_label(span: Span) -> Text:
    """One tree line for a span."""
    line = Text()
    line.append(f"{span.kind.value:<9} ", style=KIND_STYLES.get(span.kind.value, "white"))
    line.append(span.name, style="bold")
    if span.model:
        line.append(f"  {span.model}", style="magenta")
    if span.usage is not None:
        line.append(f"  {usage_text(span)} tok", style="cyan")
    if span.cost is not None:
        line.append(f"  {fmt_cost(span.cost.total_usd)}", style="green")
    elif span.usage is not None and span.kind in MODEL_KINDS:
        line.append("  $? (unpriced)", style="yellow")
    if span.ttft_ms is not None:
        line.append(f"  ttft {fmt_ms(span.ttft_ms)}", style="dim")
    line.append(f"  {fmt_ms(span.duration_ms)}", style="dim")
    if span.error is not None:
        line.append(f"  ✗ {span.error.type}: {span.error.message}", style="bold red")
    return line


def children_by_parent(spans: Sequence[Span]) -> tuple[list[Span], dict[str, list[Span]]]:
    """Roots (no parent, or a parent not in this set) and each span's children, in start order."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for s in sorted(spans, key=lambda x: (x.start_ns, x.end_ns)):
        if s.parent_id is not None and s.parent_id in ids and s.parent_id != s.span_id:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    return roots, children


@dataclass(slots=True)
class TraceTotals:
    """What a trace adds up to. Tokens and cost count only the application's model calls."""

    spans: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None  # None when no model call in it could be priced
    unpriced: int
    errors: int
    duration_ms: float


def trace_totals(spans: Sequence[Span]) -> TraceTotals:
    model_spans = [s for s in spans if s.kind in MODEL_KINDS]
    costs = [s.cost.total_usd for s in model_spans if s.cost is not None]
    start = min((s.start_ns for s in spans), default=0)
    end = max((s.end_ns for s in spans), default=0)
    return TraceTotals(
        spans=len(spans),
        input_tokens=sum((s.usage.input_tokens or 0) for s in model_spans if s.usage),
        output_tokens=sum((s.usage.output_tokens or 0) for s in model_spans if s.usage),
        cost_usd=sum(costs) if costs else None,
        unpriced=sum(1 for s in model_spans if s.cost is None and s.usage is not None),
        errors=sum(1 for s in spans if s.error is not None),
        duration_ms=(end - start) / 1e6,
    )


def trace_header(spans: Sequence[Span]) -> Text:
    """`trace <id>  N spans  in→out tok  $cost  duration  [k error(s)]`: a trace's heading line."""
    totals = trace_totals(spans)
    head = Text()
    head.append(f"trace {spans[0].trace_id}" if spans else "trace", style="bold")
    head.append(
        f"  {totals.spans} spans  {fmt_tokens(totals.input_tokens)}→{fmt_tokens(totals.output_tokens)} tok  "
        f"{fmt_cost(totals.cost_usd, unpriced=bool(totals.unpriced))}  {fmt_ms(totals.duration_ms)}",
        style="dim",
    )
    if totals.errors:
        head.append(f"  {totals.errors} error(s)", style="bold red")
    return head


def trace_tree(spans: Sequence[Span]) -> Tree:
    """The trace as a tree, headed by its id and totals."""
    tree = Tree(trace_header(spans))
    roots, children = children_by_parent(spans)

    def add(node: Tree, span: Span) -> None:
        branch = node.add(span_label(span))
        for child in children.get(span.span_id, ()):
            add(branch, child)

    for root in roots:
        add(tree, root)
    return tree


def summary_row(t: TraceSummary) -> list[str]:
    """The cells of one `llmobs traces` row."""
    started = datetime.fromtimestamp(t.start_ns / 1e9)
    same_day = started.date() == datetime.now().date()
    return [
        t.trace_id[:8],
        t.root_name,
        t.service,
        started.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M"),
        fmt_ms(t.duration_ms),
        str(t.spans),
        f"{fmt_tokens(t.input_tokens)}→{fmt_tokens(t.output_tokens)}",
        fmt_cost(t.cost_usd, unpriced=bool(t.unpriced)),
        "error" if t.errors else "ok",
    ]
