"""The OpenAI Agents SDK integration, against the real Runner driven by a scripted offline Model.

The Runner opens no model span itself, so `ScriptedModel` opens `response_span` as the SDK's
own `OpenAIResponsesModel` does and returns real `openai` Response objects with usage. Every
test replaces the SDK's processors (or checks that add mode stays offline), so nothing is ever
exported to OpenAI.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    ModelResponse,
    RunConfig,
    Runner,
    function_tool,
    input_guardrail,
)
from agents import Usage as AgentsUsage
from agents.models.interface import Model
from agents.tracing import (
    SpanError,
    custom_span,
    get_trace_provider,
    response_span,
    set_trace_processors,
    set_tracing_disabled,
    trace,
)
from agents.usage import model_usage_to_span_usage
from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from opentelemetry import context as otel_context

import llmobs
from llmobs.core import tracer as tracer_module
from llmobs.core.model import Span, SpanKind, Status, Usage
from llmobs.core.sinks.base import Sink
from llmobs.integrations import openai_agents
from llmobs.integrations.openai_agents import TracingProcessor, instrument, uninstrument
from llmobs.integrations.openai_agents.mapping import SPAN_ERROR_TYPE
from tests.conftest import Recorder, span_tree

# -- a scripted offline model ----------------------------------------------------------------


@dataclass
class Turn:
    """One model call: what it answers and the usage it reports."""

    output: list[Any]
    input_tokens: int = 100
    output_tokens: int = 20
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0
    model: str = "gpt-4o"


def say(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


_call_ids = itertools.count(1)


def call(name: str, arguments: dict[str, Any]) -> ResponseFunctionToolCall:
    call_id = f"call_{next(_call_ids)}"
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}",
        call_id=call_id,
        type="function_call",
        name=name,
        arguments=json.dumps(arguments),
        status="completed",
    )


def agents_usage(turn: Turn) -> AgentsUsage:
    return AgentsUsage(
        requests=1,
        input_tokens=turn.input_tokens,
        output_tokens=turn.output_tokens,
        total_tokens=turn.input_tokens + turn.output_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=turn.cached, cache_write_tokens=turn.cache_write),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=turn.reasoning),
    )


def make_response(turn: Turn, number: int) -> Response:
    return Response(
        id=f"resp_{number}",
        created_at=time.time(),
        model=turn.model,
        object="response",
        output=turn.output,
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
        usage=ResponseUsage(
            input_tokens=turn.input_tokens,
            output_tokens=turn.output_tokens,
            total_tokens=turn.input_tokens + turn.output_tokens,
            input_tokens_details=InputTokensDetails(cached_tokens=turn.cached, cache_write_tokens=turn.cache_write),
            output_tokens_details=OutputTokensDetails(reasoning_tokens=turn.reasoning),
        ),
    )


class ScriptedModel(Model):
    """Answers with the scripted turns in order, opening `response_span` like the SDK's models."""

    def __init__(self, turns: list[Turn], first_token_delay: float = 0.0) -> None:
        self.turns = list(turns)
        self.calls = 0
        self.first_token_delay = first_token_delay

    def _next(self) -> tuple[Turn, Response]:
        turn = self.turns.pop(0)
        self.calls += 1
        return turn, make_response(turn, self.calls)

    async def get_response(
        self,
        system_instructions: Any,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        turn, response = self._next()
        usage = agents_usage(turn)
        with response_span(disabled=tracing.is_disabled()) as span:
            span.span_data.usage = model_usage_to_span_usage(usage)
            if tracing.include_data():
                span.span_data.response = response
                span.span_data.input = input
        return ModelResponse(output=response.output, usage=usage, response_id=response.id)

    async def stream_response(
        self,
        system_instructions: Any,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        turn, response = self._next()
        with response_span(disabled=tracing.is_disabled()) as span:
            created = response.model_copy(update={"output": [], "usage": None})
            yield ResponseCreatedEvent(response=created, sequence_number=0, type="response.created")
            await asyncio.sleep(self.first_token_delay)
            number = 1
            for item in turn.output:
                if isinstance(item, ResponseOutputMessage):
                    for word in item.content[0].text.split(" "):  # type: ignore[union-attr]
                        yield ResponseTextDeltaEvent(
                            content_index=0,
                            delta=word + " ",
                            item_id=item.id,
                            logprobs=[],
                            output_index=0,
                            sequence_number=number,
                            type="response.output_text.delta",
                        )
                        number += 1
            span.span_data.usage = model_usage_to_span_usage(agents_usage(turn))
            if tracing.include_data():
                span.span_data.response = response
                span.span_data.input = input
            yield ResponseCompletedEvent(response=response, sequence_number=number, type="response.completed")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def sdk_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OpenAI key (so no export), and the SDK's processors put back after every test.

    The SDK's default exporter is not put back: later tests (and interpreter exit, when a real
    key may be set again) must never find test traces queued for OpenAI.
    """
    from agents.tracing.processors import BatchTraceProcessor

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)
    before = [p for p in openai_agents._registered_processors() if not isinstance(p, BatchTraceProcessor)]
    set_trace_processors(before)
    set_tracing_disabled(False)
    # Start from an empty context: no llmobs span or OpenTelemetry span left current by another test.
    otel_token = otel_context.attach(otel_context.Context())
    span_token = tracer_module._current_span.set(None)
    yield
    tracer_module._current_span.reset(span_token)
    otel_context.detach(otel_token)
    uninstrument()
    set_tracing_disabled(False)
    set_trace_processors(before)


@pytest.fixture
def rec(recorder: Recorder) -> Recorder:
    """Our processor alone (replace mode) recording into memory."""
    instrument(replace=True)
    return recorder


@function_tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


@function_tool
def flaky_lookup(order_id: str) -> str:
    """Look an order up (always fails)."""
    raise TimeoutError(f"order service timed out for {order_id}")


def run(agent: Agent[Any], text: str = "hi", **kwargs: Any) -> Any:
    return asyncio.run(Runner.run(agent, text, **kwargs))


def gp_cost(model: str, usage: Usage) -> float:
    """What genai-prices says the usage costs, independently of llmobs' pricer."""
    price = calc_price(
        GPUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
            output_reasoning_tokens=usage.reasoning_tokens or None,
        ),
        model,
        provider_id="openai",
    )
    return float(price.total_price)


def kinds(spans: list[Span], kind: str) -> list[Span]:
    return sorted((s for s in spans if s.kind.value == kind), key=lambda s: s.start_ns)


def assert_nested(spans: list[Span]) -> None:
    """Every span's parent is in the trace and encloses it in time; one root per trace."""
    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    assert len(roots) == 1
    for s in spans:
        assert s.trace_id == roots[0].trace_id
        assert s.framework == "openai-agents"
        assert s.start_ns <= s.end_ns
        if s.parent_id is not None:
            parent = by_id[s.parent_id]
            assert parent.start_ns <= s.start_ns and s.end_ns <= parent.end_ns, (parent.name, s.name)


WEATHER_TREE = [
    (
        "workflow",
        "Agent workflow",
        [
            (
                "agent",
                "run",
                [
                    (
                        "agent",
                        "Weather",
                        [
                            ("chain", "turn 1", [("llm", "gpt-4o", []), ("tool", "get_weather", [])]),
                            ("chain", "turn 2", [("llm", "o4-mini", [])]),
                        ],
                    )
                ],
            )
        ],
    )
]


def weather_agent(**turn_kwargs: Any) -> Agent[Any]:
    model = ScriptedModel(
        [
            Turn([call("get_weather", {"city": "Paris"})], input_tokens=1200, output_tokens=40, cached=1024),
            Turn(
                [say("It is sunny in Paris.")],
                model="o4-mini",
                input_tokens=1300,
                output_tokens=300,
                cached=1152,
                cache_write=64,
                reasoning=256,
            ),
        ]
    )
    return Agent(name="Weather", instructions="be brief", model=model, tools=[get_weather])


# -- trees -----------------------------------------------------------------------------------


def test_tool_calling_run_tree_usage_and_cost(rec: Recorder) -> None:
    result = run(weather_agent(), "weather in Paris?")
    assert result.final_output == "It is sunny in Paris."
    spans = rec.spans()
    assert rec.tree() == WEATHER_TREE
    assert_nested(spans)

    root = rec.by_name("Agent workflow")
    sdk_trace_id = root.attributes["openai_agents.trace_id"]
    assert sdk_trace_id == f"trace_{root.trace_id}"  # the SDK's trace id, adopted
    turn1, turn2 = rec.by_name("turn 1"), rec.by_name("turn 2")
    first, second = kinds(spans, "llm")
    tool = rec.by_name("get_weather")
    assert first.parent_id == turn1.span_id and tool.parent_id == turn1.span_id
    assert second.parent_id == turn2.span_id
    assert rec.by_name("Weather").parent_id == rec.by_name("run").span_id

    assert first.usage == Usage(
        input_tokens=1200,
        output_tokens=40,
        total_tokens=1240,
        cache_read_tokens=1024,
        cache_write_tokens=0,
        reasoning_tokens=0,
    )
    assert second.usage == Usage(
        input_tokens=1300,
        output_tokens=300,
        total_tokens=1600,
        cache_read_tokens=1152,
        cache_write_tokens=64,
        reasoning_tokens=256,
    )
    for span, model in ((first, "gpt-4o"), (second, "o4-mini")):
        assert span.model == model and span.provider == "openai"
        assert span.cost is not None and span.cost.source.startswith("genai-prices")
        assert span.usage is not None
        assert span.cost.total_usd == gp_cost(model, span.usage)
        assert span.ttft_ms is None  # not streamed
    assert first.attributes["response_id"] == "resp_1"
    assert second.attributes["response_id"] == "resp_2"
    assert first.input == [{"content": "weather in Paris?", "role": "user"}]
    assert first.output[0]["name"] == "get_weather"
    assert second.output[0]["content"][0]["text"] == "It is sunny in Paris."

    assert tool.tool == {"name": "get_weather"}
    assert tool.input == {"city": "Paris"}
    assert tool.output == "sunny in Paris"
    assert tool.status is Status.OK and tool.usage is None and tool.cost is None

    agent = rec.by_name("Weather")
    assert agent.agent == {"name": "Weather"}
    assert agent.attributes["tools"] == ["get_weather"]
    assert turn1.agent == {"name": "Weather"}


def test_handoff_tree(rec: Recorder) -> None:
    model = ScriptedModel(
        [
            Turn([call("transfer_to_specialist", {})]),
            Turn([call("get_weather", {"city": "Oslo"})], model="o4-mini", reasoning=8),
            Turn([say("Snow in Oslo.")], model="o4-mini"),
        ]
    )
    specialist = Agent(name="Specialist", model=model, tools=[get_weather])
    triage = Agent(name="Triage", model=model, handoffs=[specialist])
    assert run(triage, "weather?").final_output == "Snow in Oslo."
    assert rec.tree() == [
        (
            "workflow",
            "Agent workflow",
            [
                (
                    "agent",
                    "run",
                    [
                        (
                            "agent",
                            "Triage",
                            [("chain", "turn 1", [("llm", "gpt-4o", []), ("handoff", "Triage -> Specialist", [])])],
                        ),
                        (
                            "agent",
                            "Specialist",
                            [
                                ("chain", "turn 2", [("llm", "o4-mini", []), ("tool", "get_weather", [])]),
                                ("chain", "turn 3", [("llm", "o4-mini", [])]),
                            ],
                        ),
                    ],
                )
            ],
        )
    ]
    assert_nested(rec.spans())
    handoff = rec.by_name("Triage -> Specialist")
    assert handoff.kind is SpanKind.HANDOFF
    assert handoff.attributes["from_agent"] == "Triage" and handoff.attributes["to_agent"] == "Specialist"
    assert rec.by_name("Triage").attributes["handoffs"] == ["Specialist"]
    assert rec.by_name("get_weather").output == "sunny in Oslo"


def test_guardrail_that_trips(rec: Recorder) -> None:
    @input_guardrail(run_in_parallel=False)
    def no_secrets(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"reason": "secret"}, tripwire_triggered=True)

    model = ScriptedModel([Turn([say("never said")])])
    guarded = Agent(name="Guarded", model=model, input_guardrails=[no_secrets])
    with pytest.raises(InputGuardrailTripwireTriggered):
        run(guarded, "my password is hunter2")
    assert model.calls == 0
    assert rec.tree() == [
        (
            "workflow",
            "Agent workflow",
            [("agent", "run", [("agent", "Guarded", [("chain", "turn 1", [("guardrail", "no_secrets", [])])])])],
        )
    ]
    assert_nested(rec.spans())
    guardrail = rec.by_name("no_secrets")
    assert guardrail.kind is SpanKind.GUARDRAIL and guardrail.attributes["triggered"] is True
    turn = rec.by_name("turn 1")
    assert turn.status is Status.ERROR
    assert turn.error is not None
    assert (turn.error.type, turn.error.message) == (SPAN_ERROR_TYPE, "Guardrail tripwire triggered")
    assert turn.attributes["error_data"] == {"guardrail": "no_secrets"}


def test_guardrail_that_passes_is_not_triggered(rec: Recorder) -> None:
    @input_guardrail(run_in_parallel=False)
    def harmless(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    agent = Agent(name="Guarded", model=ScriptedModel([Turn([say("ok")])]), input_guardrails=[harmless])
    assert run(agent).final_output == "ok"
    guardrail = rec.by_name("harmless")
    assert guardrail.attributes["triggered"] is False and guardrail.status is Status.OK
    assert guardrail.parent_id == rec.by_name("turn 1").span_id


def test_failing_tool_is_an_error_and_the_run_continues(rec: Recorder) -> None:
    model = ScriptedModel([Turn([call("flaky_lookup", {"order_id": "42"})]), Turn([say("Sorry, try later.")])])
    agent = Agent(name="Orders", model=model, tools=[flaky_lookup])
    assert run(agent).final_output == "Sorry, try later."
    assert rec.tree() == [
        (
            "workflow",
            "Agent workflow",
            [
                (
                    "agent",
                    "run",
                    [
                        (
                            "agent",
                            "Orders",
                            [
                                ("chain", "turn 1", [("llm", "gpt-4o", []), ("tool", "flaky_lookup", [])]),
                                ("chain", "turn 2", [("llm", "gpt-4o", [])]),
                            ],
                        )
                    ],
                )
            ],
        )
    ]
    tool = rec.by_name("flaky_lookup")
    assert tool.status is Status.ERROR
    assert tool.error is not None
    # The SDK redacts a tool's exception text when the default error function handles it.
    assert tool.error.type == SPAN_ERROR_TYPE
    assert tool.error.message == "Error running tool (non-fatal): Tool execution failed. Error details are redacted."
    assert tool.attributes["error_data"]["tool_name"] == "flaky_lookup"
    assert tool.output == "An error occurred while running the tool. Please try again."
    assert [s.name for s in rec.spans() if s.status is Status.ERROR] == ["flaky_lookup"]


def test_failing_tool_with_own_error_function_keeps_the_message(rec: Recorder) -> None:
    def explain(ctx: Any, error: Exception) -> str:
        return f"lookup failed: {error}"

    @function_tool(failure_error_function=explain)
    def strict_lookup(order_id: str) -> str:
        """Look an order up (always fails)."""
        raise KeyError(order_id)

    model = ScriptedModel([Turn([call("strict_lookup", {"order_id": "7"})]), Turn([say("No such order.")])])
    assert run(Agent(name="Orders", model=model, tools=[strict_lookup])).final_output == "No such order."
    tool = rec.by_name("strict_lookup")
    assert tool.error is not None
    assert tool.error.message == "Error running tool (non-fatal): '7'"
    assert tool.output == "lookup failed: '7'"


def test_model_error_fails_the_spans_that_hold_it(rec: Recorder) -> None:
    class BrokenModel(ScriptedModel):
        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            with response_span() as span:
                span.set_error(SpanError(message="Error getting response", data={"error": "rate limited"}))
                raise RuntimeError("rate limited")

    with pytest.raises(RuntimeError, match="rate limited"):
        run(Agent(name="Fragile", model=BrokenModel([])))
    spans = rec.spans()
    llm = kinds(spans, "llm")[0]
    assert llm.name == "response" and llm.usage is None and llm.cost is None
    assert llm.error is not None and llm.error.message == "Error getting response: rate limited"
    agent = rec.by_name("Fragile")
    assert agent.status is Status.ERROR
    assert agent.error is not None and agent.error.message.startswith("Error in agent run")


# -- usage -----------------------------------------------------------------------------------


def test_turn_and_task_usage_are_not_double_counted(isolated_llmobs: Any) -> None:
    from llmobs.core import store

    instrument(replace=True)
    run(weather_agent())
    assert llmobs.flush(timeout=10)
    conn = store.connect(isolated_llmobs, readonly=True)
    try:
        (summary,) = store.recent_traces(conn)
        spans = store.trace_spans(conn, summary.trace_id)
    finally:
        conn.close()
    with_usage = [s for s in spans if s.usage is not None]
    assert sorted(s.kind.value for s in with_usage) == ["llm", "llm"]
    # The store's totals (what `llmobs traces` shows) are the two model calls, once each.
    assert (summary.input_tokens, summary.output_tokens) == (1200 + 1300, 40 + 300)
    assert summary.cost_usd == pytest.approx(sum(s.cost.total_usd for s in with_usage if s.cost), rel=1e-12)
    task = next(s for s in spans if s.name == "run")
    assert task.attributes["aggregate_usage"] == {
        "input_tokens": 2500,
        "output_tokens": 340,
        "total_tokens": 2840,
        "cache_read_tokens": 2176,
        "cache_write_tokens": 64,
        "requests": 2,
    }
    turn2 = next(s for s in spans if s.name == "turn 2")
    assert turn2.usage is None and turn2.cost is None
    assert turn2.attributes["aggregate_usage"] == {
        "input_tokens": 1300,
        "output_tokens": 300,
        "cache_read_tokens": 1152,
        "cache_write_tokens": 64,
    }


def test_usage_without_sensitive_data(rec: Recorder) -> None:
    run(weather_agent(), "secret question", run_config=RunConfig(trace_include_sensitive_data=False))
    first, second = kinds(rec.spans(), "llm")
    # Span usage survives; content does not, and neither does the model name (only the response has it).
    assert first.usage == Usage(1200, 40, 1240, 1024, 0, 0)
    assert second.usage == Usage(1300, 300, 1600, 1152, 64, 256)
    assert first.input is None and first.output is None and first.model is None
    assert rec.by_name("get_weather").input is None


def test_generation_span_usage_and_cost(rec: Recorder) -> None:
    from agents.tracing import generation_span

    usage = {
        "requests": 1,
        "input_tokens": 2000,
        "output_tokens": 500,
        "total_tokens": 2500,
        "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 200},
    }
    with trace("chat completions"):
        with generation_span(
            model="gpt-4.1-mini",
            model_config={"temperature": 0.2, "base_url": "https://api.openai.com/v1/"},
            input=[{"role": "user", "content": "hi"}],
        ) as span:
            span.span_data.output = [{"role": "assistant", "content": "hello"}]
            span.span_data.usage = usage
    assert rec.tree() == [("workflow", "chat completions", [("llm", "gpt-4.1-mini", [])])]
    llm = rec.by_name("gpt-4.1-mini")
    assert llm.usage == Usage(2000, 500, 2500, 1500, 0, 200)
    assert llm.provider == "openai" and llm.model == "gpt-4.1-mini"
    assert llm.attributes["model_config"] == {"temperature": 0.2, "base_url": "https://api.openai.com/v1/"}
    assert llm.cost is not None and llm.cost.total_usd == gp_cost("gpt-4.1-mini", llm.usage)
    assert llm.input == [{"role": "user", "content": "hi"}]


def test_response_without_usage_is_not_free(rec: Recorder) -> None:
    with trace("no usage"):
        with response_span() as span:
            span.span_data.usage = {"requests": 1, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    llm = rec.by_name("response")
    assert llm.usage is None and llm.cost is None


# -- other span types ------------------------------------------------------------------------


def test_custom_mcp_and_session_fields(rec: Recorder) -> None:
    from agents.tracing import function_span, mcp_tools_span

    with trace("Support", group_id="conv-7", metadata={"user": "u1"}):
        with custom_span("load profile", {"rows": 3}):
            pass
        with mcp_tools_span(server="files", result=["read", "write"]):
            pass
        with function_span("read", input='{"path": "a.txt"}', output="hello") as fn:
            fn.span_data.mcp_data = {"server": "files"}
    assert rec.tree() == [
        (
            "workflow",
            "Support",
            [("custom", "load profile", []), ("tool", "list_tools files", []), ("tool", "read", [])],
        )
    ]
    root = rec.by_name("Support")
    assert root.attributes["session_id"] == "conv-7"
    assert root.attributes["metadata"] == {"user": "u1"}
    assert rec.by_name("load profile").attributes["data"] == {"rows": 3}
    listing = rec.by_name("list_tools files")
    assert listing.output == ["read", "write"] and listing.attributes["mcp_server"] == "files"
    read = rec.by_name("read")
    assert read.attributes["mcp_server"] == "files" and read.input == {"path": "a.txt"}


def test_run_config_names_and_groups_the_trace(rec: Recorder) -> None:
    config = RunConfig(workflow_name="Forecast", group_id="thread-1", trace_metadata={"tier": "gold"})
    run(weather_agent(), run_config=config)
    root = rec.by_name("Forecast")
    assert root.kind is SpanKind.WORKFLOW and root.parent_id is None
    assert root.attributes["session_id"] == "thread-1"
    assert root.attributes["metadata"] == {"tier": "gold"}
    assert rec.by_name("run").attributes["workflow_name"] == "Forecast"


def test_nesting_with_manual_spans(rec: Recorder) -> None:
    @function_tool
    def annotated(city: str) -> str:
        """A tool that records its own step."""
        with llmobs.span("geocode", kind="chain"):
            return f"ok {city}"

    model = ScriptedModel([Turn([call("annotated", {"city": "Rome"})]), Turn([say("done")])])
    with llmobs.span("request", kind="chain") as outer:
        run(Agent(name="Nester", model=model, tools=[annotated]))
    tree = rec.tree()
    assert tree[0][:2] == ("chain", "request")
    workflow = tree[0][2][0]
    assert workflow[:2] == ("workflow", "Agent workflow")
    turn1 = workflow[2][0][2][0][2][0]
    assert turn1 == ("chain", "turn 1", [("llm", "gpt-4o", []), ("tool", "annotated", [("chain", "geocode", [])])])
    # Nested in another span, the run keeps the outer trace id rather than the SDK's.
    assert {s.trace_id for s in rec.spans()} == {outer.trace_id}


# -- streaming -------------------------------------------------------------------------------


def test_streamed_run_has_ttft(rec: Recorder) -> None:
    model = ScriptedModel(
        [Turn([call("get_weather", {"city": "Lima"})]), Turn([say("Mild in Lima today.")])],
        first_token_delay=0.02,
    )
    agent = Agent(name="Streamer", model=model, tools=[get_weather])

    async def go() -> Any:
        result = Runner.run_streamed(agent, "weather?")
        async for _ in result.stream_events():
            pass
        return result.final_output

    assert asyncio.run(go()) == "Mild in Lima today."
    assert rec.tree() == [
        (
            "workflow",
            "Agent workflow",
            [
                (
                    "agent",
                    "run",
                    [
                        (
                            "agent",
                            "Streamer",
                            [
                                ("chain", "turn 1", [("llm", "gpt-4o", []), ("tool", "get_weather", [])]),
                                ("chain", "turn 2", [("llm", "gpt-4o", [])]),
                            ],
                        )
                    ],
                )
            ],
        )
    ]
    first, second = kinds(rec.spans(), "llm")
    # The first turn streams only a tool call (no output delta): no TTFT.
    assert first.ttft_ms is None
    # The second streams text after a 20 ms pause: TTFT covers the pause and fits in the span.
    assert second.ttft_ms is not None
    assert 20.0 <= second.ttft_ms <= second.duration_ms + 0.01
    assert second.usage == Usage(100, 20, 120, 0, 0, 0)
    assert [s.name for s in rec.spans() if s.ttft_ms is not None] == ["gpt-4o"]


def test_uninstrument_unwraps_the_stream() -> None:
    from agents.run_internal import run_loop

    from llmobs.integrations.openai_agents import streaming

    set_trace_processors([])
    instrument(replace=True)
    assert getattr(run_loop.model_run_context_stream, "__llmobs_wrapped__", None) is not None
    uninstrument()
    assert getattr(run_loop.model_run_context_stream, "__llmobs_wrapped__", None) is None
    assert streaming.install() is True
    streaming.uninstall()


# -- registration modes ----------------------------------------------------------------------


def test_replace_mode_and_uninstrument_restore(rec: Recorder) -> None:
    from agents.tracing.processors import BatchTraceProcessor

    uninstrument()
    set_trace_processors([sentinel := BatchTraceProcessor(exporter=_NullExporter())])
    processor = instrument(replace=True)
    assert isinstance(processor, TracingProcessor)
    assert openai_agents._registered_processors() == [processor]
    assert instrument(replace=True) is processor  # idempotent
    assert openai_agents._registered_processors() == [processor]
    uninstrument()
    assert openai_agents._registered_processors() == [sentinel]
    sentinel.shutdown()


class _NullExporter:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def export(self, items: list[Any]) -> None:
        self.items.extend(items)


def test_add_mode_keeps_the_default_exporter_and_stays_offline(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx2
    from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor, default_processor

    sends: list[Any] = []

    def no_network(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        sends.append(request)
        raise httpx2.ConnectError("tests never reach the network", request=request)

    exported: list[Any] = []
    original_export = BackendSpanExporter.export

    def spy_export(self: Any, items: list[Any]) -> None:
        exported.extend(items)
        original_export(self, items)

    monkeypatch.setattr(httpx2.Client, "send", no_network)
    monkeypatch.setattr(BackendSpanExporter, "export", spy_export)
    set_trace_processors([default_processor()])
    caplog.set_level("INFO", logger="llmobs")
    openai_agents._logged_modes.discard("add")

    processor = instrument()
    registered = openai_agents._registered_processors()
    assert len(registered) == 2
    assert isinstance(registered[0], BatchTraceProcessor) and registered[1] is processor
    assert instrument() is processor and len(openai_agents._registered_processors()) == 2
    assert "beside the SDK's own trace exporter" in caplog.text

    run(weather_agent())
    get_trace_provider().force_flush()
    assert recorder.tree() == WEATHER_TREE  # ours recorded everything
    assert len(exported) == 1 + 7  # the SDK's exporter got the trace and its 7 spans...
    assert sends == []  # ...and, with no OpenAI key, sent nothing anywhere


def test_llmobs_instrument_registers_in_add_mode(recorder: Recorder) -> None:
    set_trace_processors([])
    assert "openai_agents" in llmobs.instrument("openai_agents")
    (processor,) = openai_agents._registered_processors()
    assert isinstance(processor, TracingProcessor) and openai_agents._mode == "add"
    run(weather_agent())
    assert recorder.tree() == WEATHER_TREE


def test_disabled_tracing_silences_llmobs_too(rec: Recorder) -> None:
    run(weather_agent(), run_config=RunConfig(tracing_disabled=True))
    set_tracing_disabled(True)
    run(weather_agent())
    set_tracing_disabled(False)
    assert rec.spans() == []
    run(weather_agent())
    assert rec.tree() == WEATHER_TREE


def test_processor_failures_never_reach_the_run(rec: Recorder, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    from llmobs.integrations.openai_agents import processor as processor_module

    def broken() -> Any:
        raise RuntimeError("tracer unavailable")

    monkeypatch.setattr(processor_module, "get_tracer", broken)
    monkeypatch.setattr(processor_module, "_warned", set())
    assert run(weather_agent()).final_output == "It is sunny in Paris."
    warnings = [r for r in caplog.records if "openai-agents on_span_start failed" in r.getMessage()]
    assert len(warnings) == 1  # logged once, however many spans failed


# -- concurrency and memory ------------------------------------------------------------------


def test_twenty_concurrent_runs_do_not_cross_talk(rec: Recorder) -> None:
    cities = [f"city{i}" for i in range(20)]

    def agent_for(i: int) -> Agent[Any]:
        model = ScriptedModel(
            [
                Turn([call("get_weather", {"city": cities[i]})], input_tokens=1000 + i, output_tokens=10 + i),
                Turn([say(f"Sunny in {cities[i]}.")], input_tokens=2000 + i, output_tokens=20 + i),
            ]
        )
        return Agent(name=f"Agent{i}", model=model, tools=[get_weather])

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(Runner.run(agent_for(i), cities[i], run_config=RunConfig(group_id=f"g{i}")) for i in range(20))
        )

    results = asyncio.run(main())
    assert [r.final_output for r in results] == [f"Sunny in {c}." for c in cities]
    traces = rec.traces()
    assert len(traces) == 20
    for spans in traces.values():
        assert_nested(spans)
        root = next(s for s in spans if s.parent_id is None)
        i = int(root.attributes["session_id"][1:])
        assert span_tree(spans) == [
            (
                "workflow",
                "Agent workflow",
                [
                    (
                        "agent",
                        "run",
                        [
                            (
                                "agent",
                                f"Agent{i}",
                                [
                                    ("chain", "turn 1", [("llm", "gpt-4o", []), ("tool", "get_weather", [])]),
                                    ("chain", "turn 2", [("llm", "gpt-4o", [])]),
                                ],
                            )
                        ],
                    )
                ],
            )
        ]
        first, second = kinds(spans, "llm")
        assert first.usage is not None and second.usage is not None
        assert (first.usage.input_tokens, first.usage.output_tokens) == (1000 + i, 10 + i)
        assert (second.usage.input_tokens, second.usage.output_tokens) == (2000 + i, 20 + i)
        assert next(s for s in spans if s.kind is SpanKind.TOOL).output == f"sunny in {cities[i]}"
        assert first.input == [{"content": cities[i], "role": "user"}]


class _CountingSink(Sink):
    """Keeps nothing, so memory measures llmobs and the SDK, not the test's sink."""

    name = "counting"

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0

    def write(self, batch: list[Span]) -> None:
        self.count += len(batch)
        self.errors += sum(s.is_error for s in batch)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_memory_is_flat_over_5000_runs() -> None:
    sink = _CountingSink()
    llmobs.configure(sinks=[sink], flush_interval=0.01)
    instrument(replace=True)
    model = ScriptedModel([])
    agent = Agent(name="Loop", model=model)

    async def runs(n: int) -> None:
        for _ in range(n):
            model.turns = [Turn([say("hello")])]
            await Runner.run(agent, "hi")

    def settled_blocks() -> int:
        assert llmobs.flush(timeout=30)
        gc.collect()
        return sys.getallocatedblocks()

    asyncio.run(runs(300))  # warm caches (pydantic, genai-prices, the SDK)
    before = settled_blocks()
    asyncio.run(runs(4700))
    growth = settled_blocks() - before
    from llmobs.core.runtime import get_tracer

    assert get_tracer().in_flight_count() == 0
    assert sink.count == 5000 * 5 and sink.errors == 0
    assert llmobs.health()["dropped"] == 0
    # Retaining anything per span (a Span, a closure, an SDK span) costs several blocks per run;
    # the SDK's own bounded trace-id cache accounts for about 2 blocks a run until it is full.
    assert growth / 4700 < 3, f"{growth} memory blocks retained over 4700 runs"


def test_instrument_reuses_a_processor_the_user_registered(recorder: Recorder) -> None:
    from agents.tracing import add_trace_processor

    set_trace_processors([])
    mine = TracingProcessor()
    add_trace_processor(mine)
    assert instrument() is mine
    assert openai_agents._registered_processors() == [mine]
    run(weather_agent())
    assert recorder.tree() == WEATHER_TREE  # one set of spans, not two


def test_speech_span_time_to_first_audio(rec: Recorder) -> None:
    from agents.tracing import speech_span

    with trace("voice"):
        with speech_span(model="tts-1", input="hello", output_format="pcm") as span:
            started = span.started_at
            assert started is not None
            # The voice pipeline stamps when the first audio chunk arrived: 40 ms in.
            first = datetime.fromisoformat(started) + timedelta(milliseconds=40)
            span.span_data.first_content_at = first.isoformat()
            time.sleep(0.06)  # the speech goes on after its first chunk
    speech = rec.by_name("speech")
    assert speech.kind is SpanKind.CUSTOM and speech.model == "tts-1" and speech.input == "hello"
    assert speech.ttft_ms == 40.0
