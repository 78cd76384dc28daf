"""The store writer process: what reaches the store is what the in-process path stores, and a
writer that cannot start, dies or hangs costs no span."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

import llmobs
from llmobs.core import writer as writer_module
from llmobs.core.content import ContentPolicy
from llmobs.core.model import Span
from llmobs.core.sinks import SQLiteSink

POLICY: dict[str, Any] = {"max_content_chars": 40, "redact_paths": ["attributes.user.email"], "redact_keys": "ssn"}


class Ticket(BaseModel):
    id: int
    title: str
    note: str | None = None


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


def record_mixed_content() -> None:
    """Spans whose content holds what applications really put there."""
    with llmobs.span("root", kind="agent", input={"question": "q " * 100}) as root:
        root.attributes["user"] = {"email": "ann@example.com", "name": "Ann"}
        root.attributes["tags"] = ("a", "b")
        for i in range(30):
            with llmobs.span(f"step {i}", kind="tool") as span:
                span.input = {
                    "token": "sk-abcdefghijklmnopqrstuvwxyz123456",
                    "password": "hunter22",
                    "ssn": "123-45-6789",
                    "ticket": Ticket(id=i, title="printer on fire"),
                    "point": Point(i, -i),
                    "blob": b"\x00\x01\x02",
                    "ids": {7},
                    "opaque": Opaque(),
                    3: "int key",
                    "nested": [{"deep": {"api_key": "abc", "text": "x" * 100}}],
                }
                span.output = ["fine", None, True, 1.5, 2**40]
        with pytest.raises(ValueError), llmobs.span("failing", kind="llm"):
            raise ValueError("Bearer abcdefghijklmnop broke it")


def stored(db: Path) -> list[dict[str, Any]]:
    """The stored spans in start order, without what differs from one run to the next."""
    conn = sqlite3.connect(db)
    rows = [orjson.loads(data) for (data,) in conn.execute("SELECT data FROM spans ORDER BY start_ns, name")]
    conn.close()
    volatile = ("trace_id", "span_id", "parent_id", "start_ns", "end_ns", "duration_ms")
    return [{k: v for k, v in row.items() if k not in volatile} for row in rows]


def writer_stats() -> dict[str, Any]:
    return dict(llmobs.health()["sinks"]["sqlite"])


def test_the_writer_process_stores_what_the_pipeline_thread_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("inline", "process"):
        monkeypatch.setenv("LLMOBS_STORE_WRITER", mode)
        db = tmp_path / f"{mode}.db"
        llmobs.configure(db_path=db, service_name="writer-test", **POLICY)
        record_mixed_content()
        assert llmobs.flush(timeout=30)
        stats = writer_stats()
        assert stats["writer"] == mode
        if mode == "process":
            assert stats["writer_pid"] not in (None, os.getpid())
            assert stats["written"] == 32 and stats["errors"] == 0
            assert stats["writer_cpu_s"] > 0
        llmobs.shutdown()
        results[mode] = stored(db)
    assert len(results["process"]) == 32
    assert results["process"] == results["inline"]
    step = next(row for row in results["process"] if row["name"] == "step 0")
    # The policy ran (in the child): redaction by pattern, by key, by path; truncation; objects.
    assert step["input"]["token"] == "[REDACTED]"
    assert step["input"]["password"] == "[REDACTED]" and step["input"]["ssn"] == "[REDACTED]"
    assert step["input"]["ticket"] == {"id": 0, "title": "printer on fire"}
    assert step["input"]["blob"] == "<3 bytes>" and step["input"]["ids"] == [7]
    assert step["input"]["nested"][0]["deep"]["text"].endswith("…[truncated 60 chars]")
    root = next(row for row in results["process"] if row["name"] == "root")
    assert root["attributes"]["user"] == {"email": "[REDACTED]", "name": "Ann"}
    failing = next(row for row in results["process"] if row["name"] == "failing")
    assert failing["error"] == {"type": "ValueError", "message": "[REDACTED] broke it"}


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])
    finally:
        conn.close()


def record(n: int, prefix: str = "s") -> None:
    for i in range(n):
        with llmobs.span(f"{prefix}{i}", input=f"input {i}"):
            pass


def test_the_writers_reports_reach_health_without_a_flush(tmp_path: Path) -> None:
    # Status lines are read every few batches, and within about a second when the app is idle.
    llmobs.configure(db_path=tmp_path / "traces.db", flush_interval=0.01, batch_size=5)
    record(12)
    deadline = time.monotonic() + 10
    while llmobs.health()["exported"] < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert llmobs.health()["exported"] == 12
    assert count_rows(tmp_path / "traces.db") == 12


def test_a_killed_writer_is_replaced_and_its_unwritten_batches_are_written_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_module, "STALL_GRACE_S", 1.0)
    db = tmp_path / "traces.db"
    llmobs.configure(sinks=[SQLiteSink(db, busy_timeout_s=0.5)], batch_size=10, flush_interval=0.001)
    record(20)
    assert llmobs.flush(timeout=30)
    first = writer_stats()["writer_pid"]
    assert count_rows(db) == 20
    # The child stops (it still holds what it was sent), then dies without writing it.
    os.kill(first, signal.SIGSTOP)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        record(50, "after")
        time.sleep(0.2)  # the pipeline sends the batches to the stopped child
        os.kill(first, signal.SIGKILL)
        assert llmobs.flush(timeout=30)
        record(30, "later")
        assert llmobs.flush(timeout=30)
    assert count_rows(db) == 100
    stats = writer_stats()
    assert stats["writer"] == "process" and stats["writer_pid"] not in (None, first)
    assert stats["written"] == 100
    assert any("store writer process" in r.getMessage() for r in caplog.records)


def test_a_hung_writer_is_killed_and_its_batches_are_written_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "STALL_GRACE_S", 0.5)
    db = tmp_path / "traces.db"
    llmobs.configure(sinks=[SQLiteSink(db, busy_timeout_s=0.1)], batch_size=10, flush_interval=0.001)
    record(5)
    assert llmobs.flush(timeout=30)
    pid = writer_stats()["writer_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        record(40)
        assert llmobs.flush(timeout=30)  # the flush answer never comes: killed after 0.6 s
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert count_rows(db) == 45


def test_a_batch_rewritten_here_gets_the_content_policy_it_was_sent_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "STALL_GRACE_S", 0.5)
    db = tmp_path / "traces.db"
    sink = SQLiteSink(db, busy_timeout_s=0.1)
    assert sink.takes_raw_spans(ContentPolicy(max_chars=40, redact_keys="ssn"))  # the child applies it

    def span(name: str) -> Span:
        return Span("a" * 32, "b" * 16, name, start_ns=1, end_ns=2, input={"ssn": "078-05-1120", "text": "x" * 100})

    sink.write([span("confirmed")])
    sink.flush()
    pid = sink.stats()["writer_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        sink.write([span("sent to a stopped writer")])
        # Online evaluation starts: later batches reach the sink with the policy already applied.
        assert not sink.takes_raw_spans(None)
    finally:
        os.kill(pid, signal.SIGKILL)
    sink.flush()  # the writer is gone: what it had not confirmed is written here, with its policy
    sink.close()
    rows = {row["name"]: row for row in stored(db)}
    assert set(rows) == {"confirmed", "sent to a stopped writer"}
    for row in rows.values():
        assert row["input"]["ssn"] == "[REDACTED]"
        assert row["input"]["text"].endswith("…[truncated 60 chars]")


def test_no_writer_process_means_the_pipeline_thread_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "")
    db = tmp_path / "traces.db"
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        llmobs.configure(db_path=db, batch_size=5, flush_interval=0.001)
        for _ in range(6):
            record(5)
            assert llmobs.flush(timeout=30)
    assert count_rows(db) == 30
    stats = writer_stats()
    assert stats["writer"] == "inline" and stats["written"] == 30
    messages = [r.getMessage() for r in caplog.records if "store writer" in r.getMessage()]
    assert len(messages) == 2 and all("sys.executable is empty" in m for m in messages)


def test_an_unwritable_store_is_reported_from_the_writer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        llmobs.configure(db_path=blocker / "traces.db", batch_size=5, flush_interval=0.001)
        record(12)
        assert llmobs.flush(timeout=30)
    stats = writer_stats()
    assert stats["writer"] == "process" and stats["written"] == 0 and stats["errors"] >= 1
    assert "folder cannot be created" in stats["last_error"]
    assert llmobs.health()["sink_errors"] >= 1
    warnings = [r.getMessage() for r in caplog.records if "cannot write to the local store" in r.getMessage()]
    assert len(warnings) == 1


def test_a_forked_process_gets_its_own_writer(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    llmobs.configure(db_path=db, flush_interval=0.001)
    record(10, "parent")
    assert llmobs.flush(timeout=30)
    parent_writer = writer_stats()["writer_pid"]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the forked child reports through its exit status
        code = 1
        try:
            before = llmobs.health()["processed"]
            record(10, "child")
            # The child has a pipeline worker of its own: its spans go out without a flush.
            deadline = time.monotonic() + 20
            while llmobs.health()["processed"] < before + 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            if llmobs.health()["processed"] < before + 10:
                os._exit(4)
            ok = llmobs.flush(timeout=30)
            child_writer = writer_stats()["writer_pid"]
            code = 0 if ok and child_writer not in (None, parent_writer) else 3
            llmobs.shutdown()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record(10, "parent-again")
    assert llmobs.flush(timeout=30)
    assert writer_stats()["writer_pid"] == parent_writer
    assert count_rows(db) == 30


def run_app(db: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` as an application in a fresh interpreter, llmobs configured on `db`.

    `body` may call `record(n)` (n spans) and use `os`, `signal` and `llmobs`.
    """
    head = f"""
        import os, signal
        import llmobs
        llmobs.configure(db_path={str(db)!r}, flush_interval=0.001)

        def record(n):
            for i in range(n):
                with llmobs.span(f"s{{i}}"):
                    pass
        """
    script = textwrap.dedent(head) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_spans_left_at_exit_are_written_and_ctrl_c_does_not_kill_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    result = run_app(
        db,
        """
        record(10)
        llmobs.flush()
        writer = llmobs.health()["sinks"]["sqlite"]["writer_pid"]
        os.kill(writer, signal.SIGINT)  # what a Ctrl-C in the terminal sends it too
        record(200)
        # no flush: the exit hook hands the rest to the writer and waits for it
        """,
    )
    assert result.returncode == 0, result.stderr
    assert count_rows(db) == 210


def test_an_embedded_interpreter_is_not_started_as_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Under uWSGI or mod_wsgi, sys.executable is the host program: starting it with Python's
    # arguments would start another server. The store is written in-process instead.
    monkeypatch.setattr(sys, "executable", "/usr/bin/uwsgi")
    db = tmp_path / "traces.db"
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        llmobs.configure(db_path=db, flush_interval=0.001)
        record(7)
        assert llmobs.flush(timeout=30)
    assert count_rows(db) == 7
    assert any("/usr/bin/uwsgi) is not a Python interpreter" in r.getMessage() for r in caplog.records)


def running(pid: int) -> bool:
    """The process exists and is not a zombie (without an init to reap it, an exited orphan stays one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_the_writer_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    result = run_app(
        db,
        """
        record(300)
        llmobs.flush()
        record(100)
        llmobs.flush()
        print(llmobs.health()["sinks"]["sqlite"]["writer_pid"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert result.returncode == -signal.SIGKILL
    writer = int(result.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running(writer):
        time.sleep(0.05)
    assert not running(writer), "the writer process was left running"
    assert count_rows(db) == 400


def test_the_writer_mode_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ValueError, match="store writer must be one of process, inline, not 'thread'"):
        SQLiteSink(tmp_path / "a.db", writer="thread")
    # A typo in the environment must not break the application: logged, and the default used.
    monkeypatch.setenv("LLMOBS_STORE_WRITER", "proces")
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        assert SQLiteSink(tmp_path / "b.db").writer_mode == "process"
    assert any("LLMOBS_STORE_WRITER='proces' is not one of process, inline" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("LLMOBS_STORE_WRITER", " Inline ")
    assert SQLiteSink(tmp_path / "c.db").writer_mode == "inline"


def test_a_writer_that_crashes_says_why_and_the_store_is_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(writer_module, "_BOOTSTRAP", "import sys; sys.exit('ImportError: no module named orjson')")
    db = tmp_path / "traces.db"
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        llmobs.configure(db_path=db, flush_interval=0.001)
        for _ in range(5):  # more batches than restarts
            record(4)
            assert llmobs.flush(timeout=30)
    assert count_rows(db) == 20
    assert writer_stats()["writer"] == "inline"
    first, last = [r.getMessage() for r in caplog.records if "store writer" in r.getMessage()]
    assert "exited (status 1): ImportError: no module named orjson" in first
    assert "written in-process from now on" in last
