"""Decoding spans that other instrumentations produce: the OpenTelemetry SDK with GenAI attributes,
and openinference-instrumentation-langchain on a fake-model chain, both sent by the real OTLP/HTTP
exporter to a loopback receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind as OTelSpanKind
from opentelemetry.trace import Status as OTelStatus
from opentelemetry.trace import StatusCode

from llmobs.core.model import ErrorInfo, SpanKind, Status, Usage
from tests.otlp_receiver import OTLPReceiver


@pytest.fixture
def provider(otlp_receiver: OTLPReceiver) -> Iterator[TracerProvider]:
    """A real SDK tracer provider exporting over OTLP/HTTP (gzip) to the loopback receiver."""
    tp = TracerProvider(resource=Resource({"service.name": "genai-app"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_receiver.url(), compression=None)))
    yield tp
    tp.shutdown()


def test_sdk_spans_with_genai_attributes_decode_to_the_right_kinds_models_and_tokens(
    provider: TracerProvider, otlp_receiver: OTLPReceiver
) -> None:
    tracer = provider.get_tracer("my.genai.instrumentation")
    with tracer.start_as_current_span(
        "invoke_agent Planner",
        kind=OTelSpanKind.INTERNAL,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "Planner", "gen_ai.agent.id": "a1"},
    ) as agent:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=OTelSpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 1200,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1000,
                "gen_ai.usage.cache_creation.input_tokens": 100,
                "gen_ai.usage.reasoning.output_tokens": 120,
                "gen_ai.response.time_to_first_chunk": 0.25,
                "gen_ai.conversation.id": "conv-1",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
            },
        ) as tool:
            tool.record_exception(TimeoutError("weather service timed out"))
            tool.set_status(OTelStatus(StatusCode.ERROR, "weather service timed out"))
            tool.set_attribute("error.type", "TimeoutError")
        with tracer.start_as_current_span(
            "embeddings text-embedding-3-small",
            kind=OTelSpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.system": "openai",  # the deprecated provider attribute
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 42,
            },
        ):
            pass
    spans = {s.name: s for s in otlp_receiver.wait_for_spans(4)}
    agent_id = format(agent.get_span_context().span_id, "016x")
    trace_id = format(agent.get_span_context().trace_id, "032x")

    root = spans["invoke_agent Planner"]
    assert (root.kind, root.agent, root.parent_id, root.trace_id) == (
        SpanKind.AGENT,
        {"name": "Planner", "id": "a1"},
        None,
        trace_id,
    )
    assert (root.framework, root.service) == ("otlp", "genai-app")

    chat = spans["chat gpt-4o"]
    assert (chat.kind, chat.provider, chat.model, chat.response_model) == (
        SpanKind.LLM,
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert chat.usage == Usage(
        input_tokens=1200, output_tokens=300, cache_read_tokens=1000, cache_write_tokens=100, reasoning_tokens=120
    )
    assert chat.ttft_ms == 250.0
    assert chat.parent_id == agent_id
    assert chat.input == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert chat.attributes == {"session_id": "conv-1", "gen_ai.request.temperature": 0.2}
    assert chat.cost is None  # the receiver's pipeline prices it; the codec does not guess

    tool_span = spans["execute_tool get_weather"]
    assert (tool_span.kind, tool_span.tool, tool_span.input) == (
        SpanKind.TOOL,
        {"name": "get_weather", "call_id": "call_1"},
        {"city": "Paris"},
    )
    assert (tool_span.status, tool_span.error) == (
        Status.ERROR,
        ErrorInfo("TimeoutError", "weather service timed out"),
    )

    embed = spans["embeddings text-embedding-3-small"]
    assert (embed.kind, embed.provider, embed.model, embed.usage) == (
        SpanKind.EMBEDDING,
        "openai",
        "text-embedding-3-small",
        Usage(input_tokens=42),
    )


def test_exception_event_names_the_error_when_error_type_is_missing(
    provider: TracerProvider, otlp_receiver: OTLPReceiver
) -> None:
    tracer = provider.get_tracer("x")
    with tracer.start_as_current_span("work") as span:
        span.record_exception(KeyError("missing"))
        span.set_status(OTelStatus(StatusCode.ERROR))
    [decoded] = otlp_receiver.wait_for_spans(1)
    assert (decoded.kind, decoded.status, decoded.error) == (
        SpanKind.CUSTOM,
        Status.ERROR,
        ErrorInfo("KeyError", "'missing'"),
    )


@pytest.mark.filterwarnings("ignore:Calling .text")  # inside openinference, not ours
def test_openinference_langchain_spans_decode_with_kinds_model_and_tokens(
    provider: TracerProvider, otlp_receiver: OTLPReceiver
) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from openinference.instrumentation.langchain import LangChainInstrumentor

    class FakeOpenAI(GenericFakeChatModel):
        """A fake chat model that names its model the way ChatOpenAI does."""

        model_name: str = "gpt-4o-mini"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model_name": self.model_name}

    reply = AIMessage(
        content="Paris is sunny.",
        usage_metadata={
            "input_tokens": 25,
            "output_tokens": 7,
            "total_tokens": 32,
            "input_token_details": {"cache_read": 5},
        },
    )
    chain = (
        ChatPromptTemplate.from_messages([("system", "be brief"), ("user", "{q}")])
        | FakeOpenAI(messages=iter([reply]))
        | StrOutputParser()
    )
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    # A clean OpenTelemetry context: another test's instrumentation may have left a span current.
    token = otel_context.attach(otel_context.Context())
    try:
        assert chain.invoke({"q": "weather in Paris?"}) == "Paris is sunny."
    finally:
        otel_context.detach(token)
        instrumentor.uninstrument()
    spans = otlp_receiver.wait_for_spans(4)
    by_name = {s.name: s for s in spans}
    assert {name: s.kind for name, s in by_name.items()} == {
        "RunnableSequence": SpanKind.CHAIN,
        "ChatPromptTemplate": SpanKind.CHAIN,  # OpenInference PROMPT
        "FakeOpenAI": SpanKind.LLM,
        "StrOutputParser": SpanKind.CHAIN,
    }
    root = by_name["RunnableSequence"]
    # The chain's root has no parent among the chain's spans. (It may still have one outside: once
    # OpenLLMetry's LangchainInstrumentor has run in this process, its uninstrument() leaves its
    # callback handler in every CallbackManager, and that handler makes its own span current.)
    assert root.parent_id not in {s.span_id for s in spans}
    assert {s.parent_id for s in spans if s is not root} == {root.span_id}
    llm = by_name["FakeOpenAI"]
    assert (llm.model, llm.framework, llm.service) == ("gpt-4o-mini", "otlp", "genai-app")
    assert llm.usage == Usage(input_tokens=25, output_tokens=7, total_tokens=32, cache_read_tokens=5)
    assert llm.input == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "weather in Paris?"}]
    assert llm.output == [{"role": "assistant", "content": "Paris is sunny."}]
    assert root.input == "weather in Paris?"
    assert root.output == "Paris is sunny."
