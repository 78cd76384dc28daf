"""`examples/openai_agents_handoff.py`: what `make demo` shows for the Agents SDK, checked exactly."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agents.tracing import set_trace_processors
from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from opentelemetry import context as otel_context

from llmobs.core import tracer as tracer_module
from llmobs.core.model import Usage
from llmobs.integrations import openai_agents
from llmobs.integrations.openai_agents import uninstrument
from tests.conftest import Recorder, span_tree

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HANDOFF_TREE = [
    (
        "agent",
        "run",
        [
            (
                "agent",
                "Triage",
                [("chain", "turn 1", [("llm", "gpt-4.1-mini", []), ("handoff", "Triage -> Billing specialist", [])])],
            ),
            (
                "agent",
                "Billing specialist",
                [
                    ("chain", "turn 2", [("llm", "o4-mini", []), ("tool", "refund_status", [])]),
                    ("chain", "turn 3", [("llm", "o4-mini", [])]),
                ],
            ),
        ],
    )
]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from agents.tracing.processors import BatchTraceProcessor

    before = [p for p in openai_agents._registered_processors() if not isinstance(p, BatchTraceProcessor)]
    module = importlib.import_module("openai_agents_handoff")
    # Start from an empty context: no llmobs span or OpenTelemetry span left current by another test.
    otel_token = otel_context.attach(otel_context.Context())
    span_token = tracer_module._current_span.set(None)
    yield module
    tracer_module._current_span.reset(span_token)
    otel_context.detach(otel_token)
    uninstrument()
    set_trace_processors(before)
    sys.modules.pop("openai_agents_handoff", None)


def test_example_records_a_plain_and_a_streamed_handoff(example: Any, recorder: Recorder) -> None:
    trace_ids = example.run()
    traces = recorder.traces()
    assert sorted(traces) == sorted(trace_ids) and len(trace_ids) == 2
    plain, streamed = (traces[t] for t in trace_ids)
    assert span_tree(plain) == [("workflow", "Customer support", HANDOFF_TREE)]
    assert span_tree(streamed) == [("workflow", "Customer support (streamed)", HANDOFF_TREE)]
    for spans, is_streamed in ((plain, False), (streamed, True)):
        root = next(s for s in spans if s.parent_id is None)
        assert root.attributes["session_id"] == "demo-conversation"
        llms = sorted((s for s in spans if s.kind.value == "llm"), key=lambda s: s.start_ns)
        assert [s.usage for s in llms] == [
            Usage(900, 25, 925, 768, 0, 0),
            Usage(2400, 180, 2580, 2048, 0, 128),
            Usage(2650, 240, 2890, 2304, 0, 96),
        ]
        for s in llms:
            assert s.usage is not None and s.cost is not None and s.model is not None
            expected = calc_price(
                GPUsage(
                    input_tokens=s.usage.input_tokens,
                    cache_read_tokens=s.usage.cache_read_tokens,
                    output_tokens=s.usage.output_tokens,
                    output_reasoning_tokens=s.usage.reasoning_tokens or None,
                ),
                s.model,
                provider_id="openai",
            )
            assert s.cost.total_usd == float(expected.total_price)
            # Streamed calls get a TTFT (the fake waits 25 ms before its first delta); plain ones do not.
            if is_streamed:
                assert s.ttft_ms is not None and 25.0 <= s.ttft_ms <= s.duration_ms + 0.01
            else:
                assert s.ttft_ms is None
        tool = next(s for s in spans if s.kind.value == "tool")
        assert tool.input == {"order_id": "42"}
        assert tool.output == '{"order_id": "42", "refund": "issued", "days_left": 2}'
