"""LangChain spans finished in the store's writer process (core/offload.py).

With the store as the only sink, the pipeline thread only encodes each run's payload and the
writer process extracts, sanitises and prices it. What is stored must be exactly what finishing
the spans in this process stores, the price included, and nothing may be lost when that process
dies before it confirms a batch.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import ToolException, tool
from pydantic import BaseModel

import llmobs
from llmobs.core import writer as writer_module
from llmobs.core.model import Usage
from llmobs.core.runtime import get_runtime
from llmobs.core.sinks import SQLiteSink
from llmobs.integrations.langchain import CallbackHandler
from tests.core.test_writer import stored as stored_spans
from tests.integrations.test_langchain import USAGE, FakeChat, expected_cost, prompt_chain, replies, reply


class Ticket(BaseModel):
    id: int
    title: str


class Shelf(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content="Paris is in France.", id="d1", metadata={"score": 0.9, "source": "atlas"}),
            Document(page_content="Lyon too.", metadata={"source": "guide"}),
        ]


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@tool
def flaky(city: str) -> str:
    """A tool that fails."""
    raise ToolException(f"no data for {city}")


flaky.handle_tool_error = True  # the failure comes back as a ToolMessage with status "error"


def run_workload() -> None:
    """Chains, a streamed chain, tools (one failing), a retriever and content JSON has no type for."""
    config: Any = {"callbacks": [CallbackHandler()], "tags": ["geo"], "metadata": {"session_id": "s-1"}}
    prompt_chain(FakeChat(messages=replies(1))).invoke({"q": "Capital of France?"}, config=config)
    streamed = prompt_chain(FakeChat(streaming=True, messages=replies(1, "Paris it is.")))
    assert "".join(streamed.stream({"q": "Capital?"}, config=config)).strip() == "Paris it is."
    call = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1", "type": "tool_call"}
    weather.invoke(call, config=config)
    flaky.invoke({**call, "id": "call-2"}, config=config)
    Shelf().invoke("where is Paris?", config=config)
    echo = RunnableLambda(lambda x: {"ticket": Ticket(id=7, title="printer"), "ids": {3}}, name="echo")
    echo.invoke({"raw": b"\x00\x01", 5: "int key"}, config=config)


def stored(db: Path) -> list[dict[str, Any]]:
    """The stored spans without what differs between runs (the time to first token too)."""
    return [{k: v for k, v in row.items() if k != "ttft_ms"} for row in stored_spans(db)]


def test_spans_finished_in_the_writer_process_are_those_finished_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("inline", "process"):
        monkeypatch.setenv("LLMOBS_STORE_WRITER", mode)
        db = tmp_path / f"{mode}.db"
        llmobs.configure(db_path=db, service_name="offload-test", max_content_chars=60)
        assert get_runtime().pipeline._offload is (mode == "process")
        run_workload()
        assert llmobs.flush(timeout=30)
        health = llmobs.health()
        # Two model calls, priced here or in the writer process.
        assert (health["priced"], health["unpriced"]) == (2, 0)
        if mode == "process":
            assert health["sinks"]["sqlite"]["priced"] == 2
        llmobs.shutdown()
        results[mode] = stored(db)
    assert results["process"] == results["inline"]
    rows = results["process"]
    assert len(rows) == 12  # 4 per chain, 2 tools, a retriever, a lambda

    llm = [r for r in rows if r["kind"] == "llm"]
    assert [r["name"] for r in llm] == ["chat gpt-4o", "chat gpt-4o"]
    for row in llm:
        assert row["usage"] == {
            "input_tokens": 1200,
            "output_tokens": 300,
            "total_tokens": 1500,
            "cache_read_tokens": 1000,
            "reasoning_tokens": 120,
        }
        cost = expected_cost("gpt-4o", "openai", Usage(1200, 300, 1500, 1000, None, 120))
        assert (row["cost"]["input_usd"], row["cost"]["output_usd"], row["cost"]["total_usd"]) == cost
        assert row["provider"] == "openai" and row["response_model"] == "gpt-4o-2024-08-06"
        assert row["input"] == [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": row["input"][1]["content"]},
        ]
        assert row["attributes"]["finish_reasons"] == ["stop"]
        assert row["attributes"]["session_id"] == "s-1"
    assert llm[1]["output"] == {"role": "assistant", "content": "Paris it is. "}

    tools = {r["name"]: r for r in rows if r["kind"] == "tool"}
    assert tools["execute_tool weather"]["output"] == "sunny in Paris"
    assert tools["execute_tool weather"]["tool"] == {"name": "weather", "call_id": "call-1"}
    failed = tools["execute_tool flaky"]
    assert failed["status"] == "error" and failed["error"] == {"type": "ToolError", "message": "no data for Paris"}

    retriever = next(r for r in rows if r["kind"] == "retriever")
    assert retriever["input"] == "where is Paris?"
    assert retriever["documents"] == [
        {"id": "d1", "score": 0.9, "content": "Paris is in France.", "metadata": {"source": "atlas"}},
        {"id": "guide", "score": None, "content": "Lyon too.", "metadata": {"source": "guide"}},
    ]

    echo = next(r for r in rows if r["name"] == "echo")
    assert echo["input"] == {"raw": "<2 bytes>", "5": "int key"}
    assert echo["output"] == {"ticket": {"id": 7, "title": "printer"}, "ids": [3]}


def test_the_writer_process_prices_with_the_applications_price_overrides(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    llmobs.configure(db_path=db, prices={"GPT-4o": {"input": 2.0, "output": 8.0, "cache_read": 0.5}})
    assert get_runtime().pipeline._offload
    prompt_chain(FakeChat(messages=replies(1))).invoke({"q": "?"}, config={"callbacks": [CallbackHandler()]})
    assert llmobs.flush(timeout=30)
    (row,) = [r for r in stored(db) if r["kind"] == "llm"]
    # 200 uncached input tokens at $2 and 1,000 cache reads at $0.5; 300 output tokens at $8.
    assert row["cost"] == {"input_usd": 0.0009, "output_usd": 0.0024, "total_usd": 0.0033, "source": "override"}


def test_offloaded_batches_a_dead_writer_never_confirmed_are_finished_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "STALL_GRACE_S", 1.0)
    db = tmp_path / "traces.db"
    llmobs.configure(sinks=[SQLiteSink(db, busy_timeout_s=0.5)], batch_size=4, flush_interval=0.001)
    assert get_runtime().pipeline._offload
    handler = CallbackHandler()
    model = FakeChat(messages=iter([reply(f"answer {i}", USAGE) for i in range(6)]))
    prompt_chain(model).invoke({"q": "first"}, config={"callbacks": [handler]})
    assert llmobs.flush(timeout=30)
    pid = llmobs.health()["sinks"]["sqlite"]["writer_pid"]
    os.kill(pid, signal.SIGSTOP)  # it receives batches and never confirms them
    try:
        for i in range(5):
            prompt_chain(model).invoke({"q": f"q{i}"}, config={"callbacks": [handler]})
        time.sleep(0.3)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert llmobs.flush(timeout=30)
    rows = stored(db)
    assert len(rows) == 24
    llm = [r for r in rows if r["kind"] == "llm"]
    assert sorted(r["output"]["content"] for r in llm) == [f"answer {i}" for i in range(6)]
    cost = expected_cost("gpt-4o", "openai", Usage(1200, 300, 1500, 1000, None, 120))
    assert all((r["cost"]["input_usd"], r["cost"]["output_usd"], r["cost"]["total_usd"]) == cost for r in llm)
    assert llmobs.health()["priced"] == 6
