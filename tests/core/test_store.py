"""The local SQLite store: nothing lost at exit, concurrent writers, schema, retention."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import llmobs
from llmobs.core import store
from llmobs.core.model import Span, SpanKind, Status, Usage
from llmobs.core.runtime import get_runtime
from llmobs.core.sinks import SQLiteSink

RECORD_SPANS = textwrap.dedent(
    """
    import sys
    import llmobs
    n, tag, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    llmobs.configure(service_name=tag, batch_size=int(sys.argv[4]) if len(sys.argv) > 4 else 512)
    for i in range(n):
        with llmobs.span(f"{tag}-{i}", kind="chain") as s:
            s.attributes["i"] = i
    if how == "sys.exit":
        sys.exit(0)
    # "normal": fall off the end without calling flush
    """
)


def run_recorder(db: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LLMOBS_DB": str(db)}
    return subprocess.Popen([sys.executable, "-c", RECORD_SPANS, *args], env=env)


@pytest.mark.parametrize("how", ["normal", "sys.exit"])
def test_a_process_that_exits_without_flush_leaves_every_span(isolated_llmobs: Path, how: str) -> None:
    proc = run_recorder(isolated_llmobs, "5000", "exiter", how)
    assert proc.wait(timeout=120) == 0
    conn = sqlite3.connect(isolated_llmobs)
    assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 5000
    names = {row[0] for row in conn.execute("SELECT name FROM spans")}
    assert names == {f"exiter-{i}" for i in range(5000)}


def test_two_processes_writing_one_store_at_once_lose_nothing(isolated_llmobs: Path) -> None:
    # Small batches so the two writers interleave many transactions.
    procs = [run_recorder(isolated_llmobs, "4000", tag, "normal", "50") for tag in ("alpha", "beta")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    conn = sqlite3.connect(isolated_llmobs)
    counts = dict(conn.execute("SELECT service, COUNT(DISTINCT name) FROM spans GROUP BY service").fetchall())
    assert counts == {"alpha": 4000, "beta": 4000}
    assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 8000


def test_schema_wal_indexes_and_version(isolated_llmobs: Path) -> None:
    with llmobs.span("x"):
        pass
    assert llmobs.flush()
    conn = sqlite3.connect(isolated_llmobs)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    indexes = {row[1] for row in conn.execute("PRAGMA index_list('spans')")}
    assert {"spans_trace_key", "spans_start_ns"} <= indexes


def test_rows_hold_the_contract_json_and_summary_columns(isolated_llmobs: Path) -> None:
    with llmobs.span("root", kind="workflow"):
        with llmobs.span("chat gpt-4o", kind="llm", model="gpt-4o", provider="openai") as s:
            s.usage = Usage(input_tokens=1000, output_tokens=100)
    assert llmobs.flush()
    conn = store.connect(isolated_llmobs, readonly=True)
    (summary,) = store.recent_traces(conn)
    assert summary.root_name == "root"
    assert summary.spans == 2
    assert (summary.input_tokens, summary.output_tokens) == (1000, 100)
    assert summary.cost_usd == pytest.approx(0.0035)
    spans = store.trace_spans(conn, summary.trace_id)
    assert [s.name for s in spans] == ["root", "chat gpt-4o"]
    assert spans[1].parent_id == spans[0].span_id
    raw = [json.loads(data) for _seq, data in store.iter_span_json(conn)]
    assert [r["name"] for r in raw] == ["chat gpt-4o", "root"]  # insertion order: children end first


def test_the_writer_process_insert_stores_the_same_rows_as_the_pipeline_threads(tmp_path: Path) -> None:
    # The writer process inserts with executemany, the pipeline thread with statements of many
    # rows (_ROWS_PER_STATEMENT each): more spans than one such statement holds, mixed fields.
    records = []
    for i in range(300):
        span = Span(trace_id=f"{i % 7:032x}", span_id=f"{i:016x}", name=f"s{i}", start_ns=i, end_ns=i + 5)
        if i % 3 == 0:
            span.usage = Usage(input_tokens=i, output_tokens=1)
            span.model = "gpt-4o"
        span.input = {"i": i, "text": "é" * (i % 5)}
        records.append(span.to_dict())
    tables = []
    for single_threaded in (False, True):
        conn = store.connect(tmp_path / f"{single_threaded}.db")
        store.insert_records(conn, records, single_threaded=single_threaded)
        rows = conn.execute("SELECT * FROM spans ORDER BY seq").fetchall()
        names = [d[0] for d in conn.execute("SELECT * FROM spans LIMIT 0").description]
        conn.close()
        inserted = names.index("inserted_ns")
        tables.append([row[:inserted] + row[inserted + 1 :] for row in rows])
    assert len(tables[0]) == 300
    assert tables[0] == tables[1]
    assert json.loads(tables[1][3][-1])["usage"]["input_tokens"] == 3


def test_the_write_ahead_log_is_copied_back_every_few_thousand_pages_and_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    conn = store.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    batch = []
    largest = 0
    for i in range(6000):  # about 24 MB of rows, in batches of 200 (about 240 pages each)
        span = Span(trace_id=f"{i:032x}", span_id=f"{i:016x}", name="s", start_ns=i, end_ns=i + 1)
        span.input = f"{i:08d}" + "x" * 4000
        batch.append(span.to_dict())
        if len(batch) == 200:
            store.insert_records(conn, batch, single_threaded=True)
            batch = []
            largest = max(largest, os.path.getsize(f"{path}-wal") // page)
    conn.close()
    # Well beyond SQLite's default of 1,000 pages between copies (fewer writes of the same
    # index pages), and never more than ours and one batch: the log is reused once copied.
    assert 2000 < largest <= store.WAL_AUTOCHECKPOINT_PAGES + 300
    reader = store.connect(path, readonly=True)
    assert store.count_spans(reader) == 6000
    reader.close()


def test_retention_prunes_the_oldest(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "small.db", max_spans=100)
    llmobs.configure(sinks=[sink], batch_size=10, flush_interval=0.001)
    for i in range(1000):
        with llmobs.span(f"s{i}"):
            pass
    assert llmobs.flush()
    conn = sqlite3.connect(tmp_path / "small.db")
    count = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    assert 100 <= count <= 100 + 64 * 10  # pruned every 64 batches
    assert conn.execute("SELECT name FROM spans ORDER BY seq DESC LIMIT 1").fetchone()[0] == "s999"
    assert conn.execute("SELECT COUNT(*) FROM spans WHERE name = 's0'").fetchone()[0] == 0


def _reference_recent_traces(conn: sqlite3.Connection, limit: int) -> list[tuple[object, ...]]:
    """What `llmobs traces` lists, from one query over the whole store."""
    return conn.execute(
        "SELECT trace_id, MIN(start_ns), MAX(end_ns), COUNT(*), SUM(status = 'error'),"
        " SUM(CASE WHEN kind = 'llm' THEN COALESCE(input_tokens, 0) ELSE 0 END)"
        " FROM spans GROUP BY trace_id ORDER BY MIN(start_ns) DESC, trace_id LIMIT ?",
        (limit,),
    ).fetchall()


def _listed(summaries: list[store.TraceSummary]) -> list[tuple[object, ...]]:
    return [(s.trace_id, s.start_ns, s.end_ns, s.spans, s.errors, s.input_tokens) for s in summaries]


def _store_of(tmp_path: Path, spans: list[Span]) -> sqlite3.Connection:
    conn = store.connect(tmp_path / "walk.db")
    store.insert_spans(conn, spans)
    return conn


def _mixed_traces() -> list[Span]:
    """Traces that overlap in time, some starting at the same instant, some long-running (a span
    long after their start), and one of many spans, inserted in no particular order."""
    import random

    rng = random.Random(5)
    spans = []
    for t in range(300):
        trace_id = f"{rng.getrandbits(128):032x}"
        start = rng.randrange(0, 10_000) // 7 * 7  # a few shared start instants
        size = 400 if t == 17 else rng.randint(1, 6)
        for i in range(size):
            late = rng.random() < 0.05
            begin = start + (rng.randrange(5_000, 20_000) if late else i)
            span = Span(
                trace_id=trace_id, span_id=f"{t:08x}{i:08x}", name=f"t{t}-{i}", start_ns=begin, end_ns=begin + 3
            )
            span.kind = SpanKind.LLM if i % 2 else SpanKind.CHAIN
            span.usage = Usage(input_tokens=i, output_tokens=1) if i % 2 else None
            span.status = Status.ERROR if rng.random() < 0.1 else Status.OK
            spans.append(span)
    rng.shuffle(spans)
    return spans


def _an_old_trace_with_the_newest_spans() -> list[Span]:
    """Ten traces, then one that started before all of them and has the 600 newest spans: a
    reader that stopped once it had met enough traces would list that old one first."""
    spans = [
        Span(trace_id=f"{t + 1:032x}", span_id=f"{t + 1:016x}", name=f"t{t}", start_ns=100 + t, end_ns=200 + t)
        for t in range(10)
    ]
    spans += [
        Span(
            trace_id="f" * 32,
            span_id=f"{i + 1:016x}",
            name="old",
            start_ns=0 if i == 0 else 1_000 + i,
            end_ns=2_000 + i,
        )
        for i in range(600)
    ]
    return spans


def _many_traces_started_at_one_instant() -> list[Span]:
    """600 traces that started at the same instant, the newest: which of them come first is
    decided by trace id, and a reader must see them all to know."""
    import random

    ids = [f"{random.Random(i).getrandbits(128):032x}" for i in range(600)]
    return [
        Span(trace_id=t, span_id=f"{i + 1:016x}", name="tie", start_ns=5_000, end_ns=5_001) for i, t in enumerate(ids)
    ]


@pytest.mark.parametrize(
    "spans", [_mixed_traces, _an_old_trace_with_the_newest_spans, _many_traces_started_at_one_instant]
)
@pytest.mark.parametrize("walk_max", [store._WALK_MAX_SPANS, 100])
def test_recent_traces_read_from_the_newest_span_back_list_what_grouping_the_store_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, walk_max: int, spans: Callable[[], list[Span]]
) -> None:
    # With a walk limit of 100 spans the store is grouped whole instead, and must list the same.
    monkeypatch.setattr(store, "_WALK_MAX_SPANS", walk_max)
    conn = _store_of(tmp_path, spans())
    for limit in (1, 5, 20, 299, 300, 1000):
        assert _listed(store.recent_traces(conn, limit=limit)) == _reference_recent_traces(conn, limit)


def test_trace_id_prefixes(isolated_llmobs: Path) -> None:
    conn = store.connect(isolated_llmobs)
    ids = ["abc1" + "0" * 27 + "1", "abc2" + "0" * 27 + "2", "f" * 32]
    store.insert_spans(conn, [Span(trace_id=t, span_id="1" * 16, name="x", start_ns=1, end_ns=2) for t in ids])
    assert store.resolve_trace_id(conn, "abc1") == ids[0]
    assert store.resolve_trace_id(conn, "ABC2") == ids[1]
    assert store.resolve_trace_id(conn, "f") == ids[2]
    with pytest.raises(store.StoreError, match="matches several traces"):
        store.resolve_trace_id(conn, "abc")
    with pytest.raises(store.StoreError, match="no trace starts with"):
        store.resolve_trace_id(conn, "0")
    with pytest.raises(store.StoreError, match="not a trace id"):
        store.resolve_trace_id(conn, "xyz")


def test_a_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(store.StoreError, match="no llmobs store at"):
        store.connect(tmp_path / "nope.db", readonly=True)


def blocked_signals(pid: int, tid: int | None = None) -> int:
    """The signal mask (SigBlk) of a process, or of one of its threads, from /proc."""
    path = f"/proc/{pid}/task/{tid}/status" if tid is not None else f"/proc/{pid}/status"
    status = Path(path).read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread signal masks from Linux /proc")
def test_signals_reach_the_main_thread_not_ours(isolated_llmobs: Path) -> None:
    # The kernel hands a process's signal to any thread not blocking it; one that lands on our
    # pipeline thread would not wake the main thread from a sleep, and a SIGTERM handler would
    # wait for the sleep to end (the SIGTERM test below hung that way, now and then).
    llmobs.configure(flush_interval=60)
    with llmobs.span("x"):
        pass
    assert llmobs.flush(timeout=10)
    thread = get_runtime().pipeline._thread
    assert thread is not None and thread.native_id is not None
    both = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
    assert blocked_signals(os.getpid(), thread.native_id) & both == both
    assert blocked_signals(os.getpid(), threading.main_thread().native_id) & both == 0
    # The store's writer process, started from that thread, does not inherit its mask.
    writer_pid = llmobs.health()["sinks"]["sqlite"]["writer_pid"]
    assert writer_pid is not None and blocked_signals(writer_pid) == 0


def test_sigterm_flushes_what_was_recorded_then_dies_of_sigterm(isolated_llmobs: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        import llmobs
        llmobs.configure(flush_interval=60)  # nothing is written until something flushes
        for i in range(5000):
            with llmobs.span(f"s{i}"):
                pass
        print("recorded", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "recorded"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    conn = sqlite3.connect(isolated_llmobs)
    assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 5000


def test_an_app_with_its_own_sigterm_handler_keeps_it(isolated_llmobs: Path) -> None:
    script = textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))  # the app's orderly shutdown
        import llmobs
        llmobs.configure(flush_interval=60)
        for i in range(100):
            with llmobs.span(f"s{i}"):
                pass
        print("recorded", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "recorded"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3  # the app's handler ran, then atexit flushed
    conn = sqlite3.connect(isolated_llmobs)
    assert conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0] == 100


def test_a_new_store_is_private_to_its_owner(tmp_path: Path) -> None:
    db = tmp_path / "private" / "traces.db"
    llmobs.configure(db_path=db)
    with llmobs.span("x"):
        pass
    assert llmobs.flush()
    assert db.stat().st_mode & 0o777 == 0o600
    assert db.parent.stat().st_mode & 0o777 == 0o700
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_mode & 0o077 == 0


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "v1.db"
    old = sqlite3.connect(db)
    old.executescript(
        """
        CREATE TABLE spans (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT,
            name TEXT NOT NULL, kind TEXT NOT NULL, framework TEXT NOT NULL, service TEXT NOT NULL,
            start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, duration_ms REAL NOT NULL, status TEXT NOT NULL,
            model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, cost_usd REAL, ttft_ms REAL,
            inserted_ns INTEGER NOT NULL, data TEXT NOT NULL);
        CREATE INDEX spans_trace_id ON spans (trace_id);
        PRAGMA user_version = 1;
        """
    )
    span = Span(trace_id="ab" * 16, span_id="1" * 16, name="old", start_ns=10**18, end_ns=10**18 + 5)
    row = store.span_row(span, 0)[1:]  # the v1 row had no trace_key
    old.execute(
        "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, framework, service, start_ns, end_ns,"
        " duration_ms, status, model, provider, input_tokens, output_tokens, cost_usd, ttft_ms, inserted_ns, data)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        row,
    )
    old.commit()
    old.close()
    conn = store.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert [s.name for s in store.trace_spans(conn, "ab" * 16)] == ["old"]
    assert store.resolve_trace_id(conn, "abab") == "ab" * 16
    store.insert_spans(
        conn, [Span(trace_id="ab" * 16, span_id="2" * 16, name="new", start_ns=10**18 + 1, end_ns=10**18 + 2)]
    )
    assert [s.name for s in store.trace_spans(conn, "ab" * 16)] == ["old", "new"]
