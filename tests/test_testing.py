"""llmobs.testing: capture fixture, trace → case → JSONL → load → assert_trajectory on the LangChain example."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from llmobs import testing as llmobs_testing
from llmobs.core.model import Evaluation, Span, SpanKind
from llmobs.integrations.langchain import CallbackHandler
from llmobs.testing import (
    SpanCapture,
    append_case,
    assert_trajectory,
    case_from_trace,
    load_cases,
    trajectory,
)

pytest_plugins = ["pytester"]

# The fixture, as `pytest_plugins = ["llmobs.testing"]` provides it (that route is tested below with
# pytester; here the module is already imported, so pytest could not register it as a plugin).
llmobs_spans = llmobs_testing.llmobs_spans

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUESTION = "How long do refunds take for order 42?"
ANSWER = "Your refund for order 42 was issued; expect it within 5 business days. "


@pytest.fixture
def example() -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module("langchain_agent")


def run_agent(example: ModuleType, replies: list[AIMessage]) -> str:
    """The example agent with scripted model replies (its tool fails on the first attempt)."""
    example._attempts["lookup_order"] = 0
    model = example.StreamingFakeChat(streaming=True, messages=iter(replies))
    agent = example.build_agent(model, example.PolicyRetriever(documents=example.KNOWLEDGE))
    return str(agent.invoke(QUESTION, config={"callbacks": [CallbackHandler()]}))


def lookup(call_id: str, order_id: str = "42", **extra: Any) -> AIMessage:
    args = {"order_id": order_id, **extra}
    return AIMessage(
        content="",
        tool_calls=[{"name": "lookup_order", "args": args, "id": call_id}],
        usage_metadata={"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
    )


def final() -> AIMessage:
    return AIMessage(
        content=ANSWER.strip(), usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
    )


def test_case_from_the_example_trace(example: ModuleType, llmobs_spans: SpanCapture) -> None:
    [trace_id] = example.run()
    case = case_from_trace(llmobs_spans)
    assert case == {
        "id": trace_id,
        "name": "support-agent",
        "service": case["service"],
        "input": QUESTION,
        "output": ANSWER,
        "trajectory": [
            {"tool": "lookup_order", "arguments": {"order_id": "42"}, "status": "error"},  # timed out, retried
            {"tool": "lookup_order", "arguments": {"order_id": "42"}, "status": "ok"},
        ],
        "model": "gpt-4o-mini",
        "models": ["gpt-4o-mini"],
        "evaluations": [],
        "status": "ok",
        "error": None,
        "recorded_at": case["recorded_at"],
    }
    assert case["recorded_at"].endswith("Z")


def test_export_load_and_replay_passes_on_the_same_run_and_fails_when_a_tool_is_skipped(
    example: ModuleType, llmobs_spans: SpanCapture, tmp_path: Path
) -> None:
    cases = tmp_path / "cases" / "regressions.jsonl"
    example.run()
    append_case(cases, case_from_trace(llmobs_spans))
    [case] = load_cases(cases)

    # The same run again: same tools, same order, same arguments.
    llmobs_spans.clear()
    assert run_agent(example, [lookup("c1"), lookup("c2"), final()]) == ANSWER
    assert_trajectory(llmobs_spans, case)

    # A run that answers after the failed lookup, without retrying it.
    llmobs_spans.clear()
    run_agent(example, [lookup("c1"), final()])
    with pytest.raises(AssertionError) as failure:
        assert_trajectory(llmobs_spans, case)
    assert str(failure.value).splitlines()[0] == (
        f"tool trajectory differs from case {case['id']} at step 2: the run stopped after 1 tool call(s); "
        'expected next: lookup_order({"order_id": "42"})'
    )


def test_arguments_must_match_unless_ignored(example: ModuleType, llmobs_spans: SpanCapture) -> None:
    run_agent(example, [lookup("c1", request_id="r-1"), lookup("c2", request_id="r-1"), final()])
    case = case_from_trace(llmobs_spans)
    llmobs_spans.clear()
    run_agent(example, [lookup("c1", request_id="r-2"), lookup("c2", request_id="r-2"), final()])
    with pytest.raises(
        AssertionError, match=r"at step 1: expected lookup_order\(\{\"order_id\": \"42\", \"request_id\": \"r-1\"\}\)"
    ):
        assert_trajectory(llmobs_spans, case)
    assert_trajectory(llmobs_spans, case, ignore_args=["request_id"])
    llmobs_spans.clear()
    run_agent(example, [lookup("c1", order_id="43"), lookup("c2", order_id="43"), final()])
    with pytest.raises(AssertionError, match="at step 1"):
        assert_trajectory(llmobs_spans, case, ignore_args=["request_id"])


def test_extra_tool_calls_and_span_lists() -> None:
    def tool(n: int, name: str, args: Any) -> Span:
        return Span(
            trace_id="a" * 32,
            span_id=f"{n:016x}",
            parent_id="f" * 16,
            name=f"execute_tool {name}",
            kind=SpanKind.TOOL,
            start_ns=n,
            end_ns=n + 1,
            input=args,
        )

    recorded = [tool(1, "search", '{"q": "x", "meta": {"ts": 1}}'), tool(2, "fetch", {"url": "u"})]
    assert trajectory(recorded) == [
        {"tool": "search", "arguments": {"q": "x", "meta": {"ts": 1}}, "status": "ok"},
        {"tool": "fetch", "arguments": {"url": "u"}, "status": "ok"},
    ]
    case = {"id": "c", "trajectory": trajectory(recorded[:1])}
    with pytest.raises(
        AssertionError, match=re.escape('at step 2: the run made an extra tool call: fetch({"url": "u"})')
    ):
        assert_trajectory(recorded, case)
    other = [tool(1, "search", {"q": "x", "meta": {"ts": 2}})]
    assert_trajectory(other, case, ignore_args=["meta.ts"])
    with pytest.raises(AssertionError):
        assert_trajectory(other, case, ignore_args=["q.ts"])


def test_case_needs_one_trace_and_keeps_evaluations() -> None:
    root = Span(
        trace_id="a" * 32,
        span_id="1" * 16,
        name="agent",
        kind=SpanKind.AGENT,
        input="q",
        output="a",
        evaluations=[Evaluation("non_empty", 1.0, "pass", None)],
    )
    case = case_from_trace([root])
    assert case["evaluations"] == [
        {"span": "agent", "name": "non_empty", "score": 1.0, "label": "pass", "explanation": None}
    ]
    assert (case["input"], case["output"], case["trajectory"], case["model"]) == ("q", "a", [], None)
    with pytest.raises(ValueError, match="got none"):
        case_from_trace([])
    with pytest.raises(ValueError, match="got 2 traces"):
        case_from_trace([root, Span(trace_id="b" * 32, span_id="2" * 16, name="x")])


def test_load_cases_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"id": "a"}\n\n[1]\n')
    with pytest.raises(ValueError, match=r"cases.jsonl:3: a case is a JSON object, got list"):
        load_cases(path)
    path.write_text('{"id": "a"}\n{oops\n')
    with pytest.raises(ValueError, match=r"cases.jsonl:2: not JSON"):
        load_cases(path)


def test_the_fixture_works_as_a_pytest_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["llmobs.testing"]\n')
    pytester.makepyfile(
        """
        import llmobs

        def test_captures(llmobs_spans):
            with llmobs.span("outer", kind="agent"):
                with llmobs.span("execute_tool search", kind="tool") as t:
                    t.input = {"q": "refunds"}
            assert [s.name for s in llmobs_spans.spans()] == ["execute_tool search", "outer"]
            assert len(llmobs_spans.traces()) == 1
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
