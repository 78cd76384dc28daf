"""The LangChain integration against real langchain_core runnables and fake chat models.

Every test asserts the exact span tree (kinds, names, parents) the run produced; model spans
also assert exact usage and a cost equal to genai-prices' for the same model and usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import genai_prices
import pytest
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableConfig, RunnableLambda, RunnableParallel
from langchain_core.tools import tool

import llmobs
from llmobs.core.model import Span, Status, Usage
from llmobs.core.pricing import genai_prices_version
from llmobs.integrations.langchain import CallbackHandler
from tests.conftest import Recorder

# -- isolation -----------------------------------------------------------------------------------


def _unwrap(owner: Any, name: str) -> None:
    wrapped = getattr(owner.__dict__.get(name), "__wrapped__", None)
    if wrapped is not None:
        setattr(owner, name, wrapped)


@pytest.fixture(autouse=True)
def no_leftover_langchain_instrumentation() -> None:
    """Undo wrappers another test's OpenLLMetry `uninstrument()` left behind.

    opentelemetry-instrumentation-langchain 0.62.4 does not unwrap `BaseCallbackManager.__init__`
    (nor LangGraph's `Pregel.stream`): its handler keeps running and attaches an OpenTelemetry
    context per run, which a root run would then adopt as its parent.
    """
    from langchain_core.callbacks import BaseCallbackManager

    _unwrap(BaseCallbackManager, "__init__")
    try:
        from langgraph.pregel import Pregel
    except ImportError:  # pragma: no cover - langgraph is a dev dependency
        return
    _unwrap(Pregel, "stream")
    _unwrap(Pregel, "astream")


# -- fakes -------------------------------------------------------------------------------------


def usage_metadata(inp: int, out: int, cache_read: int = 0, cache_write: int = 0, reasoning: int = 0) -> Any:
    details: dict[str, int] = {}
    if cache_read:
        details["cache_read"] = cache_read
    if cache_write:
        details["cache_creation"] = cache_write
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "input_token_details": details,
        "output_token_details": {"reasoning": reasoning} if reasoning else {},
    }


USAGE = usage_metadata(1200, 300, cache_read=1000, reasoning=120)


class FakeChat(GenericFakeChatModel):
    """A fake chat model with a model name and provider, that streams usage and tool calls."""

    model: str = "gpt-4o"
    provider: str = "openai"
    streaming: bool = False

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
        for word in str(reply.content).split(" "):
            if word:
                yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=reply.usage_metadata,
                chunk_position="last",
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(reply.tool_calls)
                ],
                response_metadata=dict(reply.response_metadata),
            )
        )


class FailingChat(FakeChat):
    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise RuntimeError("rate limited: retry in 20s")


def reply(text: str, usage: Any = USAGE, tool_calls: list[Any] | None = None, **meta: Any) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata=usage,
        tool_calls=tool_calls or [],
        response_metadata={"model_name": "gpt-4o-2024-08-06", "finish_reason": "stop", **meta},
    )


def replies(n: int, text: str = "Paris is the capital.") -> Iterator[AIMessage]:
    return iter([reply(text) for _ in range(n)])


def prompt_chain(model: FakeChat) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{q}")])
    return prompt | model | StrOutputParser()


CHAIN_TREE = [
    (
        "chain",
        "RunnableSequence",
        [("chain", "ChatPromptTemplate", []), ("llm", "chat gpt-4o", []), ("chain", "StrOutputParser", [])],
    )
]


def expected_cost(model: str, provider: str, usage: Usage) -> tuple[float, float, float]:
    values = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    price = genai_prices.calc_price(
        genai_prices.Usage(**{k: v for k, v in values.items() if v}), model, provider_id=provider
    )
    return float(price.input_price), float(price.output_price), float(price.total_price)


def assert_priced(span: Span, model: str, provider: str) -> None:
    assert span.usage is not None and span.cost is not None
    want = expected_cost(model, provider, span.usage)
    assert (span.cost.input_usd, span.cost.output_usd, span.cost.total_usd) == want
    assert span.cost.source == f"genai-prices {genai_prices_version()}"


def llm_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.kind.value == "llm"]


# -- one chain -----------------------------------------------------------------------------------


def test_prompt_model_parser_chain(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(messages=replies(1)))
    out = chain.invoke(
        {"q": "Capital of France?"},
        config={"callbacks": [CallbackHandler()], "tags": ["geo"], "metadata": {"session_id": "s-1", "user_id": "u-9"}},
    )
    assert out == "Paris is the capital."
    assert recorder.tree() == CHAIN_TREE
    spans = recorder.spans()
    assert len({s.trace_id for s in spans}) == 1
    root = recorder.by_name("RunnableSequence")
    assert root.parent_id is None
    assert all(s.parent_id == root.span_id for s in spans if s is not root)
    assert root.input == {"q": "Capital of France?"}
    assert root.output == "Paris is the capital."
    assert root.attributes["session_id"] == "s-1"
    assert root.attributes["user_id"] == "u-9"
    assert root.attributes["tags"] == ["geo"]
    assert root.attributes["metadata"] == {"session_id": "s-1", "user_id": "u-9"}

    llm = recorder.by_name("chat gpt-4o")
    assert (llm.framework, llm.provider, llm.model, llm.response_model) == (
        "langchain",
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert llm.input == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert llm.output == {"role": "assistant", "content": "Paris is the capital."}
    assert llm.attributes["finish_reasons"] == ["stop"]
    assert llm.attributes["session_id"] == "s-1"
    assert llm.attributes["tags"] == ["geo"]  # LangChain's own "seq:step:2" is dropped
    assert llm.ttft_ms is None  # not streamed
    assert llm.usage == Usage(
        input_tokens=1200,
        output_tokens=300,
        total_tokens=1500,
        cache_read_tokens=1000,
        cache_write_tokens=None,
        reasoning_tokens=120,
    )
    assert_priced(llm, "gpt-4o", "openai")
    assert llm.status is Status.OK and root.status is Status.OK
    assert root.start_ns <= llm.start_ns <= llm.end_ns <= root.end_ns


def test_anthropic_cache_write_and_reasoning_exact_usage_and_cost(recorder: Recorder) -> None:
    usage = usage_metadata(5000, 800, cache_read=3000, cache_write=1500, reasoning=500)
    model = FakeChat(
        model="claude-sonnet-4-5",
        provider="anthropic",
        messages=iter([AIMessage(content="ok", usage_metadata=usage, response_metadata={"stop_reason": "end_turn"})]),
    )
    model.invoke("hi", config={"callbacks": [CallbackHandler()]})
    llm = recorder.by_name("chat claude-sonnet-4-5")
    assert llm.provider == "anthropic"
    assert llm.response_model is None
    assert llm.usage == Usage(
        input_tokens=5000,
        output_tokens=800,
        total_tokens=5800,
        cache_read_tokens=3000,
        cache_write_tokens=1500,
        reasoning_tokens=500,
    )
    assert llm.attributes["finish_reasons"] == ["end_turn"]
    assert_priced(llm, "claude-sonnet-4-5", "anthropic")
    assert llm.cost is not None and llm.cost.total_usd > 0


def test_usage_falls_back_to_llm_output_token_usage(recorder: Recorder) -> None:
    class OpenAIStyle(FakeChat):
        def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
            result = super()._generate(*args, **kwargs)
            result.llm_output = {
                "token_usage": {
                    "prompt_tokens": 900,
                    "completion_tokens": 100,
                    "total_tokens": 1000,
                    "prompt_tokens_details": {"cached_tokens": 512},
                    "completion_tokens_details": {"reasoning_tokens": 64},
                },
                "model_name": "gpt-4o",
            }
            return result

    OpenAIStyle(messages=iter([AIMessage(content="x")])).invoke("hi", config={"callbacks": [CallbackHandler()]})
    llm = recorder.by_name("chat gpt-4o")
    assert llm.usage == Usage(
        input_tokens=900, output_tokens=100, total_tokens=1000, cache_read_tokens=512, reasoning_tokens=64
    )
    assert_priced(llm, "gpt-4o", "openai")


def test_unknown_model_is_unpriced_not_free(recorder: Recorder) -> None:
    unknown = reply("hi", model_name="my-private-model")
    FakeChat(model="my-private-model", provider="acme", messages=iter([unknown])).invoke(
        "hi", config={"callbacks": [CallbackHandler()]}
    )
    llm = recorder.by_name("chat my-private-model")
    assert llm.provider == "acme"
    assert llm.usage is not None and llm.usage.input_tokens == 1200
    assert llm.cost is None


# -- execution modes -----------------------------------------------------------------------------


def test_ainvoke_same_tree(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(messages=replies(1)))
    out = asyncio.run(chain.ainvoke({"q": "Capital?"}, config={"callbacks": [CallbackHandler()]}))
    assert out == "Paris is the capital."
    assert recorder.tree() == CHAIN_TREE
    assert_priced(recorder.by_name("chat gpt-4o"), "gpt-4o", "openai")


def assert_separate_traces(recorder: Recorder, n: int) -> None:
    """n traces, each the exact chain tree, each carrying its own question end to end."""
    traces = recorder.traces()
    assert len(traces) == n
    seen = set()
    for spans in traces.values():
        assert recorder.tree(spans) == CHAIN_TREE
        root = next(s for s in spans if s.parent_id is None)
        llm = next(s for s in spans if s.kind.value == "llm")
        question = root.input["q"]
        assert llm.input[1] == {"role": "user", "content": question}
        assert llm.parent_id == root.span_id
        seen.add(question)
    assert seen == {f"question {i}" for i in range(n)}


def test_batch_of_8_makes_8_traces(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(messages=replies(8)))
    outs = chain.batch([{"q": f"question {i}"} for i in range(8)], config={"callbacks": [CallbackHandler()]})
    assert outs == ["Paris is the capital."] * 8
    assert_separate_traces(recorder, 8)


def test_abatch_of_8_makes_8_traces(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(messages=replies(8)))
    asyncio.run(chain.abatch([{"q": f"question {i}"} for i in range(8)], config={"callbacks": [CallbackHandler()]}))
    assert_separate_traces(recorder, 8)


def test_50_concurrent_ainvokes_one_handler(recorder: Recorder) -> None:
    handler = CallbackHandler()
    chain = prompt_chain(FakeChat(messages=replies(50)))

    async def main() -> list[str]:
        return await asyncio.gather(
            *(chain.ainvoke({"q": f"question {i}"}, config={"callbacks": [handler]}) for i in range(50))
        )

    assert asyncio.run(main()) == ["Paris is the capital."] * 50
    assert_separate_traces(recorder, 50)
    assert llmobs.health()["in_flight"] == 0


def test_runnable_parallel(recorder: Recorder) -> None:
    model = FakeChat(messages=replies(2))
    branches = RunnableParallel(short=prompt_chain(model), echo=RunnableLambda(lambda x: x["q"], name="echo"))
    out = branches.invoke({"q": "Capital?"}, config={"callbacks": [CallbackHandler()]})
    assert out == {"short": "Paris is the capital.", "echo": "Capital?"}
    tree = recorder.tree()
    assert len(tree) == 1
    kind, name, children = tree[0]
    assert (kind, name) == ("chain", "RunnableParallel<short,echo>")
    # The branches run on worker threads: their order is not fixed, their parents are.
    assert sorted(children) == sorted([CHAIN_TREE[0], ("chain", "echo", [])])


def test_stream_sets_ttft_and_usage(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(streaming=True, messages=replies(1)))
    chunks = list(chain.stream({"q": "Capital?"}, config={"callbacks": [CallbackHandler()]}))
    assert "".join(chunks) == "Paris is the capital. "
    assert recorder.tree() == CHAIN_TREE
    llm = recorder.by_name("chat gpt-4o")
    assert llm.ttft_ms is not None and 0 <= llm.ttft_ms <= llm.duration_ms
    assert llm.usage is not None and llm.usage.input_tokens == 1200 and llm.usage.reasoning_tokens == 120
    assert llm.output == {"role": "assistant", "content": "Paris is the capital. "}
    assert_priced(llm, "gpt-4o", "openai")
    # Streamed runs start with a placeholder input; the spans keep what each step consumed.
    assert recorder.by_name("RunnableSequence").input == {"q": "Capital?"}
    assert recorder.by_name("StrOutputParser").input == {"role": "assistant", "content": "Paris is the capital. "}


def test_astream_sets_ttft_and_usage(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(streaming=True, messages=replies(1)))

    async def main() -> list[str]:
        return [c async for c in chain.astream({"q": "Capital?"}, config={"callbacks": [CallbackHandler()]})]

    assert "".join(asyncio.run(main())) == "Paris is the capital. "
    assert recorder.tree() == CHAIN_TREE
    llm = recorder.by_name("chat gpt-4o")
    assert llm.ttft_ms is not None and 0 <= llm.ttft_ms <= llm.duration_ms
    assert_priced(llm, "gpt-4o", "openai")
    assert recorder.by_name("RunnableSequence").input == {"q": "Capital?"}


def test_invoke_on_a_streaming_model_records_ttft(recorder: Recorder) -> None:
    FakeChat(streaming=True, messages=replies(1)).invoke("hi", config={"callbacks": [CallbackHandler()]})
    llm = recorder.by_name("chat gpt-4o")
    assert llm.ttft_ms is not None
    assert llm.usage is not None and llm.usage.total_tokens == 1500


def test_astream_events_v2(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(streaming=True, messages=replies(1)))

    async def main() -> list[str]:
        return [
            e["event"]
            async for e in chain.astream_events(
                {"q": "Capital?"}, version="v2", config={"callbacks": [CallbackHandler()]}
            )
        ]

    events = asyncio.run(main())
    assert "on_chat_model_stream" in events
    assert recorder.tree() == CHAIN_TREE
    llm = recorder.by_name("chat gpt-4o")
    assert llm.ttft_ms is not None
    assert_priced(llm, "gpt-4o", "openai")


class TokenCounter(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens = 0
        self.stream_events = 0

    def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
        self.tokens += 1

    def on_stream_event(self, event: Any, **kwargs: Any) -> None:
        self.stream_events += 1


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_stream_events_v3_ttft_from_stream_events(recorder: Recorder) -> None:
    counter = TokenCounter()
    model = FakeChat(messages=replies(1))
    stream = model.stream_events(
        [HumanMessage("Capital?")], version="v3", config={"callbacks": [CallbackHandler(), counter]}
    )
    for _ in stream:
        pass
    # v3 fires on_stream_event only: the time to first token must come from it.
    assert counter.tokens == 0 and counter.stream_events > 0
    assert recorder.tree() == [("llm", "chat gpt-4o", [])]
    llm = recorder.by_name("chat gpt-4o")
    assert llm.ttft_ms is not None and 0 <= llm.ttft_ms <= llm.duration_ms
    assert llm.usage == Usage(
        input_tokens=1200, output_tokens=300, total_tokens=1500, cache_read_tokens=1000, reasoning_tokens=120
    )
    assert_priced(llm, "gpt-4o", "openai")


# -- tools, retrievers, errors -------------------------------------------------------------------


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def broken_tool(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no station in {city}")


class Retriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(id="d1", page_content="Paris is in France.", metadata={"score": 0.9}),
            Document(page_content="Lyon too.", metadata={"source": "wiki", "relevance_score": 0.4}),
        ]


def test_tool_and_retriever_spans(recorder: Recorder) -> None:
    def steps(q: str, config: RunnableConfig) -> str:
        Retriever().invoke(q, config)
        return str(
            get_weather.invoke(
                {"name": "get_weather", "args": {"city": "Paris"}, "id": "c1", "type": "tool_call"}, config
            ).content
        )

    out = RunnableLambda(steps, name="steps").invoke("France", config={"callbacks": [CallbackHandler()]})
    assert out == "sunny in Paris"
    assert recorder.tree() == [
        ("chain", "steps", [("retriever", "retrieval Retriever", []), ("tool", "execute_tool get_weather", [])])
    ]
    tool_span = recorder.by_name("execute_tool get_weather")
    assert tool_span.tool == {"name": "get_weather", "call_id": "c1"}
    assert tool_span.input == {"city": "Paris"}
    assert tool_span.output == "sunny in Paris"
    retriever = recorder.by_name("retrieval Retriever")
    assert retriever.input == "France"
    assert retriever.documents == [
        {"id": "d1", "score": 0.9, "content": "Paris is in France."},
        {"id": "wiki", "score": 0.4, "content": "Lyon too.", "metadata": {"source": "wiki"}},
    ]


def test_error_in_a_tool_reaches_the_app_unchanged(recorder: Recorder) -> None:
    def agent(q: str, config: RunnableConfig) -> str:
        return str(broken_tool.invoke({"city": q}, config))

    with pytest.raises(ValueError, match="no station in Atlantis") as caught:
        RunnableLambda(agent, name="agent").invoke("Atlantis", config={"callbacks": [CallbackHandler()]})
    assert type(caught.value) is ValueError
    assert recorder.tree() == [("chain", "agent", [("tool", "execute_tool broken_tool", [])])]
    tool_span = recorder.by_name("execute_tool broken_tool")
    assert tool_span.status is Status.ERROR
    assert tool_span.error is not None
    assert (tool_span.error.type, tool_span.error.message) == ("ValueError", "no station in Atlantis")
    root = recorder.by_name("agent")
    assert root.status is Status.ERROR and root.error is not None and root.error.type == "ValueError"


def test_error_in_the_model(recorder: Recorder) -> None:
    chain = prompt_chain(FailingChat(messages=replies(1)))
    with pytest.raises(RuntimeError, match="rate limited"):
        chain.invoke({"q": "Capital?"}, config={"callbacks": [CallbackHandler()]})
    assert recorder.tree() == [
        ("chain", "RunnableSequence", [("chain", "ChatPromptTemplate", []), ("llm", "chat gpt-4o", [])])
    ]
    llm = recorder.by_name("chat gpt-4o")
    assert llm.status is Status.ERROR and llm.error is not None
    assert (llm.error.type, llm.error.message) == ("RuntimeError", "rate limited: retry in 20s")
    assert llm.usage is None and llm.cost is None
    assert recorder.by_name("RunnableSequence").status is Status.ERROR


def test_error_mid_stream_keeps_partial_output(recorder: Recorder) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    model = FakeListChatModel(responses=["hello world"], error_on_chunk_number=3)
    with pytest.raises(Exception):  # noqa: B017 - FakeListChatModel raises a bare FakeListChatModelError
        list(model.stream("hi", config={"callbacks": [CallbackHandler()]}))
    llm = recorder.spans()[0]
    assert llm.kind.value == "llm" and llm.status is Status.ERROR
    assert llm.error is not None and llm.error.type == "FakeListChatModelError"
    assert llm.ttft_ms is not None


def test_request_parameters_are_recorded(recorder: Recorder) -> None:
    class Tuned(FakeChat):
        temperature: float = 0.2
        max_tokens: int = 256

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens, "top_p": 0.9}

    Tuned(messages=replies(1)).invoke("hi", config={"callbacks": [CallbackHandler()]}, stop=["\n"])
    llm = recorder.by_name("chat gpt-4o")
    assert llm.attributes["request"] == {"temperature": 0.2, "max_tokens": 256, "top_p": 0.9, "stop": ["\n"]}


def test_text_completion_llm(recorder: Recorder) -> None:
    from langchain_core.language_models.fake import FakeListLLM

    chain = RunnableLambda(lambda q: f"Q: {q}", name="format") | FakeListLLM(responses=["A: 4"])
    assert chain.invoke("2+2?", config={"callbacks": [CallbackHandler()]}) == "A: 4"
    assert recorder.tree() == [
        ("chain", "RunnableSequence", [("chain", "format", []), ("llm", "text_completion FakeListLLM", [])])
    ]
    llm = recorder.by_name("text_completion FakeListLLM")
    assert llm.input == ["Q: 2+2?"]
    assert llm.output == "A: 4"
    assert llm.usage is None and llm.cost is None
