"""`RunRecord`: what one LangChain run received and produced, and its JSON payload.

The handler keeps references to a run's payloads (messages, `LLMResult`, documents, tool
output) in a `RunRecord`, hung on the span as `Span.deferred`. On the pipeline thread the
record's payload becomes JSON through orjson with `_default`: LangChain's messages, prompt values
and documents as `[tag, fields]` pairs, its results and generations as their fields, anything
else as the content policy would turn it into JSON values. `extract.apply_payload`
reads that payload into the span, in the store's writer process when the store is the only sink
(`offload`), else on the pipeline thread (`__call__`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import Generation, LLMResult
from langchain_core.prompt_values import PromptValue

from llmobs.core.model import Span, SpanKind
from llmobs.core.offload import Offloaded, encode
from llmobs.core.writer import json_fallback
from llmobs.integrations.langchain.extract import DOCUMENT_TAG, MESSAGE_TAG, PROMPT_TAG, apply_payload

#: The name the store's writer process knows this integration's `apply_payload` by (`core/offload.py`).
OFFLOAD_KEY = "langchain"


class RunRecord:
    """What one LangChain run received and produced, kept by reference until the pipeline reads it.

    `owner` is the handler that started the run: when two `CallbackHandler`s see the same run
    (a global one and an explicit one), only the owner records it.
    """

    __slots__ = (
        "context_parent",
        "first_chunk_ns",
        "inputs",
        "kind",
        "metadata",
        "name",
        "outputs",
        "owner",
        "params",
        "stream_usage",
        "tags",
        "text_prompts",
        "tool_call_id",
    )

    def __init__(
        self,
        owner: object,
        kind: SpanKind,
        name: str | None,
        inputs: Any,
        metadata: Mapping[str, Any] | None,
        tags: list[str] | None,
        params: Any = None,
        tool_call_id: str | None = None,
    ) -> None:
        self.owner = owner
        self.kind = kind
        self.name = name
        self.inputs = inputs
        self.metadata = metadata
        self.tags = tags
        self.params = params
        self.tool_call_id = tool_call_id
        self.outputs: Any = None
        self.first_chunk_ns = 0
        self.stream_usage: Any = None
        self.text_prompts = False
        # For a LangChain root run: the span that was current when it started (a manual span,
        # another framework's), so that a sibling root started later in the same context (batch()
        # starts every input before running any) finds the real outer parent, not the sibling.
        self.context_parent: Span | None = None

    def payload(self) -> tuple[Any, ...]:
        """The run's payload, in `extract.PAYLOAD_FIELDS` order (still LangChain objects)."""
        return (
            self.kind._value_,
            self.name,
            self.inputs,
            self.outputs,
            self.metadata,
            self.tags,
            self.params,
            self.tool_call_id,
            self.first_chunk_ns,
            self.stream_usage,
            self.text_prompts,
        )

    def offload(self) -> Offloaded:
        """The payload, for the store's writer process to extract (serialised with the span's fields)."""
        return Offloaded(OFFLOAD_KEY, self.payload(), _default)

    def __call__(self, span: Span) -> None:
        """Fill `span` from the run's payloads here (a sink other than the store needs the fields)."""
        apply_payload(span, orjson.loads(encode_payload(self.payload())))


# -- encoding --------------------------------------------------------------------------------

_OTHER, _MESSAGE, _PROMPT, _DOCUMENT, _RESULT, _GENERATION = range(6)
_CATEGORIES: dict[type, int] = {}
_MAX_CATEGORIES = 4096


def _category(cls: type) -> int:
    found = _CATEGORIES.get(cls)
    if found is not None:
        return found
    if issubclass(cls, BaseMessage):
        found = _MESSAGE
    elif issubclass(cls, PromptValue):
        found = _PROMPT
    elif issubclass(cls, Document):
        found = _DOCUMENT
    elif issubclass(cls, LLMResult):
        found = _RESULT
    elif issubclass(cls, Generation):
        found = _GENERATION
    else:
        found = _OTHER
    if len(_CATEGORIES) < _MAX_CATEGORIES:
        _CATEGORIES[cls] = found
    return found


def _default(value: Any) -> Any:
    """orjson's fallback: LangChain objects as tagged fields, anything else as the content policy makes it."""
    category = _CATEGORIES.get(type(value))
    if category is None:
        category = _category(type(value))
    if category == _MESSAGE:
        return (MESSAGE_TAG, value.__dict__)
    if category == _GENERATION:
        return value.__dict__
    if category == _RESULT:
        return {"generations": value.generations, "llm_output": value.llm_output}
    if category == _PROMPT:
        return (PROMPT_TAG, value.to_messages())
    if category == _DOCUMENT:
        return (DOCUMENT_TAG, value.__dict__)
    return json_fallback(value)


def encode_payload(payload: tuple[Any, ...]) -> bytes:
    """The payload as JSON (what JSON cannot hold as it is made to fit: `offload.jsonable`)."""
    return encode(payload, _default)
