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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmobs.integrations.langchain.handler import CallbackHandler, fault_counts
    from llmobs.integrations.langchain.setup import global_handler, instrument, uninstrument

__all__ = ["CallbackHandler", "fault_counts", "global_handler", "instrument", "uninstrument"]

# Imported on first use: the store's writer process imports `extract` from this package to read
# LangChain payloads, and must not import LangChain for that.
_HOMES = {
    "CallbackHandler": "handler",
    "fault_counts": "handler",
    "global_handler": "setup",
    "instrument": "setup",
    "uninstrument": "setup",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
