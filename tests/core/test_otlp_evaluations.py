"""Evaluations on the OTLP wire: one GenAI `gen_ai.evaluation.result` span event per evaluation.

The round trip of every field (evaluations included) is the property test in test_otlp_codec.py;
here: the exact events, what is read from other tools' events, and the events arriving at a real
loopback receiver from a configured app with online evaluation on.
"""

from __future__ import annotations

import json
from typing import Any

import llmobs
from llmobs.core import conventions as c
from llmobs.core.evaluation import Evaluator
from llmobs.core.model import ErrorInfo, Evaluation, Span, SpanKind, Status
from llmobs.core.otlp import decode_request, encode_spans, spans_to_request
from llmobs.core.otlp.decode import attributes_to_dict
from llmobs.core.sinks.otlp import otlp
from llmobs.evaluators import NonEmptyAnswer
from tests.otlp_receiver import OTLPReceiver

T0 = 1_764_000_000_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def judged_span(evaluations: list[Evaluation] | None) -> Span:
    return Span(
        trace_id=TRACE,
        span_id="b7ad6b7169203331",
        name="answer",
        kind=SpanKind.CHAIN,
        start_ns=T0,
        end_ns=T0 + 5_000_000,
        output="Refunds take 5 business days.",
        evaluations=evaluations,
    )


EVALUATIONS = [
    Evaluation("non_empty", 1.0, "pass", None),
    Evaluation("relevance", 0.25, None, "mentions refunds but not the order"),
    Evaluation("judge", None, "error", "TimeoutError: timed out after 10s"),
]


def events_of(span: Span) -> list[tuple[str, int | None, dict[str, Any]]]:
    [readable] = encode_spans([span])
    return [(e.name, e.timestamp, dict(e.attributes or {})) for e in readable.events]


def test_each_evaluation_is_a_gen_ai_evaluation_result_event_with_only_its_known_parts() -> None:
    span = judged_span(EVALUATIONS)
    assert events_of(span) == [
        (
            "gen_ai.evaluation.result",
            span.end_ns,
            {
                "gen_ai.evaluation.name": "non_empty",
                "gen_ai.evaluation.score.value": 1.0,
                "gen_ai.evaluation.score.label": "pass",
            },
        ),
        (
            "gen_ai.evaluation.result",
            span.end_ns,
            {
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.25,
                "gen_ai.evaluation.explanation": "mentions refunds but not the order",
            },
        ),
        (
            "gen_ai.evaluation.result",
            span.end_ns,
            {
                "gen_ai.evaluation.name": "judge",
                "gen_ai.evaluation.score.label": "error",
                "gen_ai.evaluation.explanation": "TimeoutError: timed out after 10s",
                "error.type": "llmobs.EvaluationError",
            },
        ),
    ]
    [readable] = encode_spans([span])
    # The events carry them exactly, so no JSON copy rides along.
    assert c.LLMOBS_EVALUATIONS not in (readable.attributes or {})
    [decoded] = decode_request(spans_to_request([span]).SerializeToString())
    assert decoded.evaluations == EVALUATIONS
    assert decoded == span


def test_no_evaluations_and_an_empty_list_stay_apart() -> None:
    unevaluated, empty = judged_span(None), judged_span([])
    assert events_of(unevaluated) == [] and events_of(empty) == []
    [readable] = encode_spans([empty])
    assert (readable.attributes or {})[c.LLMOBS_EVALUATIONS] == "[]"
    decoded = decode_request(spans_to_request([unevaluated, empty]).SerializeToString())
    assert [s.evaluations for s in decoded] == [None, []]


def test_error_events_come_before_evaluation_events_and_both_are_read_back() -> None:
    span = judged_span([Evaluation("non_empty", 0.0, "empty", "the answer is empty")])
    span.status, span.error = Status.ERROR, ErrorInfo("ValueError", "bad input")
    assert [name for name, _, _ in events_of(span)] == ["exception", "gen_ai.evaluation.result"]
    [decoded] = decode_request(spans_to_request([span]).SerializeToString())
    assert decoded == span


def test_evaluation_events_from_another_tool_are_read() -> None:
    """OTLP/JSON as another instrumentation writes it: an integer score, a failure without a label."""

    def event(attributes: dict[str, Any]) -> dict[str, Any]:
        kvs = []
        for key, value in attributes.items():
            kind = {str: "stringValue", int: "intValue", float: "doubleValue"}[type(value)]
            kvs.append({"key": key, "value": {kind: str(value) if kind == "intValue" else value}})
        return {"timeUnixNano": str(T0 + 9), "name": "gen_ai.evaluation.result", "attributes": kvs}

    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": "b7ad6b7169203331",
                                "name": "chat gpt-4o",
                                "startTimeUnixNano": str(T0),
                                "endTimeUnixNano": str(T0 + 5),
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                ],
                                "events": [
                                    event({"gen_ai.evaluation.name": "Relevance", "gen_ai.evaluation.score.value": 1}),
                                    {"timeUnixNano": str(T0 + 1), "name": "some.other.event", "attributes": []},
                                    event({"gen_ai.evaluation.name": "Groundedness", "error.type": "timeout"}),
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    [span] = decode_request(json.dumps(body).encode(), "application/json")
    assert span.kind is SpanKind.LLM and span.model == "gpt-4o"
    assert span.evaluations == [
        Evaluation("Relevance", 1.0, None, None),
        Evaluation("Groundedness", None, "error", None),
    ]
    assert span.attributes == {}


class Raises(Evaluator):
    name = "broken"
    targets = "root"

    def evaluate(self, span: Span) -> Evaluation | None:
        raise RuntimeError("the evaluator is broken")


def test_online_evaluations_reach_a_real_otlp_receiver_as_events(otlp_receiver: OTLPReceiver) -> None:
    llmobs.configure(
        sinks=[otlp(endpoint=otlp_receiver.url("/v1/traces"), compression="none")],
        evaluators=[NonEmptyAnswer(targets="root"), Raises()],
        eval_sample_rate=1.0,
        flush_interval=0.005,
    )
    with llmobs.span("answer", kind="chain", input="how long do refunds take?") as root:
        root.output = "Refunds take 5 business days."
    assert llmobs.shutdown(timeout=10)
    otlp_receiver.wait_for_spans(1)
    [request] = otlp_receiver.requests
    assert request.message is not None
    [pb_span] = [s for rs in request.message.resource_spans for ss in rs.scope_spans for s in ss.spans]
    on_the_wire = [(e.name, e.time_unix_nano, attributes_to_dict(e.attributes)) for e in pb_span.events]
    assert on_the_wire == [
        (
            "gen_ai.evaluation.result",
            pb_span.end_time_unix_nano,
            {
                "gen_ai.evaluation.name": "non_empty",
                "gen_ai.evaluation.score.value": 1.0,
                "gen_ai.evaluation.score.label": "pass",
            },
        ),
        (
            "gen_ai.evaluation.result",
            pb_span.end_time_unix_nano,
            {
                "gen_ai.evaluation.name": "broken",
                "gen_ai.evaluation.score.label": "error",
                "gen_ai.evaluation.explanation": "RuntimeError: the evaluator is broken",
                "error.type": "llmobs.EvaluationError",
            },
        ),
    ]
    assert c.LLMOBS_EVALUATIONS not in attributes_to_dict(pb_span.attributes)
    [received] = otlp_receiver.spans()
    assert received.evaluations == [
        Evaluation("non_empty", 1.0, "pass", None),
        Evaluation("broken", None, "error", "RuntimeError: the evaluator is broken"),
    ]
