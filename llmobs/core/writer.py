"""The store writer: a child process that finishes spans and writes them to the SQLite store.

In a Python application the pipeline thread shares the GIL with the application: every
microsecond of Python it runs is a microsecond the application waits, however idle the second
core. The last stages before the store are pure Python (the content policy's walk over every
string, building rows, binding them to SQLite statements), so they go to a child process that
has a GIL of its own. The pipeline thread then only serialises each batch to JSON (one C call)
and writes it to a pipe.

Protocol. Parent to child: frames of one type byte, a 4-byte little-endian length and a payload.

- `C`: the configuration (JSON: store path, busy timeout, retention cap, content policy options),
  always the first frame;
- `R`: a batch of raw spans, to which the child applies the content policy; `P`: a batch
  already prepared (policy applied) by the parent. Both are a JSON list of `Span.to_values()`
  arrays, which `load_batch` reads back into the JSON form (`record_from_values`). The array of
  an offloaded span (`core/offload.py`) has two more elements, its extractor's key and its
  payload: the child extracts, sanitises and prices it (`offload.finish_values`) first;
- `F`: flush: the child answers with a status line once everything before it is committed;
- `Q`: quit: as `F`, then the child exits.

Child to parent: JSON lines, each a status with cumulative counters `{"batches", "written",
"failed", "priced", "unpriced", "last_error", "cpu_s", "answer"}`: after every batch (`answer` false), so that
the parent can let go of the batches written and an unwritable store is reported without waiting
for a flush, and after every `F` or `Q` (`answer` true).

The child ignores SIGINT and SIGTERM (a Ctrl-C or a `kill` of the process group reaches it
too): it exits when its parent tells it to or when the pipe closes because the parent died,
after writing what it had received. When the child cannot be started or dies, the parent writes
in-process as before (`StoreWriter` reports that; `SQLiteSink` does it).
"""

from __future__ import annotations

import gc
import os
import re
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from llmobs.core.content import to_plain
from llmobs.core.model import Span, record_from_values
from llmobs.core.offload import Offloaded, finish_values

#: `finish(values)`: an offloaded span's JSON form, finished from its array (see `load_batch`).
Finisher = Callable[[list[Any]], dict[str, Any]]

_HEAD = struct.Struct("<cI")
#: An offloaded span's array: `to_values()` (every field but deferred and previous), then the
#: extractor's key and the payload.
_VALUES_LEN = len(Span.__dataclass_fields__) - 2
_OFFLOADED_LEN = _VALUES_LEN + 2
CONFIG, RAW, PREPARED, FLUSH, QUIT = b"C", b"R", b"P", b"F", b"Q"

#: How long a pipe write or an answer may take, beyond the store's own busy timeout, before the
#: child is taken for hung, killed, and the parent writes in-process instead.
STALL_GRACE_S = 20.0
#: How long the child may take to start and open the store.
START_TIMEOUT_S = 30.0
#: Pipe buffer asked for on Linux (the default 64 KiB holds a few dozen spans).
PIPE_BYTES = 1 << 20
#: After a delivery, the child's status lines are read once this many batches await theirs, or
#: this long after the last read: each read is a system call, and each system call on the
#: pipeline thread hands the GIL to the application and waits to get it back.
READ_STATUS_EVERY = 8
READ_STATUS_AFTER_S = 1.0
_F_SETPIPE_SZ = 1031
_READ_BYTES = 65536
#: The child's young-generation threshold (CPython's default is 700).
CHILD_GC_THRESHOLD = 20_000


#: The child's program. The `llmobs` package is registered without running its `__init__` (the
#: public API, OpenTelemetry, the integrations' registry): the child needs the store, the span
#: model and the content policy only, and starts in half the time and memory.
_BOOTSTRAP = (
    "import sys, types; package = types.ModuleType('llmobs'); package.__path__ = [{package!r}]; "
    "sys.modules['llmobs'] = package; from llmobs.core.writer import main; main()"
)


#: What a Python interpreter's file is called (python, python3.11, pypy3, python.exe, ...).
_PYTHON_NAME = re.compile(r"(?:python|pypy)[0-9.]*[a-z]?(?:\.exe)?", re.IGNORECASE)


class WriterGone(Exception):
    """The child is not running (it could not start, died or hung); the message says which."""


class StoreWriter:
    """The parent's side of one store writer process. Thread-safe.

    Args:
        path: the SQLite store.
        busy_timeout_s: how long the child waits for another process's write lock.
        max_spans: the store's retention cap.
        policy_options: `ContentPolicy.options()`, for batches sent raw.
        price_options: `Pricer.options()`, for offloaded spans the child prices.
        on_status: called with each status line the child sends (its counters are cumulative).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float,
        max_spans: int,
        policy_options: Mapping[str, Any] | None = None,
        price_options: Mapping[str, Any] | None = None,
        on_status: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self.max_spans = max_spans
        self.policy_options = dict(policy_options or {})
        self.price_options = dict(price_options or {})
        self.on_status = on_status
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the process that started the child (a forked copy must not use it)
        self._pending = b""  # the end of a status line not read yet
        self._eof = False  # the child closed its end: it exited
        self._answered = False  # a status came from this child (it started and opened the store)
        self._outbox: list[bytes] = []  # frames queued for the child, not written to it yet
        self._awaiting = 0  # batches written or queued whose status line has not been read
        self._read_at = 0.0  # when status lines were last read (time.monotonic())

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and self._pid == os.getpid() else None

    @property
    def queued(self) -> bool:
        """Whether batches wait for `deliver`."""
        return bool(self._outbox)

    # -- sending -------------------------------------------------------------------------------

    def queue(self, spans: Sequence[Span], *, raw: bool) -> tuple[bytes | None, list[Span]]:
        """Serialise a batch for the child: the JSON queued (None if nothing was), and the spans it lacks.

        The batch waits in memory, as bytes, until `deliver`. Raw batches are serialised with
        objects turned into JSON values the way the content policy does (`model_dump`, dataclass
        fields, `to_dict`, else `repr`); a span whose content JSON cannot hold (an integer beyond
        64 bits, a reference cycle) is returned for the caller to write in-process.
        """
        payload, rest = _serialise(spans)
        if payload is not None:
            with self._lock:
                self._outbox.append(_HEAD.pack(RAW if raw else PREPARED, len(payload)))
                self._outbox.append(payload)
                self._awaiting += 1
        return payload, rest

    def deliver(self) -> None:
        """Write the queued batches to the child, in one write. Raises WriterGone.

        Kept apart from `queue` because the write releases the GIL: the application thread runs
        meanwhile, and whatever the caller still holds then (the batch's spans) outlives its young
        garbage collections and gets promoted. The caller lets go of the spans first.
        """
        with self._lock:
            if self._outbox:
                self._send_queued()
            # Called after every drain, idle ones included: the status of a batch is read within
            # about READ_STATUS_AFTER_S of the child writing it, busy or not.
            if self._awaiting and (
                self._awaiting >= READ_STATUS_EVERY or time.monotonic() - self._read_at >= READ_STATUS_AFTER_S
            ):
                self._read_ready()

    def flush(self, timeout: float | None = None) -> Mapping[str, Any]:
        """Wait until the child has committed every batch sent so far; its status. Raises WriterGone."""
        with self._lock:
            self._outbox.append(_HEAD.pack(FLUSH, 0))
            self._send_queued()
            return self._answer(timeout)

    def close(self, timeout: float = 10.0) -> Mapping[str, Any] | None:
        """Let the child write what it has and exit; its last status (None if it was not running)."""
        with self._lock:
            proc = self._proc
            if proc is None or self._pid != os.getpid():
                self._proc = None
                return None
            status: Mapping[str, Any] | None = None
            try:
                self._outbox.append(_HEAD.pack(QUIT, 0))
                self._send_queued()
                status = self._answer(timeout)
                proc.wait(timeout)
            except (WriterGone, subprocess.TimeoutExpired):
                pass
            self._discard()
            return status

    # -- internals -----------------------------------------------------------------------------

    def _ensure(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is not None and self._pid == os.getpid():
            # Not proc.poll(): a system call, and each one on the pipeline thread hands the GIL
            # to the application and waits to get it back. A child that has exited fails the
            # write that follows (EPIPE), and `_write` says why it exited.
            if proc.returncode is None and not self._eof:
                return proc
            try:
                code = proc.wait(1)
            except subprocess.TimeoutExpired:
                code = None
            reason = _exit_reason(proc, code)
            self._discard()
            raise WriterGone(reason)
        if proc is not None:
            self.abandon_after_fork()
        return self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        executable = sys.executable
        if not executable:
            raise WriterGone("no Python executable to start the store writer with (sys.executable is empty)")
        if not _PYTHON_NAME.fullmatch(os.path.basename(executable)):
            # Embedded Python (uWSGI, mod_wsgi, Blender, ...): sys.executable is the host program,
            # which must not be started with Python's arguments.
            raise WriterGone(f"sys.executable ({executable}) is not a Python interpreter")
        env = dict(os.environ)
        # The child finds its modules where this process found them.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        # -P (3.11+): do not put the working directory first on the child's path.
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        try:
            proc = subprocess.Popen(
                [executable, *flags, "-c", _BOOTSTRAP.format(package=str(Path(__file__).resolve().parents[1]))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Only a crash writes here (a traceback): its last line explains an exit.
                stderr=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            raise WriterGone(f"cannot start the store writer process: {exc}") from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        # All three ends non-blocking: a read of what the child wrote so far is one system call.
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(stream.fileno(), False)
        try:
            import fcntl

            fcntl.fcntl(proc.stdin.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
        except Exception:  # not Linux, or a lower system limit: the default pipe works too
            pass
        self._proc = proc
        self._pid = os.getpid()
        self._pending = b""
        self._eof = False
        self._answered = False
        config = {
            "path": self.path,
            "busy_timeout_s": self.busy_timeout_s,
            "max_spans": self.max_spans,
            "policy": self.policy_options,
            "prices": self.price_options,
        }
        body = orjson.dumps(config)
        self._write(proc, _HEAD.pack(CONFIG, len(body)) + body)
        return proc

    def _send_queued(self) -> None:
        """Write every queued frame to the child (starting it if needed)."""
        data = b"".join(self._outbox)
        self._outbox.clear()
        self._write(self._ensure(), data)

    def _write(self, proc: subprocess.Popen[bytes], data: bytes) -> None:
        """Write all of `data` to the child, waiting while the pipe is full, at most a stall."""
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        view = memoryview(data)
        deadline = time.monotonic() + self.busy_timeout_s + STALL_GRACE_S
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                written = 0
            except (BrokenPipeError, OSError) as exc:
                try:
                    code = proc.wait(1)
                except subprocess.TimeoutExpired:
                    code = None
                reason = _exit_reason(proc, code) if code is not None else f"the store writer process is gone ({exc})"
                self._discard()
                raise WriterGone(reason) from exc
            view = view[written:]
            if view:
                # Answers wait in the other pipe meanwhile; read them so that the child never
                # blocks writing an answer while we block writing a batch.
                self._read_ready()
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise WriterGone("the store writer process stopped reading (killed)")
                select.select([], [fd], [], min(left, 0.5))

    def _answer(self, timeout: float | None) -> Mapping[str, Any]:
        """Read status lines until an answer to F or Q arrives."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        limit = self.busy_timeout_s + STALL_GRACE_S if timeout is None else timeout
        # A child that has not said anything yet is still starting (imports, opening the store).
        deadline = time.monotonic() + (limit if self._answered else max(limit, START_TIMEOUT_S))
        while True:
            for status in self._read_ready():
                if status.get("answer"):
                    return status
            if self._eof:
                try:
                    code = proc.wait(5)
                except subprocess.TimeoutExpired:
                    code = None
                reason = _exit_reason(proc, code)
                self._kill()
                raise WriterGone(reason)
            left = deadline - time.monotonic()
            if left <= 0:
                self._kill()
                raise WriterGone("the store writer process did not answer a flush in time (killed)")
            select.select([proc.stdout.fileno()], [], [], min(left, 0.5))

    def _read_ready(self) -> list[Mapping[str, Any]]:
        """Status lines the child has written so far (without waiting), handed to `on_status`."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return []
        fd = proc.stdout.fileno()
        self._read_at = time.monotonic()
        statuses: list[Mapping[str, Any]] = []
        chunk = b""
        while not self._eof:
            if chunk and len(chunk) < _READ_BYTES:
                break  # a short read took all there was: no second system call to learn that
            try:
                chunk = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                break
            if not chunk:
                self._eof = True
                break
            self._pending += chunk
            *lines, self._pending = self._pending.split(b"\n")
            for line in lines:
                try:
                    status = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                self._answered = True
                statuses.append(status)
                if not status.get("answer") and self._awaiting:
                    self._awaiting -= 1  # one status line per batch; answers are to F and Q
                if self.on_status is not None:
                    self.on_status(status)
        return statuses

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and self._pid == os.getpid():
            try:
                proc.kill()
                proc.wait(5)
            except Exception:
                pass
        self._discard()

    def _discard(self, *, forked: bool = False) -> None:
        """Forget the child: close our ends of its pipes and, unless in a forked copy, reap it."""
        proc = self._proc
        self._proc = None
        # Queued frames die with the child: the owner keeps each batch until the child confirms it.
        self._outbox.clear()
        self._awaiting = 0
        self._pending = b""
        self._eof = False
        self._answered = False
        if proc is None:
            return
        # Closing our ends is safe in a forked copy too: its descriptors are its own, and the
        # write buffer is empty (batches go through os.write).
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if forked:
            # The Popen object belongs to the parent: this copy must never wait for or kill its child.
            proc.returncode = 0
        else:
            # Reap it if it has exited; one still running sees its input end and exits on its own.
            proc.poll()

    def abandon_after_fork(self) -> None:
        """In a forked copy of the application: drop the parent's child without touching it.

        Called by the owning `SQLiteSink` after a fork; a writer used anyway before that (or
        outside a sink) does the same on its next use, seeing that the pid changed.
        """
        self._lock = threading.RLock()
        self._discard(forked=True)


def _exit_reason(proc: subprocess.Popen[bytes], code: int | None) -> str:
    """Why the child exited: its status and the last line it wrote to stderr (a traceback's)."""
    tail = b""
    stream = proc.stderr
    if stream is not None:
        try:
            tail = os.read(stream.fileno(), 65536)
        except (BlockingIOError, OSError, ValueError):
            pass
    lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines() if line.strip()]
    reason = f"the store writer process exited (status {code})"
    return f"{reason}: {lines[-1]}" if lines else reason


def json_fallback(value: Any) -> Any:
    """orjson's fallback for what it cannot serialise: JSON values as the content policy makes them."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {k if type(k) is str else str(k): v for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return to_plain(value)


def _serialise(spans: Sequence[Span]) -> tuple[bytes | None, list[Span]]:
    """One JSON list of the spans' `to_values()`, and the spans that JSON could not hold.

    `load_batch` reads it back. An offloaded span's array ends with the extractor's key and the
    payload, serialised in the same orjson call through the integration's `default`. Span by
    span, so that only one span's values are alive at a time (a whole batch of them would outlive
    young garbage collections and be promoted, and bring on full ones in the application), and a
    span that JSON cannot hold is left out alone.
    """
    dumps = orjson.dumps
    non_str_keys = orjson.OPT_NON_STR_KEYS
    parts: list[bytes] = []
    rest: list[Span] = []
    for span in spans:
        values = span.to_values()
        deferred = span.deferred
        if type(deferred) is Offloaded:
            try:
                parts.append(dumps((*values, deferred.key, deferred.payload), default=deferred.default))
                continue
            except (TypeError, orjson.JSONEncodeError):
                # What orjson refuses, in the payload or in the span's own fields: the payload made
                # to fit on its own, then the span's fields as for any span.
                values += (deferred.key, orjson.Fragment(deferred.encode()))
        try:
            # orjson's default path is faster; a mapping with a key that is not a string (raw
            # content, before the policy) takes the slower one that turns keys into strings.
            parts.append(dumps(values, default=json_fallback))
        except (TypeError, orjson.JSONEncodeError):
            try:
                parts.append(dumps(values, default=json_fallback, option=non_str_keys))
            except (TypeError, orjson.JSONEncodeError):
                rest.append(span)
    if not parts:
        return None, rest
    return b"[" + b",".join(parts) + b"]", rest


def load_batch(payload: bytes, finish: Finisher | None = None) -> list[dict[str, Any]]:
    """The spans of a batch `_serialise` made, in their JSON form (`Span.to_dict()`'s).

    An offloaded span's array goes through `finish` (`offload.finish_values` with a pricer);
    without `finish` it is kept as it came, unextracted.
    """
    records = []
    for values in orjson.loads(payload):
        if len(values) == _OFFLOADED_LEN:
            records.append(finish(values) if finish is not None else record_from_values(values[:_VALUES_LEN]))
        else:
            records.append(record_from_values(values))
    return records


# -- the child ---------------------------------------------------------------------------------


def main() -> None:
    """The child's entry point: read frames from stdin until told to quit or the pipe closes."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        # Started from llmobs' pipeline thread, which blocks the application's signals: not here.
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Every batch becomes thousands of short-lived dicts and lists, none of them in a reference
    # cycle: young collections would walk them for nothing. The modules loaded so far are never
    # collected either.
    gc.freeze()
    gc.set_threshold(CHILD_GC_THRESHOLD, 10, 10)
    raise SystemExit(_serve(sys.stdin.buffer, sys.stdout.buffer))


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _serve(inp: IO[bytes], out: IO[bytes]) -> int:
    from llmobs.core import store
    from llmobs.core.content import ContentPolicy
    from llmobs.core.sinks.sqlite import explain_store_error

    head = _read_exact(inp, _HEAD.size)
    if head is None or head[:1] != CONFIG:
        return 2
    body = _read_exact(inp, _HEAD.unpack(head)[1])
    if body is None:
        return 2
    config = orjson.loads(body)
    path = Path(config["path"])
    busy = float(config["busy_timeout_s"])
    max_spans = int(config["max_spans"])
    policy = ContentPolicy(**config["policy"])
    counts: dict[str, Any] = {"batches": 0, "written": 0, "failed": 0, "priced": 0, "unpriced": 0, "last_error": None}
    conn = None
    pricer: Any = None

    def finish(values: list[Any]) -> dict[str, Any]:
        # Offloaded spans: genai-prices is loaded on the first one.
        nonlocal pricer
        if pricer is None:
            from llmobs.core.pricing import Pricer

            pricer = Pricer(config.get("prices") or {}, read_env=False)
        finished, priced = finish_values(values, pricer)
        if priced is not None:
            counts["priced" if priced else "unpriced"] += 1
        return finished

    def status(answer: bool) -> None:
        line = {**counts, "cpu_s": time.process_time(), "answer": answer}
        out.write(orjson.dumps(line) + b"\n")
        out.flush()

    while True:
        head = _read_exact(inp, _HEAD.size)
        if head is None:
            return 0  # the parent is gone: everything it sent is written
        kind, size = _HEAD.unpack(head)
        payload = _read_exact(inp, size) if size else b""
        if payload is None:
            return 0
        if kind in (FLUSH, QUIT):
            status(True)
            if kind == QUIT:
                return 0
            continue
        counts["batches"] += 1
        try:
            # The spans stay in their JSON form: the policy and the rows work on it directly.
            records = load_batch(payload, finish)
            if kind == RAW:
                for record in records:
                    policy.apply_record(record)
            if conn is None:
                conn = store.connect(path, busy_timeout_s=busy)
            store.insert_records(conn, records, busy_timeout_s=busy, single_threaded=True)
            counts["written"] += len(records)
            if counts["batches"] % store.PRUNE_EVERY_BATCHES == 0:
                store.prune(conn, max_spans)
        except Exception as exc:
            counts["failed"] += 1
            counts["last_error"] = explain_store_error(path, busy, exc)
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
        # Every batch is confirmed, so that the parent can let go of it (or write it itself if
        # this process dies before confirming).
        status(False)
