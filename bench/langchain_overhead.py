"""Per-call overhead of llmobs' LangChain `CallbackHandler` against other LangChain tracers.

    python bench/langchain_overhead.py            # full: 2,000 calls per block, 5 rounds
    python bench/langchain_overhead.py --quick    # a smoke run: small counts, 2 rounds

Every configuration runs in its own subprocess (a fresh interpreter, so global instrumentors do
not leak into each other), started again each round; in every round each variant is timed in every
configuration back to back, in an order that alternates (see `_overhead.py`), and the table
shows medians over rounds of the per-call overhead against "no tracing" measured in the same
round. Two figures per cell:

- wall: the application's per-call latency (the timed loop only);
- cpu: total CPU per call, every thread of the process plus llmobs' store writer process
  (`_overhead.total_cpu`), measured after flushing, so background export, pricing, redaction
  and SQLite writes are included.

Configurations:

- `none`: no callbacks; `noop`: a `BaseCallbackHandler` that does nothing (the floor);
- `otel`: a bare OpenTelemetry handler, one span per run, no attributes (BatchSpanProcessor and
  InMemorySpanExporter);
- `llmobs`: `llmobs.integrations.langchain.CallbackHandler` with the default local SQLite store
  (in a temporary `LLMOBS_DB`);
- `openllmetry` (opentelemetry-instrumentation-langchain), `langfuse`
  (`langfuse.langchain.CallbackHandler`) and `openinference`
  (openinference-instrumentation-langchain), all exporting to an in-memory OTel exporter.

Variants: `simple` (prompt | model | parser), `tool` (a model call that asks for a tool, then the
tool), `stream` (the simple chain streamed from a streaming model).
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import _overhead as driver

CONFIGS = ["none", "noop", "otel", "llmobs", "openllmetry", "langfuse", "openinference"]
ANCHORS = ["openllmetry", "langfuse", "openinference"]
VARIANTS = ["simple", "tool", "stream"]
LABELS = {
    "noop": "no-op handler (the floor)",
    "otel": "bare OTel handler, one span per run, no attributes",
    "llmobs": "llmobs CallbackHandler (SQLite store on)",
    "openllmetry": "OpenLLMetry (batch processor)",
    "langfuse": "Langfuse",
    "openinference": "OpenInference (batch processor)",
}

COUNT = driver.CountOption("calls", full=2000, quick=200, help="calls per timed block (default 2000; quick 200)")
WARMUP = driver.CountOption(
    "warmup", full=200, quick=30, help="untimed calls before each block (default 200; quick 30)"
)


# -- the workloads (run inside a worker) -------------------------------------------------------


def build_workloads() -> dict[str, Callable[[list[Any]], Any]]:
    import json as _json

    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.outputs import ChatGenerationChunk
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableConfig, RunnableLambda
    from langchain_core.tools import tool

    usage = {
        "input_tokens": 1200,
        "output_tokens": 300,
        "total_tokens": 1500,
        "input_token_details": {"cache_read": 1000},
        "output_token_details": {"reasoning": 120},
    }

    class FakeChat(GenericFakeChatModel):
        model: str = "gpt-4o"
        streaming: bool = False

        def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
            params = super()._get_ls_params(stop=stop, **kwargs)
            params["ls_provider"] = "openai"
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
                yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    usage_metadata=reply.usage_metadata,
                    chunk_position="last",
                    response_metadata={"model_name": "gpt-4o-2024-08-06", "finish_reason": "stop"},
                )
            )

    answer = AIMessage(
        content="Paris is the capital of France and its largest city.",
        usage_metadata=usage,  # type: ignore[arg-type]
        response_metadata={"model_name": "gpt-4o-2024-08-06", "finish_reason": "stop"},
    )
    tool_call = AIMessage(
        content="",
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call-1"}],
        usage_metadata=usage,  # type: ignore[arg-type]
        response_metadata={"model_name": "gpt-4o-2024-08-06", "finish_reason": "tool_calls"},
    )

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return _json.dumps({"city": city, "sky": "sunny"})

    prompt = ChatPromptTemplate.from_messages([("system", "You are terse."), ("human", "{q}")])
    simple = prompt | FakeChat(messages=itertools.repeat(answer)) | StrOutputParser()
    streaming = prompt | FakeChat(streaming=True, messages=itertools.repeat(answer)) | StrOutputParser()
    tool_model = FakeChat(messages=itertools.repeat(tool_call))

    def agent_step(q: str, config: RunnableConfig) -> Any:
        ai = tool_model.invoke([HumanMessage(q)], config)
        assert isinstance(ai, AIMessage)
        return get_weather.invoke(ai.tool_calls[0], config)

    agent = RunnableLambda(agent_step, name="agent")
    question = {"q": "What is the capital of France?"}

    return {
        "simple": lambda cbs: simple.invoke(question, config={"callbacks": cbs}),
        "tool": lambda cbs: agent.invoke("Weather in Paris?", config={"callbacks": cbs}),
        "stream": lambda cbs: list(streaming.stream(question, config={"callbacks": cbs})),
    }


# -- the configurations (inside a worker) -----------------------------------------------------


def otel_provider() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def bare_otel_handler(provider: Any) -> Any:
    from langchain_core.callbacks import BaseCallbackHandler
    from opentelemetry import trace

    tracer = provider.get_tracer("bench")

    class BareOTel(BaseCallbackHandler):
        """One span per run, parent from parent_run_id, no attributes."""

        def __init__(self) -> None:
            self.spans: dict[Any, Any] = {}

        def _start(self, run_id: Any, parent_run_id: Any, name: str) -> None:
            parent = self.spans.get(parent_run_id)
            ctx = trace.set_span_in_context(parent) if parent is not None else None
            self.spans[run_id] = tracer.start_span(name, context=ctx)

        def _end(self, run_id: Any) -> None:
            span = self.spans.pop(run_id, None)
            if span is not None:
                span.end()

        def on_chain_start(
            self, serialized: Any, inputs: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
        ) -> None:
            self._start(run_id, parent_run_id, "chain")

        def on_chat_model_start(
            self, serialized: Any, messages: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
        ) -> None:
            self._start(run_id, parent_run_id, "chat")

        def on_tool_start(
            self, serialized: Any, input_str: Any, *, run_id: Any, parent_run_id: Any = None, **kw: Any
        ) -> None:
            self._start(run_id, parent_run_id, "tool")

        def on_chain_end(self, outputs: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

        def on_llm_end(self, response: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

        def on_tool_end(self, output: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

        def on_chain_error(self, error: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

        def on_llm_error(self, error: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

        def on_tool_error(self, error: Any, *, run_id: Any, **kw: Any) -> None:
            self._end(run_id)

    return BareOTel()


def setup(config: str) -> tuple[list[Any], Callable[[], None], Callable[[], int]]:
    """Callbacks to pass, a flush, and a count of spans recorded so far."""
    if config == "none":
        return [], lambda: None, lambda: 0
    if config == "noop":
        from langchain_core.callbacks import BaseCallbackHandler

        return [BaseCallbackHandler()], lambda: None, lambda: 0
    if config == "llmobs":
        import llmobs
        from llmobs.integrations.langchain import CallbackHandler

        llmobs.configure(service_name="bench")

        def llmobs_count() -> int:
            return int(llmobs.health()["exported"])

        def llmobs_flush() -> None:
            llmobs.flush(timeout=120)

        return [CallbackHandler()], llmobs_flush, llmobs_count
    if config == "langfuse":
        from langfuse import Langfuse
        from langfuse.langchain import CallbackHandler as LangfuseHandler
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        # Langfuse adds its own batch span processor around the exporter it is given.
        lf_exporter = InMemorySpanExporter()
        lf_provider = TracerProvider()
        client = Langfuse(
            public_key="pk-lf-bench",
            secret_key="sk-lf-bench",
            base_url="http://127.0.0.1:9",
            tracer_provider=lf_provider,
            span_exporter=lf_exporter,
        )

        def langfuse_flush() -> None:
            client.flush()
            lf_provider.force_flush(120_000)

        return [LangfuseHandler(public_key="pk-lf-bench")], langfuse_flush, driver.draining_count(lf_exporter)
    provider, exporter = otel_provider()

    def flush() -> None:
        provider.force_flush(120_000)

    count = driver.draining_count(exporter)

    if config == "otel":
        return [bare_otel_handler(provider)], flush, count
    if config == "openllmetry":
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        LangchainInstrumentor().instrument(tracer_provider=provider)
        return [], flush, count
    if config == "openinference":
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=provider)
        return [], flush, count
    raise SystemExit(f"unknown configuration {config!r}")


def session(config: str) -> driver.Block:
    """Set `config` up in this worker; one timed block per call of what it returns."""
    callbacks, flush, count = setup(config)
    workloads = build_workloads()

    def block(variant: str, calls: int, warmup: int) -> dict[str, float]:
        fn = workloads[variant]
        for _ in range(warmup):
            fn(callbacks)
        flush()
        before = count()
        gc.collect()
        cpu0 = driver.total_cpu()
        with driver.FullCollections() as collector:
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(callbacks)
            t1 = time.perf_counter()
        flush()
        cpu1 = driver.total_cpu()
        return {
            "wall_us": (t1 - t0) / calls * 1e6,
            "cpu_us": (cpu1 - cpu0) / calls * 1e6,
            "spans_per_call": (count() - before) / calls,
            **collector.figures(),
        }

    return block


# -- the driver --------------------------------------------------------------------------------


def main() -> int:
    options = driver.parse_options(__doc__, CONFIGS, VARIANTS, COUNT, WARMUP)
    if options.worker:
        return driver.serve_worker(session, options)

    # The OTel SDK on unless the caller turned it off; Langfuse's spans in a "bench" environment.
    env = {"OTEL_SDK_DISABLED": "false", **os.environ, "LANGFUSE_TRACING_ENVIRONMENT": "bench"}
    results = driver.run_rounds(__file__, options, env)
    overhead = functools.partial(driver.median_overhead, results)
    configs, variants, rounds = options.configs, options.variants, options.rounds

    print(f"\n{options.count} calls per block, {rounds} rounds, median overhead in µs per call (wall / total CPU)")
    print(driver.baseline_summary(results, variants, "no tracing") + "\n")
    driver.print_overhead_table(results, variants, LABELS, keys=("wall_us", "cpu_us"), unit="call")

    if "llmobs" in configs:
        anchors = [a for a in ANCHORS if a in configs]
        print()
        for v in variants:
            ours = overhead("llmobs", v, "wall_us")
            ours_cpu = overhead("llmobs", v, "cpu_us")
            checks = []
            if anchors:
                best = min(overhead(a, v, "wall_us") for a in anchors)
                best_cpu = min(overhead(a, v, "cpu_us") for a in anchors)
                checks.append(f"wall ≤ best anchor/4 ({best / 4:.0f}): {'ok' if ours <= best / 4 else 'MISS'}")
                checks.append(
                    f"CPU ≤ best anchor/2 ({best_cpu / 2:.0f}): {'ok' if ours_cpu <= best_cpu / 2 else 'MISS'}"
                )
            if "noop" in configs:
                floor = overhead("noop", v, "wall_us")
                checks.append(f"wall ≤ 3× no-op ({3 * floor:.0f}): {'ok' if ours <= 3 * floor else 'MISS'}")
            print(f"goal {v}: llmobs +{ours:.0f} wall, +{ours_cpu:.0f} CPU; " + "; ".join(checks))
        # The goals' margins are tens of µs; so is the spread of one configuration's rounds.
        print("\nper-round wall overhead, quartiles (25% / median / 75%), µs per call:")
        for v in variants:
            spread = []
            for config in ("llmobs", "noop", *anchors):
                if config in configs:
                    q = driver.overhead_quartiles(results, config, v, "wall_us")
                    spread.append(f"{config} {q[0]:+.0f} / {q[1]:+.0f} / {q[2]:+.0f}")
            print(f"  {v}: " + "; ".join(spread))
    if options.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
