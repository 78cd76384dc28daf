"""An OpenAI Agents SDK triage agent that hands off to a specialist with a tool: offline, real prices.

    python examples/openai_agents_handoff.py

A triage agent hands the question to a billing specialist, which calls a function tool and
answers. The model is an offline `Model` that behaves like the SDK's `OpenAIResponsesModel`: it
opens the `response_span` itself (the Runner does not) and returns real `openai` Response objects
with usage, cached and reasoning tokens included. The second run streams (`Runner.run_streamed`),
so its model calls also get a time to first token.

llmobs records it with one line, `instrument(replace=True)`: the SDK's own exporter to the
OpenAI dashboard is replaced, so nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, ModelResponse, RunConfig, Runner, function_tool
from agents import Usage as AgentsUsage
from agents.models.interface import Model
from agents.tracing import gen_trace_id, response_span
from agents.usage import model_usage_to_span_usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionToolCall,
    ResponseOutputItem,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

from llmobs.integrations.openai_agents import instrument

TRIAGE_MODEL = "gpt-4.1-mini"
SPECIALIST_MODEL = "o4-mini"

_ids = itertools.count(1)


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"msg_{next(_ids)}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )


def _tool_call(name: str, arguments: dict[str, Any]) -> ResponseFunctionToolCall:
    number = next(_ids)
    return ResponseFunctionToolCall(
        id=f"fc_{number}",
        call_id=f"call_{number}",
        type="function_call",
        name=name,
        arguments=json.dumps(arguments),
        status="completed",
    )


class ScriptedResponsesModel(Model):
    """Answers from a script, like `OpenAIResponsesModel` would: one `response_span` per call.

    Each script entry is (output items, input tokens, cached input tokens, output tokens,
    reasoning tokens).
    """

    def __init__(self, model: str, script: list[tuple[list[ResponseOutputItem], int, int, int, int]]) -> None:
        self.model = model
        self.script = list(script)

    def _next(self) -> tuple[Response, AgentsUsage]:
        output, input_tokens, cached, output_tokens, reasoning = self.script.pop(0)
        input_details = InputTokensDetails(cached_tokens=cached, cache_write_tokens=0)
        output_details = OutputTokensDetails(reasoning_tokens=reasoning)
        total = input_tokens + output_tokens
        response = Response(
            id=f"resp_{next(_ids)}",
            created_at=time.time(),
            model=self.model,
            object="response",
            output=output,
            parallel_tool_calls=True,
            tool_choice="auto",
            tools=[],
            usage=ResponseUsage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=total,
                input_tokens_details=input_details,
                output_tokens_details=output_details,
            ),
        )
        usage = AgentsUsage(
            requests=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total,
            input_tokens_details=input_details,
            output_tokens_details=output_details,
        )
        return response, usage

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        response, usage = self._next()
        with response_span(disabled=tracing.is_disabled()) as span:
            await asyncio.sleep(0.03)  # "network"
            span.span_data.usage = model_usage_to_span_usage(usage)
            if tracing.include_data():
                span.span_data.response = response
                span.span_data.input = input
        return ModelResponse(output=response.output, usage=usage, response_id=response.id)

    async def stream_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        tracing: Any,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        response, usage = self._next()
        with response_span(disabled=tracing.is_disabled()) as span:
            started = response.model_copy(update={"output": [], "usage": None})
            yield ResponseCreatedEvent(response=started, sequence_number=0, type="response.created")
            await asyncio.sleep(0.025)  # time to first token
            sequence = 1
            for index, item in enumerate(response.output):
                if isinstance(item, ResponseFunctionToolCall):
                    yield ResponseFunctionCallArgumentsDeltaEvent(
                        delta=item.arguments,
                        item_id=item.id or "",
                        output_index=index,
                        sequence_number=sequence,
                        type="response.function_call_arguments.delta",
                    )
                    sequence += 1
                    continue
                if not isinstance(item, ResponseOutputMessage):
                    continue
                text = item.content[0].text if isinstance(item.content[0], ResponseOutputText) else ""
                for word in text.split(" "):
                    await asyncio.sleep(0.002)
                    yield ResponseTextDeltaEvent(
                        content_index=0,
                        delta=word + " ",
                        item_id=item.id,
                        logprobs=[],
                        output_index=index,
                        sequence_number=sequence,
                        type="response.output_text.delta",
                    )
                    sequence += 1
            span.span_data.usage = model_usage_to_span_usage(usage)
            if tracing.include_data():
                span.span_data.response = response
                span.span_data.input = input
            yield ResponseCompletedEvent(response=response, sequence_number=sequence, type="response.completed")


@function_tool
def refund_status(order_id: str) -> str:
    """The refund status of an order."""
    time.sleep(0.01)
    return json.dumps({"order_id": order_id, "refund": "issued", "days_left": 2})


def build_agents() -> Agent[Any]:
    """The triage agent (and, through its handoff, the billing specialist), with fresh scripts."""
    specialist_model = ScriptedResponsesModel(
        SPECIALIST_MODEL,
        [
            ([_tool_call("refund_status", {"order_id": "42"})], 2400, 2048, 180, 128),
            ([_message("Your refund for order 42 was issued; it arrives within 2 days.")], 2650, 2304, 240, 96),
        ],
    )
    specialist = Agent(
        name="Billing specialist",
        instructions="Answer billing questions using the refund_status tool.",
        model=specialist_model,
        tools=[refund_status],
    )
    triage_model = ScriptedResponsesModel(
        TRIAGE_MODEL, [([_tool_call("transfer_to_billing_specialist", {})], 900, 768, 25, 0)]
    )
    return Agent(
        name="Triage",
        instructions="Route the customer to the right specialist.",
        model=triage_model,
        handoffs=[specialist],
    )


async def _streamed(question: str, config: RunConfig) -> str:
    result = Runner.run_streamed(build_agents(), question, run_config=config)
    async for _event in result.stream_events():
        pass
    return str(result.final_output)


def run() -> list[str]:
    """Record one plain and one streamed run; return their llmobs trace ids."""
    instrument(replace=True)  # llmobs only: the SDK's OpenAI exporter is not used
    question = "Where is my refund for order 42?"
    trace_ids: list[str] = []
    for streamed in (False, True):
        sdk_trace_id = gen_trace_id()  # llmobs adopts it: trace_<hex> here is <hex> there
        config = RunConfig(
            workflow_name="Customer support" + (" (streamed)" if streamed else ""),
            trace_id=sdk_trace_id,
            group_id="demo-conversation",
            trace_metadata={"channel": "chat"},
        )
        if streamed:
            asyncio.run(_streamed(question, config))
        else:
            asyncio.run(Runner.run(build_agents(), question, run_config=config))
        trace_ids.append(sdk_trace_id.removeprefix("trace_"))
    return trace_ids


if __name__ == "__main__":
    from demo import show_traces

    show_traces(run())
