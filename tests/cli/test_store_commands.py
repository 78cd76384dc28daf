"""`llmobs traces`, `show` and `export` over a real store, through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import llmobs
from llmobs import Usage
from llmobs.cli.main import cli

CONTRACT_CHECKER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "check_span_contract.py"


@pytest.fixture
def seeded(isolated_llmobs: Path) -> Path:
    with llmobs.span("agent run", kind="agent") as root:
        with llmobs.span("chat gpt-4o", kind="llm", model="gpt-4o", provider="openai") as s:
            s.usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=4_000)
        try:
            with llmobs.span("execute_tool lookup", kind="tool"):
                raise TimeoutError("service down")
        except TimeoutError:
            pass
        root.output = "done"
    with llmobs.span("second", kind="chain"), llmobs.span("chat mystery", kind="llm", model="mystery-llm") as s:
        s.usage = Usage(input_tokens=5, output_tokens=5)
    assert llmobs.flush()
    return isolated_llmobs


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("llmobs, version ")


def test_traces_lists_totals(seeded: Path) -> None:
    result = CliRunner().invoke(cli, ["traces", "--json", "--db", str(seeded)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["root_name"] for r in rows] == ["second", "agent run"]
    agent = rows[1]
    assert (agent["spans"], agent["errors"], agent["status"]) == (3, 1, "error")
    assert (agent["input_tokens"], agent["output_tokens"]) == (10_000, 1_000)
    assert agent["cost_usd"] == pytest.approx(0.03)
    assert rows[0]["cost_usd"] is None and rows[0]["unpriced"] == 1

    table = CliRunner().invoke(cli, ["traces", "--db", str(seeded)])
    assert table.exit_code == 0
    assert "agent run" in table.output and "$0.0300" in table.output and "$?" in table.output


def test_show_by_prefix_prints_the_tree(seeded: Path) -> None:
    rows = CliRunner().invoke(cli, ["traces", "--json", "--db", str(seeded)]).output.splitlines()
    trace_id = json.loads(rows[1])["trace_id"]
    result = CliRunner().invoke(cli, ["show", trace_id[:6], "--db", str(seeded)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")
    assert any("agent run" in line for line in lines)
    assert any("chat gpt-4o" in line and "10k(4.0kc)→1.0k tok" in line and "$0.0300" in line for line in lines)
    assert any("TimeoutError: service down" in line for line in lines)

    as_json = CliRunner().invoke(cli, ["show", trace_id[:6], "--json", "--db", str(seeded)])
    assert [json.loads(line)["name"] for line in as_json.output.splitlines()] == [
        "agent run",
        "chat gpt-4o",
        "execute_tool lookup",
    ]


def test_show_unknown_trace_is_a_clear_error(seeded: Path) -> None:
    result = CliRunner().invoke(cli, ["show", "deadbeef", "--db", str(seeded)])
    assert result.exit_code == 1
    assert "no trace starts with 'deadbeef'" in result.output


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["traces", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no llmobs store at" in result.output


@pytest.mark.skipif(not CONTRACT_CHECKER.exists(), reason="shared/tools not beside the checkout")
def test_export_jsonl_passes_the_span_contract(seeded: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "--format", "jsonl", "--db", str(seeded)])
    assert result.exit_code == 0
    assert len(result.output.splitlines()) == 5
    check = subprocess.run(
        [sys.executable, str(CONTRACT_CHECKER)], input=result.output, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout
    assert check.stdout.strip().endswith("5 records, 0 problems")

    out = tmp_path / "spans.jsonl"
    to_file = CliRunner().invoke(cli, ["export", "-o", str(out), "--db", str(seeded)])
    assert to_file.exit_code == 0
    assert out.read_text() == result.output
