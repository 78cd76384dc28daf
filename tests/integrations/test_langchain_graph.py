"""The LangChain integration with LangGraph graphs, the agent example, and nesting across frameworks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt

import llmobs
from llmobs.core.model import Status, Usage
from llmobs.integrations.langchain import CallbackHandler
from tests.conftest import Recorder
from tests.integrations.test_langchain import (
    FakeChat,
    assert_priced,
    get_weather,
    llm_spans,
    no_leftover_langchain_instrumentation,  # noqa: F401 - an autouse fixture
    prompt_chain,
    replies,
    reply,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def weather_graph(model: FakeChat) -> Any:
    def agent(state: State) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather-agent")


def weather_model() -> FakeChat:
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1"}
    return FakeChat(messages=iter([reply("", tool_calls=[call]), reply("Sunny in Paris.")]))


AGENT_NODE = ("chain", "agent", [("llm", "chat gpt-4o", []), ("chain", "tools_condition", [])])
GRAPH_TREE = [
    (
        "agent",
        "invoke_agent weather-agent",
        [AGENT_NODE, ("chain", "tools", [("tool", "execute_tool get_weather", [])]), AGENT_NODE],
    )
]


def assert_weather_graph(recorder: Recorder) -> None:
    assert recorder.tree() == GRAPH_TREE
    root = recorder.by_name("invoke_agent weather-agent")
    assert root.agent == {"name": "weather-agent"}
    assert root.parent_id is None
    spans = recorder.spans()
    assert all(s.attributes["session_id"] == "thread-1" for s in spans)
    assert all(s.status is Status.OK for s in spans)
    tool_span = recorder.by_name("execute_tool get_weather")
    assert tool_span.tool == {"name": "get_weather", "call_id": "call-1"}
    assert tool_span.output == "sunny in Paris"
    first, second = sorted(llm_spans(spans), key=lambda s: s.start_ns)
    assert first.output == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call-1", "name": "get_weather", "arguments": {"city": "Paris"}}],
    }
    # The second call saw the whole conversation so far, tool result included.
    assert [m["role"] for m in second.input] == ["user", "assistant", "tool"]
    assert second.input[2]["tool_call_id"] == "call-1"
    for llm in (first, second):
        assert llm.usage == Usage(
            input_tokens=1200, output_tokens=300, total_tokens=1500, cache_read_tokens=1000, reasoning_tokens=120
        )
        assert_priced(llm, "gpt-4o", "openai")


def test_langgraph_agent_is_an_agent_span_with_node_chains(recorder: Recorder) -> None:
    app = weather_graph(weather_model())
    out = app.invoke(
        {"messages": [HumanMessage("Weather in Paris?")]},
        config={"callbacks": [CallbackHandler()], "configurable": {"thread_id": "thread-1"}},
    )
    assert out["messages"][-1].content == "Sunny in Paris."
    assert_weather_graph(recorder)


def test_langgraph_agent_async(recorder: Recorder) -> None:
    app = weather_graph(weather_model())
    config: RunnableConfig = {"callbacks": [CallbackHandler()], "configurable": {"thread_id": "thread-1"}}
    asyncio.run(app.ainvoke({"messages": [HumanMessage("Weather in Paris?")]}, config=config))
    assert_weather_graph(recorder)


@pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")
def test_langgraph_stream_events_v3(recorder: Recorder) -> None:
    app = weather_graph(weather_model())
    stream = app.stream_events(
        {"messages": [HumanMessage("Weather in Paris?")]},
        version="v3",
        config={"callbacks": [CallbackHandler()], "configurable": {"thread_id": "thread-1"}},
    )
    for _ in stream:
        pass
    assert recorder.tree() == GRAPH_TREE
    tool_span = recorder.by_name("execute_tool get_weather")
    assert tool_span.tool == {"name": "get_weather", "call_id": "call-1"}
    first, second = sorted(llm_spans(recorder.spans()), key=lambda s: s.start_ns)
    # v3 gives v1 content blocks: the tool call is a block of the content as well.
    assert first.output["tool_calls"] == [{"id": "call-1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    for llm in (first, second):
        # Both calls streamed, the tool-call-only one too: each has a time to first chunk.
        assert llm.ttft_ms is not None and 0 <= llm.ttft_ms <= llm.duration_ms
        assert llm.usage == Usage(
            input_tokens=1200, output_tokens=300, total_tokens=1500, cache_read_tokens=1000, reasoning_tokens=120
        )
        assert_priced(llm, "gpt-4o", "openai")


def test_langgraph_interrupt_is_not_an_error(recorder: Recorder) -> None:
    class Approval(TypedDict):
        answer: str

    def ask(state: Approval) -> dict[str, str]:
        return {"answer": interrupt("approve the refund?")}

    graph = StateGraph(Approval)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    app = graph.compile(checkpointer=InMemorySaver(), name="approver")
    config: RunnableConfig = {"callbacks": [CallbackHandler()], "configurable": {"thread_id": "t-2"}}
    paused = app.invoke({"answer": ""}, config=config)
    assert "__interrupt__" in paused
    assert app.invoke(Command(resume="yes"), config=config) == {"answer": "yes"}
    assert recorder.tree() == [
        ("agent", "invoke_agent approver", [("chain", "ask", [])]),
        ("agent", "invoke_agent approver", [("chain", "ask", [])]),
    ]
    spans = recorder.spans()
    assert all(s.status is Status.OK and s.error is None for s in spans)
    interrupted = [s for s in spans if s.attributes.get("interrupted")]
    assert [(s.name, s.attributes["interrupted"]) for s in interrupted] == [("ask", "GraphInterrupt")]


# -- the example ---------------------------------------------------------------------------------


@pytest.fixture
def example_module() -> Any:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import langchain_agent

        yield langchain_agent
    finally:
        sys.path.remove(str(EXAMPLES))


def test_agent_example_loop(recorder: Recorder, example_module: Any) -> None:
    trace_ids = example_module.run()
    assert len(trace_ids) == 1
    spans = recorder.traces()[trace_ids[0]]
    assert recorder.tree(spans) == [
        (
            "chain",
            "support-agent",
            [
                ("retriever", "retrieval PolicyRetriever", []),
                ("llm", "chat gpt-4o-mini", []),
                ("tool", "execute_tool lookup_order", []),
                ("llm", "chat gpt-4o-mini", []),
                ("tool", "execute_tool lookup_order", []),
                ("llm", "chat gpt-4o-mini", []),
            ],
        )
    ]
    retriever = next(s for s in spans if s.kind.value == "retriever")
    assert [d["id"] for d in retriever.documents or []] == ["kb-17"]
    failed, succeeded = sorted((s for s in spans if s.kind.value == "tool"), key=lambda s: s.start_ns)
    assert failed.status is Status.ERROR
    assert failed.error is not None
    assert (failed.error.type, failed.error.message) == ("ToolError", "order service did not answer in 5s")
    assert failed.tool == {"name": "lookup_order", "call_id": "call-1"}
    assert succeeded.status is Status.OK and succeeded.tool == {"name": "lookup_order", "call_id": "call-2"}
    llms = sorted(llm_spans(spans), key=lambda s: s.start_ns)
    assert [s.usage for s in llms] == [
        Usage(input_tokens=1200, output_tokens=40, total_tokens=1240, cache_read_tokens=1024, reasoning_tokens=0),
        Usage(input_tokens=1290, output_tokens=40, total_tokens=1330, cache_read_tokens=1152, reasoning_tokens=0),
        Usage(input_tokens=1400, output_tokens=90, total_tokens=1490, cache_read_tokens=1280, reasoning_tokens=32),
    ]
    for llm in llms:
        assert llm.provider == "openai" and llm.response_model == "gpt-4o-mini-2024-07-18"
        assert llm.ttft_ms is not None
        assert_priced(llm, "gpt-4o-mini", "openai")
    # The loop appended to its message list after each call; each span kept what it was sent.
    assert [len(s.input) for s in llms] == [2, 4, 6]
    root = next(s for s in spans if s.parent_id is None)
    assert root.attributes["session_id"] == "demo-session" and root.attributes["user_id"] == "u-7"


# -- nesting across frameworks -------------------------------------------------------------------


def test_manual_span_inside_a_tool_nests_under_the_tool(recorder: Recorder) -> None:
    @tool
    def lookup(city: str) -> str:
        """Look a city up."""
        with llmobs.span("db query", kind="custom"):
            return city.upper()

    def agent(q: str, config: RunnableConfig) -> str:
        return str(lookup.invoke({"city": q}, config))

    RunnableLambda(agent, name="agent").invoke("paris", config={"callbacks": [CallbackHandler()]})
    assert recorder.tree() == [("chain", "agent", [("tool", "execute_tool lookup", [("custom", "db query", [])])])]


def test_manual_span_inside_an_async_tool_nests_under_the_tool(recorder: Recorder) -> None:
    @tool
    async def lookup(city: str) -> str:
        """Look a city up."""
        await asyncio.sleep(0)
        with llmobs.span("db query", kind="custom"):
            return city.upper()

    async def agent(q: str, config: RunnableConfig) -> str:
        return str(await lookup.ainvoke({"city": q}, config))

    asyncio.run(RunnableLambda(agent, name="agent").ainvoke("paris", config={"callbacks": [CallbackHandler()]}))
    assert recorder.tree() == [("chain", "agent", [("tool", "execute_tool lookup", [("custom", "db query", [])])])]


def test_span_after_a_nested_async_run_still_nests_under_the_tool(recorder: Recorder) -> None:
    # Under ainvoke LangChain ends runs in a copy of the context; the tool's body must still see
    # the tool span as current once the model call inside it has ended.
    model = FakeChat(messages=replies(1))

    @tool
    async def lookup(city: str) -> str:
        """Look a city up."""
        await model.ainvoke("hi")
        with llmobs.span("after the model", kind="custom"):
            return city

    async def agent(q: str, config: RunnableConfig) -> str:
        return str(await lookup.ainvoke({"city": q}, config))

    asyncio.run(RunnableLambda(agent, name="agent").ainvoke("p", config={"callbacks": [CallbackHandler()]}))
    assert recorder.tree() == [
        (
            "chain",
            "agent",
            [("tool", "execute_tool lookup", [("llm", "chat gpt-4o", []), ("custom", "after the model", [])])],
        )
    ]


def test_langchain_inside_a_manual_span_nests_under_it(recorder: Recorder) -> None:
    chain = prompt_chain(FakeChat(messages=replies(2)))
    with llmobs.span("request", kind="workflow"):
        chain.batch([{"q": "a"}, {"q": "b"}], config={"callbacks": [CallbackHandler()]})
    tree = recorder.tree()
    assert len(tree) == 1 and tree[0][:2] == ("workflow", "request")
    assert [child[:2] for child in tree[0][2]] == [("chain", "RunnableSequence")] * 2


def test_chain_with_a_fresh_config_inside_a_tool_nests_under_the_tool(recorder: Recorder) -> None:
    handler = CallbackHandler()
    inner = prompt_chain(FakeChat(messages=replies(1)))

    @tool
    def ask(q: str) -> str:
        """Ask the inner chain."""
        # A new config drops LangChain's parent link; the span still nests under this tool.
        return str(inner.invoke({"q": q}, config={"callbacks": [handler]}))

    def agent(q: str, config: RunnableConfig) -> str:
        return str(ask.invoke({"q": q}, config))

    RunnableLambda(agent, name="agent").invoke("x", config={"callbacks": [handler]})
    assert recorder.tree() == [
        ("chain", "agent", [("tool", "execute_tool ask", [("chain", "RunnableSequence", CHAIN_CHILDREN)])])
    ]


CHAIN_CHILDREN = [("chain", "ChatPromptTemplate", []), ("llm", "chat gpt-4o", []), ("chain", "StrOutputParser", [])]


def test_llamaindex_query_inside_a_langchain_tool(recorder: Recorder) -> None:
    pytest.importorskip("llama_index.core")
    llamaindex = pytest.importorskip("llmobs.integrations.llamaindex")
    from llama_index.core.llms import MockLLM

    llamaindex.instrument()
    try:

        @tool
        def ask_docs(q: str) -> str:
            """Ask the docs."""
            return str(MockLLM(max_tokens=4).complete(q))

        def agent(q: str, config: RunnableConfig) -> str:
            return str(ask_docs.invoke({"q": q}, config))

        RunnableLambda(agent, name="agent").invoke("hello", config={"callbacks": [CallbackHandler()]})
    finally:
        getattr(llamaindex, "uninstrument", lambda: None)()
    tree = recorder.tree()
    assert [(k, n) for k, n, _ in tree] == [("chain", "agent")]
    assert [(k, n) for k, n, _ in tree[0][2]] == [("tool", "execute_tool ask_docs")]
    nested = tree[0][2][0][2]
    assert [(k, c) for k, _, c in nested] == [("llm", [])]
    tool_span = recorder.by_name("execute_tool ask_docs")
    llama = [s for s in recorder.spans() if s.framework == "llamaindex"]
    assert len(llama) == 1 and llama[0].parent_id == tool_span.span_id and llama[0].trace_id == tool_span.trace_id


def test_openai_agents_run_inside_a_langchain_tool(recorder: Recorder) -> None:
    pytest.importorskip("agents")
    oa = pytest.importorskip("llmobs.integrations.openai_agents")
    helpers = pytest.importorskip("tests.integrations.test_openai_agents")
    from agents import Agent, Runner, set_trace_processors

    before = oa._registered_processors()
    oa.instrument(replace=True)
    try:

        @tool
        async def ask_specialist(q: str) -> str:
            """Ask the specialist agent."""
            agent = Agent(name="Specialist", model=helpers.ScriptedModel([helpers.Turn([helpers.say("42")])]))
            return str((await Runner.run(agent, q)).final_output)

        async def agent(q: str, config: RunnableConfig) -> str:
            return str(await ask_specialist.ainvoke({"q": q}, config))

        out = asyncio.run(RunnableLambda(agent, name="agent").ainvoke("?", config={"callbacks": [CallbackHandler()]}))
    finally:
        oa.uninstrument()
        set_trace_processors(before)
    assert out == "42"
    tool_span = recorder.by_name("execute_tool ask_specialist")
    nested = [s for s in recorder.spans() if s.framework == "openai-agents"]
    assert nested, "the Agents SDK run was not recorded"
    assert {s.trace_id for s in nested} == {tool_span.trace_id}
    ids = {s.span_id for s in nested}
    top = [s for s in nested if s.parent_id not in ids]
    assert [s.parent_id for s in top] == [tool_span.span_id]
