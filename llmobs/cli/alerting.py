"""Alert rules on the command line: the `--alert` options of `tail` and `watch`, and alert lines.

The rule language and the engine live in `llmobs.core.alerts`; this module turns `--alert` values
into an `AlertMonitor` (the engine plus what the CLI needs: which rule a fired alert came from,
how many fired) and alerts into the lines both commands print:

    17:02:05 ⚠ ALERT error_rate>5%/5m: 12.5% over the last 5m (threshold 5%)  traces 3f2a9c1e 8b1d0e2f
    17:02:06 ⚠ ALERT cost>0.05: $0.0712 on llm "chat gpt-4o" (threshold $0.05)  trace 3f2a9c1e
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.text import Text

from llmobs.cli.render import fmt_cost, fmt_ms, fmt_tokens
from llmobs.core.alerts import Alert, AlertEngine, Rule, RuleError, parse_rule
from llmobs.core.model import Span

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status of `tail` / `watch --fail-on-alert` when an alert fired (a usage error is 2).
ALERT_EXIT_CODE = 1
ALERT_MARK = "⚠"

RULES_HELP = (
    "Alert rule (repeatable). Span rules: cost>0.05, tokens>20000, duration>5s, ttft>2s, error, "
    "eval:NAME<0.5. Windowed rules (METRIC OP VALUE/WINDOW): error_rate>5%/5m, errors>10/5m, "
    "requests>1000/1m, cost>1.00/1m, tokens>1e6/1h, p95(duration)>3s/10m, avg(ttft)>1s/5m, "
    "eval:faithfulness<0.7/1h. Quote rules in the shell: --alert 'cost>0.05'."
)
FAIL_HELP = (
    "Exit with status 1 once an alert fired: after the replay with --no-follow, else at the first alert "
    "(for CI smoke runs)."
)


def alert_rules(texts: Sequence[str], param_hint: str = "--alert") -> list[Rule]:
    """Parse `--alert` values; a bad rule is a usage error that says what is wrong."""
    rules = []
    for text in texts:
        try:
            rules.append(parse_rule(text))
        except RuleError as exc:
            raise click.BadParameter(str(exc), param_hint=param_hint) from exc
    return rules


def alert_options(func: F) -> F:
    """Add `--alert RULE` (repeatable) and `--fail-on-alert` to a command."""
    func = click.option("--fail-on-alert", is_flag=True, help=FAIL_HELP)(func)
    return click.option("--alert", "alerts", multiple=True, metavar="RULE", help=RULES_HELP)(func)


class AlertMonitor:
    """An `AlertEngine` fed by a CLI command, counting what fired.

    Args:
        rules: parsed rules.
        cooldown_s: after a rule fires, seconds during which it does not fire again.
    """

    def __init__(self, rules: Sequence[Rule], cooldown_s: float = 0.0) -> None:
        self.engine = AlertEngine(list(rules), cooldown=cooldown_s)
        self.rules = {rule.text: rule for rule in self.engine.rules}
        self.fired = 0

    def observe(self, span: Span) -> list[Alert]:
        """Feed one finished span; the alerts it raised. `matched` then holds its span rules."""
        alerts = self.engine.observe(span)
        self.fired += len(alerts)
        return alerts

    @property
    def matched(self) -> list[Rule]:
        """The span rules the last observed span matched (cooldown or not): what to highlight."""
        return self.engine.last_matches

    def tick(self, now_ns: int) -> list[Alert]:
        """Let time pass on a quiet stream: windows expire, re-arm, and may fire."""
        alerts = self.engine.tick(now_ns)
        self.fired += len(alerts)
        return alerts

    def rule(self, alert: Alert) -> Rule:
        return self.rules[alert.rule]


# -- how alerts read -------------------------------------------------------------------------------


def format_value(rule: Rule, value: float | None) -> str:
    """A rule's value or threshold in the metric's own unit: 12.5%, $0.07, 3.20s, 1.2k, 0.42."""
    if value is None:
        return "-"
    metric = rule.metric
    if metric in ("duration", "ttft"):
        return fmt_ms(value)
    if metric == "cost":
        return fmt_cost(value)
    if metric in ("tokens", "input_tokens", "output_tokens"):
        return fmt_tokens(round(value))
    if metric == "error_rate":
        return f"{value * 100:.3g}%"
    if metric.startswith("eval:"):
        return f"{value:.2f}"
    return f"{value:g}"


def alert_text(alert: Alert, rule: Rule) -> str:
    """One plain line describing a fired alert (also the `text` of the webhook JSON)."""
    if alert.window is not None:
        what = f"{format_value(rule, alert.value)} over the last {alert.window}"
        traces = "traces " + " ".join(t[:8] for t in alert.trace_ids) if alert.trace_ids else "no traces"
    else:
        what = "failed" if rule.metric == "error" else format_value(rule, alert.value)
        what += f" on {alert.span_name!r}" if alert.span_name is not None else ""
        traces = "trace " + " ".join(t[:8] for t in alert.trace_ids)
    threshold = f" (threshold {format_value(rule, alert.threshold)})" if alert.threshold is not None else ""
    return f"ALERT {alert.rule}: {what}{threshold}  {traces}"


def alert_line(alert: Alert, rule: Rule) -> Text:
    """The styled line `tail` and `watch` print for a fired alert, its time first."""
    when = datetime.fromtimestamp(alert.time_ns / 1e9).strftime("%H:%M:%S")
    line = Text(no_wrap=True, overflow="ellipsis")
    line.append(f"{when} ", style="dim")
    line.append(f"{ALERT_MARK} {alert_text(alert, rule)}", style="bold yellow")
    return line


def highlight(line: Text, rules: Sequence[Rule]) -> None:
    """Mark a span's tail line with the span rules it matched."""
    if rules:
        line.append(f"  {ALERT_MARK} " + ", ".join(rule.text for rule in rules), style="bold yellow reverse")
