"""`SQLiteSink`: the local store, the default sink."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmobs.core import store
from llmobs.core.config import DEFAULT_MAX_STORED_SPANS, default_db_path
from llmobs.core.model import Span
from llmobs.core.offload import Offloaded, finish_span, finish_values
from llmobs.core.pricing import Pricer
from llmobs.core.sinks.base import Sink

if TYPE_CHECKING:
    from llmobs.core.content import ContentPolicy
    from llmobs.core.writer import StoreWriter

logger = logging.getLogger("llmobs")

#: Where the store is written: `process` (the default), a child process; `inline`, the pipeline thread.
LLMOBS_STORE_WRITER = "LLMOBS_STORE_WRITER"
WRITER_MODES = ("process", "inline")
#: How many times a store writer process that died is started again before writing in-process for good.
WRITER_RESTARTS = 3


def explain_store_error(path: str | Path, busy_timeout_s: float, exc: BaseException) -> str:
    """What went wrong writing the store at `path`, and what to do about it."""
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        hint = "the file or its folder is read-only; point LLMOBS_DB at a writable path"
    elif "full" in low:
        hint = "the disk is full; free space or point LLMOBS_DB at another disk"
    elif "locked" in low or "busy" in low:
        hint = f"another process held the store's write lock for more than {busy_timeout_s:g}s"
    elif "unable to open" in low or "cannot create" in low or "permission" in low:
        hint = "its folder cannot be created or written; point LLMOBS_DB at a writable path"
    else:
        hint = "spans go to the other sinks only until it can be written again"
    return f"cannot write to the local store {path}: {text} ({hint})"


def writer_mode(value: str | None = None) -> str:
    """`value`, else `LLMOBS_STORE_WRITER`, else `process`.

    A wrong `value` raises ValueError; a wrong environment variable is logged and ignored (it
    must not break the application at its first span). Always `inline` on Windows, whose pipes
    the writer process cannot wait on.
    """
    if value is not None:
        mode = value.strip().lower()
        if mode not in WRITER_MODES:
            raise ValueError(f"store writer must be one of {', '.join(WRITER_MODES)}, not {value!r}")
    else:
        mode = (os.environ.get(LLMOBS_STORE_WRITER) or "process").strip().lower()
        if mode not in WRITER_MODES:
            logger.warning(
                "llmobs: %s=%r is not one of %s; using process",
                LLMOBS_STORE_WRITER,
                os.environ.get(LLMOBS_STORE_WRITER),
                ", ".join(WRITER_MODES),
            )
            mode = "process"
    return "inline" if sys.platform == "win32" else mode


class SQLiteSink(Sink):
    """Writes spans to the local SQLite store (`~/.llmobs/traces.db`, or `LLMOBS_DB`).

    Several processes may write one store at once (WAL mode, a busy timeout). The store keeps at
    most `max_spans` spans; the oldest are pruned first.

    By default the writing happens in a child process (`llmobs.core.writer`): the content
    policy, building rows and the SQLite statements are Python work that, on the pipeline
    thread, would hold the GIL the application needs. This process only serialises each batch.
    If the child cannot start, or dies more than `WRITER_RESTARTS` times, batches are written
    on the pipeline thread instead, as with `writer="inline"` (or `LLMOBS_STORE_WRITER=inline`).
    Batches the child had not confirmed when it died are written in-process, not lost.

    A store that cannot be written (a read-only file, a folder that cannot be created, a full
    disk, a lock held too long by another process) is reported once in the log and in
    `llmobs.health()` with what is wrong and what to do; the next batch tries again from a fresh
    connection.

    Args:
        path: the database file; its folder is created when missing.
        max_spans: the retention cap.
        busy_timeout_s: how long a write waits for another process's lock before giving up.
        writer: `process` or `inline`; None reads `LLMOBS_STORE_WRITER` (default `process`).
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        max_spans: int = DEFAULT_MAX_STORED_SPANS,
        busy_timeout_s: float = store.BUSY_TIMEOUT_MS / 1000,
        writer: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.max_spans = max_spans
        self.busy_timeout_s = busy_timeout_s
        self.writer_mode = writer_mode(writer)
        self._conn: sqlite3.Connection | None = None
        self._batches = 0
        # The writer process, its state and what it reported.
        self._lock = threading.RLock()
        self._writer: StoreWriter | None = None
        self._policy: ContentPolicy | None = None
        # Set while this sink finishes offloaded spans (`takes_offloaded`): the writer process
        # prices them with the same prices, and so does this process for any it writes itself.
        self._pricer: Pricer | None = None
        self._priced = {"priced": 0, "unpriced": 0}  # offloaded spans finished here
        self._restarts_left = WRITER_RESTARTS
        self._inline_reason: str | None = None
        # (frame number, the JSON sent, the policy the child applies to it or None): bytes, not
        # spans, so that nothing the garbage collector tracks is kept alive until the child confirms.
        self._unconfirmed: deque[tuple[int, bytes, ContentPolicy | None]] = deque()
        self._frames_sent = 0
        self._status: Mapping[str, Any] = {}
        self._past = {"written": 0, "failed": 0, "priced": 0, "unpriced": 0, "cpu_s": 0.0}
        self._inline_written = 0
        self._last_error: str | None = None
        self._warned: set[str] = set()
        _live_sinks.add(self)

    # -- the Sink interface ----------------------------------------------------------------------

    def takes_raw_spans(self, policy: ContentPolicy | None) -> bool:
        with self._lock:
            if self.writer_mode != "process" or policy is None:
                self._policy = None
                return False
            self._policy = policy
            return True

    def takes_offloaded(self, pricer: Pricer | None) -> bool:
        with self._lock:
            if pricer is None or self._policy is None:
                return False
            self._pricer = pricer
            return True

    def write(self, spans: Sequence[Span]) -> None:
        if not spans:
            return
        # The policy these spans still need (applied by the writer process, or here): read once,
        # so that a batch and what is kept of it until confirmed agree.
        policy = self._policy
        if self.writer_mode == "process":
            with self._lock:
                if self._inline_reason is None:
                    spans = self._queue(spans, policy)
                    if not spans:
                        return
        self._write_inline(spans, policy)

    def deliver(self) -> None:
        with self._lock:
            writer = self._writer
            if writer is None:
                return
            from llmobs.core.writer import WriterGone

            try:
                writer.deliver()
            except WriterGone as exc:
                self._lost_writer(exc)

    def flush(self) -> None:
        with self._lock:
            writer = self._writer
            if writer is None or (writer.pid is None and not writer.queued):
                return
            from llmobs.core.writer import WriterGone

            try:
                writer.flush()
            except WriterGone as exc:
                self._lost_writer(exc)

    def stats(self) -> dict[str, Any]:
        """Spans committed and batches failed, here and in the writer process, and about the writer.

        `writer` is `process` or `inline`, `writer_pid` the child's pid while one runs,
        `writer_cpu_s` the CPU time the writer processes used (as of their last report).
        """
        if self.writer_mode == "inline":
            return {"writer": "inline"}
        status = self._status
        writer = self._writer
        past = self._past
        return {
            "writer": "inline" if self._inline_reason else "process",
            "writer_pid": writer.pid if writer is not None else None,
            "writer_cpu_s": past["cpu_s"] + float(status.get("cpu_s") or 0.0),
            "written": self._inline_written + past["written"] + int(status.get("written") or 0),
            "errors": past["failed"] + int(status.get("failed") or 0),
            "priced": self._priced["priced"] + past["priced"] + int(status.get("priced") or 0),
            "unpriced": self._priced["unpriced"] + past["unpriced"] + int(status.get("unpriced") or 0),
            "last_error": self._last_error,
        }

    def close(self) -> None:
        with self._lock:
            writer = self._writer
            if writer is not None:
                status = writer.close()
                if status is None and self._unconfirmed:
                    self._rewrite_unconfirmed()
                self._writer = None
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __repr__(self) -> str:
        return f"SQLiteSink({str(self.path)!r})"

    # -- the writer process ----------------------------------------------------------------------

    def _queue(self, spans: Sequence[Span], policy: ContentPolicy | None) -> list[Span]:
        """Queue the batch for the writer process (sent by `deliver`); what it could not take, for writing here."""
        from llmobs.core.writer import StoreWriter

        writer = self._writer
        if writer is None:
            policy = self._policy
            writer = self._writer = StoreWriter(
                self.path,
                busy_timeout_s=self.busy_timeout_s,
                max_spans=self.max_spans,
                policy_options=policy.options() if policy is not None else None,
                price_options=self._pricer.options() if self._pricer is not None else None,
                on_status=self._on_status,
            )
        if writer.pid is None and self._status:
            # A new child (after a fork, or a restart): its counters start from zero.
            self._fold_status()
        payload, rest = writer.queue(spans, raw=policy is not None)
        if payload is not None:
            self._frames_sent += 1
            self._unconfirmed.append((self._frames_sent, payload, policy))
        return rest

    def _on_status(self, status: Mapping[str, Any]) -> None:
        """A status line from the child: forget the batches it has finished, report new failures."""
        done = int(status.get("batches") or 0)
        unconfirmed = self._unconfirmed
        while unconfirmed and unconfirmed[0][0] <= done:
            unconfirmed.popleft()
        failed_before = int(self._status.get("failed") or 0)
        self._status = status
        if int(status.get("failed") or 0) > failed_before and status.get("last_error"):
            self._last_error = str(status["last_error"])
            self._warn_once("store", "llmobs: %s", self._last_error)

    def _fold_status(self) -> None:
        status = self._status
        past = self._past
        past["written"] += int(status.get("written") or 0)
        past["failed"] += int(status.get("failed") or 0)
        past["priced"] += int(status.get("priced") or 0)
        past["unpriced"] += int(status.get("unpriced") or 0)
        past["cpu_s"] += float(status.get("cpu_s") or 0.0)
        self._status = {}
        self._frames_sent = 0
        self._unconfirmed.clear()

    def _lost_writer(self, exc: Exception) -> None:
        """The child is gone: write what it had not confirmed here; start another next time, or stop trying."""
        self._rewrite_unconfirmed()
        self._fold_status()
        self._restarts_left -= 1
        if self._restarts_left < 0:
            self._inline_reason = str(exc)
            self._warn_once(
                "writer-inline",
                "llmobs: %s; the store is written in-process from now on (as with LLMOBS_STORE_WRITER=inline)",
                exc,
            )
        else:
            self._warn_once("writer", "llmobs: %s; spans it had not written are written in-process", exc)

    def _rewrite_unconfirmed(self) -> None:
        from llmobs.core.writer import load_batch

        unconfirmed = list(self._unconfirmed)
        self._unconfirmed.clear()
        for _, payload, policy in unconfirmed:
            try:
                self._write_records(load_batch(payload, self._finish_record), policy)
            except store.StoreError as exc:
                self._last_error = str(exc)

    # -- in-process ------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        # Opened lazily on the pipeline thread, which is the only thread that writes.
        if self._conn is None:
            self._conn = store.connect(self.path, busy_timeout_s=self.busy_timeout_s)
        return self._conn

    def _finish_record(self, values: list[Any]) -> dict[str, Any]:
        """An offloaded span the writer process did not confirm, finished here (see `writer.load_batch`)."""
        finished, priced = finish_values(values, self._offload_pricer())
        self._count_priced(priced)
        return finished

    def _offload_pricer(self) -> Pricer:
        """The pricer `takes_offloaded` was given (it is kept when offloading is taken back, for the
        spans already offloaded); a default one for offloaded spans written without that call."""
        if self._pricer is None:
            self._pricer = Pricer()
        return self._pricer

    def _count_priced(self, priced: bool | None) -> None:
        if priced is not None:
            self._priced["priced" if priced else "unpriced"] += 1

    def _write_inline(self, spans: Sequence[Span], policy: ContentPolicy | None) -> None:
        for span in spans:
            offloaded = span.deferred
            if type(offloaded) is Offloaded:
                # Offloaded, then not sent to the writer process: finished here.
                span.deferred = None
                self._count_priced(finish_span(span, offloaded, self._offload_pricer()))
        if policy is not None:
            for span in spans:
                policy.apply(span)
        self._commit(lambda conn: store.insert_spans(conn, spans, busy_timeout_s=self.busy_timeout_s), len(spans))

    def _write_records(self, records: list[dict[str, Any]], policy: ContentPolicy | None) -> None:
        """What the writer process does with a batch it was sent (with the policy it was sent for), done here."""
        if policy is not None:
            for record in records:
                policy.apply_record(record)
        self._commit(lambda conn: store.insert_records(conn, records, busy_timeout_s=self.busy_timeout_s), len(records))

    def _commit(self, insert: Callable[[sqlite3.Connection], None], count: int) -> None:
        try:
            conn = self._connection()
            insert(conn)
            self._inline_written += count
            self._batches += 1
            if self._batches % store.PRUNE_EVERY_BATCHES == 0:
                store.prune(conn, self.max_spans)
        except (sqlite3.Error, store.StoreError) as exc:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None
            raise store.StoreError(explain_store_error(self.path, self.busy_timeout_s, exc)) from exc

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)

    def _after_fork_in_child(self) -> None:
        # The lock may have been held by the parent's pipeline thread, which did not survive the
        # fork; the parent's connection and unconfirmed batches are the parent's to use.
        self._lock = threading.RLock()
        self._conn = None
        self._unconfirmed.clear()
        if self._writer is not None:
            self._writer.abandon_after_fork()


_live_sinks: weakref.WeakSet[SQLiteSink] = weakref.WeakSet()


def _after_fork() -> None:
    for sink in list(_live_sinks):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
