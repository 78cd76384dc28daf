"""Never block: an OTLP endpoint that hangs or is down never makes the application wait, and the
local store still gets every span. (bench/never_block.py measures the latency side by side.)"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate

import llmobs
from llmobs.core.sinks import SQLiteSink
from llmobs.core.sinks.otlp import otlp
from llmobs.integrations.langchain import CallbackHandler
from tests.otlp_receiver import OTLPReceiver


class FakeModel(GenericFakeChatModel):
    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        message = AIMessage(
            content="ok",
            usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
            response_metadata={"model_name": "gpt-4o-mini"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def run_chain(calls: int) -> list[float]:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | FakeModel(messages=iter(())) | StrOutputParser()
    config = {"callbacks": [CallbackHandler()]}
    durations = []
    for i in range(calls):
        t0 = time.perf_counter()
        assert chain.invoke({"q": f"q{i}"}, config=config) == "ok"
        durations.append(time.perf_counter() - t0)
    return durations


def stored(db: Path) -> int:
    return int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def test_a_stuck_endpoint_never_makes_a_call_wait(tmp_path: Path) -> None:
    release = threading.Event()
    with OTLPReceiver(hold=release) as receiver:
        db = tmp_path / "t.db"
        llmobs.configure(sinks=[SQLiteSink(db), otlp(endpoint=receiver.url("/v1/traces"), timeout=30)])
        try:
            durations = run_chain(200)
            # The endpoint holds every request; no call may wait on it (loose: the hold is 30 s).
            assert max(durations) < 2.0, f"slowest call {max(durations):.2f}s"
            assert llmobs.flush(timeout=20)
            assert stored(db) == 200 * 4  # every span reached the local store meanwhile
        finally:
            release.set()
    llmobs.shutdown(timeout=5)


def test_a_dead_endpoint_is_counted_and_the_store_complete(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1/traces"  # nothing listens once closed
    db = tmp_path / "t.db"
    llmobs.configure(sinks=[SQLiteSink(db), otlp(endpoint=dead, timeout=1)])
    durations = run_chain(100)
    assert max(durations) < 2.0
    assert llmobs.flush(timeout=20)
    assert stored(db) == 100 * 4
    deadline = time.monotonic() + 20
    while llmobs.health()["sink_errors"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    health = llmobs.health()
    assert health["sink_errors"] > 0
    assert health["sinks"]["otlp"]["last_error"]
