"""From incident to test through the CLI: the LangChain example agent records a trace into the
store, `llmobs export --trace ID --format case` appends it to a JSONL file, and `llmobs.testing`
replays it: the same run passes `assert_trajectory`, a run that skips a tool fails it."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.messages import AIMessage

import llmobs
from llmobs import testing as llmobs_testing
from llmobs.evaluators import NonEmptyAnswer
from llmobs.integrations.langchain import CallbackHandler
from llmobs.testing import assert_trajectory, load_cases

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "How long do refunds take for order 42?"
ANSWER = "Your refund for order 42 was issued; expect it within 5 business days. "


@pytest.fixture
def example() -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module("langchain_agent")


def record_incident(example: ModuleType) -> str:
    """The example agent, recorded into the store (LLMOBS_DB) with online evaluation of its root."""
    llmobs.configure(evaluators=[NonEmptyAnswer(targets="root")], eval_sample_rate=1.0, flush_interval=0.005)
    [trace_id] = example.run()
    assert llmobs.shutdown(timeout=10)
    return str(trace_id)


def run_agent(example: ModuleType, replies: list[AIMessage]) -> str:
    example._attempts["lookup_order"] = 0  # its tool times out on the first attempt
    model = example.StreamingFakeChat(streaming=True, messages=iter(replies))
    agent = example.build_agent(model, example.PolicyRetriever(documents=example.KNOWLEDGE))
    return str(agent.invoke(QUESTION, config={"callbacks": [CallbackHandler()]}))


def final_answer() -> AIMessage:
    return AIMessage(
        content=ANSWER.strip(), usage_metadata={"input_tokens": 90, "output_tokens": 20, "total_tokens": 110}
    )


def test_export_case_load_and_replay_through_the_cli(example: ModuleType, run_cli, tmp_path: Path) -> None:
    trace_id = record_incident(example)
    cases_file = tmp_path / "tests" / "cases.jsonl"

    result = run_cli("export", "--trace", trace_id[:10], "--format", "case", "-o", str(cases_file))
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"appended case {trace_id[:8]} (support-agent: 2 tool calls, status ok) to {cases_file}\n")
    shown = run_cli("show", trace_id[:8], "--brief")
    assert shown.exit_code == 0, shown.output
    assert "   eval       non_empty 1.00 pass" not in shown.stdout  # --brief: tree and timeline only
    details = run_cli("show", trace_id[:8], "--no-content").stdout.splitlines()
    assert [line for line in details if line.startswith("   eval ")] == ["   eval       non_empty 1.00 pass"]
    printed = run_cli("export", "--trace", trace_id, "--format", "case")
    assert printed.exit_code == 0, printed.output
    [case] = load_cases(cases_file)
    assert json.loads(printed.stdout) == case
    assert case == {
        "id": trace_id,
        "name": "support-agent",
        "service": "tests",
        "input": QUESTION,
        "output": ANSWER,
        "trajectory": [
            {"tool": "lookup_order", "arguments": {"order_id": "42"}, "status": "error"},  # timed out, retried
            {"tool": "lookup_order", "arguments": {"order_id": "42"}, "status": "ok"},
        ],
        "model": "gpt-4o-mini",
        "models": ["gpt-4o-mini"],
        "evaluations": [
            {"span": "support-agent", "name": "non_empty", "score": 1.0, "label": "pass", "explanation": None}
        ],
        "status": "ok",
        "error": None,
        "recorded_at": case["recorded_at"],
    }

    # Replay with the spans captured in memory (what the `llmobs_spans` fixture does): the same
    # run keeps the trajectory...
    capture = llmobs_testing.start_capture()
    replies = example.scripted_replies()
    assert run_agent(example, replies) == ANSWER
    assert_trajectory(capture, case)
    # ...a run that answers without retrying the lookup skips a tool call...
    capture.clear()
    run_agent(example, [replies[0], final_answer()])
    with pytest.raises(AssertionError) as skipped_retry:
        assert_trajectory(capture, case)
    assert str(skipped_retry.value).splitlines()[0] == (
        f"tool trajectory differs from case {trace_id} at step 2: the run stopped after 1 tool call(s); "
        'expected next: lookup_order({"order_id": "42"})'
    )
    # ...and one that never looks the order up skips both.
    capture.clear()
    assert run_agent(example, [final_answer()]) == ANSWER
    with pytest.raises(AssertionError, match=r"at step 1: the run stopped after 0 tool call\(s\)"):
        assert_trajectory(capture, case)


def test_cases_accumulate_in_the_file(example: ModuleType, run_cli, tmp_path: Path) -> None:
    first = record_incident(example)
    second = record_incident(example)
    cases_file = tmp_path / "cases.jsonl"
    for trace_id in (first, second, first):
        assert run_cli("export", "--trace", trace_id, "--format", "case", "-o", str(cases_file)).exit_code == 0
    assert [c["id"] for c in load_cases(cases_file)] == [first, second, first]


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--format", "case"], "--format case exports one trace: give --trace ID", 2),
        (["--format", "case", "--trace", "ab", "--to", "otlp"], "(and neither --to nor --since)", 2),
        (["--format", "case", "--trace", "ffff"], "no trace", 1),
    ],
)
def test_export_case_needs_one_known_trace(
    run_cli, isolated_llmobs: Path, args: list[str], message: str, code: int
) -> None:
    from llmobs.core import store

    store.connect(isolated_llmobs).close()
    result = run_cli("export", *args)
    assert result.exit_code == code
    assert message in result.stderr
