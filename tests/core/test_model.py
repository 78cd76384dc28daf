"""The span model's JSON form: exact keys, lossless round trip, contract checker agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmobs.core.model import (
    Cost,
    ErrorInfo,
    Evaluation,
    Span,
    SpanKind,
    Status,
    Usage,
    record_from_values,
    span_from_values,
)

CONTRACT_CHECKER = Path(__file__).resolve().parents[3] / "shared" / "tools" / "check_span_contract.py"

CONTRACT_KEYS = {
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "framework",
    "service",
    "start_ns",
    "end_ns",
    "duration_ms",
    "status",
    "error",
    "provider",
    "model",
    "response_model",
    "usage",
    "cost",
    "ttft_ms",
    "input",
    "output",
    "tool",
    "agent",
    "documents",
    "attributes",
    "evaluations",
}

hex32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).filter(lambda s: s != "0" * 32)
hex16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16).filter(lambda s: s != "0" * 16)
json_scalar = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_value = st.recursive(
    json_scalar,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
counts = st.none() | st.integers(0, 10**9)


@st.composite
def usages(draw: st.DrawFn) -> Usage | None:
    if draw(st.booleans()):
        return None
    inp = draw(counts)
    out = draw(counts)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=draw(counts),
        cache_read_tokens=None if inp is None else draw(st.none() | st.integers(0, inp)),
        cache_write_tokens=None if inp is None else draw(st.none() | st.integers(0, inp)),
        reasoning_tokens=None if out is None else draw(st.none() | st.integers(0, out)),
    )


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(st.integers(10**18 + 1, 2 * 10**18))
    end = start + draw(st.integers(0, 10**12))
    failed = draw(st.booleans())
    return Span(
        trace_id=draw(hex32),
        span_id=draw(hex16),
        parent_id=draw(st.none() | hex16),
        name=draw(st.text(min_size=1, max_size=30)),
        kind=draw(st.sampled_from(list(SpanKind))),
        framework=draw(st.sampled_from(["langchain", "llamaindex", "openai-agents", "manual", "otlp"])),
        service=draw(st.text(max_size=12)),
        start_ns=start,
        end_ns=end,
        status=Status.ERROR if failed else Status.OK,
        error=ErrorInfo(draw(st.text(max_size=10)), draw(st.text(max_size=30))) if failed else None,
        provider=draw(st.none() | st.sampled_from(["openai", "anthropic", "gcp.gemini"])),
        model=draw(st.none() | st.text(min_size=1, max_size=20)),
        response_model=draw(st.none() | st.text(min_size=1, max_size=20)),
        usage=draw(usages()),
        cost=draw(
            st.none()
            | st.builds(
                Cost,
                input_usd=st.floats(0, 100, allow_nan=False),
                output_usd=st.floats(0, 100, allow_nan=False),
                total_usd=st.floats(0, 200, allow_nan=False),
                source=st.just("genai-prices 0.2.3"),
            )
        ),
        ttft_ms=draw(st.none() | st.floats(0, (end - start) / 1e6, allow_nan=False)),
        input=draw(json_value),
        output=draw(json_value),
        tool=draw(st.none() | st.fixed_dictionaries({"name": st.text(max_size=10), "call_id": st.text(max_size=10)})),
        agent=draw(st.none() | st.fixed_dictionaries({"name": st.text(max_size=10)})),
        documents=draw(
            st.none()
            | st.lists(
                st.fixed_dictionaries(
                    {"id": st.text(max_size=5), "score": st.floats(0, 1), "content": st.text(max_size=20)}
                ),
                max_size=3,
            )
        ),
        attributes=draw(st.dictionaries(st.text(max_size=8), json_value, max_size=4)),
        evaluations=draw(
            st.none()
            | st.lists(
                st.builds(
                    Evaluation,
                    name=st.text(min_size=1, max_size=10),
                    score=st.none() | st.floats(0, 1),
                    label=st.none() | st.text(max_size=8),
                    explanation=st.none() | st.text(max_size=20),
                ),
                max_size=3,
            )
        ),
    )


@settings(max_examples=300, deadline=None)
@given(spans())
def test_round_trip_through_json_is_lossless(span: Span) -> None:
    data = span.to_dict()
    assert set(data) == CONTRACT_KEYS
    back = Span.from_dict(json.loads(json.dumps(data)))
    assert back == span
    assert back.to_dict() == data


@settings(max_examples=300, deadline=None)
@given(spans())
def test_values_sent_to_the_writer_process_read_back_as_the_json_form(span: Span) -> None:
    # The store's writer process gets each span as `to_values()` over a pipe, in JSON.
    values = orjson.loads(orjson.dumps(span.to_values()))
    record = record_from_values(values)
    assert record == span.to_dict()
    assert list(record) == list(span.to_dict())  # the stored JSON keeps the contract's key order
    # An offloaded span (core/offload.py) is rebuilt as a Span there, finished, then stored.
    assert span_from_values(values).to_dict() == span.to_dict()


def test_json_form_of_a_priced_llm_span() -> None:
    span = Span(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        name="chat gpt-4o",
        kind=SpanKind.LLM,
        framework="langchain",
        service="bot",
        start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_000_250_000_000,
        provider="openai",
        model="gpt-4o",
        usage=Usage(input_tokens=100, output_tokens=20, cache_read_tokens=64),
        cost=Cost(input_usd=0.0002, output_usd=0.0002, total_usd=0.0004, source="genai-prices 0.2.3"),
        ttft_ms=120.5,
    )
    data = span.to_dict()
    assert data["kind"] == "llm"
    assert data["status"] == "ok"
    assert data["error"] is None
    assert data["duration_ms"] == 250.0
    assert data["usage"] == {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 64}
    assert data["cost"] == {
        "input_usd": 0.0002,
        "output_usd": 0.0002,
        "total_usd": 0.0004,
        "source": "genai-prices 0.2.3",
    }
    assert data["attributes"] == {}


@pytest.mark.skipif(not CONTRACT_CHECKER.exists(), reason="shared/tools not beside the checkout")
@settings(max_examples=20, deadline=None)
@given(st.lists(spans(), min_size=1, max_size=10))
def test_contract_checker_accepts_what_to_dict_produces(batch: list[Span]) -> None:
    lines = "\n".join(json.dumps(s.to_dict()) for s in batch) + "\n"
    result = subprocess.run(
        [sys.executable, str(CONTRACT_CHECKER)], input=lines, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
