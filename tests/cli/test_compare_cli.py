"""`llmobs stats --compare A B` on a store with a known regression.

Forty requests of version v12 ran two hours ago, forty of v13 in the last hour. v13 is twice as
slow and its answers score 0.2 lower; its TTFT, tokens, cost and error rate (every tenth request
fails on both sides) are drawn from the same distributions as v12's.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from llmobs.cli.compare import parse_compare_side
from llmobs.core import store
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage

S = 1_000_000_000
MS = 1_000_000
NOW = time.time_ns()
N = 40


def requests(version: str, first_start_ns: int, *, slow: bool, relevance: float, rng: random.Random) -> list[Span]:
    spans = []
    for i in range(N):
        trace, root_id = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        start = first_start_ns + i * 10 * S
        duration_ms = (800 if slow else 400) + rng.uniform(-40, 40)
        inp, out = 1000 + rng.randint(-50, 50), 200 + rng.randint(-10, 10)
        attributes = {"metadata": {"version": version}}
        spans.append(
            Span(
                trace, f"{rng.getrandbits(64):016x}", "chat gpt-4o", SpanKind.LLM, parent_id=root_id, service="bot",
                start_ns=start + 50 * MS, end_ns=start + int((duration_ms - 50) * MS), model="gpt-4o",
                usage=Usage(inp, out, inp + out), cost=Cost(inp * 2.5e-6, out * 1e-5, inp * 2.5e-6 + out * 1e-5, "test"),
                ttft_ms=150 + rng.uniform(-20, 20), attributes=attributes,
            )
        )  # fmt: skip
        failed = i % 10 == 3
        spans.append(
            Span(
                trace, root_id, "support-agent", SpanKind.AGENT, service="bot", start_ns=start,
                end_ns=start + int(duration_ms * MS), status=Status.ERROR if failed else Status.OK,
                error=ErrorInfo("ToolError", "lookup failed") if failed else None, attributes=attributes,
                evaluations=[Evaluation("relevance", relevance + rng.uniform(-0.1, 0.1), "pass", None)],
            )
        )  # fmt: skip
    return spans


@pytest.fixture
def drift_store(isolated_llmobs: Path) -> dict[str, list[Span]]:
    rng = random.Random(7)
    sides = {
        "v12": requests("v12", NOW - 2 * 3600 * S + 60 * S, slow=False, relevance=0.8, rng=rng),
        "v13": requests("v13", NOW - 3600 * S + 60 * S, slow=True, relevance=0.6, rng=rng),
    }
    conn = store.connect(isolated_llmobs)
    store.insert_spans(conn, sides["v12"] + sides["v13"])
    conn.close()
    return sides


def compare_json(run_cli, a: str, b: str, *extra: str) -> dict[str, Any]:
    result = run_cli("stats", "--compare", a, b, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def expected_side(spans: list[Span]) -> dict[str, float]:
    """Each metric computed independently (statistics' inclusive quantiles = linear interpolation)."""
    roots = [s for s in spans if s.parent_id is None]
    llms = [s for s in spans if s.kind is SpanKind.LLM]

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    durations = [r.duration_ms for r in roots]
    ttfts = [s.ttft_ms for s in llms if s.ttft_ms is not None]
    return {
        "count": len(roots),
        "duration_p50": statistics.median(durations),
        "duration_p95": p(durations, 95),
        "ttft_p50": statistics.median(ttfts),
        "ttft_p95": p(ttfts, 95),
        "tokens_per_request": statistics.fmean(s.usage.input_tokens + s.usage.output_tokens for s in llms),  # type: ignore[union-attr,operator]
        "cost_per_request": statistics.fmean(s.cost.total_usd for s in llms),  # type: ignore[union-attr]
        "error_rate": sum(r.is_error for r in roots) / len(roots),
        "eval:relevance": statistics.fmean(r.evaluations[0].score for r in roots),  # type: ignore[index,misc]
    }


def test_the_known_regression_is_flagged_and_unchanged_metrics_are_not(drift_store, run_cli) -> None:
    report = compare_json(run_cli, "attribute:version=v12", "attribute:version=v13")
    assert (report["a"], report["b"]) == ("attribute:version=v12", "attribute:version=v13")
    metrics = {m["name"]: m for m in report["metrics"]}
    assert list(metrics) == [
        "count", "duration_p50", "duration_p95", "ttft_p50", "ttft_p95", "tokens_per_request",
        "cost_per_request", "error_rate", "eval:relevance",
    ]  # fmt: skip
    want_a, want_b = expected_side(drift_store["v12"]), expected_side(drift_store["v13"])
    for name, m in metrics.items():
        assert (m["a"], m["b"]) == (pytest.approx(want_a[name]), pytest.approx(want_b[name])), name
        assert m["n_a"] == m["n_b"] == N  # requests, or llm spans with a TTFT: one per request
    # Twice as slow and 0.2 lower scores: significant and far over the thresholds.
    assert report["flagged"] == ["duration_p50", "duration_p95", "eval:relevance"]
    for name in report["flagged"]:
        m = metrics[name]
        assert m["significant"] and m["direction"] == "regression"
        low, high = m["ci"]
        assert low <= m["change"] <= high and (low > 0 or high < 0)
    # Same distributions on both sides: never flagged, and their intervals straddle 0.
    for name in ("ttft_p50", "tokens_per_request", "cost_per_request", "error_rate"):
        m = metrics[name]
        assert not m["flagged"], name
        low, high = m["ci"]
        assert low <= 0 <= high, name
    assert metrics["error_rate"]["change"] == 0.0 and metrics["error_rate"]["direction"] is None
    assert metrics["count"]["flagged"] is False and metrics["count"]["ci"] is None
    assert report["settings"] == {
        "threshold": 0.1, "rate_threshold": 0.02, "score_threshold": 0.05, "confidence": 0.95,
        "resamples": 1000, "seed": 0,
    }  # fmt: skip
    assert report["sides"]["b"] == {
        "label": "attribute:version=v13", "since_ns": None, "until_ns": None,
        "attribute": {"key": "version", "value": "v13"}, "service": None,
    }  # fmt: skip


def test_time_windows_select_the_same_requests_as_the_versions(drift_store, run_cli) -> None:
    by_version = compare_json(run_cli, "attribute:version=v12", "attribute:version=v13")
    by_window = compare_json(run_cli, "2h..1h", "1h")
    assert by_window["metrics"] == by_version["metrics"]
    assert by_window["sides"]["a"]["until_ns"] - by_window["sides"]["a"]["since_ns"] == pytest.approx(3600 * S, abs=S)
    combined = compare_json(run_cli, "service:bot,3h..1h", "attribute:version=v13,2h")
    assert combined["metrics"] == by_version["metrics"]


def test_an_unchanged_comparison_flags_nothing(drift_store, run_cli) -> None:
    report = compare_json(run_cli, "attribute:version=v12", "attribute:version=v12")
    assert report["flagged"] == []
    assert all(m["change"] == 0 for m in report["metrics"])


def test_thresholds_decide_what_is_big_enough(drift_store, run_cli) -> None:
    # +0.2 on the score is over 0.05 but not over 0.3; the duration change is ~100%, under 150%.
    report = compare_json(
        run_cli, "attribute:version=v12", "attribute:version=v13", "--threshold", "150%", "--score-threshold", "0.3"
    )
    assert report["flagged"] == []
    assert {m["name"] for m in report["metrics"] if m["significant"]} >= {
        "duration_p50",
        "duration_p95",
        "eval:relevance",
    }


def test_the_table_shows_both_sides_the_change_the_interval_and_the_flags(drift_store, run_cli) -> None:
    result = run_cli("stats", "--compare", "attribute:version=v12", "attribute:version=v13")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"A attribute:version=v12  ({N} requests)"
    assert lines[1] == f"B attribute:version=v13  ({N} requests)"
    rows = {line[:18].strip(): line for line in lines[3:13]}
    assert rows["duration p50"].rstrip().endswith("✗ regression")
    assert rows["eval:relevance"].rstrip().endswith("✗ regression")
    for unchanged in ("requests", "ttft p50", "tokens / request", "cost / request", "error rate"):
        assert "regression" not in rows[unchanged] and "improvement" not in rows[unchanged], unchanged
    assert "10.0%" in rows["error rate"] and "±0.0 pp" in rows["error rate"]
    assert any(line.startswith("flagged: duration p50 +") for line in lines)


def test_fail_on_regression_exit_code(drift_store, run_cli) -> None:
    flagged = run_cli("stats", "--compare", "attribute:version=v12", "attribute:version=v13", "--fail-on-regression")
    assert flagged.exit_code == 1
    # The other way round v13 → v12 is an improvement: flagged, but not a failure.
    better = run_cli("stats", "--compare", "attribute:version=v13", "attribute:version=v12", "--fail-on-regression")
    assert better.exit_code == 0, better.output
    assert "✓ improvement" in better.stdout


def test_filters_keep_whole_traces(drift_store, run_cli) -> None:
    everything = compare_json(run_cli, "attribute:version=v12", "attribute:version=v13")
    llm_only = compare_json(run_cli, "attribute:version=v12", "attribute:version=v13", "--kind", "llm")
    assert llm_only["metrics"] == everything["metrics"]
    nobody = compare_json(run_cli, "attribute:version=v12", "attribute:version=v13", "--service", "other")
    assert nobody["metrics"][0] == {**nobody["metrics"][0], "a": 0.0, "b": 0.0}
    assert nobody["flagged"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "1h..2h", "1h"], "the window ends before it starts"),
        (["--compare", "yesterday", "1h"], "cannot read 'yesterday'"),
        (["--compare", "attribute:version", "1h"], "write attribute:KEY=VALUE"),
        (["--compare", "1h", "2h", "--by", "model"], "--by and --compare do not go together"),
        (["--compare", "1h", "2h", "--threshold", "lots"], "'lots' is not a number"),
    ],
)
def test_bad_sides_and_settings_are_usage_errors(drift_store, run_cli, args: list[str], message: str) -> None:
    result = run_cli("stats", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_side_syntax() -> None:
    now = 1_800_000_000 * S
    h = 3600 * S
    side = parse_compare_side("2h..1h", now_ns=now)
    assert (side.since_ns, side.until_ns, side.attribute, side.service) == (now - 2 * h, now - h, None, None)
    assert (parse_compare_side("1h", now_ns=now).since_ns, parse_compare_side("1h", now_ns=now).until_ns) == (
        now - h,
        None,
    )
    assert parse_compare_side("30m..now", now_ns=now).until_ns == now
    assert parse_compare_side("..1d", now_ns=now).since_ns is None
    assert parse_compare_side("..1d", now_ns=now).until_ns == now - 24 * h
    iso = parse_compare_side("2026-11-27T09:00..2026-11-27T12:00", now_ns=now)
    assert iso.until_ns - iso.since_ns == 3 * h  # type: ignore[operator]
    both = parse_compare_side("attribute:model.version=v13, service:bot, 6h", now_ns=now)
    assert (both.attribute, both.service, both.since_ns, both.label) == (
        ("model.version", "v13"),
        "bot",
        now - 6 * h,
        "attribute:model.version=v13, service:bot, 6h",
    )
