"""`SQLiteSink`: the local store, the default sink."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from llmobs.core import store
from llmobs.core.config import DEFAULT_MAX_STORED_SPANS, default_db_path
from llmobs.core.model import Span
from llmobs.core.sinks.base import Sink

_PRUNE_EVERY_BATCHES = 64


class SQLiteSink(Sink):
    """Writes spans to the local SQLite store (`~/.llmobs/traces.db`, or `LLMOBS_DB`).

    Several processes may write one store at once (WAL mode, a busy timeout). The store keeps at
    most `max_spans` spans; the oldest are pruned first.

    Args:
        path: the database file; its folder is created when missing.
        max_spans: the retention cap.
    """

    name = "sqlite"

    def __init__(self, path: str | Path | None = None, *, max_spans: int = DEFAULT_MAX_STORED_SPANS) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.max_spans = max_spans
        self._conn: sqlite3.Connection | None = None
        self._batches = 0

    def _connection(self) -> sqlite3.Connection:
        # Opened lazily on the pipeline thread, which is the only thread that writes.
        if self._conn is None:
            self._conn = store.connect(self.path)
        return self._conn

    def write(self, spans: Sequence[Span]) -> None:
        if not spans:
            return
        conn = self._connection()
        store.insert_spans(conn, spans)
        self._batches += 1
        if self._batches % _PRUNE_EVERY_BATCHES == 0:
            store.prune(conn, self.max_spans)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteSink({str(self.path)!r})"
