"""`llmobs export --trace ID --format case`: a stored trace as a regression case for `llmobs.testing`.

The case (input, recorded output, tool-call trajectory, models, evaluation results) is the one
`llmobs.testing.case_from_trace` builds; it is appended to the `-o` file, or printed as one JSON
line (so `>> cases.jsonl` works too). Replay it in pytest with `load_cases` and
`assert_trajectory`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import click

from llmobs.core import store


def export_case(conn: sqlite3.Connection, trace_id: str, output: Path | None) -> None:
    """Append the case of `trace_id` (a full id) to `output`, or print it."""
    from llmobs.testing import append_case, case_from_trace

    spans = store.trace_spans(conn, trace_id)
    if not spans:
        raise click.ClickException(f"trace {trace_id} has no spans")
    case = case_from_trace(spans)
    if output is None:
        click.echo(json.dumps(case, ensure_ascii=False, default=str))
        return
    try:
        append_case(output, case)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from exc
    tools = len(case["trajectory"])
    click.echo(
        f"appended case {case['id'][:8]} ({case['name']}: {tools} tool call{'s' if tools != 1 else ''}, "
        f"status {case['status']}) to {output}",
        err=True,
    )
