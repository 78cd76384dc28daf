"""`traces`, `show`, `prices`, `demo` and the help of every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from genai_prices import Usage as GPUsage
from genai_prices import calc_price

from llmobs.cli.main import cli
from llmobs.cli.waterfall import waterfall_bar
from llmobs.core import store
from llmobs.core.model import Span
from tests.cli.conftest import TRACE_A, TRACE_B, Seeded

# -- traces ------------------------------------------------------------------------------------


def test_traces_json_limit_and_since(seeded: Seeded, run_cli) -> None:
    rows = [json.loads(line) for line in run_cli("traces", "--json").stdout.splitlines()]
    assert [r["root_name"] for r in rows] == ["rag-chain", "support-agent", "old-job"]
    b = rows[0]
    assert (b["spans"], b["input_tokens"], b["output_tokens"], b["cost_usd"], b["unpriced"]) == (4, 5100, 810, 0.027, 1)
    assert [json.loads(x)["trace_id"] for x in run_cli("traces", "--json", "--limit", "1").stdout.splitlines()] == [
        TRACE_B
    ]
    recent = run_cli("traces", "--json", "--since", "10m").stdout.splitlines()
    assert [json.loads(x)["root_name"] for x in recent] == ["rag-chain", "support-agent"]
    table = run_cli("traces").stdout
    assert "support-agent" in table and "error" in table and "$0.0270+?" in table


# -- show --------------------------------------------------------------------------------------


def test_show_by_prefix_draws_tree_waterfall_and_details(seeded: Seeded, run_cli) -> None:
    result = run_cli("show", "a1a1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {TRACE_A}  4 spans  2.1k→570 tok  $0.003031  75ms  1 error(s)")
    tree = lines[1:5]
    assert tree[0].startswith("agent     support-agent")
    assert tree[1].startswith("├─ llm       chat gpt-4o-mini  1.2k(1.0kc)→150 tok  $0.000193")
    assert tree[2].startswith("├─ tool      lookup_order")
    assert tree[3].startswith("└─ llm       chat o3-mini  900→420(256r) tok  $0.002838")
    bars = [line.split("│")[1] for line in tree]
    assert len({len(b) for b in bars}) == 1  # one timeline width
    assert set(bars[0]) == {"█"}  # the root spans the whole trace
    assert "░" in bars[1] and "░" not in bars[3]  # TTFT marked on the streamed call only
    assert tree[1].endswith("20ms (ttft 8ms)") and tree[2].endswith("5ms  ✗")
    text = result.stdout
    assert "error      TimeoutError: order service did not answer in 5s" in text
    assert "usage      input 900, output 420, total 1,320, reasoning 256" in text
    assert '"content": "where is my refund?"' in text  # captured content
    brief = run_cli("show", "a1a1", "--brief").stdout
    assert "where is my refund" not in brief and len(brief.splitlines()) == 5
    no_content = run_cli("show", "a1a1", "--no-content").stdout
    assert "where is my refund" not in no_content and "usage      input 900" in no_content


def test_show_json_prefix_and_errors(seeded: Seeded, run_cli) -> None:
    spans = [json.loads(x) for x in run_cli("show", "B2B2", "--json").stdout.splitlines()]
    assert [s["name"] for s in spans] == ["rag-chain", "retrieve docs", "chat claude-sonnet-4-5", "chat my-finetune"]
    unknown = run_cli("show", "ffff")
    assert unknown.exit_code == 1 and "no trace starts with 'ffff'" in unknown.output


def test_show_ambiguous_prefix(seeded: Seeded, run_cli) -> None:
    conn = store.connect(seeded.db)
    store.insert_spans(conn, [Span(trace_id="a1" + "0" * 30, span_id="1" * 16, name="other")])
    conn.close()
    result = run_cli("show", "a1")
    assert result.exit_code == 1 and "matches several traces" in result.output


def test_waterfall_bar_scales_to_the_trace() -> None:
    span = Span(trace_id="t", span_id="s", name="x", start_ns=50, end_ns=100, ttft_ms=0.000025)
    assert waterfall_bar(span, 0, 100, 10).plain == "     ░░███"
    whole = Span(trace_id="t", span_id="s", name="x", start_ns=0, end_ns=100)
    assert waterfall_bar(whole, 0, 100, 10).plain == "█" * 10
    tiny = Span(trace_id="t", span_id="s", name="x", start_ns=99, end_ns=99)
    assert waterfall_bar(tiny, 0, 100, 10).plain == "         █"


# -- prices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "model", "provider", "usage"),
    [
        (["gpt-4o-mini", "--input", "1200", "--output", "150", "--cache-read", "1024"], "gpt-4o-mini", None,
         {"input_tokens": 1200, "output_tokens": 150, "cache_read_tokens": 1024}),
        (["o3-mini", "--input", "900", "--output", "420", "--reasoning", "256"], "o3-mini", None,
         {"input_tokens": 900, "output_tokens": 420, "output_reasoning_tokens": 256}),
        (["claude-sonnet-4-5", "--provider", "anthropic", "--input", "50000", "--output", "800", "--cache-write",
          "40000", "--cache-read", "5000"], "claude-sonnet-4-5", "anthropic",
         {"input_tokens": 50000, "output_tokens": 800, "cache_write_tokens": 40000, "cache_read_tokens": 5000}),
        (["gemini-2.5-pro", "--provider", "gcp.gemini", "--input", "250000", "--output", "1000"], "gemini-2.5-pro",
         "google", {"input_tokens": 250000, "output_tokens": 1000}),
    ],
)  # fmt: skip
def test_prices_equal_genai_prices(run_cli, args: list[str], model: str, provider: str | None, usage: dict) -> None:
    result = run_cli("prices", *args, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    expected = calc_price(GPUsage(**usage), model, provider_id=provider)
    assert data["cost"]["total_usd"] == float(expected.total_price)
    assert data["cost"]["input_usd"] == float(expected.input_price)
    assert data["cost"]["output_usd"] == float(expected.output_price)
    assert data["match"]["model_id"] == expected.model.id
    text = run_cli("prices", *args).stdout
    assert "total" in text and expected.model.name in text


def test_prices_unknown_model_exits_1(run_cli) -> None:
    result = run_cli("prices", "no-such-model-xyz", "--input", "10", "--output", "5")
    assert result.exit_code == 1
    assert "no price known for model 'no-such-model-xyz'" in result.output
    assert result.stdout == ""


def test_prices_override_and_bad_counts(run_cli, tmp_path: Path, monkeypatch) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."my-finetune"]\ninput = 2.0\noutput = 8.0\n')
    monkeypatch.setenv("LLMOBS_PRICES", str(prices))
    data = json.loads(run_cli("prices", "my-finetune", "--input", "1000000", "--output", "500000", "--json").stdout)
    assert data["cost"] == {"input_usd": 2.0, "output_usd": 4.0, "total_usd": 6.0, "source": "override"}
    assert run_cli("prices", "gpt-4o", "--input", "10", "--cache-read", "11").exit_code == 2


# -- demo and help -----------------------------------------------------------------------------


@pytest.mark.parametrize("builtin", [False, True])
def test_demo_records_traces(run_cli, tmp_path: Path, builtin: bool) -> None:
    db = tmp_path / "demo.db"
    result = run_cli("demo", "--db", str(db), *(["--builtin"] if builtin else []))
    assert result.exit_code == 0, result.output
    conn = store.connect(db, readonly=True)
    rows = store.recent_traces(conn, limit=50)
    roots = {r.root_name for r in rows}
    assert "support-agent" in roots
    # The manual-spans agent (examples/manual_spans.py, or the built-in copy of it).
    [agent] = [
        r for r in rows if (r.root_name, r.spans, r.input_tokens, r.output_tokens) == ("support-agent", 6, 2100, 570)
    ]
    assert agent.errors == 1 and agent.service == "llmobs-demo"
    assert agent.cost_usd == pytest.approx(0.0001932 + 0.002838, abs=1e-12)
    assert "support-agent" in result.stdout  # its tree is shown


@pytest.mark.parametrize("command", ["tail", "traces", "show", "stats", "prices", "demo", "export"])
def test_every_command_has_help_with_examples(run_cli, command: str) -> None:
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and f"llmobs {command}" in result.stdout


def test_group_help_lists_commands(run_cli) -> None:
    out = run_cli("--help").stdout
    for command in ("tail", "traces", "show", "stats", "prices", "demo", "export"):
        assert command in out
    assert cli.name is not None
