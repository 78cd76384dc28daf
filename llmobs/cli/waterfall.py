"""`llmobs show`'s view of one trace: the span tree beside a waterfall timeline, then details.

    trace 3f2a9c1e…  6 spans  2.1k→570 tok  $0.003031  59ms  1 error
    agent     support-agent                     │██████████████████████████████████████│ 59ms
    ├─ llm    chat gpt-4o-mini  1.2k(1.0kc)→150 │░░░████████                           │ 20ms
    ├─ tool   lookup_order                      │           ██                         │ 5ms  ✗
    ...

Bars are scaled to the trace's duration. On a streamed model call the part before the first
token (TTFT) is drawn light (`░`), the rest solid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.text import Text

from llmobs.cli.render import (
    KIND_STYLES,
    children_by_parent,
    fmt_cost,
    fmt_ms,
    trace_header,
    usage_text,
)
from llmobs.core.model import MODEL_KINDS, Span

CONTENT_CHARS = 2000
TTFT_CHAR = "░"
BAR_CHAR = "█"


def tree_order(spans: Sequence[Span]) -> Iterator[tuple[str, Span]]:
    """(tree prefix, span) in depth-first start order, with `├─`/`└─` guides."""
    roots, children = children_by_parent(spans)

    def walk(span: Span, lead: str, prefix: str) -> Iterator[tuple[str, Span]]:
        yield prefix, span
        kids = children.get(span.span_id, [])
        for i, child in enumerate(kids):
            last = i == len(kids) - 1
            yield from walk(child, lead + ("   " if last else "│  "), lead + ("└─ " if last else "├─ "))

    for root in roots:
        yield from walk(root, "", "")


def waterfall_bar(span: Span, t0: int, total_ns: int, width: int) -> Text:
    """The span's bar in a `width`-column timeline starting at `t0` and lasting `total_ns`."""
    scale = width / max(1, total_ns)
    start = min(width - 1, max(0, int((span.start_ns - t0) * scale)))
    end = min(width, max(start + 1, math.ceil((span.end_ns - t0) * scale)))
    style = "red" if span.is_error else KIND_STYLES.get(span.kind.value, "white").replace("bold ", "")
    bar = Text(" " * start)
    if span.ttft_ms is not None and span.ttft_ms > 0:
        first = min(end, max(start, int((span.start_ns + span.ttft_ms * 1e6 - t0) * scale)))
        bar.append(TTFT_CHAR * (first - start), style=style)
        bar.append(BAR_CHAR * (end - first), style=style)
    else:
        bar.append(BAR_CHAR * (end - start), style=style)
    bar.append(" " * (width - end))
    return bar


def _label(prefix: str, span: Span) -> Text:
    label = Text(prefix, style="dim")
    label.append(f"{span.kind.value:<9} ", style=KIND_STYLES.get(span.kind.value, "white"))
    label.append(span.name, style="bold red" if span.is_error else "bold")
    if span.usage is not None:
        label.append(f"  {usage_text(span)} tok", style="cyan")
    if span.cost is not None:
        label.append(f"  {fmt_cost(span.cost.total_usd)}", style="green")
    elif span.usage is not None and span.kind in MODEL_KINDS:
        label.append("  $?", style="yellow")
    return label


def render_waterfall(console: Console, spans: Sequence[Span]) -> None:
    """The header line, then one row per span: tree label │ bar │ duration (ttft) status."""
    head = trace_header(spans)
    soft = not console.is_terminal  # piped: never crop or wrap
    console.print(head, soft_wrap=soft)
    rows = [(_label(prefix, span), span) for prefix, span in tree_order(spans)]
    width = console.width
    label_width = min(max(len(label) for label, _ in rows), max(24, int(width * 0.5)))
    bar_width = max(10, min(60, width - label_width - 24))
    t0 = min(s.start_ns for s in spans)
    total_ns = max(s.end_ns for s in spans) - t0
    for label, span in rows:
        if len(label) > label_width:
            label.truncate(label_width - 1)
            label.append("…")
        line = Text()
        line.append_text(label)
        line.append(" " * (label_width - len(label)) + " │")
        line.append_text(waterfall_bar(span, t0, total_ns, bar_width))
        line.append("│ ")
        line.append(fmt_ms(span.duration_ms))
        if span.ttft_ms is not None:
            line.append(f" (ttft {fmt_ms(span.ttft_ms)})", style="dim")
        if span.is_error:
            line.append("  ✗", style="bold red")
        if soft:
            console.print(line, soft_wrap=True)
        else:
            console.print(line, no_wrap=True, overflow="ellipsis", crop=True)


def _content(value: Any, limit: int = CONTENT_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def render_details(console: Console, spans: Sequence[Span], *, content: bool = True) -> None:
    """Per span: ids, timing, model, usage, cost, error, tool/agent, attributes, captured content."""
    t0 = min(s.start_ns for s in spans)
    for _prefix, span in tree_order(spans):
        console.print()
        head = Text("── ", style="dim")
        head.append(span.name, style="bold red" if span.is_error else "bold")
        head.append(f"  {span.kind.value} · {span.framework} · {span.service}", style="dim")
        console.print(head)
        fields: list[tuple[str, str]] = [
            ("span", f"{span.span_id}  parent {span.parent_id or '-'}"),
            (
                "time",
                f"+{fmt_ms((span.start_ns - t0) / 1e6)}  duration {fmt_ms(span.duration_ms)}"
                + (f"  ttft {fmt_ms(span.ttft_ms)}" if span.ttft_ms is not None else "")
                + f"  {span.status.value}",
            ),
        ]
        if span.model or span.provider:
            model = span.model or "-"
            if span.response_model and span.response_model != span.model:
                model += f" → {span.response_model}"
            fields.append(("model", model + (f"  ({span.provider})" if span.provider else "")))
        if span.usage is not None:
            fields.append(
                ("usage", ", ".join(f"{k.replace('_tokens', '')} {v:,}" for k, v in span.usage.to_dict().items()))
            )
        if span.cost is not None:
            c = span.cost
            fields.append(
                (
                    "cost",
                    f"{fmt_cost(c.total_usd)}  (input {fmt_cost(c.input_usd)}, output {fmt_cost(c.output_usd)})  {c.source}",
                )
            )
        elif span.usage is not None and span.kind in MODEL_KINDS:
            fields.append(("cost", "unknown: no price for this model"))
        if span.error is not None:
            fields.append(("error", f"{span.error.type}: {span.error.message}"))
        if span.tool:
            fields.append(("tool", json.dumps(span.tool, ensure_ascii=False, default=str)))
        if span.agent:
            fields.append(("agent", json.dumps(span.agent, ensure_ascii=False, default=str)))
        if span.attributes:
            compact = json.dumps(span.attributes, ensure_ascii=False, default=str, separators=(", ", ": "))
            fields.append(("attributes", compact if len(compact) <= 600 else compact[:600] + "…"))
        for evaluation in span.evaluations or ():
            score = "-" if evaluation.score is None else f"{evaluation.score:.2f}"
            verdict = " ".join(part for part in (evaluation.name, score, evaluation.label or "") if part)
            fields.append(("eval", verdict + (f"  {evaluation.explanation}" if evaluation.explanation else "")))
        for name, value in fields:
            line = Text(f"   {name:<10} ", style="dim")
            line.append(value, style="bold red" if name == "error" else "")
            console.print(line, soft_wrap=not console.is_terminal)
        if not content:
            continue
        captured: tuple[tuple[str, Any], ...] = (
            ("input", span.input),
            ("output", span.output),
            ("documents", span.documents),
        )
        for part, data in captured:
            if data is None:
                continue
            console.print(Text(f"   {part}", style="dim"))
            console.print(Text("\n".join("      " + ln for ln in _content(data).splitlines())))
