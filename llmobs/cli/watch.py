"""`llmobs watch`: evaluate alert rules over the store, unattended, and act when one fires.

It follows the store as `tail` does (and, with `--otlp`, receives spans into it first), feeds
every finished span to an `AlertEngine`, prints one line per alert (or its JSON with `--json`),
and for each alert runs `--exec` commands and posts to `--webhook` URLs. Actions run one after
the other on the watcher's thread, each bounded by `--action-timeout`; spans keep landing in the
store meanwhile, so a slow webhook delays alerts, never loses spans.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.console import Console

from llmobs.cli.alerting import ALERT_EXIT_CODE, AlertMonitor, alert_line, alert_options, alert_rules, alert_text
from llmobs.cli.filters import SpanFilter, build_filter, filter_options
from llmobs.cli.notify import Delivery, alert_payload, post_webhook, run_command
from llmobs.cli.options import SINCE, check_receiver_options, db_option, parse_duration_s, receiver_options
from llmobs.cli.tail import follow, last_seq, open_follow_store
from llmobs.core.alerts import Alert
from llmobs.core.model import Span

DEFAULT_COOLDOWN = "5m"
DEFAULT_ACTION_TIMEOUT = "10s"


@dataclass(slots=True)
class Actions:
    """What to do with each alert besides printing it."""

    commands: Sequence[str] = ()
    webhooks: Sequence[str] = ()
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    failures: int = 0

    def run(self, alert: Alert, text: str) -> None:
        payload = alert_payload(alert, text)
        for command in self.commands:
            self._report(run_command(command, payload, timeout_s=self.timeout_s))
        for url in self.webhooks:
            self._report(post_webhook(url, payload, timeout_s=self.timeout_s, headers=self.headers))

    def _report(self, delivery: Delivery) -> None:
        if not delivery.ok:
            self.failures += 1
            click.echo(f"llmobs watch: {delivery.detail}", err=True)


class AlertRunner:
    """Reads stored rows for `follow`: filters spans, feeds the monitor, prints alerts, runs actions."""

    def __init__(
        self,
        monitor: AlertMonitor,
        span_filter: SpanFilter,
        actions: Actions,
        *,
        as_json: bool,
        live_clock: bool,
        stop_at_first: bool = False,
        console: Console | None = None,
    ) -> None:
        self.monitor = monitor
        self.filter = span_filter
        self.actions = actions
        self.as_json = as_json
        self.live_clock = live_clock
        self.stop_at_first = stop_at_first
        self.console = console if console is not None else Console(highlight=False)
        self.spans = 0

    def handle(self, rows: list[tuple[int, str]]) -> None:
        for _seq, data in rows:
            try:
                span = Span.from_dict(json.loads(data))
            except (ValueError, KeyError, TypeError):
                continue  # a row this version cannot read: skip it, keep watching
            if not self.filter.matches(span):
                continue
            self.spans += 1
            for alert in self.monitor.observe(span):
                self.fire(alert)
            if self.stop_at_first and self.monitor.fired:
                return

    def should_stop(self) -> bool:
        return self.stop_at_first and self.monitor.fired > 0

    def on_idle(self) -> None:
        # Only while following live: a replay's windows run on the spans' own times.
        if self.live_clock:
            for alert in self.monitor.tick(time.time_ns()):
                self.fire(alert)

    def fire(self, alert: Alert) -> None:
        rule = self.monitor.rule(alert)
        text = alert_text(alert, rule)
        if self.as_json:
            click.echo(json.dumps(alert_payload(alert, text), ensure_ascii=False))
        elif self.console.is_terminal:
            self.console.print(alert_line(alert, rule), no_wrap=True, overflow="ellipsis", crop=True, soft_wrap=False)
        else:
            click.echo(alert_line(alert, rule).plain)  # piped or logged: whole lines, no colour
        sys.stdout.flush()
        self.actions.run(alert, text)


def _duration(value: str, option: str) -> float:
    try:
        return parse_duration_s(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


def _headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r}: write 'Name: value'", param_hint="--webhook-header")
        headers[name.strip()] = content.strip()
    return headers


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Under a service manager, SIGTERM stops the watcher like Ctrl-C: receivers close cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@db_option
@alert_options
@click.option(
    "--exec",
    "commands",
    multiple=True,
    metavar="CMD",
    help="Run CMD (with the shell) for each alert: the alert JSON on stdin and in $LLMOBS_ALERT; also "
    "$LLMOBS_ALERT_RULE, _WINDOW, _VALUE, _TRACE_IDS, _TEXT. Repeatable.",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="URL",
    help="POST the alert JSON (rule, window, value, threshold, time, trace_ids, text) to URL. Repeatable.",
)
@click.option(
    "--webhook-header",
    "webhook_headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Add a header to webhook requests, e.g. 'Authorization: Bearer $TOKEN'. Repeatable.",
)
@click.option(
    "--cooldown",
    default=DEFAULT_COOLDOWN,
    show_default=True,
    help="After a rule fires, how long it stays quiet: 30s, 5m, 1h (0s: fire every time).",
)
@click.option(
    "--action-timeout",
    default=DEFAULT_ACTION_TIMEOUT,
    show_default=True,
    help="Longest a command or webhook may take; past it the command is killed, the request dropped.",
)
@filter_options
@click.option("--since", type=SINCE, default=None, help="First replay spans that ended since: 10m, 2h or an ISO time.")
@click.option("--no-follow", is_flag=True, help="Judge what is stored (or --since), then exit: for CI smoke runs.")
@click.option("--json", "as_json", is_flag=True, help="Print each alert as one JSON object per line.")
@click.option("--otlp", is_flag=True, help="Also receive OTLP/HTTP spans into the store (as `tail --otlp`).")
@receiver_options
def watch(
    db: Path | None,
    alerts: tuple[str, ...],
    fail_on_alert: bool,
    commands: tuple[str, ...],
    webhooks: tuple[str, ...],
    webhook_headers: tuple[str, ...],
    cooldown: str,
    action_timeout: str,
    since: int | None,
    no_follow: bool,
    as_json: bool,
    otlp: bool,
    host: str,
    port: int,
    grpc_on: bool,
    grpc_port: int,
    token: str | None,
    allow_remote: bool,
    **filters: Any,
) -> None:
    """Watch the store unattended and act when an alert rule fires.

    Every span that lands in the store (from apps using llmobs, or over OTLP with --otlp) is
    judged by the --alert rules. Each alert prints a line (`--json`: its JSON), runs the --exec
    commands and is POSTed to the --webhook URLs. A rule that fired stays quiet for --cooldown;
    a windowed rule fires again only after its condition was false in between.

    Rules: span rules fire on each matching span (cost>0.05, duration>5s, ttft>2s, error,
    eval:relevance<0.5); windowed rules on an aggregate over a sliding window of span end
    times (error_rate>5%/5m, cost>1.00/1m, p95(duration)>3s/10m, eval:faithfulness<0.7/1h).

    \b
    Examples:
      llmobs watch --alert 'error_rate>5%/5m' --webhook https://hooks.slack.com/services/T/B/X
      llmobs watch --alert 'cost>1.00/1h' --exec 'notify-send "llmobs" "$LLMOBS_ALERT_TEXT"'
      llmobs watch --otlp --alert 'p95(duration)>3s/10m' --alert error --cooldown 15m --json
      llmobs watch --service support-bot --alert 'eval:relevance<0.6/1h' --webhook http://alerts.internal/hook
      llmobs watch --no-follow --since 10m --alert 'error_rate>1%/10m' --fail-on-alert   # CI smoke run

    With --fail-on-alert the exit status is 1 once an alert fired (with --no-follow after judging
    everything, else at the first alert). A failing webhook or command is reported on stderr and
    never stops the watcher.
    """
    if not alerts:
        raise click.UsageError("give at least one --alert RULE, e.g. --alert 'error_rate>5%/5m'")
    rules = alert_rules(alerts)
    for url in webhooks:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--webhook")
    actions = Actions(
        commands=commands,
        webhooks=webhooks,
        headers=_headers(webhook_headers),
        timeout_s=_duration(action_timeout, "--action-timeout"),
    )
    monitor = AlertMonitor(rules, cooldown_s=_duration(cooldown, "--cooldown"))
    span_filter = build_filter(**filters)
    check_receiver_options(otlp, host, grpc_on, allow_remote, token)
    path, conn = open_follow_store(db)
    runner = AlertRunner(
        monitor,
        span_filter,
        actions,
        as_json=as_json,
        live_clock=not no_follow,
        stop_at_first=fail_on_alert and not no_follow,
    )
    receivers = None
    try:
        if otlp:
            from llmobs.cli.receiver import start_receivers

            receivers = start_receivers(
                path, host=host, port=port, grpc_port=grpc_port if grpc_on else None, token=token or None
            )
        # Fixed before saying "watching": every span stored after that line is judged.
        start_seq = last_seq(conn)
        where = f" + OTLP on {', '.join(receivers.addresses)}" if receivers is not None else ""
        mode = "judging" if no_follow else "watching"
        click.echo(f"llmobs watch: {mode} {path}{where} for {len(rules)} rule(s)", err=True)
        with _stop_on_sigterm():
            follow(
                conn,
                runner,
                since_ns=since,
                keep_following=not no_follow,
                should_stop=runner.should_stop,
                start_seq=start_seq,
            )
    except KeyboardInterrupt:
        pass
    finally:
        if receivers is not None:
            receivers.stop()
        conn.close()
    failed = f", {actions.failures} action(s) failed" if actions.failures else ""
    click.echo(f"llmobs watch: {runner.spans} spans judged, {monitor.fired} alert(s){failed}", err=True)
    if fail_on_alert and monitor.fired:
        sys.exit(ALERT_EXIT_CODE)
