"""Alert rules through the CLI: `tail --alert`, `watch` with --exec and --webhook, `--fail-on-alert`.

One synthetic stream of eight requests (a `request` root and its `chat gpt-4o` call each) drives
every rule; the alerts each rule must raise, with their times and values, are worked out by hand
below from the window arithmetic, not read back from the engine.

    trace  start  root dur  llm cost  tokens      ttft   root      relevance
    T1       0s   1.0s      $0.01     1000+100    0.2s   ok        0.9
    T2      60s   1.2s      $0.02     1000+100    0.3s   ok        0.8
    T3     120s   6.0s      $0.08     20000+500   2.5s   ok        0.3
    T4     180s   0.9s      $0.01     1000+100    0.2s   error     -
    T5     200s   0.8s      $0.01     1000+100    0.2s   error     -
    T6     400s   1.0s      $0.01     1000+100    0.2s   ok        0.9
    T7     700s   1.0s      $0.01     1000+100    0.2s   ok        1.0
    T8     720s   1.0s      $0.01     1000+100    0.2s   error     -

The llm span runs from start+0.1s to end-0.1s, so it ends (and is observed) 0.1 s before its root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmobs.core import store
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000
T0 = time.time_ns() - 3600 * S  # an hour ago: windows run on the spans' own times

# start s, root duration s, llm cost, (input, output) tokens, ttft s, root failed, relevance
STREAM = [
    (0, 1.0, 0.01, (1000, 100), 0.2, False, 0.9),
    (60, 1.2, 0.02, (1000, 100), 0.3, False, 0.8),
    (120, 6.0, 0.08, (20000, 500), 2.5, False, 0.3),
    (180, 0.9, 0.01, (1000, 100), 0.2, True, None),
    (200, 0.8, 0.01, (1000, 100), 0.2, True, None),
    (400, 1.0, 0.01, (1000, 100), 0.2, False, 0.9),
    (700, 1.0, 0.01, (1000, 100), 0.2, False, 1.0),
    (720, 1.0, 0.01, (1000, 100), 0.2, True, None),
]


def tid(n: int) -> str:
    return f"{n:02x}" * 16


def at(seconds: float) -> int:
    return T0 + round(seconds * S)


def stream_spans() -> list[Span]:
    spans = []
    for n, (start, dur, cost, (inp, out), ttft, failed, relevance) in enumerate(STREAM, 1):
        root_id, llm_id = f"{n:02x}" * 8, f"{n:02x}" * 7 + "ff"
        spans.append(
            Span(
                tid(n), llm_id, "chat gpt-4o", SpanKind.LLM, parent_id=root_id, service="bot",
                start_ns=at(start + 0.1), end_ns=at(start + dur - 0.1), model="gpt-4o", provider="openai",
                usage=Usage(inp, out, inp + out), cost=Cost(cost, 0.0, cost, "test"), ttft_ms=ttft * 1000,
            )
        )  # fmt: skip
        spans.append(
            Span(
                tid(n), root_id, "request", SpanKind.CHAIN, service="bot", start_ns=at(start), end_ns=at(start + dur),
                status=Status.ERROR if failed else Status.OK, error=ErrorInfo("UpstreamError", "502") if failed else None,
                evaluations=[Evaluation("relevance", relevance)] if relevance is not None else None,
            )
        )  # fmt: skip
    return spans  # in end order: each llm span, then its root


def llm_end(n: int) -> int:
    start, dur = STREAM[n - 1][:2]
    return at(start + dur - 0.1)


def root_end(n: int) -> int:
    start, dur = STREAM[n - 1][:2]
    return at(start + dur)


@pytest.fixture
def stream(isolated_llmobs: Path) -> Path:
    conn = store.connect(isolated_llmobs)
    store.insert_spans(conn, stream_spans())
    conn.close()
    return isolated_llmobs


def T(*numbers: int) -> list[str]:  # noqa: N802 - reads like the table above
    return [tid(n) for n in numbers]


# (time, value, sample trace ids, span name or None for windowed rules)
EXPECTED: dict[str, list[tuple[int, float, list[str], str | None]]] = {
    # Span rules: every matching span (cooldown 0). A root is judged on its trace's model spend.
    "cost>0.05": [(llm_end(3), 0.08, T(3), "chat gpt-4o"), (root_end(3), 0.08, T(3), "request")],
    "tokens>20000": [(llm_end(3), 20500, T(3), "chat gpt-4o"), (root_end(3), 20500, T(3), "request")],
    "duration>5s": [(llm_end(3), 5800, T(3), "chat gpt-4o"), (root_end(3), 6000, T(3), "request")],
    "ttft>2s": [(llm_end(3), 2500, T(3), "chat gpt-4o")],
    "eval:relevance<0.5": [(root_end(3), 0.3, T(3), "request")],
    # error has no value: None.
    "error": [
        (root_end(4), None, T(4), "request"),
        (root_end(5), None, T(5), "request"),
        (root_end(8), None, T(8), "request"),
    ],  # type: ignore[list-item]
    # Windowed rules fire when the condition becomes true and re-arm once it is false again.
    # Roots in 5m at T5's end: T1..T5, 2 errors of 5 = 40%. At T7's llm end (700.9s) T3..T5 have
    # left the window (cutoff 400.9s) and only T6 is in it: 0% re-arms. T8's root: T7, T8 = 50%.
    "error_rate>30%/5m": [(root_end(5), 0.4, T(5, 4, 3, 2, 1), None), (root_end(8), 0.5, T(8, 7), None)],
    "errors>1/5m": [(root_end(5), 2, T(5, 4, 3, 2, 1), None)],
    "requests>4/5m": [(root_end(5), 5, T(5, 4, 3, 2, 1), None)],
    # Model cost in 5m: .01+.02+.08 = .11 at T3's llm end; at T7's llm end only T7's .01 is left.
    "cost>0.1/5m": [(llm_end(3), 0.11, T(3, 2, 1), None)],
    # 1100+1100+20500+1100+1100 = 24900 at T5's llm end; T6's llm end drops T1, T2: 23800.
    "tokens>24000/5m": [(llm_end(5), 24900, T(3, 5, 4, 2, 1), None)],
    # Root durations [1000, 1200, 6000]: p95 = 1200 + 4800 * 0.9 = 5520 ms; never under 3 s after.
    "p95(duration)>3s/10m": [(root_end(3), 5520, T(3, 2, 1), None)],
    # TTFT mean (200+300+2500)/3 = 1000 ms at T3's llm end; T4's makes it 800: re-armed, never again.
    "avg(ttft)>900ms/5m": [(llm_end(3), 1000, T(3, 2, 1), None)],
    # Mean relevance (.9+.8+.3)/3 = .667 at T3's root; T6's root: (.9+.8+.3+.9)/4 = .725 re-arms;
    # at T7's llm end (700.9s) T1 and T2 left the 10m window: (.3+.9)/2 = .6 fires again.
    "eval:relevance<0.7/10m": [(root_end(3), 2.0 / 3, T(3, 2, 1), None), (llm_end(7), 0.6, T(3, 6), None)],
    # Never true: nothing fires.
    "cost>1": [],
    "p99(duration)>10s/1h": [],
}


def alerts_of(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("rule", list(EXPECTED))
def test_each_rule_fires_exactly_when_it_should(stream: Path, run_cli, rule: str) -> None:
    result = run_cli("watch", "--no-follow", "--json", "--cooldown", "0s", "--alert", rule)
    assert result.exit_code == 0, result.output
    got = [(a["time_ns"], a["value"], a["trace_ids"], a["span_name"]) for a in alerts_of(result.stdout)]
    want = EXPECTED[rule]
    assert len(got) == len(want), got
    for (time_ns, value, traces, span_name), (w_time, w_value, w_traces, w_name) in zip(got, want, strict=True):
        assert (time_ns, traces, span_name) == (w_time, w_traces, w_name)
        assert value == (None if w_value is None else pytest.approx(w_value))
    assert result.stderr.splitlines()[-1] == f"llmobs watch: 16 spans judged, {len(want)} alert(s)"


def test_the_alert_json_and_text(stream: Path, run_cli) -> None:
    result = run_cli("watch", "--no-follow", "--json", "--alert", "error_rate>30%/5m")
    first = alerts_of(result.stdout)[0]
    assert first == {
        "rule": "error_rate>30%/5m",
        "kind": "window",
        "window": "5m",
        "value": pytest.approx(0.4),
        "threshold": 0.3,
        "time": first["time"],
        "time_ns": root_end(5),
        "trace_ids": T(5, 4, 3, 2, 1),
        "span_id": None,
        "span_name": None,
        "text": "ALERT error_rate>30%/5m: 40% over the last 5m (threshold 30%)  traces 05050505 04040404 03030303 "
        "02020202 01010101",
        "source": "llmobs",
    }
    assert first["time"].endswith("Z")
    plain = run_cli("watch", "--no-follow", "--alert", "error_rate>30%/5m", "--alert", "ttft>2s")
    lines = plain.stdout.splitlines()
    assert [line[9:] for line in lines] == [
        "⚠ ALERT ttft>2s: 2.50s on 'chat gpt-4o' (threshold 2.00s)  trace 03030303",
        "⚠ ALERT error_rate>30%/5m: 40% over the last 5m (threshold 30%)  traces 05050505 04040404 03030303 "
        "02020202 01010101",
        "⚠ ALERT error_rate>30%/5m: 50% over the last 5m (threshold 30%)  traces 08080808 07070707",
    ]


def test_cooldown_silences_a_rule_after_it_fired(stream: Path, run_cli) -> None:
    # Errors at 180.9s, 200.8s and 721s: a 5m cooldown swallows the second, not the third.
    result = run_cli("watch", "--no-follow", "--json", "--cooldown", "5m", "--alert", "error")
    assert [a["time_ns"] for a in alerts_of(result.stdout)] == [root_end(4), root_end(8)]
    # The default cooldown is 5m too.
    result = run_cli("watch", "--no-follow", "--json", "--alert", "error")
    assert [a["time_ns"] for a in alerts_of(result.stdout)] == [root_end(4), root_end(8)]


def test_filters_narrow_what_the_rules_see(stream: Path, run_cli) -> None:
    result = run_cli("watch", "--no-follow", "--json", "--cooldown", "0s", "--alert", "error", "--trace", "0808")
    assert [a["trace_ids"] for a in alerts_of(result.stdout)] == [T(8)]


def test_tail_highlights_matching_spans_and_prints_a_line_when_a_window_fires(stream: Path, run_cli) -> None:
    result = run_cli("tail", "--no-follow", "--alert", "cost>0.05", "--alert", "error_rate>30%/5m")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    marked = [i for i, line in enumerate(lines) if line.endswith("⚠ cost>0.05")]
    assert [lines[i].split()[1:4] for i in marked] == [["03030303", "llm", "chat"], ["03030303", "chain", "request"]]
    alert_lines = [i for i, line in enumerate(lines) if "⚠ ALERT" in line]
    assert [lines[i][9:] for i in alert_lines] == [
        "⚠ ALERT error_rate>30%/5m: 40% over the last 5m (threshold 30%)  traces 05050505 04040404 03030303 "
        "02020202 01010101",
        "⚠ ALERT error_rate>30%/5m: 50% over the last 5m (threshold 30%)  traces 08080808 07070707",
    ]
    # Each alert line comes right after the span that made the window fire: T5's and T8's roots.
    for i, trace in zip(alert_lines, ("05050505", "08080808"), strict=True):
        assert lines[i - 1].split()[1:4] == [trace, "chain", "request"]
    assert len([line for line in lines if "⚠" in line]) == 4


def test_tail_json_keeps_stdout_span_json_and_puts_alerts_on_stderr(stream: Path, run_cli) -> None:
    result = run_cli("tail", "--no-follow", "--json", "--alert", "error_rate>30%/5m", "--alert", "ttft>2s")
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()] == [s.name for s in stream_spans()]
    assert [line[9:] for line in result.stderr.splitlines()] == [
        "⚠ ALERT ttft>2s: 2.50s on 'chat gpt-4o' (threshold 2.00s)  trace 03030303",
        "⚠ ALERT error_rate>30%/5m: 40% over the last 5m (threshold 30%)  traces 05050505 04040404 03030303 "
        "02020202 01010101",
        "⚠ ALERT error_rate>30%/5m: 50% over the last 5m (threshold 30%)  traces 08080808 07070707",
    ]


@pytest.mark.parametrize("command", ["tail", "watch"])
def test_fail_on_alert_exit_code(stream: Path, run_cli, command: str) -> None:
    fired = run_cli(command, "--no-follow", "--alert", "error_rate>30%/5m", "--fail-on-alert")
    assert fired.exit_code == 1
    assert "2 alert(s)" in fired.stderr.splitlines()[-1]
    quiet = run_cli(command, "--no-follow", "--alert", "error_rate>90%/5m", "--fail-on-alert")
    assert quiet.exit_code == 0, quiet.output
    assert "ALERT" not in quiet.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tail", "--alert", "cost>>1"], "cannot parse alert rule 'cost>>1'"),
        (["watch", "--alert", "p95(duration)>3s"], "p95(duration) needs a window"),
        (["watch", "--alert", "latency>3s"], "unknown metric 'latency'"),
        (["watch"], "give at least one --alert RULE"),
        (["tail", "--fail-on-alert"], "--fail-on-alert needs at least one --alert RULE"),
        (["watch", "--alert", "error", "--webhook", "ftp://x/y"], "'ftp://x/y' is not an http(s) URL"),
        (["watch", "--alert", "error", "--cooldown", "soon"], "'soon' is not a duration"),
        (["watch", "--alert", "error", "--webhook-header", "no-colon"], "write 'Name: value'"),
    ],
)
def test_bad_options_are_usage_errors(stream: Path, run_cli, args: list[str], message: str) -> None:
    result = run_cli(*args, "--no-follow")
    assert result.exit_code == 2
    assert message in result.stderr


# -- actions: webhooks and commands ---------------------------------------------------------------


class Webhook:
    """A real HTTP server on loopback recording every POST; `status` and `delay_s` shape its answers."""

    def __init__(self, status: int = 200, delay_s: float = 0.0) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if delay_s:
                    time.sleep(delay_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_webhook_receives_the_alert_json(stream: Path, run_cli, webhook: Webhook) -> None:
    result = run_cli(
        "watch", "--no-follow", "--json", "--alert", "error_rate>30%/5m", "--alert", "cost>0.1/5m",
        "--webhook", webhook.url("/alerts"), "--webhook-header", "Authorization: Bearer s3cret",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = alerts_of(result.stdout)
    assert [a["rule"] for a in printed] == ["cost>0.1/5m", "error_rate>30%/5m", "error_rate>30%/5m"]
    assert len(webhook.requests) == 3
    for (path, headers, body), alert in zip(webhook.requests, printed, strict=True):
        assert path == "/alerts"
        assert headers["content-type"] == "application/json"
        assert headers["authorization"] == "Bearer s3cret"
        assert headers["user-agent"] == "llmobs-watch"
        assert json.loads(body) == alert  # the same JSON as printed: rule, window, value, trace ids, text
    posted = json.loads(webhook.requests[1][2])
    assert (posted["rule"], posted["window"], posted["value"], posted["trace_ids"]) == (
        "error_rate>30%/5m",
        "5m",
        pytest.approx(0.4),
        T(5, 4, 3, 2, 1),
    )


def test_failing_slow_and_unreachable_webhooks_never_stop_the_watcher(stream: Path, run_cli) -> None:
    refusing, slow = Webhook(status=500), Webhook(delay_s=2.0)
    closed = Webhook()
    dead_url = closed.url()
    closed.close()
    try:
        result = run_cli(
            "watch", "--no-follow", "--json", "--alert", "error_rate>30%/5m", "--action-timeout", "300ms",
            "--webhook", refusing.url(), "--webhook", slow.url(), "--webhook", dead_url,
        )  # fmt: skip
    finally:
        refusing.close()
        slow.close()
    assert result.exit_code == 0, result.output
    assert len(alerts_of(result.stdout)) == 2
    assert len(refusing.requests) == 2 and len(slow.requests) == 2
    problems = [line for line in result.stderr.splitlines() if "webhook" in line]
    assert len(problems) == 6
    assert problems[0] == f"llmobs watch: webhook {refusing.url()} answered 500 Internal Server Error"
    assert problems[1].startswith(f"llmobs watch: webhook {slow.url()} failed: ") and "timed out" in problems[1]
    assert problems[2].startswith(f"llmobs watch: webhook {dead_url} failed: ")
    assert result.stderr.splitlines()[-1] == "llmobs watch: 16 spans judged, 2 alert(s), 6 action(s) failed"


def test_exec_runs_the_command_with_the_alert_json_and_variables(stream: Path, run_cli, tmp_path: Path) -> None:
    received, variables = tmp_path / "alerts.jsonl", tmp_path / "vars.txt"
    command = (
        f"cat >> '{received}'; echo >> '{received}'; "
        f'printf \'%s|%s|%s|%s\\n\' "$LLMOBS_ALERT_RULE" "$LLMOBS_ALERT_WINDOW" "$LLMOBS_ALERT_VALUE" '
        f"\"$LLMOBS_ALERT_TRACE_IDS\" >> '{variables}'"
    )
    result = run_cli("watch", "--no-follow", "--json", "--alert", "error_rate>30%/5m", "--exec", command)
    assert result.exit_code == 0, result.output
    assert alerts_of(received.read_text()) == alerts_of(result.stdout)
    assert variables.read_text().splitlines() == [
        f"error_rate>30%/5m|5m|0.4|{' '.join(T(5, 4, 3, 2, 1))}",
        f"error_rate>30%/5m|5m|0.5|{' '.join(T(8, 7))}",
    ]


def test_a_failing_or_hanging_command_is_reported_and_stopped(stream: Path, run_cli) -> None:
    started = time.monotonic()
    result = run_cli(
        "watch", "--no-follow", "--alert", "ttft>2s", "--action-timeout", "300ms",
        "--exec", "echo 'no route to pager' >&2; exit 3", "--exec", "sleep 30",
    )  # fmt: skip
    assert time.monotonic() - started < 10  # the sleeping command was killed, not waited for
    assert result.exit_code == 0
    assert result.stderr.splitlines()[1:3] == [
        "llmobs watch: command \"echo 'no route to pager' >&2; exit 3\" exited with status 3: no route to pager",
        "llmobs watch: command 'sleep 30' did not finish within 0.3s and was stopped",
    ]


def test_watch_follows_live_spans_and_exits_at_the_first_alert(isolated_llmobs: Path, webhook: Webhook) -> None:
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs), "PYTHONPATH": str(ROOT)}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", "watch", "--alert", "error", "--alert", "ttft>2s",
         "--fail-on-alert", "--json", "--webhook", webhook.url()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert watcher.stderr is not None
        assert watcher.stderr.readline().startswith("llmobs watch: watching ")
        # Spans written after the watcher started: the first ones match nothing, then an error.
        now = time.time_ns()
        ok = Span(tid(9), "09" * 8, "request", SpanKind.CHAIN, start_ns=now - S, end_ns=now)
        failed = Span(
            tid(10), "0a" * 8, "request", SpanKind.CHAIN, start_ns=now - S, end_ns=now + 1,
            status=Status.ERROR, error=ErrorInfo("UpstreamError", "502"),
        )  # fmt: skip
        conn = store.connect(isolated_llmobs)
        store.insert_spans(conn, [ok])
        store.insert_spans(conn, [failed])
        conn.close()
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 1, err
    [alert] = alerts_of(out)
    assert (alert["rule"], alert["trace_ids"], alert["span_name"]) == ("error", T(10), "request")
    assert [json.loads(body) for _, _, body in webhook.requests] == [alert]
    assert err.splitlines()[-1] == "llmobs watch: 2 spans judged, 1 alert(s)"


def start_cli(db: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LLMOBS_DB": str(db), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "llmobs.cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture
def quiet_stream(isolated_llmobs: Path) -> Path:
    """A fast request an hour ago and a slow one ten seconds ago: `min(duration)>1s/1h` is false
    at the slow one's end (the fast one is 3595 s older, still in the hour), and becomes true once
    the clock passes the fast one's end plus an hour, with no new span."""
    now = time.time_ns()
    fast = Span(tid(11), "0b" * 8, "request", SpanKind.CHAIN, start_ns=now - 3605 * S - S // 10, end_ns=now - 3605 * S)
    slow = Span(tid(12), "0c" * 8, "request", SpanKind.CHAIN, start_ns=now - 12 * S, end_ns=now - 10 * S)
    conn = store.connect(isolated_llmobs)
    store.insert_spans(conn, [fast, slow])
    conn.close()
    return isolated_llmobs


def test_replay_judges_on_span_times_only(quiet_stream: Path, run_cli) -> None:
    for command in ("watch", "tail"):
        result = run_cli(command, "--no-follow", "--since", "2h", "--alert", "min(duration)>1s/1h", "--fail-on-alert")
        assert result.exit_code == 0, result.output
        assert "ALERT" not in result.output


@pytest.mark.parametrize("command", ["watch", "tail"])
def test_following_a_quiet_store_lets_windows_see_time_pass(quiet_stream: Path, command: str) -> None:
    process = start_cli(quiet_stream, command, "--since", "2h", "--alert", "min(duration)>1s/1h", "--fail-on-alert")
    out, err = finish(process)
    assert process.returncode == 1, err
    if command == "watch":
        [line] = out.splitlines()
    else:
        [line] = [line for line in out.splitlines() if "ALERT" in line]
    assert line[9:] == "⚠ ALERT min(duration)>1s/1h: 2.00s over the last 1h (threshold 1.00s)  traces 0c0c0c0c"


def test_watch_otlp_receives_spans_and_alerts_on_their_evaluations(isolated_llmobs: Path) -> None:
    from urllib.request import Request, urlopen

    from llmobs.core.otlp import spans_to_request

    process = start_cli(
        isolated_llmobs, "watch", "--otlp", "--port", "0", "--alert", "eval:non_empty<0.5", "--fail-on-alert", "--json"
    )
    try:
        assert process.stderr is not None
        started = process.stderr.readline()
        assert started.startswith("llmobs watch: watching ") and " + OTLP on http://127.0.0.1:" in started
        url = started.split(" + OTLP on ")[1].split()[0]
        now = time.time_ns()
        span = Span(
            tid(13), "0d" * 8, "answer", SpanKind.CHAIN, service="remote-bot", start_ns=now - S, end_ns=now, output="",
            evaluations=[Evaluation("non_empty", 0.0, "empty", "the answer is empty")],
        )  # fmt: skip
        body = spans_to_request([span]).SerializeToString()
        request = Request(url, data=body, method="POST", headers={"Content-Type": "application/x-protobuf"})
        with urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        out, err = finish(process)
    assert process.returncode == 1, err
    [alert] = alerts_of(out)
    assert (alert["rule"], alert["value"], alert["trace_ids"], alert["span_name"]) == (
        "eval:non_empty<0.5",
        0.0,
        T(13),
        "answer",
    )
