"""LlamaIndex integration: real LlamaIndex components with its mock models, exact span trees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import Field

pytest.importorskip("llama_index.core")

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata, ToolCallBlock
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher as get_module_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step
from llama_index_instrumentation import get_dispatcher

import llmobs
from llmobs.integrations import llamaindex as li
from tests.conftest import Recorder

OPENAI_USAGE = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}

DOCS = [
    Document(text="Paris is the capital of France.", doc_id="paris"),
    Document(text="Berlin is the capital of Germany.", doc_id="berlin"),
    Document(text="Madrid is the capital of Spain.", doc_id="madrid"),
]


class ScriptedLLM(MockFunctionCallingLLM):
    """A function-calling LLM that streams scripted replies and reports OpenAI-shaped usage."""

    script: list[ChatMessage] = Field(default_factory=list)
    model: str = "gpt-4o"
    usage: dict[str, Any] = Field(default_factory=lambda: dict(OPENAI_USAGE))

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_function_calling_model=True, is_chat_model=True)

    @llm_chat_callback()
    async def astream_chat(self, messages: Any, **kwargs: Any) -> AsyncIterator[ChatResponse]:  # type: ignore[override]
        reply = self.script.pop(0)
        raw = {"model": self.model, "usage": dict(self.usage)}

        async def gen() -> AsyncIterator[ChatResponse]:
            text = ""
            for word in (reply.content or "").split():
                text = f"{text} {word}".strip()
                yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=word)
                await asyncio.sleep(0)
            yield ChatResponse(message=reply, delta="", raw=raw)

        return gen()


def tool_call(city: str, call_id: str = "call-1") -> ChatMessage:
    return ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id=call_id, tool_name="get_weather", tool_kwargs={"city": city})],
    )


def get_weather(city: str) -> str:
    """The weather in a city."""
    if city == "Atlantis":
        raise ValueError("no weather under the sea")
    return f"sunny in {city}"


def weather_agent(*replies: ChatMessage, model: str = "gpt-4o") -> FunctionAgent:
    llm = ScriptedLLM(script=list(replies), model=model)
    return FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)], llm=llm, name="weather_agent", system_prompt="Be brief."
    )


@pytest.fixture
def instrumented() -> Iterator[None]:
    li.instrument()
    yield
    li.uninstrument()


@pytest.fixture
def index(recorder: Recorder) -> VectorStoreIndex:
    """An index over DOCS; the spans of building it are not part of the test."""
    built = VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))
    recorder.clear()
    return built


def query_engine(index: VectorStoreIndex) -> Any:
    return index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2)


QUERY_TREE = [
    (
        "chain",
        "RetrieverQueryEngine.query",
        [
            ("retriever", "VectorIndexRetriever.retrieve", [("embedding", "embeddings MockEmbedding", [])]),
            ("chain", "CompactAndRefine.synthesize", [("llm", "text_completion MockLLM", [])]),
        ],
    )
]

STEP = "BaseWorkflowAgent."
AGENT_TREE = [
    (
        "agent",
        "invoke_agent weather_agent",
        [
            ("chain", STEP + "init_run", []),
            ("chain", STEP + "setup_agent", []),
            ("chain", STEP + "run_agent_step", [("llm", "chat gpt-4o", [])]),
            ("chain", STEP + "parse_agent_output", []),
            ("chain", STEP + "call_tool", [("tool", "execute_tool get_weather", [])]),
            ("chain", STEP + "aggregate_tool_results", []),
            ("chain", STEP + "setup_agent", []),
            ("chain", STEP + "run_agent_step", [("llm", "chat gpt-4o", [])]),
            ("chain", STEP + "parse_agent_output", []),
        ],
    )
]


async def run_agent(agent: FunctionAgent, message: str) -> Any:
    return await agent.run(user_msg=message)


# -- queries ----------------------------------------------------------------------------------


def test_index_build_and_query_tree(recorder: Recorder, instrumented: None) -> None:
    index = VectorStoreIndex.from_documents(DOCS, embed_model=MockEmbedding(embed_dim=8))
    assert recorder.tree() == [
        ("chain", "SentenceSplitter.__call__", []),
        ("embedding", "embeddings MockEmbedding", []),
    ]
    batch = recorder.by_name("embeddings MockEmbedding")
    assert batch.input == [d.text for d in DOCS]
    assert batch.attributes == {"llamaindex.embedding.count": 3, "llamaindex.embedding.dimensions": 8}
    recorder.clear()

    response = query_engine(index).query("What is the capital of France?")

    spans = recorder.spans()
    assert recorder.tree() == QUERY_TREE
    assert len({s.trace_id for s in spans}) == 1
    assert {s.framework for s in spans} == {"llamaindex"}
    assert all(s.status.value == "ok" and s.error is None for s in spans)
    by = {s.name: s for s in spans}
    root = by["RetrieverQueryEngine.query"]
    retrieve = by["VectorIndexRetriever.retrieve"]
    embed = by["embeddings MockEmbedding"]
    synth = by["CompactAndRefine.synthesize"]
    llm = by["text_completion MockLLM"]
    assert root.parent_id is None
    assert (retrieve.parent_id, synth.parent_id) == (root.span_id, root.span_id)
    assert embed.parent_id == retrieve.span_id
    assert llm.parent_id == synth.span_id
    assert root.input == "What is the capital of France?"
    assert root.output == str(response) == "text text text text"
    assert retrieve.input == "What is the capital of France?"
    assert retrieve.documents is not None and len(retrieve.documents) == 2
    nodes = {n.node_id: n for n in response.source_nodes}
    assert [d["id"] for d in retrieve.documents] == [n.node_id for n in response.source_nodes]
    for doc in retrieve.documents:
        assert doc["content"] == nodes[doc["id"]].node.get_content()
        assert doc["score"] == nodes[doc["id"]].score
    assert embed.input == ["What is the capital of France?"]
    assert embed.attributes["llamaindex.embedding.count"] == 1
    assert isinstance(llm.input, str) and "Query: What is the capital of France?" in llm.input
    assert all(doc["content"] in llm.input for doc in retrieve.documents)
    assert llm.output == "text text text text"
    assert llm.usage is None and llm.cost is None and llm.ttft_ms is None


def test_query_nests_under_the_current_span(recorder: Recorder, instrumented: None, index: VectorStoreIndex) -> None:
    """A LlamaIndex root picks up the context's current span (a LangChain tool, a manual span)."""
    with llmobs.span("outer", kind="tool"):
        query_engine(index).query("Where is Berlin?")
    assert recorder.tree() == [("tool", "outer", QUERY_TREE)]


async def test_async_query_tree(recorder: Recorder, instrumented: None, index: VectorStoreIndex) -> None:
    await query_engine(index).aquery("Where is Madrid?")
    assert recorder.tree() == [
        (
            "chain",
            "RetrieverQueryEngine.aquery",
            [
                ("retriever", "VectorIndexRetriever.aretrieve", [("embedding", "embeddings MockEmbedding", [])]),
                ("chain", "CompactAndRefine.asynthesize", [("llm", "text_completion MockLLM", [])]),
            ],
        )
    ]


# -- agents -----------------------------------------------------------------------------------


async def test_function_agent_tree(recorder: Recorder, instrumented: None) -> None:
    agent = weather_agent(tool_call("Paris", "call-7"), ChatMessage(role="assistant", content="It is sunny in Paris."))

    result = await run_agent(agent, "Weather in Paris?")

    assert str(result) == "It is sunny in Paris."
    assert recorder.tree() == AGENT_TREE
    spans = recorder.spans()
    assert len({s.trace_id for s in spans}) == 1
    root = recorder.by_name("invoke_agent weather_agent")
    assert root.agent == {"name": "weather_agent"}
    assert root.input == "Weather in Paris?"
    assert root.output == "It is sunny in Paris."
    tool = recorder.by_name("execute_tool get_weather")
    assert tool.status.value == "ok"
    assert tool.tool == {"name": "get_weather", "call_id": "call-7"}
    assert tool.input == {"city": "Paris"}
    assert tool.output == "sunny in Paris"
    llms = [s for s in spans if s.kind.value == "llm"]
    assert [s.model for s in llms] == ["gpt-4o", "gpt-4o"]
    first, second = sorted(llms, key=lambda s: s.start_ns)
    assert first.input == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]
    assert first.output == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call-7", "name": "get_weather", "arguments": {"city": "Paris"}}],
    }
    assert second.output == {"role": "assistant", "content": "It is sunny in Paris."}
    assert second.input[-1] == {"role": "tool", "content": "sunny in Paris", "tool_call_id": "call-7"}
    for s in llms:
        assert s.usage is not None and s.usage.to_dict() == {
            "input_tokens": 120,
            "output_tokens": 30,
            "total_tokens": 150,
        }
        assert s.cost is not None and s.cost.total_usd > 0
        assert s.ttft_ms is not None and 0 <= s.ttft_ms <= s.duration_ms
    steps = [s for s in spans if s.name.startswith(STEP)]
    assert {s.attributes["llamaindex.run_id"] for s in steps} and len(
        {s.attributes["llamaindex.run_id"] for s in steps}
    ) == 1
    assert recorder.by_name(STEP + "call_tool").attributes["llamaindex.step.input_event"] == "ToolCall"


async def test_tool_error_is_recorded_and_the_run_continues(recorder: Recorder, instrumented: None) -> None:
    agent = weather_agent(tool_call("Atlantis"), ChatMessage(role="assistant", content="I could not find it."))

    result = await run_agent(agent, "Weather in Atlantis?")

    assert str(result) == "I could not find it."
    assert recorder.tree() == AGENT_TREE
    tool = recorder.by_name("execute_tool get_weather")
    assert tool.status.value == "error"
    assert tool.error is not None and tool.error.to_dict() == {
        "type": "ValueError",
        "message": "no weather under the sea",
    }
    assert tool.input == {"city": "Atlantis"}
    others = [s for s in recorder.spans() if s is not tool]
    assert all(s.status.value == "ok" for s in others)


async def test_tool_span_is_the_current_span_inside_the_tool(recorder: Recorder, instrumented: None) -> None:
    def lookup(city: str) -> str:
        """Look a city up."""
        with llmobs.span("inner lookup"):
            return city.upper()

    llm = ScriptedLLM(
        script=[
            ChatMessage(
                role="assistant",
                blocks=[ToolCallBlock(tool_call_id="c", tool_name="lookup", tool_kwargs={"city": "oslo"})],
            ),
            ChatMessage(role="assistant", content="OSLO"),
        ]
    )
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, name="lookup_agent")
    await run_agent(agent, "look up oslo")
    inner = recorder.by_name("inner lookup")
    assert inner.parent_id == recorder.by_name("execute_tool lookup").span_id


async def test_twenty_concurrent_agent_runs_do_not_cross_talk(recorder: Recorder, instrumented: None) -> None:
    cities = [f"City{i}" for i in range(20)]
    agents = [
        weather_agent(tool_call(c, f"call-{c}"), ChatMessage(role="assistant", content=f"Sunny in {c}."))
        for c in cities
    ]

    results = await asyncio.gather(*(run_agent(a, f"Weather in {c}?") for a, c in zip(agents, cities, strict=True)))

    assert [str(r) for r in results] == [f"Sunny in {c}." for c in cities]
    traces = recorder.traces()
    assert len(traces) == 20
    seen = set()
    for spans in traces.values():
        assert recorder.tree(spans) == AGENT_TREE
        root = next(s for s in spans if s.kind.value == "agent")
        city = root.input.split()[-1].rstrip("?")
        seen.add(city)
        assert root.output == f"Sunny in {city}."
        tool = next(s for s in spans if s.kind.value == "tool")
        assert tool.input == {"city": city}
        assert tool.tool == {"name": "get_weather", "call_id": f"call-{city}"}
        assert tool.output == f"sunny in {city}"
        final = max((s for s in spans if s.kind.value == "llm"), key=lambda s: s.start_ns)
        assert final.output == {"role": "assistant", "content": f"Sunny in {city}."}
    assert seen == set(cities)


async def test_llm_span_calling_its_own_other_method_is_one_span(recorder: Recorder, instrumented: None) -> None:
    """MockFunctionCallingLLM.achat calls the decorated self.chat: one call, one llm span."""
    llm = MockFunctionCallingLLM()
    response = await llm.achat([ChatMessage(role="user", content="hello")])
    assert recorder.tree() == [("llm", "chat MockFunctionCallingLLM", [])]
    span = recorder.spans()[0]
    assert span.input == [{"role": "user", "content": "hello"}]
    assert span.output == {"role": "assistant", "content": response.message.content}


# -- workflows --------------------------------------------------------------------------------


class EchoFlow(Workflow):
    @step
    async def shout(self, ctx: Context, ev: StartEvent) -> StopEvent:
        if ev.get("text") == "boom":
            raise RuntimeError("boom")
        return StopEvent(result=str(ev.get("text")).upper())


async def test_custom_workflow_is_a_workflow_span_with_steps(recorder: Recorder, instrumented: None) -> None:
    assert await EchoFlow(timeout=5).run(text="hi") == "HI"
    assert recorder.tree() == [("workflow", "EchoFlow.run", [("chain", "EchoFlow.shout", [])])]
    assert recorder.by_name("EchoFlow.run").output == "HI"


async def test_failed_workflow_run_is_an_error(recorder: Recorder, instrumented: None) -> None:
    with pytest.raises(Exception, match="boom"):
        await EchoFlow(timeout=5).run(text="boom")
    run = recorder.by_name("EchoFlow.run")
    shout = recorder.by_name("EchoFlow.shout")
    assert shout.status.value == "error" and shout.error is not None
    assert shout.error.to_dict() == {"type": "RuntimeError", "message": "boom"}
    assert run.status.value == "error" and run.error is not None and run.error.type == "RuntimeError"


# -- instrument / uninstrument ----------------------------------------------------------------


def _recorder() -> li.Recorder:
    handler = next(h for h in get_dispatcher().span_handlers if type(h) is li.SpanHandler)
    return handler._recorder


def _ours_attached() -> tuple[int, int]:
    d = get_dispatcher()
    return (
        sum(type(h) is li.SpanHandler for h in d.span_handlers),
        sum(type(h) is li.EventHandler for h in d.event_handlers),
    )


def test_instrument_twice_records_once(recorder: Recorder, index: VectorStoreIndex) -> None:
    try:
        li.instrument()
        li.instrument()
        assert llmobs.instrument("llamaindex") == ["llamaindex"]
        assert _ours_attached() == (1, 1)
        query_engine(index).query("Where is Paris?")
        assert recorder.tree() == QUERY_TREE
        assert len(recorder.spans()) == 5
    finally:
        li.uninstrument()


def test_uninstrument_stops_recording(recorder: Recorder, index: VectorStoreIndex) -> None:
    li.instrument()
    query_engine(index).query("Where is Paris?")
    assert len(recorder.spans()) == 5
    li.uninstrument()
    assert _ours_attached() == (0, 0)
    assert not li.is_instrumented()
    recorder.clear()
    query_engine(index).query("Where is Paris?")
    assert recorder.spans() == []


def test_handler_faults_are_logged_once_and_never_raise(
    recorder: Recorder, instrumented: None, index: VectorStoreIndex, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from llmobs.integrations.llamaindex import handlers

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("broken tracer")

    monkeypatch.setattr(handlers, "_warned", set())
    monkeypatch.setattr(handlers, "faults", {})
    monkeypatch.setattr(handlers, "get_tracer", broken)
    with caplog.at_level("WARNING", logger="llmobs"):
        assert str(query_engine(index).query("Where is Paris?")) == "text text text text"
        query_engine(index).query("Where is Paris?")
    faults = [r.getMessage() for r in caplog.records if "handler failed" in r.getMessage()]
    assert faults == [
        "llmobs: LlamaIndex span enter handler failed: RuntimeError('broken tracer') (further failures here are not logged)"
    ]
    assert recorder.spans() == []
    assert _recorder().open == {}
    # 8 per query: with no parent recorded, nested same-object calls (complete in predict, ...) try too
    assert li.fault_counts() == {"span enter": 16}


# -- rerankers, other frameworks, the example -------------------------------------------------


rerank_dispatcher = get_module_dispatcher(__name__)


class KeywordRerank(BaseNodePostprocessor):
    """A reranker that scores nodes by keyword overlap, dispatching ReRank events as real ones do."""

    top_n: int = 1

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        rerank_dispatcher.event(
            ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n, model_name="keyword-v1")
        )

        def words(text: str) -> set[str]:
            return set(text.lower().replace(".", "").split())

        query = words(query_bundle.query_str if query_bundle else "")
        scored = [NodeWithScore(node=n.node, score=float(len(query & words(n.node.get_content())))) for n in nodes]
        ranked = sorted(scored, key=lambda n: n.score or 0.0, reverse=True)[: self.top_n]
        rerank_dispatcher.event(ReRankEndEvent(nodes=ranked))
        return ranked


def test_reranker_span(recorder: Recorder, instrumented: None, index: VectorStoreIndex) -> None:
    engine = index.as_query_engine(
        llm=MockLLM(max_tokens=4), similarity_top_k=3, node_postprocessors=[KeywordRerank(top_n=1)]
    )
    response = engine.query("Germany capital")
    assert recorder.tree() == [
        (
            "chain",
            "RetrieverQueryEngine.query",
            [
                ("retriever", "VectorIndexRetriever.retrieve", [("embedding", "embeddings MockEmbedding", [])]),
                ("reranker", "rerank keyword-v1", []),
                ("chain", "CompactAndRefine.synthesize", [("llm", "text_completion MockLLM", [])]),
            ],
        )
    ]
    rerank = recorder.by_name("rerank keyword-v1")
    assert rerank.model == "keyword-v1"
    assert rerank.input == "Germany capital"
    assert rerank.attributes == {"llamaindex.rerank.top_n": 1}
    assert response.source_nodes[0].node.get_content() == "Berlin is the capital of Germany."
    assert rerank.documents == [
        {"id": response.source_nodes[0].node_id, "score": 2.0, "content": "Berlin is the capital of Germany."}
    ]


def test_query_inside_a_langchain_tool_nests_under_the_tool(
    recorder: Recorder, instrumented: None, index: VectorStoreIndex
) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.tools import tool

    from llmobs.integrations.langchain import CallbackHandler

    engine = query_engine(index)

    @tool
    def search_docs(question: str) -> str:
        """Search the documents."""
        return str(engine.query(question))

    assert search_docs.invoke({"question": "Where is Paris?"}, config={"callbacks": [CallbackHandler()]}) == (
        "text text text text"
    )
    (root,) = recorder.tree()
    assert root[0] == "tool" and root[2] == QUERY_TREE
    lc_tool = next(s for s in recorder.spans() if s.framework == "langchain")
    assert recorder.by_name("RetrieverQueryEngine.query").parent_id == lc_tool.span_id


def test_example_runs_offline_and_returns_its_traces(recorder: Recorder) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    try:
        import llamaindex_rag
    finally:
        sys.path.pop(0)
    try:
        trace_ids = llamaindex_rag.run()
    finally:
        li.uninstrument()
    traces = recorder.traces()
    assert len(trace_ids) == 2
    query, agent = (traces[t] for t in trace_ids)
    assert recorder.tree(query) == [
        (
            "chain",
            "RetrieverQueryEngine.query",
            [
                ("retriever", "VectorIndexRetriever.retrieve", [("embedding", "embeddings MockEmbedding", [])]),
                ("chain", "CompactAndRefine.synthesize", [("llm", "text_completion gpt-4o-mini", [])]),
            ],
        )
    ]
    agent_tree = recorder.tree(agent)
    assert [(k, n) for k, n, _ in agent_tree] == [("agent", "invoke_agent support_agent")]
    llms = [s for s in agent if s.kind.value == "llm"]
    assert sorted(s.name for s in llms) == ["chat gpt-4o", "chat gpt-4o", "text_completion gpt-4o-mini"]
    assert all(s.cost is not None and s.cost.total_usd > 0 for s in llms)
    assert sorted(s.name for s in agent if s.kind.value == "tool") == [
        "execute_tool get_order_status",
        "execute_tool search_docs",
    ]


def agent_tree(agent_name: str, step_prefix: str) -> Any:
    return [
        (kind, f"invoke_agent {agent_name}", [(k, n.replace(STEP, step_prefix), c) for k, n, c in children])
        for kind, _, children in AGENT_TREE
    ]


async def test_react_agent_tree(recorder: Recorder, instrumented: None) -> None:
    from llama_index.core.agent.workflow import ReActAgent

    llm = ScriptedLLM(
        script=[
            ChatMessage(
                role="assistant",
                content='Thought: I need the weather.\nAction: get_weather\nAction Input: {"city": "Paris"}',
            ),
            ChatMessage(
                role="assistant", content="Thought: I can answer without using any more tools.\nAnswer: Sunny in Paris."
            ),
        ]
    )
    agent = ReActAgent(tools=[FunctionTool.from_defaults(get_weather)], llm=llm, name="react_agent")

    assert str(await run_agent(agent, "Weather in Paris?")) == "Sunny in Paris."

    assert recorder.tree() == agent_tree("react_agent", STEP)
    tool = recorder.by_name("execute_tool get_weather")
    assert (tool.input, tool.output) == ({"city": "Paris"}, "sunny in Paris")
    root = recorder.by_name("invoke_agent react_agent")
    assert (root.input, root.output) == ("Weather in Paris?", "Sunny in Paris.")


async def test_agent_workflow_is_named_by_its_root_agent(recorder: Recorder, instrumented: None) -> None:
    from llama_index.core.agent.workflow import AgentWorkflow

    agent = weather_agent(tool_call("Rome"), ChatMessage(role="assistant", content="Sunny in Rome."))
    workflow = AgentWorkflow(agents=[agent], root_agent="weather_agent")

    assert str(await workflow.run(user_msg="Weather in Rome?")) == "Sunny in Rome."

    assert recorder.tree() == agent_tree("weather_agent", "AgentWorkflow.")
    steps = [s for s in recorder.spans() if s.name.startswith("AgentWorkflow.") and s.agent is not None]
    assert {s.agent["name"] for s in steps if s.agent} == {"weather_agent"}


def test_queries_from_a_thread_pool_are_separate_traces(
    recorder: Recorder, instrumented: None, index: VectorStoreIndex
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = query_engine(index)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda i: str(engine.query(f"question {i}")), range(16)))

    assert answers == ["text text text text"] * 16
    traces = recorder.traces()
    assert len(traces) == 16
    inputs = set()
    for spans in traces.values():
        assert recorder.tree(spans) == QUERY_TREE
        (root,) = [s for s in spans if s.parent_id is None]
        assert {s.input for s in spans if s.kind.value in ("chain", "retriever") and s.input} == {root.input}
        inputs.add(root.input)
    assert inputs == {f"question {i}" for i in range(16)}


async def test_concurrent_async_queries_are_separate_traces(
    recorder: Recorder, instrumented: None, index: VectorStoreIndex
) -> None:
    engine = query_engine(index)
    await asyncio.gather(*(engine.aquery(f"question {i}") for i in range(20)))
    traces = recorder.traces()
    assert len(traces) == 20
    for spans in traces.values():
        assert [(k, n) for k, n, _ in recorder.tree(spans)] == [("chain", "RetrieverQueryEngine.aquery")]
        assert len(spans) == 5
        (root,) = [s for s in spans if s.parent_id is None]
        assert {s.input for s in spans if s.kind.value in ("chain", "retriever") and s.input} == {root.input}


async def test_agent_workflow_handoff_is_a_handoff_span(recorder: Recorder, instrumented: None) -> None:
    from llama_index.core.agent.workflow import AgentWorkflow

    handoff = ToolCallBlock(
        tool_call_id="h1", tool_name="handoff", tool_kwargs={"to_agent": "weather_agent", "reason": "weather"}
    )
    triage = FunctionAgent(
        name="triage",
        description="Routes questions.",
        llm=ScriptedLLM(script=[ChatMessage(role="assistant", blocks=[handoff])]),
        tools=[],
        can_handoff_to=["weather_agent"],
    )
    weather = weather_agent(tool_call("Rome"), ChatMessage(role="assistant", content="Sunny in Rome."))
    weather.description = "Knows the weather."
    workflow = AgentWorkflow(agents=[triage, weather], root_agent="triage")

    assert str(await workflow.run(user_msg="Weather in Rome?")) == "Sunny in Rome."

    step = "AgentWorkflow."
    assert recorder.tree() == [
        (
            "agent",
            "invoke_agent triage",
            [
                ("chain", step + "init_run", []),
                ("chain", step + "setup_agent", []),
                ("chain", step + "run_agent_step", [("llm", "chat gpt-4o", [])]),
                ("chain", step + "parse_agent_output", []),
                ("chain", step + "call_tool", [("handoff", "handoff weather_agent", [])]),
                ("chain", step + "aggregate_tool_results", []),
                *agent_tree("x", step)[0][2][1:],
            ],
        )
    ]
    span = recorder.by_name("handoff weather_agent")
    assert span.tool == {"name": "handoff", "call_id": "h1"}
    assert span.input == {"to_agent": "weather_agent", "reason": "weather"}
    runs = sorted((s for s in recorder.spans() if s.name == step + "run_agent_step"), key=lambda s: s.start_ns)
    assert [s.agent for s in runs] == [{"name": "triage"}, {"name": "weather_agent"}, {"name": "weather_agent"}]


def test_predict_and_call_is_a_chain_around_the_llm_and_the_tool(recorder: Recorder, instrumented: None) -> None:
    """Same object, different kinds: the llm call is not folded into predict_and_call."""
    llm = MockFunctionCallingLLM()
    output = llm.predict_and_call([FunctionTool.from_defaults(get_weather)], user_msg="Weather?")
    assert "missing 1 required positional argument" in str(output)
    assert recorder.tree() == [
        (
            "chain",
            "MockFunctionCallingLLM.predict_and_call",
            [("llm", "chat MockFunctionCallingLLM", []), ("tool", "execute_tool get_weather", [])],
        )
    ]
    tool = recorder.by_name("execute_tool get_weather")
    assert tool.status.value == "error" and tool.error is not None and tool.error.type == "TypeError"
    assert recorder.by_name("MockFunctionCallingLLM.predict_and_call").status.value == "ok"
