"""`llmobs stats` numbers checked against values computed by hand from the seeded store.

The 8 spans of the last 10 minutes last 20, 5, 40, 75, 10, 200, 30 and 250 ms; sorted:
5 10 20 30 40 75 200 250. Linear interpolation: p50 at rank 3.5 → 35; p95 at 6.65 → 232.5;
p99 at 6.93 → 246.5. TTFTs are 8 and 50 ms: p50 29, p95 47.9, p99 49.58.
Costs: gpt-4o-mini 176 uncached × $0.15/M + 1024 cached × $0.075/M + 150 out × $0.6/M = $0.0001932;
o3-mini 900 × $1.1/M + 420 × $4.4/M = $0.002838; claude (set on the span) $0.027; my-finetune unpriced.
"""

from __future__ import annotations

import json

import pytest

from llmobs.cli.stats import percentile, sparkline
from tests.cli.conftest import Seeded

GPT = 0.0001932
O3 = 0.002838
CLAUDE = 0.027


def stats_json(run_cli, *args: str) -> dict:
    result = run_cli("stats", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_totals_over_a_window(seeded: Seeded, run_cli) -> None:
    data = stats_json(run_cli, "--since", "10m")
    total = data["total"]
    assert total["count"] == 8
    assert total["errors"] == 1
    assert total["error_rate"] == 0.125
    assert total["duration_ms"] == pytest.approx({"p50": 35.0, "p95": 232.5, "p99": 246.5})
    assert total["ttft_ms"] == pytest.approx({"p50": 29.0, "p95": 47.9, "p99": 49.58})
    assert (total["input_tokens"], total["output_tokens"]) == (7200, 1380)
    assert (total["cache_read_tokens"], total["reasoning_tokens"]) == (1024, 256)
    assert total["cost_usd"] == pytest.approx(GPT + O3 + CLAUDE, abs=1e-12)
    assert total["unpriced"] == 1
    assert data["groups"] == []
    hist = {b["le_ms"]: b["count"] for b in data["latency_histogram"] if b["count"]}
    assert hist == {5: 1, 10: 1, 20: 1, 50: 2, 100: 1, 200: 1, 500: 1}
    series = data["cost_series"]
    assert len(series["cost_usd"]) == 40
    assert sum(series["cost_usd"]) == pytest.approx(GPT + O3 + CLAUDE, abs=1e-12)


def test_without_since_everything_counts(seeded: Seeded, run_cli) -> None:
    assert stats_json(run_cli)["total"]["count"] == 9


def test_by_model(seeded: Seeded, run_cli) -> None:
    groups = stats_json(run_cli, "--since", "10m", "--by", "model")["groups"]
    assert [(g["key"], g["count"]) for g in groups] == [
        ("claude-sonnet-4-5", 1),
        ("o3-mini", 1),
        ("gpt-4o-mini", 1),
        ("(none)", 4),
        ("my-finetune", 1),
    ]
    none = groups[3]
    assert none["duration_ms"]["p50"] == pytest.approx(42.5)  # 5 10 75 250
    assert none["errors"] == 1 and none["error_rate"] == 0.25
    assert none["cost_usd"] is None and none["input_tokens"] == 0
    assert groups[4]["unpriced"] == 1 and groups[4]["cost_usd"] is None
    assert groups[2]["cost_usd"] == pytest.approx(GPT, abs=1e-12)


def test_by_attribute_kind_service_framework(seeded: Seeded, run_cli) -> None:
    by_session = stats_json(run_cli, "--since", "10m", "--by", "attribute:session_id")["groups"]
    assert {g["key"]: g["count"] for g in by_session} == {"s-1": 4, "s-2": 1, "(none)": 3}
    assert {g["key"]: g["cost_usd"] for g in by_session}["s-1"] == pytest.approx(GPT + O3, abs=1e-12)
    by_kind = stats_json(run_cli, "--since", "10m", "--by", "kind")["groups"]
    assert {g["key"]: g["count"] for g in by_kind} == {"llm": 4, "tool": 1, "agent": 1, "retriever": 1, "chain": 1}
    by_service = stats_json(run_cli, "--by", "service")["groups"]
    assert {g["key"]: g["count"] for g in by_service} == {"support-bot": 4, "rag": 4, "cron": 1}
    by_fw = stats_json(run_cli, "--since", "10m", "--by", "framework")["groups"]
    assert {g["key"]: g["count"] for g in by_fw} == {"manual": 4, "langchain": 4}


def test_filters_apply(seeded: Seeded, run_cli) -> None:
    total = stats_json(run_cli, "--kind", "llm", "--service", "support-bot")["total"]
    assert total["count"] == 2
    assert total["cost_usd"] == pytest.approx(GPT + O3, abs=1e-12)


def test_text_output_has_table_histogram_and_sparkline(seeded: Seeded, run_cli) -> None:
    result = run_cli("stats", "--since", "10m", "--by", "model")
    assert result.exit_code == 0
    out = result.stdout
    assert "claude-sonnet-4-5" in out and "total" in out and "1 (12.5%)" in out
    assert "latency" in out and "≤ 500ms" in out and "█" in out
    assert "cost per" in out


def test_bad_group_is_a_usage_error(seeded: Seeded, run_cli) -> None:
    result = run_cli("stats", "--by", "colour")
    assert result.exit_code == 2


def test_percentile_and_sparkline_helpers() -> None:
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None
    assert sparkline([0, 1, 2, 4]) == " ▃▅█"
