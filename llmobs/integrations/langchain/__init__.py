"""LangChain and LangGraph integration: one callback handler, or global registration.

    from llmobs.integrations.langchain import CallbackHandler
    chain.invoke(question, config={"callbacks": [CallbackHandler()]})

    # or, once, for every runnable in the process:
    llmobs.instrument()            # or llmobs.integrations.langchain.instrument()

Chat models and LLMs become `llm` spans (model, provider, usage with cached and reasoning
tokens, time to first token, messages and tool calls, priced by the pipeline), tools `tool`
spans, retrievers `retriever` spans, chains `chain` spans and LangGraph graphs `agent` spans
with their nodes as `chain` children.
"""

from __future__ import annotations

from llmobs.integrations.langchain.handler import CallbackHandler, fault_counts
from llmobs.integrations.langchain.setup import global_handler, instrument, uninstrument

__all__ = ["CallbackHandler", "fault_counts", "global_handler", "instrument", "uninstrument"]
