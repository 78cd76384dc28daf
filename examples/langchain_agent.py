"""A LangChain tool-calling agent loop, traced by one callback: offline, fake model, real prices.

    python examples/langchain_agent.py

The agent retrieves policy documents, asks a streaming chat model (a fake that reports usage,
cached and reasoning tokens included, like a real provider), calls the tools the model asks for
(one of which times out once and is retried) and answers. Every step is a span: `chain` for the
agent, `retriever`, `llm` (usage, time to first token, cost from genai-prices), `tool`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import ToolException, tool

import llmobs
from llmobs.integrations.langchain import CallbackHandler

MODEL = "gpt-4o-mini"


class StreamingFakeChat(GenericFakeChatModel):
    """A `GenericFakeChatModel` that streams like a provider: words, then usage and tool calls.

    The stock `_stream` drops `usage_metadata` and `tool_calls`; this one sends them on the last
    chunk, as OpenAI does with `stream_usage=True`.
    """

    model: str = MODEL
    streaming: bool = False  # invoke() streams only when `streaming=True` is passed explicitly
    provider: str = "openai"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        return params

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = next(self.messages)
        assert isinstance(reply, AIMessage)
        text = reply.content if isinstance(reply.content, str) else ""
        for word in text.split(" "):
            if word:
                yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=reply.usage_metadata,
                chunk_position="last",
                tool_call_chunks=[
                    {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": i}
                    for i, call in enumerate(reply.tool_calls)
                ],
                response_metadata={
                    "model_name": f"{self.model}-2024-07-18",
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                },
            )
        )


class PolicyRetriever(BaseRetriever):
    """A keyword retriever over a tiny in-memory knowledge base, with scores."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        words = set(query.lower().split())
        scored = []
        for doc in self.documents:
            overlap = len(words & set(doc.page_content.lower().split()))
            if overlap:
                scored.append(Document(id=doc.id, page_content=doc.page_content, metadata={"score": overlap / 10}))
        return sorted(scored, key=lambda d: -d.metadata["score"])


KNOWLEDGE = [
    Document(id="kb-17", page_content="refunds are issued within 5 business days"),
    Document(id="kb-03", page_content="orders ship from rotterdam"),
]


def usage(inp: int, out: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "input_token_details": {"cache_read": cached},
        "output_token_details": {"reasoning": reasoning},
    }


def scripted_replies() -> list[AIMessage]:
    """What the fake model answers, turn by turn."""
    lookup = {"name": "lookup_order", "args": {"order_id": "42"}}
    return [
        AIMessage(content="", tool_calls=[{**lookup, "id": "call-1"}], usage_metadata=usage(1200, 40, cached=1024)),
        AIMessage(content="", tool_calls=[{**lookup, "id": "call-2"}], usage_metadata=usage(1290, 40, cached=1152)),
        AIMessage(
            content="Your refund for order 42 was issued; expect it within 5 business days.",
            usage_metadata=usage(1400, 90, cached=1280, reasoning=32),
        ),
    ]


_attempts = {"lookup_order": 0}


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up in the order service."""
    _attempts["lookup_order"] += 1
    if _attempts["lookup_order"] == 1:
        raise ToolException("order service did not answer in 5s")
    return json.dumps({"order_id": order_id, "status": "refunded"})


lookup_order.handle_tool_error = True  # the model sees the failure and may retry


def build_agent(
    model: StreamingFakeChat, retriever: BaseRetriever, trace_ids: list[str] | None = None
) -> RunnableLambda[str, str]:
    """A minimal tool-calling loop: retrieve, then model → tools → model until it answers."""
    tools = {"lookup_order": lookup_order}

    def support_agent(question: str, config: RunnableConfig) -> str:
        current = llmobs.current_span()  # the agent's own span: LangChain runs us inside it
        if trace_ids is not None and current is not None:
            trace_ids.append(current.trace_id)
        docs = retriever.invoke(question, config)
        context = "\n".join(d.page_content for d in docs)
        messages: list[BaseMessage] = [SystemMessage(f"Answer from this policy:\n{context}"), HumanMessage(question)]
        for _ in range(5):
            reply = model.invoke(messages, config)
            messages.append(reply)
            if not isinstance(reply, AIMessage) or not reply.tool_calls:
                return str(reply.content)
            for call in reply.tool_calls:
                result = tools[call["name"]].invoke(call, config)
                assert isinstance(result, ToolMessage)
                messages.append(result)
        return "I could not finish."

    return RunnableLambda(support_agent, name="support-agent")


def run() -> list[str]:
    """Run the agent once; return the id of the trace it recorded."""
    _attempts["lookup_order"] = 0
    trace_ids: list[str] = []
    model = StreamingFakeChat(streaming=True, messages=iter(scripted_replies()))
    agent = build_agent(model, PolicyRetriever(documents=KNOWLEDGE), trace_ids)
    handler = CallbackHandler()
    answer = agent.invoke(
        "How long do refunds take for order 42?",
        config={"callbacks": [handler], "metadata": {"session_id": "demo-session", "user_id": "u-7"}},
    )
    assert answer.startswith("Your refund")
    return trace_ids


if __name__ == "__main__":
    from demo import show_traces

    show_traces(run())
