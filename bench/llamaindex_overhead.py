"""Per-query overhead of llmobs' LlamaIndex integration against OpenInference's.

    python bench/llamaindex_overhead.py            # full: 1,000 queries / 200 agent runs per block, 5 rounds
    python bench/llamaindex_overhead.py --quick    # a smoke run: small counts, 2 rounds

Every configuration runs in its own subprocess (a fresh interpreter, so the global dispatcher's
handlers do not leak between configurations), started again each round; in every round each
variant is timed in every configuration back to back, in an order that alternates (see
`_overhead.py`), and the table shows medians over rounds of the per-call overhead against "no
instrumentation" measured in the same round. Two figures per cell:

- wall: the application's per-call latency (the timed loop only);
- cpu: total CPU per call, every thread of the process plus llmobs' store writer process
  (`_overhead.total_cpu`), measured after flushing, so background export, pricing, redaction
  and SQLite writes are included.

Configurations:

- `none`: nothing attached to the dispatcher;
- `noop`: a span handler and an event handler that do nothing (the floor: LlamaIndex's own cost
  of calling handlers);
- `llmobs`: `llmobs.integrations.llamaindex.instrument()` with the default local SQLite store (in a
  temporary `LLMOBS_DB`);
- `openinference`: openinference-instrumentation-llama-index, exporting through a
  BatchSpanProcessor to an in-memory OTel exporter.

Variants: `query` (a `VectorStoreIndex` query engine: retrieve with `MockEmbedding`, synthesize
with `MockLLM`), `agent` (a `FunctionAgent` run: a streamed tool call, the tool, a streamed answer,
with OpenAI-shaped usage).

Goal (issue 4): llmobs' overhead at most 1/3 of OpenInference's.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import time
from collections.abc import Callable
from typing import Any

import _overhead as driver

CONFIGS = ["none", "noop", "llmobs", "openinference"]
VARIANTS = ["query", "agent"]
LABELS = {
    "noop": "no-op span + event handler (the floor)",
    "llmobs": "llmobs instrument() (SQLite store on)",
    "openinference": "OpenInference (batch processor, in-memory exporter)",
}
#: Calls per timed block relative to `--calls` (an agent run costs ~10 queries).
SCALE = {"query": 1.0, "agent": 0.2}

COUNT = driver.CountOption(
    "calls", full=1000, quick=150, help="queries per timed block (default 1000; quick 150); agent runs = 1/5"
)
WARMUP = driver.CountOption(
    "warmup", full=100, quick=20, help="untimed calls before each block (default 100; quick 20)"
)


# -- the workloads (run inside a worker) -------------------------------------------------------


def build_workloads() -> dict[str, Callable[[], Any]]:
    from collections.abc import AsyncIterator

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, LLMMetadata, ToolCallBlock
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.llms.callbacks import llm_chat_callback
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool

    docs = [
        Document(text="Paris is the capital of France."),
        Document(text="Berlin is the capital of Germany."),
        Document(text="Madrid is the capital of Spain."),
    ]
    index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=MockLLM(max_tokens=8), similarity_top_k=2)
    usage = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    tool_turn = ChatMessage(
        role="assistant",
        blocks=[ToolCallBlock(tool_call_id="call-1", tool_name="get_weather", tool_kwargs={"city": "Paris"})],
    )
    answer_turn = ChatMessage(role="assistant", content="It is sunny in Paris today.")

    class ScriptedLLM(MockFunctionCallingLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="gpt-4o", is_chat_model=True, is_function_calling_model=True)

        @llm_chat_callback()
        async def astream_chat(self, messages: Any, **kwargs: Any) -> AsyncIterator[ChatResponse]:  # type: ignore[override]
            has_result = any(m.role.value == "tool" for m in messages)
            reply = answer_turn if has_result else tool_turn

            async def gen() -> AsyncIterator[ChatResponse]:
                text = ""
                for word in (reply.content or "").split():
                    text = f"{text} {word}".strip()
                    yield ChatResponse(message=ChatMessage(role="assistant", content=text), delta=word)
                yield ChatResponse(message=reply, delta="", raw={"model": "gpt-4o-2024-08-06", "usage": usage})

            return gen()

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    agent = FunctionAgent(tools=[FunctionTool.from_defaults(get_weather)], llm=ScriptedLLM(), name="weather_agent")
    loop = asyncio.new_event_loop()

    async def agent_run() -> Any:
        return await agent.run(user_msg="Weather in Paris?")

    return {
        "query": lambda: engine.query("What is the capital of France?"),
        "agent": lambda: loop.run_until_complete(agent_run()),
    }


# -- the configurations (inside a worker) -----------------------------------------------------


def setup(config: str) -> tuple[Callable[[], None], Callable[[], int]]:
    """A flush, and a count of spans recorded so far."""
    if config == "none":
        return lambda: None, lambda: 0
    if config == "noop":
        from llama_index_instrumentation import get_dispatcher
        from llama_index_instrumentation.event_handlers import BaseEventHandler
        from llama_index_instrumentation.span import BaseSpan
        from llama_index_instrumentation.span_handlers import BaseSpanHandler

        class NoopSpans(BaseSpanHandler[BaseSpan]):
            def span_enter(self, *args: Any, **kwargs: Any) -> None:
                return None

            def span_exit(self, *args: Any, **kwargs: Any) -> None:
                return None

            def span_drop(self, *args: Any, **kwargs: Any) -> None:
                return None

            def new_span(self, *args: Any, **kwargs: Any) -> None:
                return None

            def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
                return None

            def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
                return None

        class NoopEvents(BaseEventHandler):
            def handle(self, event: Any, **kwargs: Any) -> None:
                return None

        dispatcher = get_dispatcher()
        dispatcher.add_span_handler(NoopSpans())
        dispatcher.add_event_handler(NoopEvents())
        return lambda: None, lambda: 0
    if config == "llmobs":
        import llmobs
        from llmobs.integrations.llamaindex import instrument

        llmobs.configure(service_name="bench")
        instrument()

        def llmobs_flush() -> None:
            llmobs.flush(timeout=120)

        return llmobs_flush, lambda: int(llmobs.health()["exported"])
    if config == "openinference":
        from openinference.instrumentation.llama_index import LlamaIndexInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        LlamaIndexInstrumentor().instrument(tracer_provider=provider)

        def otel_flush() -> None:
            provider.force_flush(120_000)

        return otel_flush, driver.draining_count(exporter)
    raise SystemExit(f"unknown configuration {config!r}")


def session(config: str) -> driver.Block:
    """Set `config` up in this worker; one timed block per call of what it returns."""
    # Build the workloads first: the index build is not what we measure.
    workloads = build_workloads()
    flush, count = setup(config)

    def block(variant: str, calls: int, warmup: int) -> dict[str, float]:
        fn = workloads[variant]
        n = max(1, int(calls * SCALE[variant]))
        for _ in range(max(1, int(warmup * SCALE[variant]))):
            fn()
        flush()
        before = count()
        gc.collect()
        cpu0 = driver.total_cpu()
        with driver.FullCollections() as collector:
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            t1 = time.perf_counter()
        flush()
        cpu1 = driver.total_cpu()
        return {
            "wall_us": (t1 - t0) / n * 1e6,
            "cpu_us": (cpu1 - cpu0) / n * 1e6,
            "spans_per_call": (count() - before) / n,
            **collector.figures(),
        }

    return block


# -- the driver --------------------------------------------------------------------------------


def main() -> int:
    options = driver.parse_options(__doc__, CONFIGS, VARIANTS, COUNT, WARMUP)
    if options.worker:
        return driver.serve_worker(session, options)

    env = {"OTEL_SDK_DISABLED": "false", **os.environ}  # the OTel SDK on unless the caller turned it off
    results = driver.run_rounds(__file__, options, env)
    overhead = functools.partial(driver.median_overhead, results)
    configs, variants, rounds = options.configs, options.variants, options.rounds

    counts = " / ".join(f"{max(1, int(options.count * SCALE[v]))} {v}" for v in variants)
    print(f"\n{counts} calls per block, {rounds} rounds, median overhead in µs per call (wall / total CPU)")
    print(driver.baseline_summary(results, variants, "no instrumentation") + "\n")
    driver.print_overhead_table(results, variants, LABELS, keys=("wall_us", "cpu_us"), unit="call")

    if "llmobs" in configs and "openinference" in configs:
        print()
        for v in variants:
            ours, theirs = overhead("llmobs", v, "wall_us"), overhead("openinference", v, "wall_us")
            ours_cpu, theirs_cpu = overhead("llmobs", v, "cpu_us"), overhead("openinference", v, "cpu_us")
            verdict = "ok" if ours <= theirs / 3 else "MISS"
            print(
                f"goal {v}: llmobs +{ours:.0f} µs wall (+{ours_cpu:.0f} CPU) vs OpenInference +{theirs:.0f} "
                f"(+{theirs_cpu:.0f} CPU); ≤ 1/3 ({theirs / 3:.0f}): {verdict}"
            )
    if options.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
