"""Options shared by the `llmobs` commands: the store to read, and time windows."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from llmobs.core import store
from llmobs.core.config import LLMOBS_DB, default_db_path

F = TypeVar("F", bound=Callable[..., Any])

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration_s(text: str) -> float:
    """`500ms`, `30s`, `10m`, `2h`, `7d`, `1w` → seconds. Raises ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_since_ns(text: str, *, now_ns: int | None = None) -> int:
    """A start time from `10m` (ago) or an ISO timestamp (`2026-11-27T16:00`), in epoch ns."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        return now_ns - int(parse_duration_s(text) * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp() * 1e9)
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (10m, 2h) nor an ISO time (2026-11-27T16:00)") from None


class SinceType(click.ParamType):  # type: ignore[type-arg]
    """A click type for `--since`: converts to epoch nanoseconds."""

    name = "since"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_since_ns(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


SINCE = SinceType()


def db_option(func: F) -> F:
    """`--db PATH`: the store to read (default `LLMOBS_DB`, else `~/.llmobs/traces.db`)."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"SQLite store to read [default: ${LLMOBS_DB} or ~/.llmobs/traces.db].",
    )(func)


def receiver_options(func: F) -> F:
    """The OTLP receiver's options shared by `tail` and `watch` (`--otlp` itself is theirs)."""
    options = [
        click.option("--host", default="127.0.0.1", show_default=True, help="Address the OTLP receiver listens on."),
        click.option("--port", type=click.IntRange(0, 65535), default=4318, show_default=True, help="OTLP/HTTP port."),
        click.option(
            "--grpc", "grpc_on", is_flag=True, help="With --otlp: also receive OTLP/gRPC (needs the grpc extra)."
        ),
        click.option(
            "--grpc-port", type=click.IntRange(0, 65535), default=4317, show_default=True, help="OTLP/gRPC port."
        ),
        click.option(
            "--token",
            envvar="LLMOBS_TAIL_TOKEN",
            default=None,
            help="With --otlp: require `Authorization: Bearer TOKEN` on every request (401 otherwise)"
            " [env: LLMOBS_TAIL_TOKEN].",
        ),
        click.option(
            "--allow-remote",
            is_flag=True,
            help="With --otlp: allow --host to be an address other machines can reach (use it with --token).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def check_receiver_options(otlp: bool, host: str, grpc_on: bool, allow_remote: bool, token: str | None) -> None:
    """Refuse receiver options that make no sense or expose the receiver by accident; warn when a
    reachable receiver has no token."""
    from llmobs.cli.receiver import is_loopback

    if grpc_on and not otlp:
        raise click.UsageError("--grpc needs --otlp")
    if not otlp or is_loopback(host):
        return
    if not allow_remote:
        raise click.UsageError(
            f"--host {host} lets other machines send spans; add --allow-remote (and --token) to mean it"
        )
    if not token:
        click.echo(f"llmobs: warning: OTLP receiver on {host} accepts spans from anyone (no --token)", err=True)


def open_store(db: Path | None) -> sqlite3.Connection:
    """Open the store read-only, or exit with a message that says what is wrong."""
    path = db if db is not None else default_db_path()
    try:
        return store.connect(path, readonly=True)
    except store.StoreError as exc:
        raise click.ClickException(str(exc)) from exc


#: Width used when output is not a terminal (a pipe, a file): wide enough that tables and
#: timelines are not cut short.
PIPE_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    """A rich console: the terminal's width, or PIPE_WIDTH and no colour when piped."""
    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal:
        console = Console(highlight=False, stderr=stderr, width=PIPE_WIDTH)
    return console
