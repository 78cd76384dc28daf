"""`llmobs export --to otlp|langfuse|phoenix`: send stored spans to a destination.

Reads the same selection as `llmobs export` (`--since`, `--trace`), sends it in batches through
`llmobs.core.otlp.replay`, shows a progress bar on a terminal and ends with the count of spans
sent and refused. Exits with status 1 when any span was refused.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterator

import click

from llmobs.core import store
from llmobs.core.model import Span


def export_to(conn: sqlite3.Connection, to: str, *, since_ns: int | None, trace_id: str | None) -> None:
    """Replay the selected stored spans to the destination `to`; raises click exceptions on failure."""
    from llmobs.core.otlp.destinations import DestinationError, destination_by_name
    from llmobs.core.otlp.replay import replay_spans

    try:
        destination = destination_by_name(to)
        exporter = destination.make_exporter()
    except DestinationError as exc:
        raise click.ClickException(str(exc)) from exc
    total = sum(1 for _ in store.iter_span_json(conn, since_ns=since_ns, trace_id=trace_id))
    if total == 0:
        click.echo("no spans to send", err=True)
        return
    spans = _stored_spans(conn, since_ns, trace_id)
    try:
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as progress:
                task = progress.add_task(f"sending to {destination.name}", total=total)
                result = replay_spans(
                    spans,
                    exporter,
                    resource_attributes=destination.resource_attributes,
                    on_batch=lambda n, _ok: progress.advance(task, n),
                )
        else:
            result = replay_spans(spans, exporter, resource_attributes=destination.resource_attributes)
    finally:
        exporter.shutdown()
    click.echo(f"sent {result.sent} spans to {destination.describe()}, refused {result.refused}", err=True)
    if result.refused:
        raise click.ClickException(f"{result.refused} spans were refused: {result.last_error}")


def _stored_spans(conn: sqlite3.Connection, since_ns: int | None, trace_id: str | None) -> Iterator[Span]:
    for _seq, data in store.iter_span_json(conn, since_ns=since_ns, trace_id=trace_id):
        yield Span.from_dict(json.loads(data))
