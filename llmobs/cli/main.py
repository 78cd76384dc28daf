"""The `llmobs` command: read the local store of traces.

llmobs traces                 recent traces with tokens, cost and status
llmobs show 3f2a              one trace as a tree (an id prefix is enough)
llmobs export --format jsonl  every span, one JSON object per line
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import click
from rich.table import Table

from llmobs.cli.demo import demo
from llmobs.cli.options import SINCE, db_option, make_console, open_store
from llmobs.cli.prices import prices
from llmobs.cli.render import summary_row
from llmobs.cli.stats import stats
from llmobs.cli.tail import tail
from llmobs.cli.watch import watch
from llmobs.cli.waterfall import render_details, render_waterfall
from llmobs.core import store


def _version() -> str:
    from llmobs import __version__

    return __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="llmobs")
def cli() -> None:
    """llmobs: see what your LLM application did, what it cost and where it failed.

    Spans recorded by llmobs (LangChain, LlamaIndex, OpenAI Agents SDK, or your own
    `llmobs.span()`) land in a local SQLite store, ~/.llmobs/traces.db unless LLMOBS_DB names
    another. These commands read it.

    \b
    Examples:
      llmobs traces --since 1h
      llmobs show 3f2a9c
      llmobs export --format jsonl > spans.jsonl
    """


@cli.command()
@db_option
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="Most traces to list.")
@click.option("--since", type=SINCE, default=None, help="Only traces started since: 10m, 2h, 7d or an ISO time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trace, per line.")
def traces(db: Path | None, limit: int, since: int | None, as_json: bool) -> None:
    """List recent traces: root, start, duration, spans, tokens, cost, status.

    Tokens and cost add up the trace's own model calls; `$?` marks a trace with a model
    call whose price is unknown.

    \b
    Examples:
      llmobs traces
      llmobs traces --since 30m --limit 50
      llmobs traces --json | jq .cost_usd
    """
    conn = open_store(db)
    rows = store.recent_traces(conn, limit=limit, since_ns=since)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.to_dict()))
        return
    console = make_console()
    if not rows:
        console.print("no traces yet: run your app with llmobs, or `llmobs demo`")
        return
    table = Table(box=None, header_style="bold")
    for column, justify in (
        ("trace", "left"),
        ("root", "left"),
        ("service", "left"),
        ("started", "left"),
        ("duration", "right"),
        ("spans", "right"),
        ("tokens", "right"),
        ("cost", "right"),
        ("status", "left"),
    ):
        # Names may be cut short with an ellipsis; numbers never are.
        overflow = "ellipsis" if column in ("root", "service") else "fold"
        table.add_column(column, justify=justify, no_wrap=True, overflow=overflow)  # type: ignore[arg-type]
    for row in rows:
        cells = summary_row(row)
        status = cells[-1]
        cells[-1] = f"[bold red]{status}[/]" if status == "error" else f"[green]{status}[/]"
        table.add_row(*cells)
    console.print(table)


@cli.command()
@db_option
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True, help="Print the trace's spans as JSON lines instead.")
@click.option("--brief", is_flag=True, help="Only the tree and timeline, no per-span details.")
@click.option("--no-content", is_flag=True, help="Leave out captured input, output and documents.")
def show(db: Path | None, trace_id: str, as_json: bool, brief: bool, no_content: bool) -> None:
    """Show one trace: its span tree beside a waterfall timeline, then each span's details.

    TRACE_ID may be any unambiguous prefix of the id. Bars are scaled to the trace's duration;
    on streamed model calls the part before the first token (TTFT) is drawn light. Details list
    ids, timing, model, usage, cost, errors, attributes and the captured content.

    \b
    Examples:
      llmobs show 3f2a9c
      llmobs show 3f2a9c --brief
      llmobs show 3f2a9c --json | jq .usage
    """
    conn = open_store(db)
    try:
        full_id = store.resolve_trace_id(conn, trace_id)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    spans = store.trace_spans(conn, full_id)
    if as_json:
        for span in spans:
            click.echo(json.dumps(span.to_dict(), ensure_ascii=False))
        return
    console = make_console()
    render_waterfall(console, spans)
    if not brief:
        render_details(console, spans, content=not no_content)


@cli.command()
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "case"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one span JSON object (the documented span contract) per line. case: the --trace as a "
    "regression case for llmobs.testing (input, output, tool trajectory, models, evaluations), "
    "appended to -o or printed.",
)
@click.option("--since", type=SINCE, default=None, help="Only spans started since: 10m, 2h, 7d or an ISO time.")
@click.option("--trace", "trace_prefix", default=None, help="Only this trace (an id prefix is enough).")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (--format case appends to it).",
)
@click.option(
    "--to",
    "to",
    type=click.Choice(["otlp", "langfuse", "phoenix"]),
    default=None,
    help="Send the spans over OTLP instead: to OTEL_EXPORTER_OTLP_ENDPOINT, Langfuse (LANGFUSE_* keys) or Phoenix (PHOENIX_*).",
)
def export(
    db: Path | None, fmt: str, since: int | None, trace_prefix: str | None, output: Path | None, to: str | None
) -> None:
    """Export stored spans, oldest first, to a file or over OTLP.

    \b
    Examples:
      llmobs export --format jsonl > spans.jsonl
      llmobs export --since 1h --trace 3f2a
      llmobs export --to langfuse --since 1h
      llmobs export --trace 3f2a --format case -o tests/cases.jsonl   # a failing trace → a test case
    """
    if fmt == "case" and (trace_prefix is None or to is not None or since is not None):
        raise click.UsageError("--format case exports one trace: give --trace ID (and neither --to nor --since)")
    conn = open_store(db)
    trace_id = None
    if trace_prefix:
        try:
            trace_id = store.resolve_trace_id(conn, trace_prefix)
        except store.StoreError as exc:
            raise click.ClickException(str(exc)) from exc
    if fmt == "case" and trace_id is not None:
        from llmobs.cli.cases import export_case

        export_case(conn, trace_id, output)
        return
    if to is not None:
        from llmobs.cli.replay import export_to

        export_to(conn, to, since_ns=since, trace_id=trace_id)
        return
    if output is None:
        _write_lines(sys.stdout, store.iter_span_json(conn, since_ns=since, trace_id=trace_id))
        return
    with open(output, "w", encoding="utf-8") as out:
        count = _write_lines(out, store.iter_span_json(conn, since_ns=since, trace_id=trace_id))
    click.echo(f"exported {count} spans to {output}", err=True)


def _write_lines(out: TextIO, rows: Iterable[tuple[int, str]]) -> int:
    count = 0
    for _seq, data in rows:
        out.write(data + "\n")
        count += 1
    return count


# Commands that live in their own modules.
for _command in (tail, watch, stats, prices, demo):
    cli.add_command(_command)


def main() -> None:  # pragma: no cover - console entry point
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
