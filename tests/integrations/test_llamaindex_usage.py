"""LlamaIndex LLM spans: usage and cost from provider-shaped raw responses, streams and errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from genai_prices import Usage as GPUsage
from genai_prices import calc_price
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from pydantic import Field

from llmobs.integrations import llamaindex as li
from llmobs.integrations.llamaindex.classify import provider_of
from tests.conftest import Recorder

HELLO = [ChatMessage(role="user", content="hello")]


class RawLLM(CustomLLM):
    """A chat LLM whose response carries a given `raw` and `additional_kwargs`."""

    model: str = "gpt-4o"
    raw: Any = None
    extra: dict[str, Any] = Field(default_factory=dict)
    chunks: list[str] = Field(default_factory=lambda: ["Hel", "lo", "!"])
    pause_s: float = 0.0
    fail_with: Any = None

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=True)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="Hello!")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield CompletionResponse(text="Hello!", delta="Hello!")

    @llm_chat_callback()
    def chat(self, messages: Any, **kwargs: Any) -> ChatResponse:
        if self.fail_with is not None:
            raise self.fail_with
        return ChatResponse(
            message=ChatMessage(role="assistant", content="Hello!"), raw=self.raw, additional_kwargs=self.extra
        )

    @llm_chat_callback()
    def stream_chat(self, messages: Any, **kwargs: Any) -> Iterator[ChatResponse]:  # type: ignore[override]
        def gen() -> Iterator[ChatResponse]:
            text = ""
            for i, chunk in enumerate(self.chunks):
                if self.fail_with is not None and i == 1:
                    raise self.fail_with
                text += chunk
                last = i == len(self.chunks) - 1
                yield ChatResponse(
                    message=ChatMessage(role="assistant", content=text),
                    delta=chunk,
                    raw=self.raw if last else None,
                    additional_kwargs=self.extra if last else {},
                )
                if i == 0 and self.pause_s:
                    time.sleep(self.pause_s)

        return gen()


@pytest.fixture(autouse=True)
def instrumented() -> Iterator[None]:
    li.instrument()
    yield
    li.uninstrument()


def expected_cost(model: str, **usage: int) -> float:
    return float(calc_price(GPUsage(**usage), model).total_price)


# -- usage shapes -----------------------------------------------------------------------------

OPENAI_RAW = {
    "model": "o4-mini-2025-04-16",
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000},
        "completion_tokens_details": {"reasoning_tokens": 200},
    },
}
# The Anthropic SDK's Message: an object, with cache reads and writes outside input_tokens.
ANTHROPIC_RAW = {
    "model": "claude-sonnet-4-5",
    "usage": SimpleNamespace(
        input_tokens=200, output_tokens=300, cache_read_input_tokens=1000, cache_creation_input_tokens=500
    ),
}
# Gemini: thoughts are reported beside candidates; prompt includes the cached tokens.
GEMINI_RAW = {
    "model_version": "gemini-2.5-flash",
    "usage_metadata": {
        "prompt_token_count": 1200,
        "candidates_token_count": 300,
        "thoughts_token_count": 50,
        "cached_content_token_count": 1000,
        "total_token_count": 1550,
    },
}


@pytest.mark.parametrize(
    ("model", "raw", "usage", "priced_as"),
    [
        (
            "o4-mini",
            OPENAI_RAW,
            {
                "input_tokens": 1200,
                "output_tokens": 300,
                "total_tokens": 1500,
                "cache_read_tokens": 1000,
                "reasoning_tokens": 200,
            },
            {"input_tokens": 1200, "cache_read_tokens": 1000, "output_tokens": 300, "output_reasoning_tokens": 200},
        ),
        (
            "claude-sonnet-4-5",
            ANTHROPIC_RAW,
            {
                "input_tokens": 1700,
                "output_tokens": 300,
                "total_tokens": 2000,
                "cache_read_tokens": 1000,
                "cache_write_tokens": 500,
            },
            {"input_tokens": 1700, "cache_read_tokens": 1000, "cache_write_tokens": 500, "output_tokens": 300},
        ),
        (
            "gemini-2.5-flash",
            GEMINI_RAW,
            {
                "input_tokens": 1200,
                "output_tokens": 350,
                "total_tokens": 1550,
                "cache_read_tokens": 1000,
                "reasoning_tokens": 50,
            },
            {"input_tokens": 1200, "cache_read_tokens": 1000, "output_tokens": 350, "output_reasoning_tokens": 50},
        ),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_usage_and_cost_from_raw(
    recorder: Recorder, model: str, raw: Any, usage: dict[str, int], priced_as: dict[str, int]
) -> None:
    RawLLM(model=model, raw=raw).chat(HELLO)

    assert recorder.tree() == [("llm", f"chat {model}", [])]
    span = recorder.spans()[0]
    assert span.model == model
    assert span.usage is not None and span.usage.to_dict() == usage
    assert span.cost is not None
    assert span.cost.total_usd == expected_cost(model, **priced_as)
    assert span.cost.total_usd > 0
    assert span.input == [{"role": "user", "content": "hello"}]
    assert span.output == {"role": "assistant", "content": "Hello!"}
    assert span.ttft_ms is None


def test_response_model_is_kept_when_it_differs(recorder: Recorder) -> None:
    RawLLM(model="o4-mini", raw=OPENAI_RAW).chat(HELLO)
    span = recorder.spans()[0]
    assert (span.model, span.response_model) == ("o4-mini", "o4-mini-2025-04-16")


def test_usage_falls_back_to_additional_kwargs(recorder: Recorder) -> None:
    extra = {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}
    RawLLM(model="gpt-4o", raw={"id": "x"}, extra=extra).chat(HELLO)
    span = recorder.spans()[0]
    assert span.usage is not None
    assert span.usage.to_dict() == {"input_tokens": 40, "output_tokens": 10, "total_tokens": 50}
    assert span.cost is not None
    assert span.cost.total_usd == expected_cost("gpt-4o", input_tokens=40, output_tokens=10)


def test_openai_sdk_object_usage(recorder: Recorder) -> None:
    """llama-index-llms-openai puts the SDK's ChatCompletion (an object) in raw."""
    usage = SimpleNamespace(
        prompt_tokens=100,
        completion_tokens=20,
        total_tokens=120,
        prompt_tokens_details=SimpleNamespace(cached_tokens=64),
        completion_tokens_details=None,
    )
    RawLLM(model="gpt-4o", raw=SimpleNamespace(model="gpt-4o-2024-08-06", usage=usage)).chat(HELLO)
    span = recorder.spans()[0]
    assert span.usage is not None
    assert span.usage.to_dict() == {
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "cache_read_tokens": 64,
    }
    assert span.cost is not None
    assert span.cost.total_usd == expected_cost("gpt-4o", input_tokens=100, cache_read_tokens=64, output_tokens=20)


def test_no_usage_means_no_cost(recorder: Recorder) -> None:
    RawLLM(model="gpt-4o", raw=None).chat(HELLO)
    span = recorder.spans()[0]
    assert span.usage is None and span.cost is None


def test_provider_comes_from_the_integration_package() -> None:
    def cls(module: str) -> type:
        return type("X", (), {"__module__": module})

    assert provider_of(cls("llama_index.llms.openai.base")) == "openai"
    assert provider_of(cls("llama_index.llms.anthropic.base")) == "anthropic"
    assert provider_of(cls("llama_index.llms.google_genai.base")) == "gcp.gemini"
    assert provider_of(cls("llama_index.embeddings.openai.base")) == "openai"
    assert provider_of(cls("llama_index.postprocessor.cohere_rerank.base")) == "cohere"
    assert provider_of(cls("llama_index.core.llms.mock")) is None
    assert provider_of(cls("my_app.llm")) is None


# -- streams ----------------------------------------------------------------------------------


def test_stream_ttft_and_duration_come_from_the_events(recorder: Recorder) -> None:
    raw = {"usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}
    llm = RawLLM(model="gpt-4o", raw=raw, pause_s=0.05)
    gen = llm.stream_chat(HELLO)
    # LlamaIndex has already closed its span for stream_chat: nothing is recorded yet.
    assert recorder.spans() == []
    texts = [r.message.content for r in gen]

    assert texts == ["Hel", "Hello", "Hello!"]
    assert recorder.tree() == [("llm", "chat gpt-4o", [])]
    span = recorder.spans()[0]
    assert span.status.value == "ok"
    assert span.ttft_ms is not None
    # The first chunk comes before the 50 ms pause, the end after it.
    assert 0 <= span.ttft_ms < span.duration_ms
    assert span.duration_ms - span.ttft_ms >= 50
    assert span.output == {"role": "assistant", "content": "Hello!"}
    assert span.usage is not None and span.usage.to_dict() == {
        "input_tokens": 12,
        "output_tokens": 3,
        "total_tokens": 15,
    }
    assert span.cost is not None
    assert span.cost.total_usd == expected_cost("gpt-4o", input_tokens=12, output_tokens=3)


def test_abandoned_stream_is_not_an_error(recorder: Recorder) -> None:
    gen = RawLLM(model="gpt-4o").stream_chat(HELLO)
    first = next(gen)
    gen.close()
    assert first.delta == "Hel"
    span = recorder.spans()[0]
    assert span.status.value == "ok" and span.error is None
    assert span.attributes == {"llamaindex.stream.closed_early": True}
    assert span.ttft_ms is not None


def test_stream_failing_midway_is_an_error(recorder: Recorder) -> None:
    gen = RawLLM(model="gpt-4o", fail_with=ConnectionError("reset by peer")).stream_chat(HELLO)
    with pytest.raises(ConnectionError):
        list(gen)
    span = recorder.spans()[0]
    assert span.status.value == "error"
    assert span.error is not None and span.error.to_dict() == {"type": "ConnectionError", "message": "reset by peer"}
    assert span.ttft_ms is not None


def test_non_streaming_llm_error_ends_its_span_as_an_error(recorder: Recorder) -> None:
    """A failing chat emits no End event; the dropped span still ends, as an error."""
    with pytest.raises(TimeoutError):
        RawLLM(model="gpt-4o", fail_with=TimeoutError("upstream timed out")).chat(HELLO)
    assert recorder.tree() == [("llm", "chat gpt-4o", [])]
    span = recorder.spans()[0]
    assert span.status.value == "error"
    assert span.error is not None and span.error.to_dict() == {"type": "TimeoutError", "message": "upstream timed out"}
    assert span.usage is None and span.output is None
