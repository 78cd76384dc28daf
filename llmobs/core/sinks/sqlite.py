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

    A store that cannot be written (a read-only file, a folder that cannot be created, a full
    disk, a lock held too long by another process) makes `write` raise a `StoreError` that says
    what is wrong and what to do; the pipeline logs it once, counts it and goes on, and the next
    batch tries again from a fresh connection.

    Args:
        path: the database file; its folder is created when missing.
        max_spans: the retention cap.
        busy_timeout_s: how long a write waits for another process's lock before giving up.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_spans: int = DEFAULT_MAX_STORED_SPANS,
        busy_timeout_s: float = store.BUSY_TIMEOUT_MS / 1000,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.max_spans = max_spans
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._batches = 0

    def _connection(self) -> sqlite3.Connection:
        # Opened lazily on the pipeline thread, which is the only thread that writes.
        if self._conn is None:
            self._conn = store.connect(self.path, busy_timeout_s=self.busy_timeout_s)
        return self._conn

    def write(self, spans: Sequence[Span]) -> None:
        if not spans:
            return
        try:
            conn = self._connection()
            store.insert_spans(conn, spans, busy_timeout_s=self.busy_timeout_s)
            self._batches += 1
            if self._batches % _PRUNE_EVERY_BATCHES == 0:
                store.prune(conn, self.max_spans)
        except (sqlite3.Error, store.StoreError) as exc:
            self.close()
            raise store.StoreError(self._explain(exc)) from exc

    def _explain(self, exc: BaseException) -> str:
        text = str(exc)
        low = text.lower()
        if "readonly" in low or "read-only" in low:
            hint = "the file or its folder is read-only; point LLMOBS_DB at a writable path"
        elif "full" in low:
            hint = "the disk is full; free space or point LLMOBS_DB at another disk"
        elif "locked" in low or "busy" in low:
            hint = f"another process held the store's write lock for more than {self.busy_timeout_s:g}s"
        elif "unable to open" in low or "cannot create" in low or "permission" in low:
            hint = "its folder cannot be created or written; point LLMOBS_DB at a writable path"
        else:
            hint = "spans go to the other sinks only until it can be written again"
        return f"cannot write to the local store {self.path}: {text} ({hint})"

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteSink({str(self.path)!r})"
