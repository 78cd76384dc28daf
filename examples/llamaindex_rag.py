"""LlamaIndex, offline: a RAG query and a tool-calling agent, traced by one `instrument()` call.

    python examples/llamaindex_rag.py

A `VectorStoreIndex` over a few documents (with `MockEmbedding`) answers a question through a
query engine, then a `FunctionAgent` handles a support request: its scripted function-calling
model streams, reports OpenAI-shaped usage (cached tokens included) and calls two tools, one of
which queries the same index. Every model call is priced from genai-prices; no network, no keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    ToolCallBlock,
)
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from pydantic import Field

import llmobs
from llmobs.integrations.llamaindex import instrument

DOCUMENTS = [
    Document(text="Refunds are issued to the original payment method within 5 business days.", doc_id="refunds"),
    Document(text="Orders ship from Rotterdam; delivery in the EU takes 2 to 4 days.", doc_id="shipping"),
    Document(text="Support is open Monday to Friday, 9:00 to 17:00 CET.", doc_id="hours"),
    Document(text="Damaged items can be returned free of charge within 30 days.", doc_id="returns"),
]

ORDERS = {"42": "refund issued on 2026-11-24", "43": "in transit"}


class AnswerLLM(CustomLLM):
    """A completion model that answers from the retrieved context and reports its usage."""

    trace_ids: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="gpt-4o-mini")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        current = llmobs.current_span()  # this call's own llm span
        if current is not None and current.trace_id not in self.trace_ids:
            self.trace_ids.append(current.trace_id)
        context = prompt.split("---------------------")[1].strip().splitlines()[0] if "----" in prompt else ""
        text = f"According to our policy: {context}"
        usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return CompletionResponse(text=text, raw={"model": "gpt-4o-mini-2024-07-18", "usage": usage})

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield self.complete(prompt, formatted, **kwargs)


class ScriptedAgentLLM(MockFunctionCallingLLM):
    """A function-calling chat model that streams scripted turns with OpenAI-shaped usage."""

    script: list[ChatMessage] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="gpt-4o", is_chat_model=True, is_function_calling_model=True)

    @llm_chat_callback()
    async def astream_chat(  # type: ignore[override]
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> AsyncIterator[ChatResponse]:
        reply = self.script.pop(0)
        prompt_tokens = 180 * len(messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 24,
            "total_tokens": prompt_tokens + 24,
            "prompt_tokens_details": {"cached_tokens": 128 if len(messages) > 2 else 0},
        }

        async def gen() -> AsyncIterator[ChatResponse]:
            text = ""
            for word in (reply.content or "").split():
                text = f"{text} {word}".strip()
                await asyncio.sleep(0.002)  # the provider streaming tokens
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=word)
            yield ChatResponse(message=reply, delta="", raw={"model": "gpt-4o-2024-08-06", "usage": usage})

        return gen()


def build_agent(index: VectorStoreIndex, answer_llm: AnswerLLM, trace_ids: list[str]) -> FunctionAgent:
    engine = index.as_query_engine(llm=answer_llm, similarity_top_k=1)

    def get_order_status(order_id: str) -> str:
        """The status of an order."""
        current = llmobs.current_span()  # the tool's span: LlamaIndex runs the tool inside it
        if current is not None and current.trace_id not in trace_ids:
            trace_ids.append(current.trace_id)
        return ORDERS.get(order_id, "unknown order")

    def search_docs(question: str) -> str:
        """Search the support knowledge base."""
        return str(engine.query(question))

    llm = ScriptedAgentLLM(
        script=[
            ChatMessage(
                role="assistant",
                blocks=[
                    ToolCallBlock(tool_call_id="call_1", tool_name="get_order_status", tool_kwargs={"order_id": "42"}),
                    ToolCallBlock(
                        tool_call_id="call_2", tool_name="search_docs", tool_kwargs={"question": "refund timing"}
                    ),
                ],
            ),
            ChatMessage(
                role="assistant",
                content="Your refund for order 42 was issued on 24 November; it reaches your card within 5 business days.",
            ),
        ]
    )
    return FunctionAgent(
        name="support_agent",
        description="Answers questions about orders and policies.",
        system_prompt="You are a concise support agent.",
        tools=[FunctionTool.from_defaults(get_order_status), FunctionTool.from_defaults(search_docs)],
        llm=llm,
    )


def run() -> list[str]:
    """Answer one question with a query engine and one request with an agent; return their trace ids."""
    instrument()
    index = VectorStoreIndex.from_documents(DOCUMENTS, embed_model=MockEmbedding(embed_dim=16))

    query_llm = AnswerLLM()
    answer = index.as_query_engine(llm=query_llm, similarity_top_k=2).query("How long do refunds take?")
    trace_ids = list(query_llm.trace_ids)
    assert str(answer).startswith("According to our policy")

    agent_traces: list[str] = []
    agent = build_agent(index, AnswerLLM(), agent_traces)

    async def ask() -> Any:
        return await agent.run(user_msg="Where is the refund for my order 42?")

    asyncio.run(ask())
    return trace_ids + agent_traces


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo import show_traces

    show_traces(run())
