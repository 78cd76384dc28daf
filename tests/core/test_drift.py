"""Drift: a fixture with a known regression is flagged; unchanged metrics are not; reports are deterministic."""

from __future__ import annotations

import json
import random

import pytest

from llmobs.core.drift import Side, compare, parse_side, percentile, select_traces, trace_root
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage

MS = 1_000_000
T0 = 1_700_000_000_000 * MS


def request(
    n: int,
    *,
    version: str,
    start_ns: int,
    duration_ms: float,
    cost: float,
    tokens: int,
    ttft_ms: float,
    error: bool = False,
    score: float | None = None,
) -> list[Span]:
    """One request: an agent root over one priced llm call (and a judge span that must not count)."""
    trace = f"{n:032x}"
    root = Span(
        trace_id=trace,
        span_id=f"{n:08x}00000001",
        name="agent",
        kind=SpanKind.AGENT,
        start_ns=start_ns,
        end_ns=start_ns + int(duration_ms * MS),
        attributes={"metadata": {"version": version}},
    )
    if error:
        root.status, root.error = Status.ERROR, ErrorInfo("E", "boom")
    if score is not None:
        root.evaluations = [Evaluation("relevance", score, None, None)]
    llm = Span(
        trace_id=trace,
        span_id=f"{n:08x}00000002",
        parent_id=root.span_id,
        name="chat",
        kind=SpanKind.LLM,
        start_ns=start_ns + MS,
        end_ns=start_ns + 2 * MS,
        ttft_ms=ttft_ms,
        usage=Usage(input_tokens=tokens - 100, output_tokens=100),
        cost=Cost(0.0, cost, cost, "test"),
    )
    judge = Span(
        trace_id=trace,
        span_id=f"{n:08x}00000003",
        parent_id=root.span_id,
        name="evaluate judge",
        kind=SpanKind.EVALUATOR,
        start_ns=start_ns + 3 * MS,
        end_ns=start_ns + 4 * MS,
        usage=Usage(input_tokens=5000, output_tokens=500),
        cost=Cost(0.0, 1.0, 1.0, "test"),
    )
    return [root, llm, judge]


def fixture_spans() -> list[Span]:
    """v12 then v13, 300 requests each. v13 is ~40% slower; cost, tokens, TTFT, errors, scores unchanged."""
    rng = random.Random(42)
    spans: list[Span] = []
    for n in range(600):
        version = "v12" if n < 300 else "v13"
        slow = 1.4 if version == "v13" else 1.0
        spans += request(
            n + 1,
            version=version,
            start_ns=T0 + n * 1000 * MS,
            duration_ms=rng.gauss(1000, 150) * slow,
            cost=max(0.0, rng.gauss(0.01, 0.002)),
            tokens=int(rng.gauss(2000, 200)),
            ttft_ms=rng.gauss(300, 40),
            error=rng.random() < 0.03,
            score=min(1.0, max(0.0, rng.gauss(0.8, 0.1))),
        )
    return spans


def test_known_regression_is_flagged_and_unchanged_metrics_are_not() -> None:
    spans = fixture_spans()
    a = select_traces(spans, parse_side("attribute:version=v12"))
    b = select_traces(spans, parse_side("attribute:version=v13"))
    assert len(a) == len(b) == 900
    report = compare(a, b, label_a="v12", label_b="v13", seed=1)
    assert [m.name for m in report.flagged] == ["duration_p50", "duration_p95"]
    p50 = report.metric("duration_p50")
    assert p50.significant and p50.direction == "regression"
    assert p50.ci_low is not None and p50.ci_high is not None and 0 < p50.ci_low < p50.change < p50.ci_high  # type: ignore[operator]
    assert 30 < p50.change_pct < 50  # type: ignore[operator]
    for name in ("ttft_p50", "ttft_p95", "tokens_per_request", "cost_per_request", "error_rate", "eval:relevance"):
        assert not report.metric(name).flagged, name
    count = report.metric("count")
    assert (count.a, count.b, count.change, count.flagged) == (300.0, 300.0, 0.0, False)


def test_cost_counts_app_model_spans_only_and_values_are_exact() -> None:
    spans = request(1, version="x", start_ns=T0, duration_ms=100, cost=0.02, tokens=1000, ttft_ms=50, score=0.5)
    spans += request(2, version="x", start_ns=T0, duration_ms=300, cost=0.04, tokens=3000, ttft_ms=150, error=True)
    report = compare(spans, spans, resamples=50)
    values = {m.name: m.a for m in report.metrics}
    assert values == {
        "count": 2.0,
        "duration_p50": 200.0,
        "duration_p95": pytest.approx(290.0),
        "ttft_p50": 100.0,
        "ttft_p95": pytest.approx(145.0),
        "tokens_per_request": 2000.0,  # the judge's 5500 tokens per request are not the app's
        "cost_per_request": pytest.approx(0.03),
        "error_rate": 0.5,
        "eval:relevance": 0.5,
    }
    assert not report.flagged and all(m.change == 0 for m in report.metrics)


def test_report_is_deterministic_for_a_seed_and_json_ready() -> None:
    spans = fixture_spans()
    a = select_traces(spans, Side(since_ns=T0, until_ns=T0 + 300 * 1000 * MS))
    b = select_traces(spans, Side(since_ns=T0 + 300 * 1000 * MS))
    first = compare(a, b, seed=3, resamples=200).to_dict()
    assert first == compare(a, b, seed=3, resamples=200).to_dict()
    assert first != compare(a, b, seed=4, resamples=200).to_dict()
    assert first["flagged"] == ["duration_p50", "duration_p95"]
    assert json.loads(json.dumps(first)) == first
    row = first["metrics"][1]
    assert set(row) == {
        "name",
        "a",
        "b",
        "n_a",
        "n_b",
        "change",
        "change_pct",
        "ci",
        "significant",
        "flagged",
        "direction",
    }


def test_score_drop_and_error_rise_are_regressions() -> None:
    rng = random.Random(5)
    spans_a, spans_b = [], []
    for n in range(200):
        spans_a += request(
            n + 1,
            version="a",
            start_ns=T0,
            duration_ms=100,
            cost=0.01,
            tokens=500,
            ttft_ms=10,
            error=rng.random() < 0.02,
            score=rng.uniform(0.7, 0.9),
        )
        spans_b += request(
            n + 1001,
            version="b",
            start_ns=T0,
            duration_ms=100,
            cost=0.01,
            tokens=500,
            ttft_ms=10,
            error=rng.random() < 0.15,
            score=rng.uniform(0.5, 0.7),
        )
    report = compare(spans_a, spans_b, seed=0)
    assert [m.name for m in report.flagged] == ["error_rate", "eval:relevance"]
    assert report.metric("error_rate").direction == "regression"
    assert report.metric("eval:relevance").direction == "regression"
    assert report.metric("eval:relevance").change < 0  # type: ignore[operator]


def test_sides_and_helpers() -> None:
    assert parse_side("attribute:version=v13") == Side("attribute:version=v13", attribute=("version", "v13"))
    assert parse_side("service:bot, attribute:env=prod").service == "bot"
    with pytest.raises(ValueError, match="attribute:KEY=VALUE"):
        parse_side("attribute:version")
    with pytest.raises(ValueError, match="cannot read side"):
        parse_side("version=v13")
    # A trace received without its root (remote parent): the earliest span whose parent is absent.
    orphan = [
        Span(trace_id="a" * 32, span_id="2" * 16, parent_id="1" * 16, name="local root", start_ns=1),
        Span(trace_id="a" * 32, span_id="3" * 16, parent_id="2" * 16, name="child", start_ns=2),
    ]
    assert trace_root(orphan).name == "local root"
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    report = compare([], orphan, resamples=10)
    assert report.metric("duration_p50").a is None and report.metric("duration_p50").change is None
