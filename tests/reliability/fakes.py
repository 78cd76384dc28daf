"""Offline fake-model applications for the reliability suite and bench/memory.py.

One small app per framework, each taking a `marker` that ends up in its input so that a test can
tell runs apart, and a `usage` that its fake model reports as its provider would:

- `langchain_chain(usage)`: prompt | fake chat model | str parser; `invoke({"q": marker})`.
- `llamaindex_engine(usage)`: a query engine over three documents on MockEmbedding and a
  `MockLLM` whose completions carry OpenAI-shaped `raw.usage`.
- `agents_agent(usage)`: an Agents SDK `Agent` on a fake `Model` that answers in one turn and
  opens a `response_span` with the given span usage, as the SDK's own models do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from agents import Agent, ModelResponse, set_trace_processors, set_tracing_disabled
from agents import Usage as AgentsUsage
from agents.models.interface import Model
from agents.tracing import response_span
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from openai.types.responses import Response, ResponseOutputMessage, ResponseOutputText

GOOD_USAGE: dict[str, Any] = {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}


# -- LangChain ---------------------------------------------------------------------------------


class UsageChatModel(GenericFakeChatModel):
    """Answers "ok: <last message>" with `usage_metadata` set verbatim (no validation), or raises `fail`."""

    usage: Any = None
    fail: Any = None
    model_name: str = "gpt-4o-mini"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        if self.fail is not None:
            raise self.fail
        message = AIMessage(content=f"ok: {messages[-1].content}", response_metadata={"model_name": self.model_name})
        # Set after construction: pydantic would refuse the odd counts a broken provider sends.
        message.usage_metadata = self.usage
        return ChatResult(generations=[ChatGeneration(message=message)])


def langchain_chain(usage: Any = GOOD_USAGE, fail: Any = None, model: Any = None) -> Any:
    chat = model if model is not None else UsageChatModel(messages=iter(()), usage=usage, fail=fail)
    return ChatPromptTemplate.from_messages([("user", "{q}")]) | chat | StrOutputParser()


# -- LlamaIndex --------------------------------------------------------------------------------


class UsageMockLLM(MockLLM):
    """MockLLM whose completion carries OpenAI-shaped `raw.usage` (verbatim), or raises `fail`."""

    usage: Any = None
    fail: Any = None

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self.fail is not None:
            raise self.fail
        return CompletionResponse(text="answer", raw={"model": "gpt-4o-mini", "usage": self.usage})


DOCS = [
    Document(text="Paris is the capital of France.", doc_id="paris"),
    Document(text="Berlin is the capital of Germany.", doc_id="berlin"),
    Document(text="Madrid is the capital of Spain.", doc_id="madrid"),
]

OPENAI_USAGE: dict[str, Any] = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}


def llamaindex_index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))


def llamaindex_engine(index: VectorStoreIndex, usage: Any = OPENAI_USAGE, fail: Any = None) -> Any:
    llm = UsageMockLLM(max_tokens=4)
    llm.usage = usage
    llm.fail = fail
    return index.as_query_engine(llm=llm, similarity_top_k=2)


# -- OpenAI Agents -----------------------------------------------------------------------------


def _response(text: str) -> Response:
    message = ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )
    return Response(
        id="resp_1",
        created_at=time.time(),
        model="gpt-4o-mini",
        object="response",
        output=[message],
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
    )


class UsageModel(Model):
    """Answers "ok: <input>" in one turn; its `response_span` carries `span_usage` verbatim."""

    def __init__(self, span_usage: Any = None, fail: BaseException | None = None) -> None:
        self.span_usage = span_usage if span_usage is not None else {"requests": 1, **GOOD_USAGE}
        self.fail = fail

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
        if self.fail is not None:
            raise self.fail
        text = input if isinstance(input, str) else str(input[-1].get("content"))
        response = _response(f"ok: {text}")
        with response_span(disabled=tracing.is_disabled()) as span:
            span.span_data.usage = self.span_usage
            if tracing.include_data():
                span.span_data.response = response
                span.span_data.input = input
        return ModelResponse(output=response.output, usage=AgentsUsage(requests=1), response_id=response.id)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError


def agents_agent(span_usage: Any = None, fail: BaseException | None = None, name: str = "Helper") -> Agent[Any]:
    return Agent(name=name, instructions="be brief", model=UsageModel(span_usage, fail))


@contextmanager
def agents_recorded_by_llmobs() -> Iterator[None]:
    """llmobs' processor alone on the SDK (nothing exported to OpenAI); the SDK's put back after."""
    from llmobs.integrations import openai_agents

    before = openai_agents._registered_processors()
    set_tracing_disabled(False)
    openai_agents.instrument(replace=True)
    try:
        yield
    finally:
        openai_agents.uninstrument()
        set_trace_processors([p for p in before if type(p).__name__ != "BatchTraceProcessor"])
