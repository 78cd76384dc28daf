"""`llmobs tail`: follow the local store and print each finished span as it lands.

Any process writing the store (an app with llmobs, `llmobs demo`, the `--otlp` receiver) shows
up: the store's `seq` only grows, so following it is asking for rows after the last one seen,
a few times a second. Lines go to standard output and are flushed as they are written, so
`llmobs tail | grep` and `llmobs tail --json | jq` work live.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import click
from rich.console import Console
from rich.text import Text

from llmobs.cli.alerting import ALERT_EXIT_CODE, AlertMonitor, alert_line, alert_options, alert_rules, highlight
from llmobs.cli.filters import SpanFilter, build_filter, filter_options
from llmobs.cli.options import SINCE, check_receiver_options, db_option, receiver_options
from llmobs.cli.render import fmt_cost, fmt_ms, fmt_tokens, trace_totals
from llmobs.cli.tail_lines import LineLayout, TreePlacer, span_line, summary_line
from llmobs.core import store
from llmobs.core.alerts import Alert
from llmobs.core.config import default_db_path
from llmobs.core.model import MODEL_KINDS, Span

POLL_INTERVAL_S = 0.05
_BATCH_ROWS = 2000


def open_follow_store(db: Path | None) -> tuple[Path, sqlite3.Connection]:
    """The store to follow, created when missing (tail may start before any app)."""
    path = Path(db).expanduser() if db is not None else default_db_path()
    try:
        if not path.exists():
            store.connect(path).close()
        return path, store.connect(path, readonly=True)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def last_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM spans").fetchone()[0])


def rows_after(
    conn: sqlite3.Connection, after_seq: int, *, since_ns: int | None = None, limit: int = _BATCH_ROWS
) -> list[tuple[int, str]]:
    """Stored (seq, span JSON) after `after_seq`, oldest first."""
    params: tuple[int, ...]
    if since_ns is None:
        sql, params = "SELECT seq, data FROM spans WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
    else:
        sql = "SELECT seq, data FROM spans WHERE seq > ? AND end_ns >= ? ORDER BY seq LIMIT ?"
        params = (after_seq, since_ns, limit)
    return [(int(seq), str(data)) for seq, data in conn.execute(sql, params)]


@dataclass(slots=True)
class TailStats:
    """What the session printed, for the one-line summary at exit."""

    spans: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    traces: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def add(self, span: Span) -> None:
        self.spans += 1
        if len(self.traces) < 1_000_000:
            self.traces.add(span.trace_id)
        if span.is_error:
            self.errors += 1
        if span.kind in MODEL_KINDS:
            if span.usage is not None:
                self.input_tokens += span.usage.input_tokens or 0
                self.output_tokens += span.usage.output_tokens or 0
            if span.cost is not None:
                self.cost_usd += span.cost.total_usd
            elif span.usage is not None:
                self.unpriced += 1

    def line(self) -> str:
        elapsed = fmt_ms((time.monotonic() - self.started) * 1000)
        return (
            f"llmobs tail: {self.spans} spans in {len(self.traces)} traces, {self.errors} errors, "
            f"{fmt_tokens(self.input_tokens)}→{fmt_tokens(self.output_tokens)} tok, "
            f"{fmt_cost(self.cost_usd if self.spans else None, unpriced=bool(self.unpriced))} in {elapsed}"
        )


class TailPrinter:
    """Turns batches of stored rows into output lines (text or JSON) and writes them."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        span_filter: SpanFilter,
        *,
        as_json: bool,
        out: TextIO | None = None,
        console: Console | None = None,
        alerts: AlertMonitor | None = None,
    ) -> None:
        self.conn = conn
        self.filter = span_filter
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout
        self.console = console
        self.is_tty = console is not None and console.is_terminal
        self.layout = LineLayout.for_width(console.width if self.is_tty and console is not None else None)
        self.placer = TreePlacer()
        self.stats = TailStats()
        self.on_line: Callable[[Span], None] | None = None  # for the benchmark
        #: `--alert` rules: matching spans are highlighted, fired alerts get a line of their own
        #: (on stderr with --json, so stdout stays span JSON).
        self.alerts = alerts

    def handle(self, rows: list[tuple[int, str]]) -> None:
        spans: list[tuple[Span, str]] = []
        for _seq, data in rows:
            try:
                spans.append((Span.from_dict(json.loads(data)), data))
            except (ValueError, KeyError, TypeError):
                continue  # a row this version cannot read: skip it, keep following
        if self.as_json:
            self._handle_json(spans)
        else:
            self._handle_text([s for s, _ in spans])

    def _handle_json(self, spans: list[tuple[Span, str]]) -> None:
        chunks = []
        for span, data in spans:
            if self.filter.matches(span):
                chunks.append(data + "\n")
                self.stats.add(span)
                if self.on_line is not None:
                    self.on_line(span)
                if self.alerts is not None:
                    fired = self.alerts.observe(span)
                    if fired:
                        self.out.write("".join(chunks))
                        chunks = []
                        self._write_alerts_stderr(fired)
        if chunks:
            self.out.write("".join(chunks))
            self.out.flush()

    def _write_alerts_stderr(self, fired: list[Alert]) -> None:
        assert self.alerts is not None
        self.out.flush()
        for alert in fired:
            click.echo(alert_line(alert, self.alerts.rule(alert)).plain, err=True)

    def on_idle(self) -> None:
        """No new rows: let alert windows see time pass (they may re-arm, or fire)."""
        if self.alerts is None:
            return
        fired = self.alerts.tick(time.time_ns())
        if not fired:
            return
        if self.as_json:
            self._write_alerts_stderr(fired)
        else:
            self._write([(alert_line(alert, self.alerts.rule(alert)), None) for alert in fired])

    def _handle_text(self, spans: list[Span]) -> None:
        depths = self.placer.place_batch(spans)
        lines: list[tuple[Text, Span | None]] = []
        for span, depth in zip(spans, depths, strict=True):
            if self.filter.matches(span):
                line = span_line(span, depth, self.layout)
                fired = self.alerts.observe(span) if self.alerts is not None else []
                if self.alerts is not None:
                    highlight(line, self.alerts.matched)
                lines.append((line, span))
                if self.alerts is not None:
                    lines.extend((alert_line(a, self.alerts.rule(a)), None) for a in fired if a.window is not None)
                self.placer.mark_printed(span.trace_id)
                self.stats.add(span)
                if self.on_line is not None:
                    self.on_line(span)
            if span.parent_id is None:
                # The root ended. Sum the whole trace from the store: spans the filters hid count.
                if self.placer.printed(span.trace_id):
                    totals = trace_totals(store.trace_spans(self.conn, span.trace_id))
                    lines.append((summary_line(span.trace_id, totals, compact=self.layout.compact), None))
                self.placer.finish_trace(span.trace_id)
        self._write(lines)

    def _write(self, lines: list[tuple[Text, Span | None]]) -> None:
        if not lines:
            return
        if self.is_tty and self.console is not None:
            width = self.console.width
            for line, span in lines:
                self.console.print(line, no_wrap=True, overflow="ellipsis", crop=True, soft_wrap=False)
                if span is not None and span.error is not None and len(line) > width:
                    # The message did not fit: it matters more than the columns, so show it whole.
                    self.console.print(
                        Text(f"{'':22}↳ {span.error.type}: {span.error.message}", style="red"), overflow="fold"
                    )
        else:
            self.out.write("".join(line.plain.rstrip() + "\n" for line, _span in lines))
            self.out.flush()


class RowHandler(Protocol):
    """What `follow` feeds: `TailPrinter`, or `watch`'s alert runner."""

    def handle(self, rows: list[tuple[int, str]]) -> None: ...

    def on_idle(self) -> None: ...


def follow(
    conn: sqlite3.Connection,
    printer: RowHandler,
    *,
    since_ns: int | None,
    keep_following: bool,
    poll_interval: float = POLL_INTERVAL_S,
    should_stop: Callable[[], bool] = lambda: False,
    start_seq: int | None = None,
) -> None:
    """Replay (from `since_ns`, or everything when not following), then poll for new rows.

    Following without `since_ns` starts after `start_seq` (default: the store's last row now).
    """
    if since_ns is None and keep_following:
        after = last_seq(conn) if start_seq is None else start_seq
    else:
        after = 0
        while True:
            rows = rows_after(conn, after, since_ns=since_ns)
            if not rows:
                break
            printer.handle(rows)
            after = rows[-1][0]
    while keep_following and not should_stop():
        rows = rows_after(conn, after)
        if rows:
            printer.handle(rows)
            after = rows[-1][0]
            if len(rows) == _BATCH_ROWS:
                continue  # more waiting: no sleep
        else:
            printer.on_idle()
        time.sleep(poll_interval)


@click.command()
@db_option
@filter_options
@click.option("--since", type=SINCE, default=None, help="First replay spans that ended since: 10m, 2h or an ISO time.")
@click.option("--no-follow", is_flag=True, help="Print what is stored (or --since) and exit.")
@click.option("--json", "as_json", is_flag=True, help="One span JSON object (the span contract) per line.")
@click.option("--otlp", is_flag=True, help="Also receive OTLP/HTTP spans from any OpenTelemetry client.")
@receiver_options
@alert_options
def tail(
    db: Path | None,
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
    alerts: tuple[str, ...],
    fail_on_alert: bool,
    **filters: Any,
) -> None:
    """Follow the store: print each finished span as it lands, like `kubectl logs -f`.

    One line per span: time, trace, indent under its parent, kind, name, model, tokens in→out
    (`c` cached, `r` reasoning), cost (`$?` when the model has no known price), TTFT, duration,
    status. When a trace's root ends, a summary line. Ctrl-C stops with a one-line summary.

    With --otlp it also listens for OTLP/HTTP (protobuf or JSON, gzip or not) on
    http://127.0.0.1:4318/v1/traces, stores what arrives and prints it: point any
    OpenTelemetry SDK, OpenLLMetry, OpenInference or Logfire exporter at it.

    \b
    Examples:
      llmobs tail
      llmobs tail --kind llm --model 'gpt-4o*' --min-cost 0.001
      llmobs tail --errors --service support-bot
      llmobs tail --attr session_id=abc123 --since 10m
      llmobs tail --no-follow --since 1h --json | jq .cost
      llmobs tail --otlp            # then: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
      llmobs tail --otlp --host 0.0.0.0 --allow-remote --token "$LLMOBS_TAIL_TOKEN"
      llmobs tail --alert 'cost>0.05' --alert 'error_rate>5%/5m' --alert 'p95(duration)>3s/10m'
      llmobs tail --no-follow --since 1h --alert error --fail-on-alert   # CI: exit 1 on any failed span

    With --alert, spans that match a span rule are marked with the rules they matched, and a
    line starting `⚠ ALERT` is printed when a windowed rule fires (on stderr with --json). Rules
    see the spans the filters let through. Windows follow the spans' end times, so a replay
    alerts as the live stream did. See `llmobs watch` to run commands or webhooks on alerts.

    The receiver binds 127.0.0.1 unless told otherwise: any other --host needs --allow-remote,
    and should come with --token, since received spans hold prompts and completions.
    """
    span_filter = build_filter(**filters)
    monitor = AlertMonitor(alert_rules(alerts)) if alerts else None
    if fail_on_alert and monitor is None:
        raise click.UsageError("--fail-on-alert needs at least one --alert RULE")
    path, conn = open_follow_store(db)
    console = Console(stderr=False, highlight=False)
    printer = TailPrinter(conn, span_filter, as_json=as_json, console=console, alerts=monitor)
    check_receiver_options(otlp, host, grpc_on, allow_remote, token)
    receivers = None
    if otlp:
        from llmobs.cli.receiver import start_receivers

        receivers = start_receivers(
            path, host=host, port=port, grpc_port=grpc_port if grpc_on else None, token=token or None
        )
    addresses = ", ".join(receivers.addresses) if receivers is not None else ""
    status = Console(stderr=True, highlight=False)
    if not no_follow and sys.stderr.isatty():
        where = f" + OTLP on {addresses}" if addresses else ""
        status.print(f"[dim]following {path}{where} (Ctrl-C to stop)[/]")
    elif addresses:
        click.echo(f"llmobs: OTLP receiver on {addresses}", err=True)
    try:
        follow(
            conn,
            printer,
            since_ns=since,
            keep_following=not no_follow,
            should_stop=lambda: fail_on_alert and monitor is not None and monitor.fired > 0,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if receivers is not None:
            receivers.stop()
        conn.close()
    if not no_follow:
        click.echo(printer.stats.line(), err=True)
    if fail_on_alert and monitor is not None and monitor.fired:
        click.echo(f"llmobs tail: {monitor.fired} alert(s) fired", err=True)
        sys.exit(ALERT_EXIT_CODE)
