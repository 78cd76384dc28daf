"""The local SQLite store: schema, connection settings, writes and the queries the CLI runs.

One file holds the spans of every local app (`~/.llmobs/traces.db`, or `LLMOBS_DB`). WAL mode
lets `llmobs tail` read while several processes write; a busy timeout makes concurrent writers
wait for each other instead of failing. Each row keeps the span's full JSON form in `data` and
copies the fields the CLI filters and sums on into columns. `seq` only grows, so a reader can
follow the store by asking for rows after the last `seq` it saw.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from llmobs.core.model import MODEL_KINDS, Span

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 10_000
#: Batches a writer inserts between two prunes of the store to its retention cap.
PRUNE_EVERY_BATCHES = 64
#: Pages SQLite may cache per writer connection (negative: KiB), so the indexes of a large store
#: stay in memory.
CACHE_KIB = 16 * 1024
#: WAL pages after which a writer's commit copies the log back into the store (SQLite's default
#: is 1,000). Each copy writes every page changed since the last one once: the trace index takes
#: new traces at random pages, and the same pages come back commit after commit, so a longer log
#: writes each of them fewer times (replayed batches of 240 rows: the commit costs 4.0 instead of
#: 4.6 µs per row in a store of 20,000 rows, 6.0 instead of 8.7 in one of 200,000). The log file
#: grows to about this many pages (16 MiB at the default 4 KiB page) and is then reused.
WAL_AUTOCHECKPOINT_PAGES = 4000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    trace_key    INTEGER NOT NULL,
    trace_id     TEXT    NOT NULL,
    span_id      TEXT    NOT NULL,
    parent_id    TEXT,
    name         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    framework    TEXT    NOT NULL,
    service      TEXT    NOT NULL,
    start_ns     INTEGER NOT NULL,
    end_ns       INTEGER NOT NULL,
    duration_ms  REAL    NOT NULL,
    status       TEXT    NOT NULL,
    model        TEXT,
    provider     TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd     REAL,
    ttft_ms      REAL,
    inserted_ns  INTEGER NOT NULL,
    data         TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_trace_key ON spans (trace_key);
CREATE INDEX IF NOT EXISTS spans_start_ns ON spans (start_ns);
"""

_INSERT = (
    "INSERT INTO spans (trace_key, trace_id, span_id, parent_id, name, kind, framework, service, start_ns, end_ns,"
    " duration_ms, status, model, provider, input_tokens, output_tokens, cost_usd, ttft_ms, inserted_ns, data)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


_COLUMNS_PER_ROW = _INSERT.count("?")
# SQLite before 3.32 allows 999 bound parameters per statement, later versions 32766.
_ROWS_PER_STATEMENT = 256 if sqlite3.sqlite_version_info >= (3, 32) else 999 // _COLUMNS_PER_ROW


@lru_cache(maxsize=8)
def _insert_statement(rows: int) -> str:
    """`_INSERT` with `rows` rows of placeholders."""
    head, _, row = _INSERT.partition(" VALUES ")
    return f"{head} VALUES {','.join([row] * rows)}"


def trace_key(trace_id: str) -> int:
    """The indexed stand-in for a trace id: its first 64 bits as a signed integer.

    Trace ids are random, so every new trace lands at a random place in its index; an 8-byte
    integer key keeps that index a third the size of one on the 32-character text, which is most
    of the cost of a write. Lookups compare the full id after the key.
    """
    try:
        return int(trace_id[:16], 16) - 2**63
    except ValueError:
        return 0


def _prefix_key_range(prefix: str) -> tuple[int, int]:
    head = prefix[:16]
    return int(head.ljust(16, "0"), 16) - 2**63, int(head.ljust(16, "f"), 16) - 2**63


# Tokens and cost of a trace count only the application's own model calls: agent frameworks'
# aggregate usage (turns, tasks) and evaluator spans must not inflate them.
_MODEL_KINDS_SQL = "(" + ",".join(f"'{k.value}'" for k in sorted(MODEL_KINDS, key=lambda k: k.value)) + ")"


class StoreError(Exception):
    """The store cannot be opened or used; the message says why and where."""


def connect(
    path: str | Path, *, readonly: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000
) -> sqlite3.Connection:
    """Open the store, creating the file, its folder and the schema when writable.

    `busy_timeout_s` bounds how long an operation waits for another process's write lock.
    Raises StoreError saying what is wrong and where.
    """
    path = Path(path).expanduser()
    busy_ms = max(1, int(busy_timeout_s * 1000))
    try:
        if readonly:
            if not path.exists():
                raise StoreError(f"no llmobs store at {path} (set LLMOBS_DB or pass --db)")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=busy_ms / 1000, check_same_thread=False)
        else:
            # Spans hold prompts and completions: a new store is readable by its owner only.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o600)
            # Callers serialise use of a connection themselves (the pipeline's drain lock).
            conn = sqlite3.connect(str(path), timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        if not readonly:
            _retry_while_locked(lambda: _enable_wal(conn), busy_ms / 1000)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            _retry_while_locked(lambda: _migrate(conn), busy_ms / 1000)
        else:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} has schema {version}; this llmobs reads up to {SCHEMA_VERSION}: upgrade llmobs"
                )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open llmobs store {path}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"cannot create llmobs store {path}: {exc}") from exc
    return conn


def is_locked_error(exc: BaseException) -> bool:
    """SQLite's "another connection holds the lock" errors, which are worth retrying."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _retry_while_locked(step: Callable[[], None], timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    # Switching a new file to WAL needs an exclusive lock and SQLite may answer SQLITE_BUSY at
    # once, without its busy handler, while another process is creating the same store.
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if not is_locked_error(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _enable_wal(conn: sqlite3.Connection) -> None:
    if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        conn.execute("PRAGMA journal_mode = WAL")


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"the store has schema {version}; this llmobs writes {SCHEMA_VERSION}: upgrade llmobs")
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
        if version == 1:
            # 1 → 2: spans are found by an integer key of their trace id instead of the text.
            conn.execute("ALTER TABLE spans ADD COLUMN trace_key INTEGER NOT NULL DEFAULT 0")
            rows = conn.execute("SELECT DISTINCT trace_id FROM spans").fetchall()
            conn.executemany("UPDATE spans SET trace_key = ? WHERE trace_id = ?", [(trace_key(t), t) for (t,) in rows])
            conn.execute("DROP INDEX IF EXISTS spans_trace_id")
        if version < SCHEMA_VERSION:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def span_row(span: Span, inserted_ns: int) -> tuple[Any, ...]:
    """The row stored for `span`: its columns and its JSON form."""
    return record_row(span.to_dict(), inserted_ns)


def record_row(record: Mapping[str, Any], inserted_ns: int) -> tuple[Any, ...]:
    """The row stored for a span in its JSON form (`Span.to_dict()`): its columns and the JSON."""
    usage = record["usage"]
    cost = record["cost"]
    return (
        trace_key(record["trace_id"]),
        record["trace_id"],
        record["span_id"],
        record["parent_id"],
        record["name"],
        record["kind"],
        record["framework"],
        record["service"],
        record["start_ns"],
        record["end_ns"],
        record["duration_ms"],
        record["status"],
        record["model"],
        record["provider"],
        usage.get("input_tokens") if usage is not None else None,
        usage.get("output_tokens") if usage is not None else None,
        cost["total_usd"] if cost is not None else None,
        record["ttft_ms"],
        inserted_ns,
        record_json(record),
    )


def record_json(record: Mapping[str, Any]) -> str:
    """A span's JSON form, compact. orjson is ~10x faster than json on the pipeline thread;
    json (same output) covers what orjson refuses, such as integers beyond 64 bits."""
    try:
        return orjson.dumps(record, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)


def insert_records(
    conn: sqlite3.Connection,
    records: Sequence[Mapping[str, Any]],
    *,
    busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
    single_threaded: bool = False,
) -> None:
    """`insert_spans` for spans in their JSON form (the store's writer process).

    `single_threaded`: no other thread of this process wants the GIL (the writer process), so
    one statement step per row costs nothing and `executemany` is used: about a tenth cheaper
    than building statements of many rows.
    """
    now = time.time_ns()
    _insert_rows(conn, [record_row(record, now) for record in records], busy_timeout_s, single_threaded)


def insert_spans(
    conn: sqlite3.Connection, spans: Sequence[Span], *, busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000
) -> None:
    """Write a batch in one transaction, waiting up to `busy_timeout_s` for other writers."""
    now = time.time_ns()
    _insert_rows(conn, [span_row(span, now) for span in spans], busy_timeout_s)


def _insert_rows(
    conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], busy_timeout_s: float, single_threaded: bool = False
) -> None:
    step = _ROWS_PER_STATEMENT

    def write() -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if single_threaded:
                conn.executemany(_INSERT, rows)
            else:
                # Many rows per statement, not executemany: sqlite3 releases the GIL around every
                # statement step, and with one step per row a busy application thread takes the
                # GIL back each time, so the pipeline would wait a switch interval (5 ms) per span.
                for i in range(0, len(rows), step):
                    chunk = rows[i : i + step]
                    conn.execute(_insert_statement(len(chunk)), [value for row in chunk for value in row])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    _retry_while_locked(write, busy_timeout_s)


def prune(conn: sqlite3.Connection, max_spans: int) -> int:
    """Delete the oldest spans beyond the newest `max_spans`. Returns how many went."""
    cur = conn.execute(
        "DELETE FROM spans WHERE seq <= (SELECT MAX(seq) FROM spans) - ?",
        (max_spans,),
    )
    return cur.rowcount or 0


# -- reading -----------------------------------------------------------------------------------


@dataclass(slots=True)
class TraceSummary:
    """One line of `llmobs traces`."""

    trace_id: str
    root_name: str
    service: str
    start_ns: int
    end_ns: int
    spans: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "root_name": self.root_name,
            "service": self.service,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ms": self.duration_ms,
            "spans": self.spans,
            "errors": self.errors,
            "status": "error" if self.errors else "ok",
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "unpriced": self.unpriced,
        }


_TOTALS_SQL = f"""
    MIN(start_ns), MAX(end_ns), COUNT(*),
    SUM(status = 'error'),
    SUM(CASE WHEN kind IN {_MODEL_KINDS_SQL} THEN COALESCE(input_tokens, 0) ELSE 0 END),
    SUM(CASE WHEN kind IN {_MODEL_KINDS_SQL} THEN COALESCE(output_tokens, 0) ELSE 0 END),
    SUM(CASE WHEN kind IN {_MODEL_KINDS_SQL} THEN cost_usd END),
    SUM(kind IN {_MODEL_KINDS_SQL} AND cost_usd IS NULL AND input_tokens IS NOT NULL)
"""
#: Spans read at a time while `recent_traces` walks the store from its newest span back, and
#: how many it reads before it groups the whole store instead (many traces asked for, or
#: traces of thousands of spans each).
_WALK_CHUNK = 256
_WALK_MAX_SPANS = 50_000


def recent_traces(conn: sqlite3.Connection, *, limit: int = 20, since_ns: int | None = None) -> list[TraceSummary]:
    """The most recent traces, newest first (by their first span's start), with their totals.

    With `since_ns`, only the spans started since then count. Without it, the store is read from
    its newest span back only until the `limit` newest traces are known, so listing them takes
    about as long in a store of a million spans as in one of a thousand.
    """
    newest = _newest_trace_ids(conn, limit) if since_ns is None else None
    if newest is not None:
        rows = [_trace_totals(conn, trace_id) for trace_id in newest]
    else:
        where, params = ("WHERE start_ns >= ?", [since_ns]) if since_ns is not None else ("", [])
        rows = conn.execute(
            f"SELECT trace_id, {_TOTALS_SQL} FROM spans {where}"
            " GROUP BY trace_id ORDER BY MIN(start_ns) DESC, trace_id LIMIT ?",
            [*params, limit],
        ).fetchall()
    return [_summary(conn, row) for row in rows]


def _newest_trace_ids(conn: sqlite3.Connection, limit: int) -> list[str] | None:
    """The `limit` traces whose first span started last, newest first (ties by trace id); None
    when that takes reading more than `_WALK_MAX_SPANS` spans.

    Spans are read newest first (the start index backwards). A trace not met yet has no span
    that started after the last one read, so it started no later than that; once `limit` traces
    met started strictly after it, no trace still unread can rank among them.
    """
    first_start: dict[str, int] = {}
    cursor = conn.execute("SELECT trace_id, start_ns FROM spans ORDER BY start_ns DESC")
    read = 0
    while True:
        chunk = cursor.fetchmany(_WALK_CHUNK)
        if not chunk:
            break
        read += len(chunk)
        if read > _WALK_MAX_SPANS:
            cursor.close()
            return None
        for trace_id, _ in chunk:
            if trace_id not in first_start:
                first_start[trace_id] = conn.execute(
                    "SELECT MIN(start_ns) FROM spans WHERE trace_key = ? AND trace_id = ?",
                    (trace_key(trace_id), trace_id),
                ).fetchone()[0]
        position = chunk[-1][1]
        if sum(1 for start in first_start.values() if start > position) >= limit:
            break
    cursor.close()
    ranked = sorted(first_start.items(), key=lambda item: (-item[1], item[0]))
    return [trace_id for trace_id, _ in ranked[:limit]]


def _trace_totals(conn: sqlite3.Connection, trace_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        f"SELECT trace_id, {_TOTALS_SQL} FROM spans WHERE trace_key = ? AND trace_id = ?",
        (trace_key(trace_id), trace_id),
    ).fetchone()
    return tuple(row)


def _summary(conn: sqlite3.Connection, row: Sequence[Any]) -> TraceSummary:
    trace_id, t0, t1, count, errors, tin, tout, cost, unpriced = row
    root = conn.execute(
        "SELECT name, service FROM spans WHERE trace_key = ? AND trace_id = ?"
        " ORDER BY (parent_id IS NOT NULL), start_ns LIMIT 1",
        (trace_key(trace_id), trace_id),
    ).fetchone()
    return TraceSummary(
        trace_id=trace_id,
        root_name=root[0] if root else "?",
        service=root[1] if root else "",
        start_ns=t0,
        end_ns=t1,
        spans=count,
        errors=errors or 0,
        input_tokens=tin or 0,
        output_tokens=tout or 0,
        cost_usd=cost,
        unpriced=unpriced or 0,
    )


def resolve_trace_id(conn: sqlite3.Connection, prefix: str) -> str:
    """The one trace id starting with `prefix`. Raises StoreError when none or several match."""
    prefix = prefix.strip().lower()
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise StoreError(f"{prefix!r} is not a trace id (hex characters)")
    hi = prefix + "g"  # every id with this prefix sorts between prefix and prefix+"g"
    lo_key, hi_key = _prefix_key_range(prefix)
    rows = conn.execute(
        "SELECT DISTINCT trace_id FROM spans WHERE trace_key BETWEEN ? AND ? AND trace_id >= ? AND trace_id < ?"
        " LIMIT 6",
        (lo_key, hi_key, prefix, hi),
    ).fetchall()
    if not rows:
        raise StoreError(f"no trace starts with {prefix!r}")
    if len(rows) > 1:
        listed = ", ".join(r[0] for r in rows[:5])
        raise StoreError(
            f"{prefix!r} matches several traces ({listed}{', ...' if len(rows) > 5 else ''}); give more characters"
        )
    return str(rows[0][0])


def trace_spans(conn: sqlite3.Connection, trace_id: str) -> list[Span]:
    """Every span of one trace, in start order."""
    rows = conn.execute(
        "SELECT data FROM spans WHERE trace_key = ? AND trace_id = ? ORDER BY start_ns, seq",
        (trace_key(trace_id), trace_id),
    )
    return [Span.from_dict(json.loads(data)) for (data,) in rows]


def iter_span_json(
    conn: sqlite3.Connection, *, since_ns: int | None = None, trace_id: str | None = None, after_seq: int = 0
) -> Iterator[tuple[int, str]]:
    """(seq, JSON form) of stored spans in insertion order, optionally filtered."""
    clauses: list[str] = ["seq > ?"]
    params: list[Any] = [after_seq]
    if since_ns is not None:
        clauses.append("start_ns >= ?")
        params.append(since_ns)
    if trace_id is not None:
        clauses.append("trace_key = ? AND trace_id = ?")
        params.extend((trace_key(trace_id), trace_id))
    yield from conn.execute(f"SELECT seq, data FROM spans WHERE {' AND '.join(clauses)} ORDER BY seq", params)


def count_spans(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
