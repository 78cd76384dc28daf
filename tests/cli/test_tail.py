"""`llmobs tail`: replay, every filter, line rendering, tree placement, and following a store
that another process writes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path

import pytest

from llmobs.cli.tail_lines import LineLayout, TreePlacer, span_line
from llmobs.core import store
from llmobs.core.model import Span, SpanKind
from tests.cli.conftest import TRACE_A, TRACE_B, Seeded

ROOT = Path(__file__).resolve().parents[2]


def json_names(stdout: str) -> list[str]:
    return [json.loads(line)["name"] for line in stdout.splitlines() if line.strip()]


def test_json_no_follow_prints_every_stored_span_in_order(seeded: Seeded, run_cli) -> None:
    result = run_cli("tail", "--json", "--no-follow")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [json.loads(line) for line in lines] == [s.to_dict() for s in seeded.spans]


def test_db_option_picks_the_store(seeded: Seeded, run_cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LLMOBS_DB", str(tmp_path / "elsewhere.db"))
    result = run_cli("tail", "--json", "--no-follow", "--db", str(seeded.db))
    assert json_names(result.stdout) == seeded.names()


def test_since_replays_only_recent_spans(seeded: Seeded, run_cli) -> None:
    result = run_cli("tail", "--json", "--no-follow", "--since", "10m")
    assert json_names(result.stdout) == [n for n in seeded.names() if n != "old-job"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--service", "rag"], ["retrieve docs", "chat claude-sonnet-4-5", "chat my-finetune", "rag-chain"]),
        (
            ["--service", "rag", "--service", "cron"],
            ["old-job", "retrieve docs", "chat claude-sonnet-4-5", "chat my-finetune", "rag-chain"],
        ),
        (["--kind", "llm"], ["chat gpt-4o-mini", "chat o3-mini", "chat claude-sonnet-4-5", "chat my-finetune"]),
        (["--kind", "tool,agent"], ["lookup_order", "support-agent"]),
        (["--model", "gpt-4o*"], ["chat gpt-4o-mini"]),
        (["--model", "CLAUDE-*"], ["chat claude-sonnet-4-5"]),
        (["--framework", "langchain"], ["retrieve docs", "chat claude-sonnet-4-5", "chat my-finetune", "rag-chain"]),
        (["--errors"], ["lookup_order"]),
        (["--min-cost", "0.01"], ["chat claude-sonnet-4-5"]),
        (["--min-cost", "0"], ["chat gpt-4o-mini", "chat o3-mini", "chat claude-sonnet-4-5"]),
        (["--min-duration", "100ms"], ["chat claude-sonnet-4-5", "rag-chain"]),
        (["--min-duration", "0.21s"], ["rag-chain"]),
        (["--min-duration", "40"], ["chat o3-mini", "support-agent", "chat claude-sonnet-4-5", "rag-chain"]),
        (["--trace", "a1a1"], ["chat gpt-4o-mini", "lookup_order", "chat o3-mini", "support-agent"]),
        (["--attr", "session_id=s-2"], ["chat claude-sonnet-4-5"]),
        (["--attr", "session_id=s-1", "--attr", "step=answer"], ["chat o3-mini"]),
        (["--kind", "llm", "--service", "support-bot", "--min-cost", "0.001"], ["chat o3-mini"]),
    ],
)
def test_each_filter(seeded: Seeded, run_cli, args: list[str], expected: list[str]) -> None:
    result = run_cli("tail", "--json", "--no-follow", *args)
    assert result.exit_code == 0, result.output
    assert json_names(result.stdout) == expected


@pytest.mark.parametrize(
    "args", [["--kind", "bogus"], ["--attr", "novalue"], ["--min-duration", "soon"], ["--trace", "xyz"]]
)
def test_bad_filter_values_are_usage_errors(seeded: Seeded, run_cli, args: list[str]) -> None:
    result = run_cli("tail", "--no-follow", *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def _hhmmss(ns: int) -> str:
    when = datetime.fromtimestamp(ns / 1e9)
    return when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def test_text_lines_indent_children_and_sum_each_trace(seeded: Seeded, run_cli) -> None:
    result = run_cli("tail", "--no-follow", "--since", "10m")
    lines = result.stdout.splitlines()
    by_name = {s.name: s for s in seeded.spans}
    # 7 + 2 summary lines; a summary follows its root's line.
    assert len(lines) == 10
    assert lines[4].startswith(" " * 13 + TRACE_A[:8] + " ─ trace done: 4 spans  2.1k→570 tok")
    assert lines[4].endswith("75ms  1 error")
    assert lines[9].startswith(" " * 13 + TRACE_B[:8] + " ─ trace done: 4 spans  5.1k→810 tok  $0.027")
    assert lines[9].endswith("+?  250ms  ok")  # my-finetune has no price: the total says so

    llm = lines[0]
    assert llm.startswith(f"{_hhmmss(by_name['chat gpt-4o-mini'].end_ns)} {TRACE_A[:8]}   llm       chat gpt-4o-mini")
    assert "gpt-4o-mini" in llm and "1.2k(1.0kc)→150 tok" in llm and "ttft 8ms" in llm and llm.endswith("20ms  ok")
    assert "✗ TimeoutError: order service did not answer in 5s" in lines[1]
    assert "900→420(256r) tok" in lines[2]
    # The root sits one level (two spaces) left of its children.
    assert lines[3].startswith(f"{_hhmmss(by_name['support-agent'].end_ns)} {TRACE_A[:8]} agent     support-agent")
    assert "$?" in lines[7]  # the unpriced model call


def test_span_line_widths_follow_the_terminal() -> None:
    span = Span(trace_id="f" * 32, span_id="1" * 16, name="a-very-long-span-name-" * 4, kind=SpanKind.CHAIN,
                start_ns=0, end_ns=5 * 10**6)  # fmt: skip
    narrow = span_line(span, 0, LineLayout.for_width(100)).plain
    wide = span_line(span, 0, LineLayout.for_width(200)).plain
    piped = span_line(span, 0, LineLayout.for_width(None)).plain
    assert "…" in narrow and len(narrow) < len(wide)
    assert span.name in piped  # never cut when not a terminal


def _s(span_id: str, parent: str | None, trace: str = "t" * 32, name: str = "") -> Span:
    return Span(trace_id=trace, span_id=span_id, parent_id=parent, name=name or span_id, service="svc")


def test_tree_placer_exact_within_a_batch_and_learned_across_traces() -> None:
    placer = TreePlacer()
    # One batch in end order: grandchild, child, root.
    assert placer.place_batch([_s("g", "c"), _s("c", "r"), _s("r", None)]) == [2, 1, 0]
    placer.finish_trace("t" * 32)
    # Second trace arrives one span per batch: depths come from the first trace's shape.
    trace2 = "u" * 32
    assert placer.place_batch([_s("g2", "c2", trace2, name="g")]) == [2]
    assert placer.place_batch([_s("c2", "r2", trace2, name="c")]) == [1]
    assert placer.place_batch([_s("r2", None, trace2, name="r")]) == [0]
    # Unknown shape: one level under the unseen parent; siblings line up.
    trace3 = "v" * 32
    assert placer.place_batch([_s("x1", "p", trace3)]) == [1]
    assert placer.place_batch([_s("x2", "p", trace3)]) == [1]
    assert placer.place_batch([_s("y", "x1", trace3)]) == [2]


WRITER = textwrap.dedent(
    """
    import sys, time
    import llmobs
    llmobs.configure(service_name="writer", flush_interval=0.01)
    n_traces, per_trace = int(sys.argv[1]), int(sys.argv[2])
    for t in range(n_traces):
        with llmobs.span(f"root-{t}", kind="agent"):
            for i in range(per_trace - 1):
                with llmobs.span(f"step-{t}-{i}", kind="tool"):
                    pass
        if t % 3 == 0:
            llmobs.flush()
            time.sleep(0.02)
    llmobs.flush()
    print("done", flush=True)
    """
)


class LineReader:
    """Reads a subprocess's output lines on a thread, so the test can wait with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._run, args=(stream,), daemon=True).start()

    def _run(self, stream) -> None:
        for line in stream:
            self.lines.put(line)

    def next(self, timeout: float) -> str | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None


def test_tail_follows_a_store_written_by_another_process(isolated_llmobs: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs), "PYTHONPATH": str(ROOT)}
    conn = store.connect(isolated_llmobs)
    tail = subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", "tail", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        reader = LineReader(tail.stdout)
        # Follow mode prints only what lands after it started: write sentinels until one shows.
        for k in range(100):
            store.insert_spans(conn, [Span(trace_id="e" * 32, span_id=f"{k:016x}", name=f"ready-{k}")])
            line = reader.next(timeout=0.3)
            if line is not None:
                assert json.loads(line)["name"].startswith("ready-")
                break
        else:
            pytest.fail("tail never printed a span")
        n_traces, per_trace = 12, 5
        script = tmp_path / "writer.py"
        script.write_text(WRITER)
        writer = subprocess.run(
            [sys.executable, str(script), str(n_traces), str(per_trace)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert writer.returncode == 0, writer.stderr
        names = []
        while len(names) < n_traces * per_trace:
            line = reader.next(timeout=20)
            assert line is not None, f"only {len(names)} lines arrived"
            name = json.loads(line)["name"]
            if not name.startswith("ready-"):
                names.append(name)
        expected = [
            name for t in range(n_traces) for name in [*(f"step-{t}-{i}" for i in range(per_trace - 1)), f"root-{t}"]
        ]
        assert names == expected
        assert reader.next(timeout=0.3) is None  # nothing more, nothing twice
    finally:
        conn.close()
        tail.send_signal(signal.SIGINT)
        try:
            _out, err = tail.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            tail.kill()
            raise
    assert tail.returncode == 0
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("llmobs tail: ")
    assert f" spans in {n_traces + 1} traces, 0 errors" in summary  # the writer's traces and the sentinels'


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_terminal_lines_fit_and_errors_show_whole(seeded: Seeded, width: int) -> None:
    import io

    from rich.console import Console

    from llmobs.cli.filters import SpanFilter
    from llmobs.cli.tail import TailPrinter, rows_after

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, color_system=None)
    conn = store.connect(seeded.db, readonly=True)
    printer = TailPrinter(conn, SpanFilter(trace_prefix=TRACE_A[:4]), as_json=False, console=console)
    printer.handle(rows_after(conn, 0))
    conn.close()
    lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines)
    # Durations are never cut; the error message gets its own line when the row is full.
    [tool] = [line for line in lines if "lookup_o" in line]
    assert " 5ms  ✗" in tool
    assert any("TimeoutError: order service did not answer in 5s" in line for line in lines)
    [llm] = [line for line in lines if "1.2k(1.0kc)→150 tok" in line]
    assert "$0.000193" in llm and " 20ms  ok" in llm


def test_demo_loop_keeps_recording_until_ctrl_c(isolated_llmobs: Path) -> None:
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs), "PYTHONPATH": str(ROOT)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", "demo", "--builtin", "--loop", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    reader = LineReader(demo.stdout)
    try:
        rounds = 0
        while rounds < 3:
            line = reader.next(timeout=30)
            assert line is not None, "demo stopped printing"
            rounds += line.startswith("round ")
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=20)
    assert demo.returncode == 0
    conn = store.connect(isolated_llmobs, readonly=True)
    assert len(store.recent_traces(conn, limit=100)) >= 4
    conn.close()


def test_tree_placer_learns_exact_depths_not_its_guesses() -> None:
    placer = TreePlacer()
    trace = "w" * 32
    # Spans arrive one per batch, deepest first: the first guesses are one level under an unseen parent.
    assert placer.place_batch([_s("leaf", "mid", trace)]) == [1]
    assert placer.place_batch([_s("mid", "top", trace)]) == [1]
    assert placer.place_batch([_s("top", None, trace)]) == [0]
    placer.finish_trace(trace)
    again = "x" * 32
    assert placer.place_batch([_s("leaf2", "mid2", again, name="leaf")]) == [2]
    assert placer.place_batch([_s("mid2", "top2", again, name="mid")]) == [1]


def test_tail_creates_a_missing_store(run_cli, tmp_path: Path) -> None:
    db = tmp_path / "sub" / "new.db"
    result = run_cli("tail", "--no-follow", "--db", str(db))
    assert result.exit_code == 0 and result.stdout == ""
    assert db.exists()
