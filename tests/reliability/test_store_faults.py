"""Store faults: a store that cannot be written gives one clear warning and nothing into the app."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import llmobs
from llmobs.cli.main import cli
from llmobs.core import store
from llmobs.core.sinks import MemorySink, SQLiteSink


def record(n: int) -> None:
    """What the application does: record spans. Nothing may raise out of here."""
    for i in range(n):
        with llmobs.span(f"s{i}"):
            pass


def warnings_about_store(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot write to the local store" in r.getMessage()]


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


def test_a_folder_that_cannot_be_created(tmp_path: Path, memory: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    db = blocker / "traces.db"
    llmobs.configure(sinks=[SQLiteSink(db), memory], batch_size=5, flush_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        record(20)
        assert llmobs.flush()
    assert len(memory.spans) == 20  # the other sinks still get everything
    (message,) = warnings_about_store(caplog)
    assert str(db) in message and "folder cannot be created" in message
    health = llmobs.health()
    assert health["sinks"]["sqlite"]["errors"] >= 1 and health["sinks"]["sqlite"]["written"] == 0


def test_a_missing_folder_is_created(tmp_path: Path) -> None:
    db = tmp_path / "new" / "deeper" / "traces.db"
    llmobs.configure(db_path=db)
    record(3)
    assert llmobs.flush()
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 3


@pytest.fixture
def immutable_store(tmp_path: Path) -> Iterator[Path]:
    """A store whose file even root cannot write (the immutable attribute)."""
    db = tmp_path / "ro" / "traces.db"
    conn = store.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # no -wal/-shm files left to write
    conn.close()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available")
    if subprocess.run(["chattr", "+i", str(db), str(db.parent)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute")
    try:
        yield db
    finally:
        subprocess.run(["chattr", "-i", str(db), str(db.parent)], check=False)


def test_a_read_only_store(immutable_store: Path, memory: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    llmobs.configure(sinks=[SQLiteSink(immutable_store), memory], batch_size=5, flush_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        record(20)
        assert llmobs.flush()
    assert len(memory.spans) == 20
    (message,) = warnings_about_store(caplog)
    assert str(immutable_store) in message
    assert "LLMOBS_DB" in message
    # The CLI can still read it.
    result = CliRunner().invoke(cli, ["traces", "--db", str(immutable_store)])
    assert result.exit_code == 0, result.output


class FullDiskSink(SQLiteSink):
    """A store on a disk with room for a few pages only: SQLite answers SQLITE_FULL."""

    def _connection(self) -> sqlite3.Connection:
        conn = super()._connection()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return conn


def test_a_full_disk(tmp_path: Path, memory: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    sink = FullDiskSink(tmp_path / "full.db", writer="inline")  # the connection it limits is this process's
    llmobs.configure(sinks=[sink, memory], batch_size=50, flush_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        for i in range(500):
            with llmobs.span(f"s{i}", input="x" * 2000):
                pass
        assert llmobs.flush()
    assert len(memory.spans) == 500
    (message,) = warnings_about_store(caplog)
    assert "disk is full" in message
    assert llmobs.health()["sinks"]["sqlite"]["errors"] >= 1


def test_a_store_locked_by_another_process(
    tmp_path: Path, memory: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "locked.db"
    store.connect(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process sits on the write lock
    llmobs.configure(sinks=[SQLiteSink(db, busy_timeout_s=0.2), memory], flush_interval=0.001)
    with caplog.at_level(logging.WARNING, logger="llmobs"):
        record(10)  # returns at once: the app never waits for the lock
        assert llmobs.flush(timeout=10)
        (message,) = warnings_about_store(caplog)
        assert "write lock for more than 0.2s" in message
        holder.execute("ROLLBACK")
        holder.close()
        record(5)  # the next batch finds the store free again
        assert llmobs.flush(timeout=10)
    assert len(memory.spans) == 15
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 5


def test_the_cli_says_what_is_wrong(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(cli, ["traces", "--db", str(garbage)])
    assert result.exit_code == 1
    assert f"cannot open llmobs store {garbage}" in result.output and "not a database" in result.output
    missing = CliRunner().invoke(cli, ["show", "abc", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 1
    assert "no llmobs store at" in missing.output and "LLMOBS_DB" in missing.output
