"""Alert rules: the parser, span rules, windowed rules (edge-triggered, cooldown) on synthetic streams."""

from __future__ import annotations

import re

import pytest

from llmobs.core.alerts import Alert, AlertEngine, Rule, RuleError, parse_rule, parse_rules
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage

S = 1_000_000_000  # one second in ns
T0 = 1_700_000_000 * S

_ids = iter(range(1, 10**9))


def span(
    t: float,
    *,
    kind: SpanKind = SpanKind.CHAIN,
    trace: str | None = None,
    parent: str | None = None,
    duration: float = 1.0,
    error: bool = False,
    cost: float | None = None,
    tokens: tuple[int, int] | None = None,
    ttft_ms: float | None = None,
    evals: dict[str, float | None] | None = None,
    name: str = "s",
) -> Span:
    """A span ending at T0 + t seconds."""
    n = next(_ids)
    end = T0 + int(t * S)
    s = Span(
        trace_id=trace or f"{n:032x}",
        span_id=f"{n:016x}",
        parent_id=parent,
        name=name,
        kind=kind,
        start_ns=end - int(duration * S),
        end_ns=end,
        ttft_ms=ttft_ms,
    )
    if error:
        s.status, s.error = Status.ERROR, ErrorInfo("E", "boom")
    if cost is not None:
        s.cost = Cost(0.0, cost, cost, "test")
    if tokens is not None:
        s.usage = Usage(input_tokens=tokens[0], output_tokens=tokens[1])
    if evals is not None:
        s.evaluations = [Evaluation(k, v, None, None) for k, v in evals.items()]
    return s


def fired(engine: AlertEngine, stream: list[Span]) -> list[tuple[float, str, float | None]]:
    """(time in s since T0, rule, value) of every alert the stream raises."""
    out = []
    for s in stream:
        for alert in engine.observe(s):
            out.append(((alert.time_ns - T0) / S, alert.rule, alert.value))
    return out


# -- the parser --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("cost>0.05", Rule("cost>0.05", "cost", ">", 0.05)),
        ("duration > 5s", Rule("duration > 5s", "duration", ">", 5000.0)),
        ("ttft>2s", Rule("ttft>2s", "ttft", ">", 2000.0)),
        ("duration>=250ms", Rule("duration>=250ms", "duration", ">=", 250.0)),
        ("error", Rule("error", "error")),
        ("eval:relevance<0.5", Rule("eval:relevance<0.5", "eval:relevance", "<", 0.5)),
        ("error_rate>5%/5m", Rule("error_rate>5%/5m", "error_rate", ">", 0.05, 300.0)),
        ("cost>$1.00/1m", Rule("cost>$1.00/1m", "cost", ">", 1.0, 60.0, "sum")),
        ("p95(duration)>3s/10m", Rule("p95(duration)>3s/10m", "duration", ">", 3000.0, 600.0, "p95")),
        ("mean(ttft)>1s/30s", Rule("mean(ttft)>1s/30s", "ttft", ">", 1000.0, 30.0, "avg")),
        ("tokens>1e6/1h", Rule("tokens>1e6/1h", "tokens", ">", 1e6, 3600.0, "sum")),
        ("eval:faithfulness<70%/1h", Rule("eval:faithfulness<70%/1h", "eval:faithfulness", "<", 0.7, 3600.0, "avg")),
        ("errors>10/5m", Rule("errors>10/5m", "errors", ">", 10.0, 300.0)),
        ("requests<1/10m", Rule("requests<1/10m", "requests", "<", 1.0, 600.0)),
    ],
)
def test_rules_parse(text: str, want: Rule) -> None:
    assert parse_rule(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cost>", "expected METRIC OP VALUE[/WINDOW]"),
        ("latency>3s", "unknown metric 'latency'"),
        ("p95(duration)>3s", "p95(duration) needs a window"),
        ("error_rate>5%", "error_rate is measured over a window"),
        ("p101(duration)>1s/5m", "unknown aggregate 'p101'"),
        ("duration>5%", "a duration takes ms, s, m or h"),
        ("tokens>$5", "only cost takes a $ amount"),
        ("cost>5%", "only error_rate and eval scores take a percentage"),
        ("sum(errors)>1/5m", "errors is already an aggregate"),
        ("cost>1/0s", "the window must be longer than 0"),
        ("error/5m", "expected METRIC OP VALUE"),
    ],
)
def test_bad_rules_say_why(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rule(text)


def test_window_text_and_engine_accept_text_rules() -> None:
    assert [r.window for r in parse_rules(["cost>1/90s", "errors>1/2h", "errors>1/1d", "cost>0.1"])] == [
        "90s",
        "2h",
        "1d",
        None,
    ]
    with pytest.raises(RuleError):
        AlertEngine(["nonsense"])


# -- span rules ----------------------------------------------------------------------------------------


def test_span_rules_match_exactly_the_spans_they_describe() -> None:
    engine = AlertEngine(["cost>0.05", "tokens>1000", "duration>5s", "ttft>2s", "error", "eval:relevance<0.5"])
    cheap_trace, dear_trace = "c" * 32, "d" * 32
    stream = [
        span(1, kind=SpanKind.LLM, cost=0.06, tokens=(100, 10), name="dear call"),  # cost
        span(2, kind=SpanKind.LLM, cost=0.04, tokens=(900, 101), name="wordy call"),  # tokens 1001
        span(3, kind=SpanKind.LLM, trace=cheap_trace, parent="1" * 16, cost=0.03, tokens=(10, 10)),
        span(4, kind=SpanKind.AGENT, trace=cheap_trace, name="cheap root"),  # trace spend 0.03: no
        span(5, kind=SpanKind.LLM, trace=dear_trace, parent="2" * 16, cost=0.03, tokens=(10, 10)),
        span(6, kind=SpanKind.EVALUATOR, trace=dear_trace, parent="2" * 16, cost=0.5),  # a judge: not app spend
        span(7, kind=SpanKind.LLM, trace=dear_trace, parent="2" * 16, cost=0.03, tokens=(10, 10)),
        span(8, kind=SpanKind.AGENT, trace=dear_trace, name="dear root"),  # trace spend 0.06: yes
        span(9, duration=5.0, name="5s exactly"),
        span(10, kind=SpanKind.TOOL, parent="3" * 16, duration=5.2, name="slow tool"),
        span(11, kind=SpanKind.LLM, ttft_ms=2500.0, name="slow first token"),
        span(12, kind=SpanKind.LLM, ttft_ms=2000.0, name="ttft at the limit"),
        span(13, kind=SpanKind.TOOL, parent="3" * 16, error=True, name="failed tool"),
        span(14, evals={"relevance": 0.4}, name="irrelevant"),
        span(15, evals={"relevance": 0.5, "other": 0.1}, name="relevant enough"),
        span(16, evals={"relevance": None}, name="evaluator errored"),
    ]
    got = {}
    for s in stream:
        engine.observe(s)
        got[s.name] = [r.text for r in engine.last_matches]
    assert got == {
        "dear call": ["cost>0.05"],
        "wordy call": ["tokens>1000"],
        "s": [],
        "cheap root": [],
        "dear root": ["cost>0.05"],
        "5s exactly": [],
        "slow tool": ["duration>5s"],
        "slow first token": ["ttft>2s"],
        "ttft at the limit": [],
        "failed tool": ["error"],
        "irrelevant": ["eval:relevance<0.5"],
        "relevant enough": [],
        "evaluator errored": [],
    }
    assert [r.text for r in engine.matches(stream[0])] == ["cost>0.05"]
    engine = AlertEngine(["cost>0.05"])
    alerts = [a for s in stream for a in engine.observe(s)]
    assert [(a.span_name, a.value) for a in alerts] == [("dear call", 0.06), ("dear root", pytest.approx(0.06))]
    assert alerts[1].trace_ids == [dear_trace] and alerts[1].window is None and alerts[1].kind == "span"


def test_span_rule_alerts_respect_the_cooldown() -> None:
    engine = AlertEngine(["error"], cooldown="1m")
    stream = [span(t, error=True) for t in (0, 30, 59, 60, 61, 200)]
    assert [t for t, _, _ in fired(engine, stream)] == [0, 60, 200]


# -- windowed rules --------------------------------------------------------------------------------------


def roots_every_10s(n: int, start: float = 0, errors: set[float] = frozenset()) -> list[Span]:  # type: ignore[assignment]
    return [span(start + 10 * i, error=(start + 10 * i) in errors) for i in range(n)]


def test_error_rate_fires_on_the_edge_and_rearms_when_it_falls() -> None:
    # One root every 10 s: a 5 min window holds 30. Errors at 400 s and 410 s: 1/30 = 3.3% (no),
    # 2/30 = 6.7% (fires at 410). 420 s: still over, no second alert. 400 leaves the window at
    # 700 s, 410 at 710 s: 1/30 ≤ 5%, re-armed. Errors at 800 and 810 s fire again at 810 s.
    errors = {400.0, 410.0, 420.0, 800.0, 810.0}
    stream = roots_every_10s(100, errors=errors)
    assert fired(AlertEngine(["error_rate>5%/5m"]), stream) == [
        (410, "error_rate>5%/5m", pytest.approx(2 / 30)),
        (810, "error_rate>5%/5m", pytest.approx(2 / 30)),
    ]
    # With a 10 minute cooldown the second edge (400 s after the first) stays quiet.
    assert [t for t, _, _ in fired(AlertEngine(["error_rate>5%/5m"], cooldown="10m"), stream)] == [410]


def test_error_rate_counts_trace_roots_only() -> None:
    stream = []
    for i in range(20):
        trace = f"{i + 1:032x}"
        # A failed tool the agent recovered from is not a failed request.
        stream.append(span(10 * i, kind=SpanKind.TOOL, trace=trace, parent="1" * 16, error=True))
        stream.append(span(10 * i + 1, trace=trace, error=(i == 19)))
    assert fired(AlertEngine(["error_rate>4%/5m", "errors>0/5m"]), stream) == [
        (191, "error_rate>4%/5m", pytest.approx(1 / 20)),
        (191, "errors>0/5m", 1.0),
    ]


def test_cost_per_window_sums_model_spans_and_rearms_after_expiry() -> None:
    engine = AlertEngine(["cost>1.00/1m"])
    stream = [span(t, kind=SpanKind.LLM, parent="1" * 16, cost=0.30) for t in (0, 10, 20, 30, 40)]
    stream.insert(2, span(15, kind=SpanKind.EVALUATOR, parent="1" * 16, cost=5.0))  # judges never count
    stream.insert(2, span(16, cost=None))
    assert fired(engine, stream) == [(30, "cost>1.00/1m", pytest.approx(1.2))]
    # Quiet until 80 s: 0, 10 and 20 have left the window (0.6 ≤ 1.0), so the rule re-arms...
    assert engine.tick(T0 + 80 * S) == []
    # ...and fires again once the spend is back over a dollar.
    again = [span(t, kind=SpanKind.LLM, parent="1" * 16, cost=0.30) for t in (81, 82)]
    assert fired(engine, again) == [(82, "cost>1.00/1m", pytest.approx(1.2))]


def test_p95_duration_over_trace_roots() -> None:
    engine = AlertEngine(["p95(duration)>3s/10m"])
    stream = [span(i, duration=1.0) for i in range(18)]
    stream.append(span(18, kind=SpanKind.LLM, parent="1" * 16, duration=60.0))  # not a root: ignored
    stream.append(span(19, duration=5.0))  # 19 roots: p95 = 1 + 4 * 0.1 = 1.4 s
    stream.append(span(20, duration=5.0))  # 20 roots: p95 rank 18.05 → 5 s
    assert fired(engine, stream) == [(20, "p95(duration)>3s/10m", 5000.0)]


def test_avg_ttft_eval_mean_requests_and_tokens() -> None:
    stream = [
        span(0, kind=SpanKind.LLM, parent="1" * 16, ttft_ms=800.0, tokens=(400, 100)),
        span(1, kind=SpanKind.LLM, parent="1" * 16, ttft_ms=1400.0, tokens=(400, 100)),  # avg 1100
        span(2, evals={"faithfulness": 0.9}),
        span(3, evals={"faithfulness": 0.4}),  # mean 0.65
        span(4, kind=SpanKind.LLM, parent="1" * 16, tokens=(0, 1)),  # 1001 tokens
    ]
    engine = AlertEngine(
        ["avg(ttft)>1s/5m", "eval:faithfulness<0.7/1h", "requests>=2/1m", "tokens>1000/1m", "max(ttft)>2s/5m"]
    )
    assert fired(engine, stream) == [
        (1, "avg(ttft)>1s/5m", 1100.0),
        (3, "eval:faithfulness<0.7/1h", pytest.approx(0.65)),
        (3, "requests>=2/1m", 2.0),
        (4, "tokens>1000/1m", 1001.0),
    ]


def test_an_empty_window_never_fires_even_for_less_than_rules() -> None:
    engine = AlertEngine(["requests<1/1m", "eval:x<0.5/1m"])
    assert engine.tick(T0 + 3600 * S) == []
    assert fired(engine, [span(3601)]) == []


def test_alert_json_has_rule_window_value_threshold_time_and_sample_traces() -> None:
    engine = AlertEngine(["error_rate>50%/1m"])
    stream = [
        span(1, trace="b" * 32),
        span(2, trace="a" * 32, error=True),  # 1/2: not over 50%
        span(3, trace="c" * 32, error=True),  # 2/3: fires
    ]
    [alert] = [a for s in stream for a in engine.observe(s)]
    assert alert == Alert(
        "error_rate>50%/1m", "1m", pytest.approx(2 / 3), 0.5, T0 + 3 * S, ["c" * 32, "a" * 32, "b" * 32]
    )
    assert alert.to_dict() == {
        "rule": "error_rate>50%/1m",
        "kind": "window",
        "window": "1m",
        "value": pytest.approx(2 / 3),
        "threshold": 0.5,
        "time": "2023-11-14T22:13:23Z",
        "time_ns": T0 + 3 * S,
        "trace_ids": ["c" * 32, "a" * 32, "b" * 32],
        "span_id": None,
        "span_name": None,
    }
