"""A seeded store for the CLI tests: two traces with known shapes, numbers and times."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmobs.cli.main import cli
from llmobs.core import store
from llmobs.core.model import Cost, ErrorInfo, Span, SpanKind, Status, Usage
from llmobs.core.pricing import Pricer

TRACE_A = "a1" * 16
TRACE_B = "b2" * 16
TRACE_OLD = "c3" * 16
MS = 1_000_000


def mk(
    trace: str,
    span_id: str,
    name: str,
    kind: SpanKind,
    start_ms: float,
    dur_ms: float,
    *,
    parent: str | None = None,
    t0: int,
    **fields: object,
) -> Span:
    start = t0 + int(start_ms * MS)
    return Span(
        trace_id=trace,
        span_id=span_id.ljust(16, "0"),
        parent_id=parent.ljust(16, "0") if parent else None,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=start + int(dur_ms * MS),
        **fields,  # type: ignore[arg-type]
    )


@dataclass
class Seeded:
    db: Path
    spans: list[Span]  # in insertion (= end) order
    t0: int

    def names(self) -> list[str]:
        return [s.name for s in self.spans]


def seed_spans(t0: int) -> list[Span]:
    """Trace A (support-bot, manual): agent → llm, tool (error), llm(o3-mini). Trace B (rag, langchain):
    chain → retriever, llm(claude, ttft, unknown provider cost set). An old trace, two hours ago."""
    pricer = Pricer(read_env=False)
    usage_a1 = Usage(input_tokens=1200, output_tokens=150, total_tokens=1350, cache_read_tokens=1024)
    usage_a2 = Usage(input_tokens=900, output_tokens=420, total_tokens=1320, reasoning_tokens=256)
    common_a = {"service": "support-bot", "framework": "manual"}
    a_llm1 = mk(
        TRACE_A, "a001", "chat gpt-4o-mini", SpanKind.LLM, 1, 20, parent="a000", t0=t0,
        model="gpt-4o-mini", provider="openai", usage=usage_a1, ttft_ms=8.0,
        cost=pricer.price("gpt-4o-mini", usage_a1, "openai"),
        attributes={"session_id": "s-1", "step": "plan"}, **common_a,
    )  # fmt: skip
    a_tool = mk(
        TRACE_A, "a002", "lookup_order", SpanKind.TOOL, 22, 5, parent="a000", t0=t0,
        status=Status.ERROR, error=ErrorInfo("TimeoutError", "order service did not answer in 5s"),
        tool={"name": "lookup_order", "call_id": "c1"}, attributes={"session_id": "s-1"}, **common_a,
    )  # fmt: skip
    a_llm2 = mk(
        TRACE_A, "a003", "chat o3-mini", SpanKind.LLM, 30, 40, parent="a000", t0=t0,
        model="o3-mini", provider="openai", usage=usage_a2,
        cost=pricer.price("o3-mini", usage_a2, "openai"),
        attributes={"session_id": "s-1", "step": "answer"}, input=[{"role": "user", "content": "where is my refund?"}],
        output={"role": "assistant", "content": "issued"}, **common_a,
    )  # fmt: skip
    a_root = mk(
        TRACE_A, "a000", "support-agent", SpanKind.AGENT, 0, 75, t0=t0,
        agent={"name": "support-agent"}, attributes={"session_id": "s-1"}, **common_a,
    )  # fmt: skip
    common_b = {"service": "rag", "framework": "langchain"}
    b_ret = mk(TRACE_B, "b001", "retrieve docs", SpanKind.RETRIEVER, 101, 10, parent="b000", t0=t0, **common_b)
    b_llm = mk(
        TRACE_B, "b002", "chat claude-sonnet-4-5", SpanKind.LLM, 112, 200, parent="b000", t0=t0,
        model="claude-sonnet-4-5", provider="anthropic", ttft_ms=50.0,
        usage=Usage(input_tokens=5000, output_tokens=800, total_tokens=5800),
        cost=Cost(input_usd=0.015, output_usd=0.012, total_usd=0.027, source="test"),
        attributes={"session_id": "s-2"}, **common_b,
    )  # fmt: skip
    b_unpriced = mk(
        TRACE_B, "b003", "chat my-finetune", SpanKind.LLM, 315, 30, parent="b000", t0=t0,
        model="my-finetune", usage=Usage(input_tokens=100, output_tokens=10, total_tokens=110), **common_b,
    )  # fmt: skip
    b_root = mk(TRACE_B, "b000", "rag-chain", SpanKind.CHAIN, 100, 250, t0=t0, **common_b)
    old = mk(
        TRACE_OLD, "c000", "old-job", SpanKind.CUSTOM, -2 * 3600 * 1000, 5, t0=t0,
        service="cron", framework="manual",
    )  # fmt: skip
    return [old, a_llm1, a_tool, a_llm2, a_root, b_ret, b_llm, b_unpriced, b_root]


@pytest.fixture
def seeded(isolated_llmobs: Path) -> Seeded:
    """The store of `isolated_llmobs` (LLMOBS_DB) holding `seed_spans`, traces starting 1 s ago."""
    t0 = time.time_ns() - 1_000 * MS
    spans = seed_spans(t0)
    conn = store.connect(isolated_llmobs)
    store.insert_spans(conn, spans)
    conn.close()
    return Seeded(db=isolated_llmobs, spans=spans, t0=t0)


@pytest.fixture
def run_cli():
    """Invoke the CLI in-process; returns the click Result."""
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return run
