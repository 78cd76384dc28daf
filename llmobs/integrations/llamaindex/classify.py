"""Which LlamaIndex spans become llmobs spans, and of which kind.

LlamaIndex opens a span for every decorated method, including many internals (`_query`,
`_retrieve`, `TokenTextSplitter.split_text`, `DefaultRefineProgram.__call__`, ...). We record the
public operations users think in (query, retrieve, embed, chat, call a tool, run an agent, run a
workflow step) and make the rest transparent: their children attach to the nearest recorded
ancestor. A decision depends only on the instance's class and the method, so it is made once per
pair and cached.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from llmobs.core.model import SpanKind

LLM_METHODS = frozenset(
    {
        "chat",
        "achat",
        "stream_chat",
        "astream_chat",
        "complete",
        "acomplete",
        "stream_complete",
        "astream_complete",
        "predict",
        "apredict",
        "stream",
        "astream",
        "structured_predict",
        "astructured_predict",
        "stream_structured_predict",
        "astream_structured_predict",
        "chat_with_tools",
        "achat_with_tools",
        "stream_chat_with_tools",
        "astream_chat_with_tools",
    }
)
#: LLM methods that return a generator: their span exits before the first token, so the llmobs
#: span ends on the End (or Exception) event instead.
STREAM_METHODS = frozenset(
    {
        "stream_chat",
        "astream_chat",
        "stream_complete",
        "astream_complete",
        "stream",
        "astream",
        "stream_structured_predict",
        "astream_structured_predict",
        "stream_chat_with_tools",
        "astream_chat_with_tools",
    }
)
EMBEDDING_METHODS = frozenset(
    {
        "get_query_embedding",
        "aget_query_embedding",
        "get_text_embedding",
        "aget_text_embedding",
        "get_text_embedding_batch",
        "aget_text_embedding_batch",
        "get_agg_embedding_from_queries",
        "aget_agg_embedding_from_queries",
    }
)
_RETRIEVER_METHODS = frozenset({"retrieve", "aretrieve"})
_POSTPROCESSOR_METHODS = frozenset(
    {"postprocess_nodes", "apostprocess_nodes", "_postprocess_nodes", "_apostprocess_nodes"}
)
_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_QUERY_METHODS = frozenset({"query", "aquery"})
_CHAT_ENGINE_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})
_SYNTH_METHODS = frozenset({"synthesize", "asynthesize", "get_response", "aget_response"})
_TRANSFORM_METHODS = frozenset({"__call__", "acall"})
_LLM_CHAIN_METHODS = frozenset({"predict_and_call", "apredict_and_call"})


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do with spans of one (class, method): record as `kind`, or None for transparent."""

    kind: SpanKind | None
    #: an LLM method returning a stream
    stream: bool = False
    #: a workflow step (instance None, bound argument `ev`)
    step: bool = False
    #: `Workflow.run`: returns a future, so its span is not made the context's current span
    run: bool = False


TRANSPARENT = Rule(None)
_CHAIN = Rule(SpanKind.CHAIN)


class Classifier:
    """Imports LlamaIndex's base classes once and classifies (class, span name) pairs."""

    def __init__(self) -> None:
        from llama_index.core.base.base_query_engine import BaseQueryEngine
        from llama_index.core.base.base_retriever import BaseRetriever
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.chat_engine.types import BaseChatEngine
        from llama_index.core.postprocessor.types import BaseNodePostprocessor
        from llama_index.core.response_synthesizers.base import BaseSynthesizer
        from llama_index.core.schema import TransformComponent
        from llama_index.core.tools.types import BaseTool

        self._llm = BaseLLM
        self._embedding = BaseEmbedding
        self._retriever = BaseRetriever
        self._postprocessor = BaseNodePostprocessor
        self._tool = BaseTool
        self._query_engine = BaseQueryEngine
        self._chat_engine = BaseChatEngine
        self._synthesizer = BaseSynthesizer
        self._transform = TransformComponent
        try:
            from workflows import Workflow
        except ImportError:  # pragma: no cover - older layouts
            from llama_index.core.workflow import Workflow
        self._workflow: type = Workflow
        self._agent_types: tuple[type, ...] = ()
        try:
            from llama_index.core.agent.workflow import AgentWorkflow
            from llama_index.core.agent.workflow.base_agent import BaseWorkflowAgent

            self._agent_types = (BaseWorkflowAgent, AgentWorkflow)
        except ImportError:  # pragma: no cover - no workflow agents in this version
            pass

    def classify(self, cls: type, name: str, instance: Any, bound_args: inspect.BoundArguments) -> Rule:
        method = name.rsplit(".", 1)[-1]
        if isinstance(instance, type):
            # A classmethod (`from_documents`, ...): its class is `instance`, and what it does
            # (embedding, parsing) shows up as its own spans.
            return TRANSPARENT
        if instance is None:
            arguments = bound_args.arguments
            if "ev" in arguments and "ctx" in arguments:
                return Rule(SpanKind.CHAIN, step=True)
            return TRANSPARENT
        if issubclass(cls, self._postprocessor):
            # Only the abstract `_postprocess_nodes` is a span (DispatcherSpanMixin wraps it).
            if method not in _POSTPROCESSOR_METHODS:
                return TRANSPARENT
            return Rule(SpanKind.RERANKER) if "rerank" in cls.__name__.lower() else _CHAIN
        if method.startswith("_") and not method.startswith("__"):
            return TRANSPARENT
        if issubclass(cls, self._llm):
            if method in LLM_METHODS:
                return Rule(SpanKind.LLM, stream=method in STREAM_METHODS)
            return _CHAIN if method in _LLM_CHAIN_METHODS else TRANSPARENT
        if issubclass(cls, self._embedding):
            return Rule(SpanKind.EMBEDDING) if method in EMBEDDING_METHODS else TRANSPARENT
        if issubclass(cls, self._retriever):
            return Rule(SpanKind.RETRIEVER) if method in _RETRIEVER_METHODS else TRANSPARENT
        if issubclass(cls, self._tool):
            return Rule(SpanKind.TOOL) if method in _TOOL_METHODS else TRANSPARENT
        if issubclass(cls, self._workflow):
            if method != "run":
                return TRANSPARENT
            kind = SpanKind.AGENT if self._agent_types and issubclass(cls, self._agent_types) else SpanKind.WORKFLOW
            return Rule(kind, run=True)
        if issubclass(cls, self._query_engine):
            return _CHAIN if method in _QUERY_METHODS else TRANSPARENT
        if issubclass(cls, self._chat_engine):
            return _CHAIN if method in _CHAT_ENGINE_METHODS else TRANSPARENT
        if issubclass(cls, self._synthesizer):
            return _CHAIN if method in _SYNTH_METHODS else TRANSPARENT
        if issubclass(cls, self._transform):
            return _CHAIN if method in _TRANSFORM_METHODS else TRANSPARENT
        # Anything else LlamaIndex itself decorates is an internal; a user's own class that they
        # decorated with `@dispatcher.span` is something they want to see.
        return TRANSPARENT if cls.__module__.startswith(("llama_index.", "workflows.")) else _CHAIN


#: `llama_index.<llms|embeddings|postprocessor>.<package>` → OTel `gen_ai.provider.name`.
_PROVIDERS = {
    "openai": "openai",
    "azure_openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gemini",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "mistralai": "mistral_ai",
    "groq": "groq",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "ollama": "ollama",
    "fireworks": "fireworks",
    "together": "together_ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "openrouter": "openrouter",
    "huggingface_api": "huggingface",
    "voyageai": "voyageai",
    "jinaai": "jina",
    "cerebras": "cerebras",
    "nvidia": "nvidia",
}


def provider_of(cls: type) -> str | None:
    """The provider an LLM, embedding or reranker class talks to, from its integration package."""
    parts = cls.__module__.split(".")
    if len(parts) >= 3 and parts[0] == "llama_index" and parts[1] in ("llms", "embeddings", "postprocessor"):
        package = parts[2]
        found = _PROVIDERS.get(package)
        if found is None and package.endswith("_rerank"):
            found = _PROVIDERS.get(package[: -len("_rerank")])
        return found
    return None
