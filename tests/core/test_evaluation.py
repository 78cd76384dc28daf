"""Online evaluation: sampling, the worker's isolation from faulty evaluators, judge spans and their cost."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import genai_prices
import pytest
from langchain_core.messages import AIMessage

import llmobs
from llmobs.core import runtime, store
from llmobs.core.evaluation import Evaluator, is_eval_sampled, normalise_result, sample_fraction
from llmobs.core.model import Cost, Evaluation, Span, SpanKind, Status, Usage
from llmobs.core.sinks import MemorySink
from llmobs.core.tracer import suppress_tracing, tracing_suppressed
from llmobs.evaluators import (
    Contains,
    CostBudget,
    LatencyBudget,
    LLMJudge,
    NonEmptyAnswer,
    Refusal,
    Regex,
    ValidJSON,
)
from tests.conftest import Recorder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


def trace_id(i: int) -> str:
    return f"{i * 2654435761 % 2**128:032x}"


def root(i: int, output: Any = "an answer", **fields: Any) -> Span:
    return Span(
        trace_id=trace_id(i), span_id=f"{i + 1:016x}", name=f"req {i}", kind=SpanKind.CHAIN, output=output, **fields
    )


def evaluation_recorder(evaluators: list[Evaluator], rate: float = 1.0, seed: int = 0) -> MemorySink:
    sink = MemorySink()
    llmobs.configure(sinks=[sink], flush_interval=0.005, evaluators=evaluators, eval_sample_rate=rate, eval_seed=seed)
    return sink


def submit(span: Span) -> None:
    runtime.get_runtime().pipeline.submit(span)


class Names(Evaluator):
    """Records the thread it runs on and the spans it sees."""

    name = "names"

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.seen: list[str] = []

    def evaluate(self, span: Span) -> Evaluation:
        self.threads.add(threading.current_thread().name)
        self.seen.append(span.trace_id)
        return Evaluation(self.name, 1.0, "seen")


# -- sampling ------------------------------------------------------------------------------------


def test_sample_is_deterministic_and_honours_the_rate_over_10000_traces() -> None:
    ids = [trace_id(i) for i in range(10_000)]
    first = {t for t in ids if is_eval_sampled(t, 0.1, seed=7)}
    again = {t for t in ids if is_eval_sampled(t, 0.1, seed=7)}
    other_seed = {t for t in ids if is_eval_sampled(t, 0.1, seed=8)}
    assert first == again
    assert 900 <= len(first) <= 1100  # binomial sd 30: ±3.3 sd
    assert 900 <= len(other_seed) <= 1100
    assert first != other_seed
    assert all(0.0 <= sample_fraction(t, 7) < 1.0 for t in ids[:100])
    assert {t for t in ids if is_eval_sampled(t, 1.0)} == set(ids)
    assert not any(is_eval_sampled(t, 0.0) for t in ids)


def test_pipeline_evaluates_exactly_the_sampled_roots_and_llm_spans() -> None:
    names = Names()
    sink = evaluation_recorder([names], rate=0.1, seed=3)
    spans = [root(i) for i in range(10_000)]
    # Children that are neither roots nor model calls are never evaluated.
    spans += [
        Span(
            trace_id=trace_id(i), span_id=f"{i + 20_000:016x}", parent_id=f"{i + 1:016x}", name="t", kind=SpanKind.TOOL
        )
        for i in range(50)
    ]
    llm = Span(
        trace_id=trace_id(1), span_id="f" * 16, parent_id=f"{2:016x}", name="chat", kind=SpanKind.LLM, output="x"
    )
    spans.append(llm)
    for span in spans:
        submit(span)
    assert llmobs.flush(timeout=60)
    written = sink.spans
    assert len(written) == len(spans)
    evaluated = {s.span_id for s in written if s.evaluations}
    want = {s.span_id for s in spans if s.kind is not SpanKind.TOOL and is_eval_sampled(s.trace_id, 0.1, 3)}
    assert evaluated == want
    assert 900 <= len(want) <= 1100
    assert names.threads == {"llmobs-eval-names"}
    assert llmobs.health()["evaluation"]["evaluated"] == len(want)


def test_unsampled_spans_are_written_while_a_sampled_one_waits_for_its_evaluator() -> None:
    gate = threading.Event()

    class Gate(Evaluator):
        timeout_s = 30.0

        def evaluate(self, span: Span) -> float:
            gate.wait(30)
            return 0.5

    sampled = next(i for i in range(100) if is_eval_sampled(trace_id(i), 0.5))
    unsampled = next(i for i in range(100) if not is_eval_sampled(trace_id(i), 0.5))
    sink = evaluation_recorder([Gate()], rate=0.5)
    submit(root(sampled))
    submit(root(unsampled))
    deadline = time.monotonic() + 10
    while not sink.spans and time.monotonic() < deadline:
        time.sleep(0.005)
    assert [s.trace_id for s in sink.spans] == [trace_id(unsampled)]
    gate.set()
    assert llmobs.flush(timeout=10)
    by_trace = {s.trace_id: s for s in sink.spans}
    assert by_trace[trace_id(sampled)].evaluations == [Evaluation("gate", 0.5, None, None)]
    assert by_trace[trace_id(unsampled)].evaluations is None


# -- faults ----------------------------------------------------------------------------------------


def test_an_evaluator_that_raises_and_one_that_hangs_do_not_affect_the_app_or_the_others() -> None:
    release = threading.Event()

    class Raises(Evaluator):
        def evaluate(self, span: Span) -> Evaluation:
            raise RuntimeError("judge exploded")

    class Hangs(Evaluator):
        timeout_s = 0.2

        def evaluate(self, span: Span) -> Evaluation:
            release.wait(60)
            return Evaluation("hangs", 1.0)

    names = Names()
    sink = evaluation_recorder([Raises(), Hangs(), names, NonEmptyAnswer()])
    app_thread = threading.current_thread().name
    answers = []
    for i in range(3):
        with llmobs.span(f"request {i}", kind="chain") as s:
            s.output = f"answer {i}"
        answers.append(f"answer {i}")
    assert answers == ["answer 0", "answer 1", "answer 2"]
    assert llmobs.flush(timeout=30)
    spans = sorted(sink.spans, key=lambda s: s.start_ns)
    assert [s.name for s in spans] == ["request 0", "request 1", "request 2"]
    assert spans[0].evaluations == [
        Evaluation("raises", None, "error", "RuntimeError: judge exploded"),
        Evaluation("hangs", None, "error", "timed out after 0.2s"),
        Evaluation("names", 1.0, "seen", None),
        Evaluation("non_empty", 1.0, "pass", None),
    ]
    # The hung call still runs: later spans get an error at once instead of waiting again.
    for span in spans[1:]:
        assert span.evaluations == [
            Evaluation("raises", None, "error", "RuntimeError: judge exploded"),
            Evaluation("hangs", None, "error", "skipped: a previous evaluation is still running past its timeout"),
            Evaluation("names", 1.0, "seen", None),
            Evaluation("non_empty", 1.0, "pass", None),
        ]
    assert app_thread not in names.threads
    health = llmobs.health()["evaluation"]
    assert health["evaluated"] == 3 and health["errors"] == 6 and health["timeouts"] == 3
    release.set()


def test_invalid_results_become_error_results() -> None:
    assert normalise_result("x", 1.5) == Evaluation("x", None, "error", "score 1.5 outside [0, 1]")
    assert normalise_result("x", "great") == Evaluation(
        "x", None, "error", "evaluator returned str, not an Evaluation, bool or number"
    )
    assert normalise_result("x", True) == Evaluation("x", 1.0, "pass", None)
    assert normalise_result("x", 0) == Evaluation("x", 0.0, None, None)
    assert normalise_result("x", None) is None
    assert normalise_result("x", Evaluation("", 0.3, "meh")) == Evaluation("x", 0.3, "meh", None)


def test_configure_rejects_what_is_not_an_evaluator() -> None:
    with pytest.raises(TypeError, match="Evaluator"):
        llmobs.configure(sinks=["memory"], evaluators=[lambda span: 1.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="eval_sample_rate"):
        llmobs.configure(sinks=["memory"], evaluators=[NonEmptyAnswer()], eval_sample_rate=1.5)


def test_spans_waiting_for_evaluation_are_written_unevaluated_at_shutdown() -> None:
    release = threading.Event()

    class Slow(Evaluator):
        timeout_s = 30.0

        def evaluate(self, span: Span) -> float:
            release.wait(30)
            return 1.0

    sink = evaluation_recorder([Slow()])
    for i in range(3):
        submit(root(i))
    assert llmobs.shutdown(timeout=0.3) is False
    release.set()
    assert sorted(s.name for s in sink.spans) == ["req 0", "req 1", "req 2"]


def test_evaluations_reach_the_sqlite_store(isolated_llmobs: Path) -> None:
    llmobs.configure(flush_interval=0.005, evaluators=[NonEmptyAnswer(), Contains("refund")], eval_sample_rate=1.0)
    with llmobs.span("ask", kind="chain") as s:
        s.output = "no idea"
    assert llmobs.flush(timeout=10)
    conn = store.connect(isolated_llmobs, readonly=True)
    [row] = store.trace_spans(conn, s.trace_id)
    assert row.evaluations == [
        Evaluation("non_empty", 1.0, "pass", None),
        Evaluation("contains", 0.0, "fail", "missing ['refund']"),
    ]


# -- suppression -------------------------------------------------------------------------------------


def test_suppress_tracing_records_nothing_started_or_finished_inside(recorder: Recorder) -> None:
    tracer = runtime.get_tracer()
    with suppress_tracing():
        assert tracing_suppressed()
        with llmobs.span("hidden"):
            pass
        tracer.start_span("k", "hidden keyed", SpanKind.LLM, "manual", activate=True)
        assert tracer.get_span("k") is None and tracer.end_span("k") is None
        assert llmobs.current_span() is None
    assert not tracing_suppressed()
    with llmobs.span("shown"):
        pass
    assert recorder.tree() == [("custom", "shown", [])]


# -- the judge ---------------------------------------------------------------------------------------


@pytest.fixture
def langchain_example() -> Iterator[ModuleType]:
    yield load_example("langchain_agent")


def expected_cost(model: str, provider: str, usage: Usage) -> float:
    price = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
        model,
        provider_id=provider,
    )
    return float(price.total_price)


def test_langchain_judge_is_an_evaluator_span_outside_the_app_totals(
    langchain_example: ModuleType, isolated_llmobs: Path
) -> None:
    from llmobs.integrations.langchain import setup

    memory = MemorySink()
    llmobs.configure(
        sinks=[memory, "sqlite"],
        flush_interval=0.005,
        eval_sample_rate=1.0,
        evaluators=[
            LLMJudge(
                langchain_example.StreamingFakeChat(
                    messages=iter(
                        [
                            AIMessage(
                                content='{"score": 0.9, "label": "grounded", "explanation": "cites the 5 day policy"}',
                                usage_metadata={"input_tokens": 310, "output_tokens": 22, "total_tokens": 332},
                            )
                        ]
                    )
                ),
                rubric="Is the answer grounded in the policy?",
            )
        ],
    )
    setup.instrument()  # the global handler is on: the judge's own LangChain call must stay invisible
    try:
        [tid] = langchain_example.run()
        assert llmobs.flush(timeout=10)
    finally:
        setup.uninstrument()
    spans = memory.spans
    kinds = sorted(s.kind.value for s in spans)
    assert kinds == ["chain", "evaluator", "llm", "llm", "llm", "retriever", "tool", "tool"]
    [agent] = [s for s in spans if s.parent_id is None]
    [judge] = [s for s in spans if s.kind is SpanKind.EVALUATOR]
    assert agent.evaluations == [Evaluation("llm_judge", 0.9, "grounded", "cites the 5 day policy")]
    assert (judge.trace_id, judge.parent_id, judge.name) == (tid, agent.span_id, "evaluate llm_judge")
    assert (judge.model, judge.provider) == ("gpt-4o-mini", "openai")
    assert judge.usage == Usage(input_tokens=310, output_tokens=22, total_tokens=332)
    assert judge.cost is not None and judge.cost.total_usd == pytest.approx(
        expected_cost("gpt-4o-mini", "openai", judge.usage)
    )
    assert "Is the answer grounded in the policy?" in judge.input and "5 business days" in judge.input
    app_cost = sum(s.cost.total_usd for s in spans if s.kind is SpanKind.LLM and s.cost is not None)
    conn = store.connect(isolated_llmobs, readonly=True)
    [summary] = store.recent_traces(conn)
    assert summary.cost_usd == pytest.approx(app_cost)
    assert summary.input_tokens == 1200 + 1290 + 1400 and summary.output_tokens == 40 + 40 + 90


def test_callable_judge_with_usage_and_a_calls_per_minute_budget() -> None:
    prompts: list[str] = []

    def judge(prompt: str) -> dict[str, Any]:
        prompts.append(prompt)
        return {
            "score": 0.25,
            "label": "vague",
            "explanation": "no date given",
            "usage": {"input_tokens": 100, "output_tokens": 10},
            "model": "gpt-4o-mini",
        }

    sink = evaluation_recorder([LLMJudge(judge, rubric="Gives a date.", calls_per_minute=1, provider="openai")])
    for i in range(2):
        submit(root(i, output="soon", input="when will my refund arrive?"))
    assert llmobs.flush(timeout=10)
    roots = sorted((s for s in sink.spans if s.parent_id is None), key=lambda s: s.name)
    assert roots[0].evaluations == [Evaluation("llm_judge", 0.25, "vague", "no date given")]
    assert roots[1].evaluations == [Evaluation("llm_judge", None, "skipped", "calls_per_minute budget exhausted")]
    [judge_span] = [s for s in sink.spans if s.kind is SpanKind.EVALUATOR]
    assert judge_span.parent_id == roots[0].span_id
    assert judge_span.usage == Usage(input_tokens=100, output_tokens=10, total_tokens=110)
    assert judge_span.cost is not None and judge_span.cost.total_usd == pytest.approx(
        expected_cost("gpt-4o-mini", "openai", judge_span.usage)
    )
    assert len(prompts) == 1 and "Gives a date." in prompts[0] and "when will my refund arrive?" in prompts[0]


def test_judge_that_fails_records_an_error_result_and_an_error_span() -> None:
    def judge(prompt: str) -> str:
        raise ConnectionError("judge endpoint down")

    sink = evaluation_recorder([LLMJudge(judge, rubric="r", model="gpt-4o-mini")])
    submit(root(1))
    assert llmobs.flush(timeout=10)
    [req] = [s for s in sink.spans if s.parent_id is None]
    [judge_span] = [s for s in sink.spans if s.kind is SpanKind.EVALUATOR]
    assert req.evaluations == [Evaluation("llm_judge", None, "error", "ConnectionError: judge endpoint down")]
    assert judge_span.status is Status.ERROR and judge_span.usage is None and judge_span.cost is None


def test_judge_reads_prose_replies() -> None:
    judge = LLMJudge(lambda prompt: "Score: 0.7 because it is mostly right", rubric="r")
    result = judge.evaluate(root(1))
    assert result == Evaluation("llm_judge", 0.7, None, "Score: 0.7 because it is mostly right")
    assert LLMJudge(lambda p: "no verdict here", rubric="r").evaluate(root(1)) == Evaluation(
        "llm_judge", None, "error", "no score in the judge's reply: 'no verdict here'"
    )
    with pytest.raises(TypeError):
        LLMJudge(object(), rubric="r")


# -- built-ins ---------------------------------------------------------------------------------------


def llm(output: Any, **fields: Any) -> Span:
    return Span(
        trace_id="1" * 32, span_id="2" * 16, parent_id="3" * 16, name="chat", kind=SpanKind.LLM, output=output, **fields
    )


def test_non_empty_answer() -> None:
    e = NonEmptyAnswer()
    assert e.evaluate(llm({"role": "assistant", "content": "hi"})) == Evaluation("non_empty", 1.0, "pass", None)
    assert e.evaluate(llm({"role": "assistant", "content": "  "})) == Evaluation(
        "non_empty", 0.0, "empty", "the answer is empty"
    )
    assert e.evaluate(root(1, output=None)) == Evaluation("non_empty", 0.0, "empty", "no answer")
    # A turn that only asks for tools is not an answer.
    assert e.evaluate(llm({"role": "assistant", "content": "", "tool_calls": [{"name": "t"}]})) is None
    # A message list: the last message is the answer.
    assert e.evaluate(root(1, output=[{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}])) == (
        Evaluation("non_empty", 0.0, "empty", "the answer is empty")
    )


def test_valid_json_with_and_without_schema() -> None:
    assert ValidJSON().evaluate(root(1, output='```json\n{"a": 1}\n```')) == Evaluation(
        "valid_json", 1.0, "valid", None
    )
    bad = ValidJSON().evaluate(root(1, output="{a: 1}"))
    assert bad is not None and (bad.score, bad.label) == (0.0, "invalid") and bad.explanation.startswith("not JSON")
    schema = {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}
    checker = ValidJSON(schema, name="order_json")
    assert checker.evaluate(root(1, output='{"order_id": "42"}')) == Evaluation("order_json", 1.0, "valid", None)
    assert checker.evaluate(root(1, output='{"order_id": 42}')) == Evaluation(
        "order_json", 0.0, "schema_mismatch", "order_id: 42 is not of type 'string'"
    )


def test_valid_json_schema_without_jsonschema_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(ImportError, match="pip install jsonschema"):
        ValidJSON({"type": "object"})
    assert ValidJSON().evaluate(root(1, output="[]")) == Evaluation("valid_json", 1.0, "valid", None)


def test_regex_and_contains() -> None:
    assert Regex(r"\b\d+ business days\b").evaluate(root(1, output="within 5 business days")) == Evaluation(
        "regex", 1.0, "pass", "matched '5 business days'"
    )
    assert Regex(r"(?i)password", must_match=False, name="no_secrets").evaluate(root(1, output="PASSWORD: x")) == (
        Evaluation("no_secrets", 0.0, "fail", "matched 'PASSWORD'")
    )
    assert Contains(["Refund", "order 42"]).evaluate(root(1, output="refund for order 42")) == Evaluation(
        "contains", 1.0, "pass", None
    )
    assert Contains(["refund", "tracking"]).evaluate(root(1, output="refund")) == Evaluation(
        "contains", 0.0, "fail", "missing ['tracking']"
    )
    assert Contains(["x", "refund"], mode="any").evaluate(root(1, output="refund")).score == 1.0  # type: ignore[union-attr]
    assert Contains("sorry", mode="none").evaluate(root(1, output="Sorry!")) == Evaluation(
        "contains", 0.0, "fail", "contains ['sorry']"
    )


def test_refusal_detection() -> None:
    e = Refusal()
    for text in (
        "I'm sorry, but I can't help with that.",
        "I cannot assist with this request.",
        "As an AI language model, I can\u2019t browse.",
        "I am unable to provide medical advice.",
    ):
        result = e.evaluate(root(1, output=text))
        assert result is not None and (result.score, result.label) == (0.0, "refusal"), text
    for text in ("Your refund was issued.", "Sorry for the delay: your refund was issued."):
        assert e.evaluate(root(1, output=text)) == Evaluation("refusal", 1.0, "answer", None), text
    assert e.evaluate(root(1, output="")) is None


def test_latency_and_cost_budgets() -> None:
    span = root(1, start_ns=0, end_ns=4_000_000_000)
    assert LatencyBudget("5s").evaluate(span) == Evaluation("latency_budget", 1.0, "within_budget", None)
    assert LatencyBudget("2s").evaluate(span) == Evaluation(
        "latency_budget", 0.5, "over_budget", "4000ms over a 2000ms budget"
    )
    assert LatencyBudget(500, ttft=True).evaluate(llm("x", ttft_ms=1000.0)) == Evaluation(
        "ttft_budget", 0.5, "over_budget", "1000ms over a 500ms budget"
    )
    assert LatencyBudget("1s", ttft=True).evaluate(span) is None
    with pytest.raises(ValueError, match="not a duration"):
        LatencyBudget("soon")
    priced = llm("x", cost=Cost(0.01, 0.03, 0.04, "test"))
    assert CostBudget(0.02).evaluate(priced) == Evaluation(
        "cost_budget", 0.5, "over_budget", "$0.040000 over a $0.020000 budget"
    )
    assert CostBudget(0.02).evaluate(llm("x")) is None  # unpriced is not free


def test_cost_budget_on_a_root_sums_the_traces_model_spend() -> None:
    sink = evaluation_recorder([CostBudget(0.05, targets="root")])
    tid = "a" * 32
    for i, cost in enumerate((0.02, 0.04)):
        submit(
            Span(
                trace_id=tid,
                span_id=f"{i + 1:016x}",
                parent_id="f" * 16,
                name="chat",
                kind=SpanKind.LLM,
                usage=Usage(10, 10),
                cost=Cost(0, cost, cost, "test"),
            )
        )
    submit(Span(trace_id=tid, span_id="f" * 16, name="agent", kind=SpanKind.AGENT, output="done"))
    assert llmobs.flush(timeout=10)
    [agent] = [s for s in sink.spans if s.parent_id is None]
    assert agent.evaluations is not None
    [verdict] = agent.evaluations
    assert (verdict.name, verdict.label, verdict.explanation) == (
        "cost_budget",
        "over_budget",
        "$0.060000 over a $0.050000 budget",
    )
    assert verdict.score == pytest.approx(0.05 / 0.06)
    assert all(s.evaluations is None for s in sink.spans if s.kind is SpanKind.LLM)


def test_an_evaluator_raising_system_exit_keeps_its_thread() -> None:
    class Exits(Evaluator):
        def evaluate(self, span: Span) -> float:
            if span.name == "req 0":
                raise SystemExit("bye")
            return 1.0

    sink = evaluation_recorder([Exits()])
    for i in range(2):
        submit(root(i))
    assert llmobs.flush(timeout=10)
    results = {s.name: s.evaluations for s in sink.spans}
    assert results == {
        "req 0": [Evaluation("exits", None, "error", "SystemExit: bye")],
        "req 1": [Evaluation("exits", 1.0, None, None)],
    }


def test_with_content_capture_off_answers_are_not_judged_but_budgets_are() -> None:
    sink = MemorySink()
    llmobs.configure(
        sinks=[sink],
        flush_interval=0.005,
        capture_content=False,
        evaluators=[NonEmptyAnswer(), LLMJudge(lambda p: 1.0, rubric="r"), LatencyBudget("5s")],
        eval_sample_rate=1.0,
    )
    submit(root(1, output="a real answer", start_ns=0, end_ns=1_000_000))
    assert llmobs.flush(timeout=10)
    [span] = sink.spans
    assert span.output is None
    assert span.evaluations == [Evaluation("latency_budget", 1.0, "within_budget", None)]
