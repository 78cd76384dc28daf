"""Secrets: API keys in invocation parameters, headers and payloads never reach the store or the
OTLP wire with default settings, and user redaction rules apply to both alike.

Secrets are planted where real applications leak them: a LangChain chat model whose identifying
(invocation) parameters carry `openai_api_key`, `api_key` and an `Authorization` header, run
metadata, prompt text; LlamaIndex tool arguments and LLM responses; an Agents function tool's
arguments and a custom span's data; manual spans' input and attributes. Then the raw bytes of the
SQLite store (main file and -wal) and the raw OTLP request bodies the loopback receiver captured
are searched for them. Beside each secret sits a harmless visible marker that must be found, so a
search that finds nothing because nothing was captured fails.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from agents import Agent, ModelResponse, Runner, function_tool
from agents import Usage as AgentsUsage
from agents.models.interface import Model
from agents.tracing import custom_span, response_span
from llama_index.core.tools import FunctionTool
from openai.types.responses import ResponseFunctionToolCall

import llmobs
from llmobs.core.sinks import SQLiteSink
from llmobs.core.sinks.otlp import otlp
from llmobs.integrations import llamaindex as li
from llmobs.integrations.langchain import CallbackHandler
from tests.otlp_receiver import OTLPReceiver
from tests.reliability import fakes

# Secrets that look like secrets (default patterns) and secrets that do not (caught by key name).
OPENAI_KEY = "sk-proj-" + "Q7d9XkLm2Vb8Zr4Tn6Wc1Ya3Pe5Hs0Gu"
PLAIN_KEY = "plainvalue-4f1c9e7a2b6d"
BEARER_TOKEN = "tok3nX9v8c7b6n5m4q2w"
LOOKALIKE = "nothing-like-a-key-77c1e0a9d3"
SECRETS = (OPENAI_KEY, PLAIN_KEY, BEARER_TOKEN, LOOKALIKE)
VISIBLE = "VISIBLE-MARKER"


class KeyedChatModel(fakes.UsageChatModel):
    """A chat model that, like ChatOpenAI with a plain-string key, reports its key among its params."""

    openai_api_key: str = OPENAI_KEY
    api_key: str = PLAIN_KEY

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": "gpt-4o-mini",
            "openai_api_key": self.openai_api_key,
            "api_key": self.api_key,
            "default_headers": {"Authorization": f"Bearer {BEARER_TOKEN}", "x-note": VISIBLE},
            "client_secret": LOOKALIKE,
        }


def run_langchain() -> None:
    chain = fakes.langchain_chain(model=KeyedChatModel(messages=iter(()), usage=fakes.GOOD_USAGE))
    prompt = f"{VISIBLE}-lc my key is {OPENAI_KEY} and the header Authorization: Bearer {BEARER_TOKEN}"
    chain.invoke(
        {"q": prompt},
        config={
            "callbacks": [CallbackHandler()],
            "metadata": {"api_key": PLAIN_KEY, "headers": {"Authorization": LOOKALIKE}, "note": f"{VISIBLE}-lcmeta"},
        },
    )


def lookup(query: str, api_key: str, authorization: str) -> str:
    """Look something up with credentials."""
    return f"{VISIBLE}-lltool result for {query}"


def run_llamaindex() -> None:
    li.instrument()
    try:
        tool = FunctionTool.from_defaults(lookup)
        tool.call(query=f"{VISIBLE}-llquery", api_key=PLAIN_KEY, authorization=f"Bearer {BEARER_TOKEN}")
        index = fakes.llamaindex_index()
        usage = {**fakes.OPENAI_USAGE, "api_key": LOOKALIKE}
        fakes.llamaindex_engine(index, usage).query(f"{VISIBLE}-llengine with {OPENAI_KEY}")
    finally:
        li.uninstrument()


@function_tool
def call_service(endpoint: str, api_key: str, authorization: str) -> str:
    """Call a service with credentials."""
    return f"{VISIBLE}-agtool from {endpoint}"


class ToolThenAnswer(Model):
    """First turn: call `call_service` with credentials in its arguments; then answer."""

    def __init__(self) -> None:
        self.turn = 0

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        self.turn += 1
        if self.turn == 1:
            arguments = {"endpoint": f"{VISIBLE}-agendpoint", "api_key": PLAIN_KEY, "authorization": LOOKALIKE}
            call = ResponseFunctionToolCall(
                id="fc_1",
                call_id="call_1",
                type="function_call",
                name="call_service",
                arguments=json.dumps(arguments),
                status="completed",
            )
            with custom_span(
                "client config", data={"openai_api_key": OPENAI_KEY, "headers": {"Authorization": BEARER_TOKEN}}
            ):
                pass
            return ModelResponse(output=[call], usage=AgentsUsage(requests=1), response_id="r1")
        answer = fakes._response(f"{VISIBLE}-aganswer; never say {OPENAI_KEY}")
        with response_span() as span:
            span.span_data.response = answer
            span.span_data.input = kwargs.get("input", args[1] if len(args) > 1 else None)
        return ModelResponse(output=answer.output, usage=AgentsUsage(requests=1), response_id="r2")

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - not used
        raise NotImplementedError


def run_agents() -> None:
    agent = Agent(name="Caller", instructions="use the tool", model=ToolThenAnswer(), tools=[call_service])
    with fakes.agents_recorded_by_llmobs():
        asyncio.run(Runner.run(agent, f"{VISIBLE}-aginput"))


def run_manual() -> None:
    with llmobs.span("manual call", input={"api_key": PLAIN_KEY, "query": f"{VISIBLE}-manual"}) as span:
        span.attributes["headers"] = {"Authorization": f"Bearer {BEARER_TOKEN}", "X-Api-Key": LOOKALIKE}
        span.output = f"used {OPENAI_KEY}"


def raw_store_bytes(db: Path) -> bytes:
    files = sorted(db.parent.glob(db.name + "*"))
    assert db in files
    return b"".join(f.read_bytes() for f in files)


def record_everything(tmp_path: Path, receiver: OTLPReceiver, **policy: Any) -> tuple[bytes, bytes, int]:
    """Run every planting under sinks sqlite + OTLP; the store's raw bytes (with -wal), the raw
    OTLP bodies, and the number of spans the receiver got."""
    db = tmp_path / "secrets.db"
    llmobs.configure(sinks=[SQLiteSink(db), otlp(endpoint=receiver.url("/v1/traces"), timeout=5)], **policy)
    run_langchain()
    run_llamaindex()
    run_agents()
    run_manual()
    assert llmobs.flush(timeout=20)
    stored = raw_store_bytes(db)  # while the -wal file still holds the latest pages
    spans = int(sqlite3.connect(db).execute("SELECT COUNT(*) FROM spans").fetchone()[0])
    receiver.wait_for_spans(spans)
    llmobs.shutdown(timeout=10)
    stored += raw_store_bytes(db)  # and after the checkpoint at close
    wire = b"".join(r.raw_body + r.body for r in receiver.requests)
    return stored, wire, spans


VISIBLE_PLACES = (
    "lc my key",
    "lcmeta",
    "lltool",
    "llquery",
    "llengine",
    "agendpoint",
    "agtool",
    "aganswer",
    "aginput",
    "manual",
)


def test_default_settings_keep_planted_secrets_out_of_store_and_wire(
    tmp_path: Path, otlp_receiver: OTLPReceiver
) -> None:
    stored, wire, spans = record_everything(tmp_path, otlp_receiver)
    assert spans >= 20
    for place in VISIBLE_PLACES:
        marker = f"{VISIBLE}-{place}".encode()
        assert marker in stored, f"{place!r} was not captured: the search below would prove nothing"
        assert marker in wire, f"{place!r} was not exported"
    leaks = {
        (secret, where)
        for secret in SECRETS
        for where, data in (("store", stored), ("otlp", wire))
        if secret.encode() in data
    }
    assert leaks == set()
    assert b"[REDACTED]" in stored and b"[REDACTED]" in wire


def test_user_redaction_rules_apply_to_store_and_wire_alike(tmp_path: Path, otlp_receiver: OTLPReceiver) -> None:
    customer = "ACME-482913"
    email = "jane@example.com"
    reference = "ref-0042-visible-only-by-key"
    stored, wire, _ = record_everything(
        tmp_path,
        otlp_receiver,
        redact_patterns=[r"ACME-\d{6}"],
        redact_keys="customer_ref",
        redact_paths=["attributes.user.email"],
    )
    # The user's own fields, on top of the default plantings above.
    db = tmp_path / "rules.db"
    receiver2 = OTLPReceiver().start()
    try:
        llmobs.configure(
            sinks=[SQLiteSink(db), otlp(endpoint=receiver2.url("/v1/traces"), timeout=5)],
            redact_patterns=[r"ACME-\d{6}"],
            redact_keys="customer_ref",
            redact_paths=["attributes.user.email"],
        )
        with llmobs.span("support call", input=f"{VISIBLE}-rules customer {customer} asked") as span:
            span.attributes["user"] = {"email": email, "name": f"{VISIBLE}-username"}
            span.attributes["customer_ref"] = reference
        assert llmobs.flush(timeout=20)
        receiver2.wait_for_spans(1)
        llmobs.shutdown(timeout=10)
        rules_stored = raw_store_bytes(db)
        rules_wire = b"".join(r.raw_body + r.body for r in receiver2.requests)
    finally:
        receiver2.close()
    for data in (rules_stored, rules_wire):
        assert f"{VISIBLE}-rules".encode() in data and f"{VISIBLE}-username".encode() in data
        for secret in (customer, email, reference):
            assert secret.encode() not in data, secret
    # The defaults still hold when the user adds rules.
    for secret in SECRETS:
        assert secret.encode() not in stored and secret.encode() not in wire, secret


def test_the_search_would_find_a_secret_that_leaked(tmp_path: Path, otlp_receiver: OTLPReceiver) -> None:
    """With redaction off, the same plantings are found: the searches above can fail."""
    stored, wire, _ = record_everything(tmp_path, otlp_receiver, default_redaction=False)
    assert OPENAI_KEY.encode() in stored and OPENAI_KEY.encode() in wire
    assert PLAIN_KEY.encode() in stored and PLAIN_KEY.encode() in wire
