"""Never raise: every integration entry point, fed odd payloads, lets no exception escape.

A hypothesis property calls each LangChain callback, each LlamaIndex span/event hook and each
Agents processor method with odd payloads (None usage, usage with strings or negative numbers,
objects that are not JSON-serialisable or refuse every operation, cycles, 10 MB strings, unknown
event types) in random orders (end without start, start twice, error after end). Nothing may
escape; afterwards the pipeline still records a normal span, every recorded span satisfies the
span contract, and each kind of fault was logged once.

Then real fake-model runs whose models report odd usage: the application's result and its
exceptions (the very same object) are unchanged, and the stored usage is sanitised.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import inspect
import json
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from agents import Runner
from agents.tracing.span_data import (
    AgentSpanData,
    CustomSpanData,
    FunctionSpanData,
    GenerationSpanData,
    ResponseSpanData,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from llama_index.core.base.llms.types import CompletionResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
)
from llama_index.core.llms import MockLLM

import llmobs
from llmobs.core.model import Span, SpanKind, Usage
from llmobs.core.runtime import get_tracer
from llmobs.integrations import llamaindex as li
from llmobs.integrations.langchain import CallbackHandler
from llmobs.integrations.langchain import handler as lc_handler
from llmobs.integrations.llamaindex import handlers as li_handlers
from llmobs.integrations.openai_agents import TracingProcessor
from llmobs.integrations.openai_agents import processor as agents_processor
from tests.conftest import Recorder
from tests.reliability import fakes

CONTRACT_CHECKER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "check_span_contract.py"

# -- odd values --------------------------------------------------------------------------------

BIG = "x" * (10 * 1024 * 1024)


class Opaque:
    """Not JSON-serialisable, no model_dump, no to_dict."""

    __slots__ = ()


class Hostile:
    """Refuses every operation anyone might try on a payload."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile: no {name}")

    def __repr__(self) -> str:
        raise RuntimeError("hostile: no repr")

    __str__ = __repr__

    def __iter__(self) -> Any:
        raise RuntimeError("hostile: no iter")

    def __len__(self) -> int:
        raise RuntimeError("hostile: no len")

    def __bool__(self) -> bool:
        raise RuntimeError("hostile: no bool")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("hostile: no eq")

    __hash__ = object.__hash__


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"name": "loop"}
    d["self"] = d
    return d


def cyclic_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


ODD_USAGES: list[Any] = [
    None,
    {},
    {"input_tokens": -5, "output_tokens": "7", "total_tokens": 2, "input_token_details": {"cache_read": 100}},
    {"input_tokens": "abc", "output_tokens": -1, "total_tokens": "x"},
    {"input_tokens": 10, "output_tokens": 5, "input_token_details": {"cache_read": 50}},
    {"input_tokens": 10, "output_tokens": 5, "output_token_details": {"reasoning": 99}},
    {"input_tokens": 1e300, "output_tokens": float("nan")},
    {"input_tokens": 10**30, "output_tokens": -(10**30)},
    {"input_tokens": 3, "output_tokens": 2, "input_token_details": "weird", "output_token_details": [1]},
    {"input_tokens": True, "output_tokens": 4},
    {"prompt_tokens": -3, "completion_tokens": "x", "prompt_tokens_details": {"cached_tokens": 9}},
    [1, 2, 3],
    "usage",
    Hostile(),
]


def odd_llm_result(usage: Any) -> LLMResult:
    message = AIMessage(content="odd", response_metadata={"model_name": "gpt-4o-mini"})
    message.usage_metadata = usage  # unvalidated, as a broken provider integration could leave it
    return LLMResult(generations=[[ChatGeneration(message=message)]], llm_output={"token_usage": usage})


ODD_VALUES: list[Any] = [
    None,
    "",
    BIG,
    -1,
    float("nan"),
    float("inf"),
    b"\x00\xff bytes",
    Opaque(),
    Hostile(),
    cyclic_dict(),
    cyclic_list(),
    {1: "int key", (2, 3): "tuple key", None: Opaque()},
    {"event": "message-finish", "usage": {"input_tokens": -1, "output_tokens": "many"}},
    {"event": "no-such-event"},
    {"event": Hostile()},
    [[]],
    [["not a message", Opaque()]],
    {"name": BIG, "id": [BIG]},
    {"id": "not a list"},
    {"ls_provider": Hostile(), "ls_model_name": 12, "ls_integration": "langgraph"},
    RuntimeError("an error payload"),
    *[odd_llm_result(u) for u in ODD_USAGES],
    *ODD_USAGES,
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
payloads = st.one_of(st.sampled_from(ODD_VALUES), json_values)
#: What frameworks really pass, so that runs get far enough to end (and odd payloads reach extraction).
SANE_VALUES: list[Any] = [
    {"name": "step", "id": ["langchain", "Step"]},
    {"q": "question"},
    [[HumanMessage("hi")]],
    ["a prompt"],
    "text",
    odd_llm_result({"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}),
]
sane_or_odd = st.one_of(st.sampled_from(SANE_VALUES), payloads)

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- shared checks -----------------------------------------------------------------------------


def _contract_problems() -> Callable[[dict[str, Any]], list[str]]:
    spec = importlib.util.spec_from_file_location("check_span_contract", CONTRACT_CHECKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.problems  # type: ignore[no-any-return]


def assert_contract(spans: list[Span]) -> None:
    problems = _contract_problems()
    for span in spans:
        try:
            record = json.loads(json.dumps(span.to_dict()))
        except TypeError:
            raise AssertionError(f"not JSON: {span.to_dict()}") from None
        assert problems(record) == [], (span.name, problems(record))


def assert_pipeline_still_works(recorder: Recorder) -> None:
    assert llmobs.flush(timeout=30)
    health = llmobs.health()
    assert health["processed"] > 50  # the odd payloads did reach extraction, pricing and the policy
    # No span was lost to an odd payload: the pipeline converted or skipped what it could not read.
    assert (health["failed"], health["dropped"], health["sink_errors"]) == (0, 0, 0)
    assert_contract(recorder.spans())
    recorder.clear()
    ctx = contextvars.Context()  # no dangling never-ended run is current here
    ctx.run(_record_normal_span)
    (span,) = recorder.spans()
    assert (span.name, span.parent_id, span.output) == ("after the faults", None, {"fine": True})


def _record_normal_span() -> None:
    with llmobs.span("after the faults") as span:
        span.output = {"fine": True}


def tracer_in_flight(key: Any) -> Span | None:
    return get_tracer().get_span(key)


def warning_keys(caplog: pytest.LogCaptureFixture) -> Counter[tuple[Any, ...]]:
    """One key per kind of fault a warning reports: template, first argument, exception type."""
    keys: Counter[tuple[Any, ...]] = Counter()
    for r in caplog.records:
        if r.name != "llmobs" or r.levelno < logging.WARNING:
            continue
        args = r.args if isinstance(r.args, tuple) else ()
        first = args[0] if args and isinstance(args[0], str) else None
        excs = tuple(type(a).__name__ for a in args if isinstance(a, BaseException))
        keys[(r.msg, first, excs)] += 1
    return keys


def assert_logged_once_per_kind(caplog: pytest.LogCaptureFixture, faults: dict[str, int], prefix: str) -> None:
    keys = warning_keys(caplog)
    repeated = {k: n for k, n in keys.items() if n > 1}
    assert repeated == {}, repeated
    # Every kind of fault the handler counted was warned about, exactly once.
    warned_places = {k[1] for k in keys if isinstance(k[0], str) and k[0].startswith(prefix)}
    places = {key.split(":")[0] for key in faults}
    assert places == warned_places, (places, warned_places)


@pytest.fixture
def fresh_fault_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each integration's once-per-kind memory starts empty, so this test sees its first warnings."""
    monkeypatch.setattr(lc_handler, "_faults", {})
    monkeypatch.setattr(li_handlers, "_warned", set())
    monkeypatch.setattr(li_handlers, "faults", {})
    monkeypatch.setattr(agents_processor, "_warned", set())


# -- LangChain ---------------------------------------------------------------------------------

LC_CALLBACKS = sorted(name for name in dir(CallbackHandler) if name.startswith("on_"))
_LC_OPTIONAL = ("tags", "metadata", "invocation_params", "name", "inputs", "tool_call_id", "response")


def _positional(fn: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name != "self"
    ]


LC_POSITIONAL = {name: _positional(getattr(CallbackHandler, name)) for name in LC_CALLBACKS}


def test_every_langchain_callback_is_exercised() -> None:
    implemented = {
        "on_chain_start",
        "on_chain_end",
        "on_chain_error",
        "on_chat_model_start",
        "on_llm_start",
        "on_llm_new_token",
        "on_llm_end",
        "on_llm_error",
        "on_stream_event",
        "on_tool_start",
        "on_tool_end",
        "on_tool_error",
        "on_retriever_start",
        "on_retriever_end",
        "on_retriever_error",
    }
    assert implemented <= set(LC_CALLBACKS)
    assert {name for name in LC_CALLBACKS if name in vars(CallbackHandler)} == implemented


lc_ops = st.lists(
    st.tuples(
        st.sampled_from(LC_CALLBACKS),
        st.integers(0, 4),  # run id (4: not a UUID at all)
        st.one_of(st.none(), st.integers(0, 3)),  # parent run id
        st.lists(sane_or_odd, min_size=4, max_size=4),
        st.dictionaries(st.sampled_from(_LC_OPTIONAL), payloads, max_size=3),
    ),
    max_size=14,
)


#: family → (start, end, error) callbacks of one run.
LC_FAMILIES = {
    "chain": ("on_chain_start", "on_chain_end", "on_chain_error"),
    "chat": ("on_chat_model_start", "on_llm_end", "on_llm_error"),
    "llm": ("on_llm_start", "on_llm_end", "on_llm_error"),
    "tool": ("on_tool_start", "on_tool_end", "on_tool_error"),
    "retriever": ("on_retriever_start", "on_retriever_end", "on_retriever_error"),
}
LC_SANE_START = {
    "chain": ({"name": "step"}, {"q": "question"}),
    "chat": ({"name": "FakeChat"}, [[HumanMessage("hi")]]),
    "llm": ({"name": "FakeLLM"}, ["a prompt"]),
    "tool": ({"name": "lookup"}, "input"),
    "retriever": ({"name": "docs"}, "query"),
}
#: A run's life: its family, how it goes, whether its start payloads are sane, and odd payloads.
lc_lives = st.lists(
    st.tuples(
        st.sampled_from(sorted(LC_FAMILIES)),
        st.sampled_from(["end", "error", "start twice", "error after end", "end twice", "never ends", "nested"]),
        st.booleans(),
        st.lists(sane_or_odd, min_size=4, max_size=4),
    ),
    max_size=6,
)


def _lc_life(handler: CallbackHandler, lives: list[Any]) -> None:
    parent = None
    for family, how, sane, (a, b, end_payload, middle) in lives:
        start, end, error = LC_FAMILIES[family]
        run_id = uuid.uuid4()
        args = LC_SANE_START[family] if sane else (a, b)
        kwargs = {"run_id": run_id, "parent_run_id": parent if how == "nested" else None}
        getattr(handler, start)(*args, **kwargs, invocation_params=middle, metadata={"odd": middle})
        if how == "start twice":
            getattr(handler, start)(*args, **kwargs)
        handler.on_llm_new_token(middle, run_id=run_id)
        handler.on_stream_event(middle, run_id=run_id)
        handler.on_stream_event({"event": "message-finish", "usage": middle}, run_id=run_id)
        if how == "never ends":
            continue
        if how == "nested":
            parent = run_id
            continue
        if how == "error":
            getattr(handler, error)(end_payload if isinstance(end_payload, BaseException) else Boom("x"), run_id=run_id)
        else:
            getattr(handler, end)(end_payload, run_id=run_id)
        if how == "error after end":
            getattr(handler, error)(Boom("after end"), run_id=run_id)
        if how == "end twice":
            getattr(handler, end)(end_payload, run_id=run_id)


def _lc_run(handler: CallbackHandler, ops: list[Any], lives: list[Any] = ()) -> None:  # type: ignore[assignment]
    _lc_life(handler, list(lives))
    ids: list[Any] = [uuid.uuid4() for _ in range(4)] + ["not-a-uuid"]
    for name, run, parent, args, extra in ops:
        fn = getattr(handler, name)
        positional = LC_POSITIONAL[name]
        kwargs = {k: v for k, v in extra.items() if k not in positional}
        fn(*args[: len(positional)], run_id=ids[run], parent_run_id=None if parent is None else ids[parent], **kwargs)


def test_langchain_callbacks_never_raise(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, fresh_fault_log: None
) -> None:
    handler = CallbackHandler()

    @PROPERTY
    @given(ops=lc_ops, lives=lc_lives)
    def check(ops: list[Any], lives: list[Any]) -> None:
        contextvars.Context().run(_lc_run, handler, ops, lives)

    with caplog.at_level(logging.WARNING, logger="llmobs"):
        check()
        # A fixed sequence that certainly faults, several times over: warned once.
        for _ in range(5):
            handler.on_chain_start(Hostile(), {}, run_id=uuid.uuid4())  # type: ignore[arg-type]
            handler.on_stream_event(Hostile(), run_id=uuid.uuid4())
        run_id = uuid.uuid4()
        handler.on_chain_start({"name": "twice"}, {"q": 1}, run_id=run_id)
        handler.on_chain_start({"name": "twice"}, {"q": 2}, run_id=run_id)
        handler.on_chain_end({}, run_id=run_id)
        handler.on_chain_end({}, run_id=run_id)
        handler.on_chain_error(ValueError("after end"), run_id=run_id)
        handler.on_chain_error(ValueError("after end"), run_id=run_id)
        handler.on_tool_end("end without start", run_id=uuid.uuid4())
        retrieval = uuid.uuid4()
        handler.on_retriever_start({"name": "docs"}, "query", run_id=retrieval)
        handler.on_retriever_end(Hostile(), run_id=retrieval)  # type: ignore[arg-type]
    assert tracer_in_flight(retrieval.int) is None  # an unreadable end payload still ends the run
    faults = lc_handler.fault_counts()
    assert faults.get("on_chain_start:RuntimeError", 0) >= 5
    assert_logged_once_per_kind(caplog, faults, "llmobs: LangChain")
    assert_pipeline_still_works(recorder)


# -- LlamaIndex --------------------------------------------------------------------------------

LI_NAMES = [
    "RetrieverQueryEngine.query",
    "MockLLM.complete",
    "MockLLM.stream_complete",
    "MockLLM.chat",
    "MockEmbedding.get_query_embedding",
    "FunctionTool.call",
    "Unknown.thing",
    "",
]
LI_INSTANCES: list[Any] = [None, MockLLM(max_tokens=2), MockEmbedding(embed_dim=2), Opaque(), Hostile(), BIG]


def _bound(*args: Any) -> inspect.BoundArguments:
    def f(*args: Any, **kwargs: Any) -> None: ...

    return inspect.signature(f).bind(*args)


class MysteryEvent(BaseEvent):
    """An event type llmobs has never heard of."""

    @classmethod
    def class_name(cls) -> str:
        return "MysteryEvent"


def _li_event(kind: int, span_id: Any, payload: Any) -> Any:
    makers: list[Callable[[], Any]] = [
        lambda: LLMCompletionStartEvent.model_construct(prompt=payload, additional_kwargs={}, model_dict={}),
        lambda: LLMCompletionInProgressEvent.model_construct(prompt=payload, response=payload),
        lambda: LLMCompletionEndEvent.model_construct(
            prompt=payload, response=CompletionResponse.model_construct(text="x", raw={"usage": payload})
        ),
        lambda: LLMChatEndEvent.model_construct(messages=payload, response=payload),
        lambda: ExceptionEvent.model_construct(exception=payload),
        lambda: EmbeddingStartEvent.model_construct(model_dict=payload),
        lambda: EmbeddingEndEvent.model_construct(chunks=payload, embeddings=payload),
        lambda: MysteryEvent.model_construct(),
    ]
    if kind >= len(makers):
        return payload  # not an event at all
    event = makers[kind]()
    object.__setattr__(event, "span_id", span_id)
    return event


li_ops = st.lists(
    st.tuples(
        st.sampled_from(["enter", "exit", "drop", "event"]),
        st.integers(0, 4),  # span (4: an odd id)
        st.one_of(st.none(), st.integers(0, 3)),  # parent span
        st.integers(0, len(LI_INSTANCES) - 1),
        st.integers(0, 8),  # event kind (8: a non-event)
        payloads,
    ),
    max_size=14,
)


#: A recorded span's life: which method (and instance), the odd payload its events carry, how it ends.
li_lives = st.lists(
    st.tuples(
        st.sampled_from(
            [("MockLLM.complete", 1), ("MockLLM.stream_complete", 1), ("MockEmbedding.get_query_embedding", 2)]
        ),
        payloads,
        st.sampled_from(["exit", "drop", "exit then drop", "never"]),
    ),
    max_size=4,
)


def _li_life(span_handler: li.SpanHandler, event_handler: li.EventHandler, lives: list[Any]) -> None:
    for (name, instance_index), payload, how in lives:
        id_ = f"{name}-{uuid.uuid4()}"
        instance = LI_INSTANCES[instance_index]
        span_handler.span_enter(id_, _bound("prompt"), instance)
        for kind in range(8):
            event_handler.handle(_li_event(kind, id_, payload))
        if how != "never":
            if how.startswith("exit"):
                span_handler.span_exit(id_, _bound("prompt"), instance, result=payload)
            if how.endswith("drop"):
                span_handler.span_drop(id_, _bound("prompt"), instance, err=RuntimeError("dropped"))


def _li_run(span_handler: li.SpanHandler, event_handler: li.EventHandler, ops: list[Any], lives: Any = ()) -> None:
    _li_life(span_handler, event_handler, list(lives))
    ids: list[Any] = [f"{LI_NAMES[i % len(LI_NAMES)]}-{uuid.uuid4()}" for i in range(4)] + [Opaque()]
    for op, index, parent, instance_index, event_kind, payload in ops:
        id_ = ids[index]
        instance = LI_INSTANCES[instance_index]
        if op == "enter":
            bound = _bound(payload) if instance_index % 2 else payload
            span_handler.span_enter(id_, bound, instance, None if parent is None else ids[parent], tags=payload)
        elif op == "exit":
            span_handler.span_exit(id_, _bound(payload), instance, result=payload)
        elif op == "drop":
            err = payload if isinstance(payload, BaseException) else RuntimeError("dropped")
            span_handler.span_drop(id_, _bound(payload), instance, err=err if event_kind % 2 else None)
        else:
            event_handler.handle(_li_event(event_kind, id_, payload))


def test_llamaindex_hooks_never_raise(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, fresh_fault_log: None
) -> None:
    shared = li.Recorder()
    span_handler, event_handler = li.SpanHandler(shared), li.EventHandler(shared)

    @PROPERTY
    @given(ops=li_ops, lives=li_lives)
    def check(ops: list[Any], lives: list[Any]) -> None:
        contextvars.Context().run(_li_run, span_handler, event_handler, ops, lives)

    with caplog.at_level(logging.WARNING, logger="llmobs"):
        check()
        for _ in range(5):
            span_handler.span_enter(Hostile(), Hostile(), Hostile(), Hostile())  # type: ignore[arg-type]
            event_handler.handle(Hostile())  # type: ignore[arg-type]
        # start twice, end twice, error after end, end without start
        id_ = f"MockLLM.complete-{uuid.uuid4()}"
        llm = LI_INSTANCES[1]
        span_handler.span_enter(id_, _bound("p"), llm)
        span_handler.span_enter(id_, _bound("p"), llm)
        span_handler.span_exit(id_, _bound("p"), llm, result=None)
        span_handler.span_exit(id_, _bound("p"), llm, result=None)
        span_handler.span_drop(id_, _bound("p"), llm, err=ValueError("after end"))
        span_handler.span_exit(f"MockLLM.complete-{uuid.uuid4()}", _bound("p"), llm)
    faults = li.fault_counts()
    assert faults.get("span enter", 0) >= 5 and faults.get("event", 0) >= 5
    assert_logged_once_per_kind(caplog, faults, "llmobs: LlamaIndex")
    assert_pipeline_still_works(recorder)


# -- OpenAI Agents -----------------------------------------------------------------------------


def _span_data(kind: int, payload: Any) -> Any:
    makers: list[Callable[[], Any]] = [
        lambda: ResponseSpanData(response=None, input=payload),
        lambda: ResponseSpanData(response=payload, input=payload, usage=payload),
        lambda: GenerationSpanData(input=payload, output=payload, model=payload, usage=payload),
        lambda: FunctionSpanData(name="f", input=payload, output=payload),
        lambda: AgentSpanData(name=payload),
        lambda: CustomSpanData(name="c", data=payload),
        lambda: SimpleNamespace(type="mystery-span-type", export=lambda: payload),
        lambda: SimpleNamespace(type=payload),
    ]
    return makers[kind]() if kind < len(makers) else payload


def _agents_trace_id(i: int) -> Any:
    return f"trace_{uuid.uuid4().hex}" if i < 3 else [f"unhashable {i}"]


agents_ops = st.lists(
    st.tuples(
        st.sampled_from(["trace_start", "trace_end", "span_start", "span_end", "shutdown", "force_flush"]),
        st.integers(0, 4),  # span or trace (3, 4: odd ids)
        st.one_of(st.none(), st.integers(0, 3)),  # parent span
        st.integers(0, 8),  # span data kind (8: the payload itself)
        payloads,
    ),
    max_size=14,
)


#: A trace's life: the data kinds of its spans (odd payloads inside), and how it ends.
agents_lives = st.lists(
    st.tuples(
        st.lists(st.integers(0, 7), min_size=1, max_size=3),
        payloads,
        st.sampled_from(["end", "end twice", "spans never end", "trace never ends"]),
    ),
    max_size=3,
)


def _agents_life(processor: TracingProcessor, lives: list[Any]) -> None:
    for kinds, payload, how in lives:
        trace = SimpleNamespace(trace_id=f"trace_{uuid.uuid4().hex}", name="wf", group_id=None, metadata=None)
        processor.on_trace_start(trace)  # type: ignore[arg-type]
        parent = None
        spans = []
        for kind in kinds:
            span = SimpleNamespace(
                span_id=f"span_{uuid.uuid4().hex[:24]}",
                trace_id=trace.trace_id,
                parent_id=parent,
                span_data=_span_data(kind, payload),
                started_at=None,
                ended_at=None,
                error=None,
            )
            processor.on_span_start(span)  # type: ignore[arg-type]
            spans.append(span)
            parent = span.span_id
        if how != "spans never end":
            for span in reversed(spans):
                processor.on_span_end(span)  # type: ignore[arg-type]
                if how == "end twice":
                    processor.on_span_end(span)  # type: ignore[arg-type]
        if how != "trace never ends":
            processor.on_trace_end(trace)  # type: ignore[arg-type]


def _agents_run(processor: TracingProcessor, ops: list[Any], lives: Any = ()) -> None:
    _agents_life(processor, list(lives))
    traces = [
        SimpleNamespace(trace_id=_agents_trace_id(i), name=f"wf {i}", group_id=None, metadata=None) for i in range(5)
    ]
    spans: list[Any] = []
    for i in range(5):
        spans.append(
            SimpleNamespace(
                span_id=f"span_{uuid.uuid4().hex[:24]}" if i < 4 else {"unhashable": i},
                trace_id=traces[i % 3].trace_id,
                parent_id=None,
                span_data=None,
                started_at="not a timestamp" if i == 2 else None,
                ended_at=-1 if i == 2 else None,
                error={"message": Hostile(), "data": Opaque()} if i == 3 else None,
            )
        )
    for op, index, parent, data_kind, payload in ops:
        span = spans[index]
        if op == "trace_start":
            processor.on_trace_start(traces[index] if data_kind % 3 else payload)
        elif op == "trace_end":
            processor.on_trace_end(traces[index] if data_kind % 3 else payload)
        elif op == "span_start":
            span.span_data = _span_data(data_kind, payload)
            span.parent_id = None if parent is None else spans[parent].span_id
            processor.on_span_start(span)
        elif op == "span_end":
            processor.on_span_end(span if data_kind % 4 else payload)
        elif op == "shutdown":
            processor.shutdown()
        else:
            processor.force_flush()


def test_agents_processor_never_raises(
    recorder: Recorder, caplog: pytest.LogCaptureFixture, fresh_fault_log: None
) -> None:
    processor = TracingProcessor()

    @PROPERTY
    @given(ops=agents_ops, lives=agents_lives)
    def check(ops: list[Any], lives: list[Any]) -> None:
        contextvars.Context().run(_agents_run, processor, ops, lives)

    with caplog.at_level(logging.WARNING, logger="llmobs"):
        check()
        for _ in range(5):
            processor.on_trace_start(Hostile())  # type: ignore[arg-type]
            processor.on_span_start(Hostile())  # type: ignore[arg-type]
            processor.on_span_end(Hostile())  # type: ignore[arg-type]
    places = set(agents_processor._warned)
    assert places >= {"on_trace_start", "on_span_start", "on_span_end"}
    assert_logged_once_per_kind(caplog, dict.fromkeys(places, 1), "llmobs: openai")
    assert_pipeline_still_works(recorder)


def test_a_refused_run_id_leaves_no_phantom_parent(recorder: Recorder) -> None:
    def body() -> None:
        odd = SimpleNamespace(span_id={"unhashable": 1}, trace_id="trace_x", parent_id=None, span_data=None)
        odd.span_data = CustomSpanData(name="c", data={})
        TracingProcessor().on_span_start(odd)  # type: ignore[arg-type]
        CallbackHandler().on_chain_start({"name": "odd"}, {}, run_id=["not", "hashable"])  # type: ignore[arg-type]
        _record_normal_span()

    contextvars.Context().run(body)
    (span,) = recorder.spans()
    assert (span.name, span.parent_id) == ("after the faults", None)


odd_counts = st.one_of(
    st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.sampled_from([Opaque(), Hostile(), [1], {"n": 1}]),
)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(counts=st.lists(odd_counts, min_size=6, max_size=6))
def test_sanitized_usage_always_meets_the_contract(counts: list[Any]) -> None:
    from llmobs.core.model import sanitized_usage

    usage = sanitized_usage(Usage(*counts))
    if usage is None:
        return
    record = usage.to_dict()
    assert all(type(v) is int and 0 <= v < 2**63 for v in record.values())
    for part, whole in (("cache_read_tokens", "input_tokens"), ("cache_write_tokens", "input_tokens")):
        assert part not in record or record[part] <= record[whole]
    assert "reasoning_tokens" not in record or record["reasoning_tokens"] <= record["output_tokens"]
    if "total_tokens" in record:
        assert record["total_tokens"] >= record.get("input_tokens", 0) + record.get("output_tokens", 0)
    # Clean counts come through untouched.
    assert sanitized_usage(usage) == usage


# -- real runs whose models report odd usage ---------------------------------------------------


class Boom(Exception):
    """The application's own exception: it must come back as the very same object."""


#: usage the fake model reports → the usage llmobs stores (None: no usage at all).
LC_CASES: list[tuple[Any, Usage | None]] = [
    (
        {"input_tokens": -5, "output_tokens": "7", "total_tokens": 2, "input_token_details": {"cache_read": 100}},
        Usage(output_tokens=7),
    ),
    ({"input_tokens": "abc", "output_tokens": -1, "total_tokens": "x"}, None),
    (
        {
            "input_tokens": 10,
            "output_tokens": 5,
            "total_tokens": 15,
            "input_token_details": {"cache_read": 50, "cache_creation": -2},
            "output_token_details": {"reasoning": 99},
        },
        Usage(input_tokens=10, output_tokens=5, total_tokens=15),
    ),
    ({"input_tokens": 10**30, "output_tokens": 4, "total_tokens": float("nan")}, Usage(output_tokens=4)),
    (
        {"input_tokens": 3, "output_tokens": 2, "input_token_details": "weird", "output_token_details": [1]},
        Usage(input_tokens=3, output_tokens=2, total_tokens=5),
    ),
    ({"input_tokens": True, "output_tokens": 4}, Usage(output_tokens=4, total_tokens=5)),
    (None, None),
    (Hostile(), None),
]


def priced(usage: Usage | None) -> bool:
    """A usage with neither input nor output (a total alone) is unpriced, never free."""
    return usage is not None and (usage.input_tokens is not None or usage.output_tokens is not None)


def _model_span(spans: list[Span]) -> Span:
    (span,) = [s for s in spans if s.kind is SpanKind.LLM]
    return span


@pytest.mark.parametrize(("usage", "stored"), LC_CASES, ids=range(len(LC_CASES)))
def test_langchain_run_with_odd_usage_is_unchanged(recorder: Recorder, usage: Any, stored: Usage | None) -> None:
    plain = fakes.langchain_chain(usage).invoke({"q": "m1"})
    traced = fakes.langchain_chain(usage).invoke({"q": "m1"}, config={"callbacks": [CallbackHandler()]})
    assert traced == plain == "ok: m1"
    spans = recorder.spans()
    assert len(spans) == 4
    assert_contract(spans)
    assert _model_span(spans).usage == stored
    assert (_model_span(spans).cost is None) == (not priced(stored))


def test_hostile_content_costs_no_span(recorder: Recorder) -> None:
    handler = CallbackHandler()
    run_id = uuid.uuid4()
    handler.on_chain_start({"name": "hostile"}, {"x": Hostile()}, run_id=run_id, metadata={"m": Hostile()})
    handler.on_chain_end(Hostile(), run_id=run_id)
    (span,) = recorder.spans()
    assert (span.input, span.output, span.attributes["metadata"]) == (
        {"x": "<Hostile>"},
        "<Hostile>",
        {"m": "<Hostile>"},
    )


def test_langchain_exception_is_the_same_object(recorder: Recorder) -> None:
    error = Boom("the app's own")
    with pytest.raises(Boom) as caught:
        fakes.langchain_chain(fail=error).invoke({"q": "m"}, config={"callbacks": [CallbackHandler()]})
    assert caught.value is error
    assert {(s.name, s.status.value) for s in recorder.spans()} == {
        ("RunnableSequence", "error"),
        ("ChatPromptTemplate", "ok"),
        ("chat gpt-4o-mini", "error"),
    }


@pytest.fixture
def li_instrumented() -> Iterator[None]:
    li.instrument()
    yield
    li.uninstrument()


LI_CASES: list[tuple[Any, Usage | None]] = [
    ({"prompt_tokens": -3, "completion_tokens": "x"}, None),
    (
        {
            "prompt_tokens": "12",
            "completion_tokens": 4,
            "total_tokens": -1,
            "prompt_tokens_details": {"cached_tokens": 500},
        },
        Usage(input_tokens=12, output_tokens=4),
    ),
    ({"input_tokens": 7, "output_tokens": -2, "cache_read_input_tokens": -9}, None),
    ("garbage", None),
    (Opaque(), None),
]


@pytest.mark.parametrize(("usage", "stored"), LI_CASES, ids=range(len(LI_CASES)))
def test_llamaindex_query_with_odd_usage_is_unchanged(recorder: Recorder, usage: Any, stored: Usage | None) -> None:
    index = fakes.llamaindex_index()
    plain = str(fakes.llamaindex_engine(index, usage).query("m2"))
    li.instrument()
    try:
        recorder.clear()
        traced = str(fakes.llamaindex_engine(index, usage).query("m2"))
    finally:
        li.uninstrument()
    assert traced == plain == "answer"
    spans = recorder.spans()
    assert_contract(spans)
    model = _model_span(spans)
    assert model.usage == stored
    assert (model.cost is None) == (not priced(stored))


def test_llamaindex_exception_is_the_same_object(recorder: Recorder, li_instrumented: None) -> None:
    index = fakes.llamaindex_index()
    error = Boom("the app's own")
    with pytest.raises(Boom) as caught:
        fakes.llamaindex_engine(index, fail=error).query("m")
    assert caught.value is error
    errors = {s.name for s in recorder.spans() if s.status.value == "error"}
    assert errors == {"RetrieverQueryEngine.query", "CompactAndRefine.synthesize", "text_completion UsageMockLLM"}


AGENTS_CASES: list[tuple[Any, Usage | None]] = [
    ({"requests": 1, "input_tokens": -1, "output_tokens": "abc", "total_tokens": 5}, Usage(total_tokens=5)),
    (
        {"requests": 1, "input_tokens": "20", "output_tokens": 3, "input_tokens_details": {"cached_tokens": 99}},
        Usage(input_tokens=20, output_tokens=3, total_tokens=23),
    ),
    (
        {"input_tokens": 8, "output_tokens": 2, "total_tokens": 1, "output_tokens_details": {"reasoning_tokens": -4}},
        Usage(input_tokens=8, output_tokens=2, total_tokens=10),
    ),
    ({"requests": "many"}, None),
]


@pytest.mark.parametrize(("usage", "stored"), AGENTS_CASES, ids=range(len(AGENTS_CASES)))
def test_agents_run_with_odd_usage_is_unchanged(recorder: Recorder, usage: Any, stored: Usage | None) -> None:
    plain = asyncio.run(Runner.run(fakes.agents_agent(usage), "m3")).final_output
    with fakes.agents_recorded_by_llmobs():
        recorder.clear()
        traced = asyncio.run(Runner.run(fakes.agents_agent(usage), "m3")).final_output
    assert traced == plain == "ok: m3"
    spans = recorder.spans()
    assert_contract(spans)
    model = _model_span(spans)
    assert model.usage == stored
    assert (model.cost is None) == (not priced(stored))


def test_agents_exception_is_the_same_object(recorder: Recorder) -> None:
    error = Boom("the app's own")
    with fakes.agents_recorded_by_llmobs(), pytest.raises(Boom) as caught:
        asyncio.run(Runner.run(fakes.agents_agent(fail=error), "m"))
    assert caught.value is error
    spans = recorder.spans()
    assert_contract(spans)
    assert {s.kind.value for s in spans} >= {"workflow", "agent"}
