"""The lines `llmobs tail` prints: one per finished span, indented under its parent, and a
summary line when a trace's root ends.

    17:02:01.120 3f2a9c1e     llm       chat gpt-4o-mini   gpt-4o-mini   1.2k(1.0kc)→150 tok  $0.000117  ttft 8ms   21ms  ok
    17:02:01.131 3f2a9c1e     tool      lookup_order                                                                  6ms  ✗ TimeoutError: ...
    17:02:01.190 3f2a9c1e   agent     support-agent                                                                  71ms  ok
                 3f2a9c1e ─ trace done: 6 spans  2.1k→570 tok  $0.0031  71ms  1 error

Spans end before their parents, so when a span's line prints its parent is usually still
running and not in the store yet. Its indent then comes from a sibling already placed, else from
where the same span (service, kind, name) sat in an earlier trace of this tail session, else one
level under an unknown parent. Spans that arrive together (a fast trace in one batch, an OTLP
request) are placed exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.text import Text

from llmobs.cli.render import KIND_STYLES, TraceTotals, fmt_cost, fmt_ms, fmt_tokens, usage_text
from llmobs.core.model import MODEL_KINDS, Span

INDENT = "  "
MAX_DEPTH_SHOWN = 12
_MAX_TRACES = 10_000
_MAX_LEARNED = 10_000

SpanKey = tuple[str, str, str]  # service, kind, name


@dataclass(slots=True)
class _TraceState:
    parent_of: dict[str, str | None] = field(default_factory=dict)
    key_of: dict[str, SpanKey] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)
    # Depth given to the children of a parent not seen yet, so siblings line up.
    child_depth: dict[str, int] = field(default_factory=dict)
    printed: int = 0


class TreePlacer:
    """Decides each span's indent as spans arrive in the order they ended. Bounded memory."""

    def __init__(self) -> None:
        self._traces: OrderedDict[str, _TraceState] = OrderedDict()
        self._learned: OrderedDict[SpanKey, int] = OrderedDict()

    def place_batch(self, spans: Sequence[Span]) -> list[int]:
        """The depth of each span of a batch (0 = root). Spans in one batch see each other."""
        for span in spans:
            state = self._state(span.trace_id)
            state.parent_of[span.span_id] = span.parent_id if span.parent_id != span.span_id else None
            state.key_of[span.span_id] = (span.service, span.kind.value, span.name)
        return [self._depth(self._traces[s.trace_id], s.span_id) for s in spans]

    def mark_printed(self, trace_id: str) -> None:
        state = self._traces.get(trace_id)
        if state is not None:
            state.printed += 1

    def printed(self, trace_id: str) -> int:
        state = self._traces.get(trace_id)
        return state.printed if state is not None else 0

    def finish_trace(self, trace_id: str) -> None:
        """The root ended: remember where each of its spans sat, and forget the trace."""
        state = self._traces.pop(trace_id, None)
        if state is None:
            return
        for span_id, key in state.key_of.items():
            depth = _exact_depth(state.parent_of, span_id)
            if depth is None:
                continue
            self._learned[key] = depth
            self._learned.move_to_end(key)
        while len(self._learned) > _MAX_LEARNED:
            self._learned.popitem(last=False)

    def _state(self, trace_id: str) -> _TraceState:
        state = self._traces.get(trace_id)
        if state is None:
            state = self._traces[trace_id] = _TraceState()
            while len(self._traces) > _MAX_TRACES:
                self._traces.popitem(last=False)
        else:
            self._traces.move_to_end(trace_id)
        return state

    def _depth(self, state: _TraceState, span_id: str) -> int:
        # Walk up through spans already known; iterative so a deep or cyclic chain cannot recurse.
        chain: list[str] = []
        current: str | None = span_id
        base = 0
        seen: set[str] = set()
        while current is not None:
            known = state.depth.get(current)
            if known is not None:
                base = known
                break
            if current in seen:  # a cycle in malformed input: treat as a root
                base = 0
                break
            seen.add(current)
            chain.append(current)
            parent = state.parent_of.get(current)
            if parent is None:
                base = -1  # the chain ends at a root: it sits at depth 0
                break
            if parent not in state.parent_of:
                # The parent has not ended yet.
                guess = state.child_depth.get(parent)
                if guess is None:
                    learned = self._learned.get(state.key_of[current])
                    guess = max(1, learned) if learned is not None else 1
                    state.child_depth[parent] = guess
                base = guess - 1
                break
            current = parent
        depth = base
        for sid in reversed(chain):
            depth += 1
            state.depth[sid] = depth
        return state.depth[span_id]


def _exact_depth(parent_of: dict[str, str | None], span_id: str) -> int | None:
    """Depth by walking parents that have all been seen; None if the chain breaks or loops."""
    depth = 0
    current = parent_of.get(span_id)
    while current is not None:
        if current not in parent_of or depth > len(parent_of):
            return None
        depth += 1
        current = parent_of[current]
    return depth


@dataclass(slots=True)
class LineLayout:
    """Column widths. Names and models are cut to fit a terminal (`truncate`), never when piped;
    on narrow terminals the model column (often in the name already) and then TTFT go first."""

    name_width: int = 32
    model_width: int = 18  # 0 hides the column
    show_ttft: bool = True
    truncate: bool = False
    compact: bool = False  # seconds-only time, no trace column, narrower tokens

    # time 13, trace 9, two indent levels 4, kind 10, name gap 2, tokens 26, cost 11, duration 9, "ok" 2
    _FIXED = 86
    _FIXED_COMPACT = 86 - 4 - 9 - 6
    _TTFT = 12

    @classmethod
    def for_width(cls, width: int | None) -> LineLayout:
        if width is None:
            return cls()
        compact = width < 96
        show_ttft = width >= 112
        room = width - (cls._FIXED_COMPACT if compact else cls._FIXED) - (cls._TTFT if show_ttft else 0)
        if room >= 18 + 1 + 24:
            model = 18
        elif room >= 14 + 1 + 20:
            model = 14
        else:
            model = 0
        name = max(12, min(36, room - (model + 1 if model else 0)))
        return cls(name_width=name, model_width=model, show_ttft=show_ttft, truncate=True, compact=compact)


def _fit(text: str, width: int, truncate: bool) -> str:
    if len(text) > width and truncate:
        return text[: max(1, width - 1)] + "…"
    return text.ljust(width)


def span_line(span: Span, depth: int, layout: LineLayout) -> Text:
    """One tail line for a finished span."""
    line = Text(no_wrap=True, overflow="ellipsis")
    when = datetime.fromtimestamp(span.end_ns / 1e9)
    if layout.compact:
        line.append(when.strftime("%H:%M:%S "), style="dim")
    else:
        line.append(when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d} ", style="dim")
        line.append(span.trace_id[:8] + " ", style="dim cyan")
    indent = INDENT * min(depth, MAX_DEPTH_SHOWN)
    line.append(indent)
    line.append(f"{span.kind.value:<9} ", style=KIND_STYLES.get(span.kind.value, "white"))
    name_width = max(8, layout.name_width - len(indent))
    line.append(_fit(span.name, name_width, layout.truncate) + "  ", style="bold")
    if layout.model_width:
        line.append(_fit(span.model or "", layout.model_width, layout.truncate) + " ", style="magenta")
    tokens = f"{usage_text(span)} tok" if span.usage is not None else ""
    line.append(f"{tokens:<{19 if layout.compact else 25}} ", style="cyan")
    if span.cost is not None:
        line.append(f"{fmt_cost(span.cost.total_usd):>10} ", style="green")
    elif span.usage is not None and span.kind in MODEL_KINDS:
        line.append(f"{'$?':>10} ", style="yellow")
    else:
        line.append(" " * 11)
    if layout.show_ttft:
        ttft = f"ttft {fmt_ms(span.ttft_ms)}" if span.ttft_ms is not None else ""
        line.append(f"{ttft:>11} ", style="dim")
    line.append(f"{fmt_ms(span.duration_ms):>7}  ")
    if span.error is not None:
        line.append(f"✗ {span.error.type}: {span.error.message}", style="bold red")
    elif span.is_error:
        line.append("✗ error", style="bold red")
    else:
        line.append("ok", style="green")
    if span.is_error:
        line.stylize("red", 0, len(line))
    return line


def summary_line(trace_id: str, totals: TraceTotals, *, compact: bool = False) -> Text:
    """The line printed when a trace's root ends."""
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(("" if compact else " " * 13) + trace_id[:8] + " ", style="dim cyan")
    line.append("─ trace done: ", style="bold")
    line.append(
        f"{totals.spans} spans  {fmt_tokens(totals.input_tokens)}→{fmt_tokens(totals.output_tokens)} tok  "
        f"{fmt_cost(totals.cost_usd, unpriced=bool(totals.unpriced))}  {fmt_ms(totals.duration_ms)}"
    )
    if totals.errors:
        line.append(f"  {totals.errors} error{'s' if totals.errors != 1 else ''}", style="bold red")
    else:
        line.append("  ok", style="green")
    return line
