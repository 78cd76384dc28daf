"""Per-run overhead of llmobs' Agents SDK `TracingProcessor` against OpenInference's.

    python bench/openai_agents_overhead.py            # full: 1,000 runs per block, 5 rounds
    python bench/openai_agents_overhead.py --quick    # a smoke run: small counts, 2 rounds

Every configuration runs in its own subprocess (a fresh interpreter: the SDK's processor list
and OpenInference's instrumentor are process-wide), started again each round; in every round each
variant is timed in every configuration back to back, in an order that alternates (see
`_overhead.py`), and the table shows medians over rounds of the per-run overhead against "no
extra processor" measured in the same round. Two figures per cell:

- wall: the application's per-run latency (the timed loop only);
- app: CPU of the application's thread per run (`time.thread_time`): what the processor costs
  the runner's loop itself;
- cpu: total CPU per run, every thread of the process plus llmobs' store writer process
  (`_overhead.total_cpu`), measured after flushing, so background export, pricing, redaction
  and SQLite writes are included.

Configurations (the SDK's tracing stays on in all of them; its OpenAI exporter is never used):

- `none`: no processor at all (`set_trace_processors([])`), the baseline;
- `noop`: a `TracingProcessor` whose methods do nothing (the floor);
- `llmobs`: `llmobs.integrations.openai_agents.instrument(replace=True)` with the default local
  SQLite store (in a temporary `LLMOBS_DB`);
- `openinference`: openinference-instrumentation-openai-agents exporting through a
  BatchSpanProcessor to an in-memory OTel exporter.

Variants: `simple` (one model call), `tool` (a model call asking for a tool, the tool, a final
model call), `handoff` (triage → specialist with a tool: 3 model calls), `stream` (the tool run
through `Runner.run_streamed`). The model is an offline `Model` that opens `response_span` and
returns real `openai` Response objects with usage, like the SDK's `OpenAIResponsesModel`.

Goal (issue 5): llmobs' overhead at most 1/3 of OpenInference's.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import _overhead as driver

CONFIGS = ["none", "noop", "llmobs", "openinference"]
VARIANTS = ["simple", "tool", "handoff", "stream"]
LABELS = {
    "noop": "no-op TracingProcessor (the floor)",
    "llmobs": "llmobs TracingProcessor (SQLite store on)",
    "openinference": "OpenInference (batch processor, in-memory exporter)",
}

COUNT = driver.CountOption("runs", full=1000, quick=100, help="agent runs per timed block (default 1000; quick 100)")
WARMUP = driver.CountOption("warmup", full=100, quick=20, help="untimed runs before each block (default 100; quick 20)")


# -- the workloads (run inside a worker) -------------------------------------------------------


def build_workloads() -> dict[str, Callable[[], Any]]:
    """One coroutine factory per variant; each call is one agent run."""
    from agents import Agent, ModelResponse, Runner, function_tool
    from agents import Usage as AgentsUsage
    from agents.models.interface import Model
    from agents.tracing import response_span
    from agents.usage import model_usage_to_span_usage
    from openai.types.responses import (
        Response,
        ResponseCompletedEvent,
        ResponseCreatedEvent,
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
        ResponseTextDeltaEvent,
        ResponseUsage,
    )
    from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

    ids = itertools.count(1)
    input_details = InputTokensDetails(cached_tokens=1000, cache_write_tokens=0)
    output_details = OutputTokensDetails(reasoning_tokens=120)

    def say(text: str) -> ResponseOutputMessage:
        return ResponseOutputMessage(
            id=f"msg_{next(ids)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )

    def call(name: str, arguments: dict[str, Any]) -> ResponseFunctionToolCall:
        n = next(ids)
        return ResponseFunctionToolCall(
            id=f"fc_{n}", call_id=f"call_{n}", type="function_call", name=name, arguments=json.dumps(arguments)
        )

    def answer(output: list[Any]) -> tuple[Response, AgentsUsage]:
        response = Response(
            id=f"resp_{next(ids)}",
            created_at=time.time(),
            model="gpt-4o-mini",
            object="response",
            output=output,
            parallel_tool_calls=True,
            tool_choice="auto",
            tools=[],
            usage=ResponseUsage(
                input_tokens=1200,
                output_tokens=300,
                total_tokens=1500,
                input_tokens_details=input_details,
                output_tokens_details=output_details,
            ),
        )
        usage = AgentsUsage(
            requests=1,
            input_tokens=1200,
            output_tokens=300,
            total_tokens=1500,
            input_tokens_details=input_details,
            output_tokens_details=output_details,
        )
        return response, usage

    class ScriptedModel(Model):
        def __init__(self) -> None:
            self.script: list[list[Any]] = []

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kw: Any) -> ModelResponse:
            tracing = args[4] if len(args) > 4 else kw["tracing"]
            response, usage = answer(self.script.pop(0))
            with response_span(disabled=tracing.is_disabled()) as span:
                span.span_data.usage = model_usage_to_span_usage(usage)
                if tracing.include_data():
                    span.span_data.response = response
                    span.span_data.input = input
            return ModelResponse(output=response.output, usage=usage, response_id=response.id)

        async def stream_response(
            self, system_instructions: Any, input: Any, *args: Any, **kw: Any
        ) -> AsyncIterator[Any]:
            tracing = args[4] if len(args) > 4 else kw["tracing"]
            response, usage = answer(self.script.pop(0))
            with response_span(disabled=tracing.is_disabled()) as span:
                created = response.model_copy(update={"output": [], "usage": None})
                yield ResponseCreatedEvent(response=created, sequence_number=0, type="response.created")
                n = 1
                for item in response.output:
                    if isinstance(item, ResponseOutputMessage):
                        for word in ("It", "is", "sunny."):
                            yield ResponseTextDeltaEvent(
                                content_index=0,
                                delta=word,
                                item_id=item.id,
                                logprobs=[],
                                output_index=0,
                                sequence_number=n,
                                type="response.output_text.delta",
                            )
                            n += 1
                span.span_data.usage = model_usage_to_span_usage(usage)
                if tracing.include_data():
                    span.span_data.response = response
                    span.span_data.input = input
                yield ResponseCompletedEvent(response=response, sequence_number=n, type="response.completed")

    @function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    model = ScriptedModel()
    simple_agent = Agent(name="Assistant", instructions="be brief", model=model)
    tool_agent = Agent(name="Weather", instructions="be brief", model=model, tools=[get_weather])
    specialist = Agent(name="Specialist", model=model, tools=[get_weather])
    triage = Agent(name="Triage", model=model, handoffs=[specialist])

    async def simple() -> Any:
        model.script = [[say("It is sunny.")]]
        return await Runner.run(simple_agent, "weather?")

    async def tool() -> Any:
        model.script = [[call("get_weather", {"city": "Paris"})], [say("It is sunny.")]]
        return await Runner.run(tool_agent, "weather in Paris?")

    async def handoff() -> Any:
        model.script = [
            [call("transfer_to_specialist", {})],
            [call("get_weather", {"city": "Paris"})],
            [say("It is sunny.")],
        ]
        return await Runner.run(triage, "weather in Paris?")

    async def stream() -> Any:
        model.script = [[call("get_weather", {"city": "Paris"})], [say("It is sunny.")]]
        result = Runner.run_streamed(tool_agent, "weather in Paris?")
        async for _ in result.stream_events():
            pass
        return result

    return {"simple": simple, "tool": tool, "handoff": handoff, "stream": stream}


def setup(config: str) -> tuple[Callable[[], None], Callable[[], int]]:
    """Register the configuration's processor; return a flush and a count of spans recorded."""
    from agents.tracing import TracingProcessor, set_trace_processors

    set_trace_processors([])
    if config == "none":
        return lambda: None, lambda: 0
    if config == "noop":

        class NoOp(TracingProcessor):
            def on_trace_start(self, trace: Any) -> None:
                pass

            def on_trace_end(self, trace: Any) -> None:
                pass

            def on_span_start(self, span: Any) -> None:
                pass

            def on_span_end(self, span: Any) -> None:
                pass

            def shutdown(self) -> None:
                pass

            def force_flush(self) -> None:
                pass

        set_trace_processors([NoOp()])
        return lambda: None, lambda: 0
    if config == "llmobs":
        import llmobs
        from llmobs.integrations.openai_agents import instrument

        llmobs.configure(service_name="bench")
        instrument(replace=True)

        def llmobs_flush() -> None:
            llmobs.flush(timeout=120)

        return llmobs_flush, lambda: int(llmobs.health()["exported"])
    if config == "openinference":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)

        def otel_flush() -> None:
            provider.force_flush(120_000)

        return otel_flush, driver.draining_count(exporter)
    raise SystemExit(f"unknown configuration {config!r}")


def session(config: str) -> driver.Block:
    """Set `config` up in this worker; one timed block per call of what it returns."""
    flush, count = setup(config)
    workloads = build_workloads()
    loop = asyncio.new_event_loop()

    def block(variant: str, runs: int, warmup: int) -> dict[str, float]:
        fn = workloads[variant]
        for _ in range(warmup):
            loop.run_until_complete(fn())
        flush()
        before = count()
        gc.collect()
        cpu0 = driver.total_cpu()
        app0 = time.thread_time()
        with driver.FullCollections() as collector:
            t0 = time.perf_counter()
            for _ in range(runs):
                loop.run_until_complete(fn())
            t1 = time.perf_counter()
        app1 = time.thread_time()
        flush()
        cpu1 = driver.total_cpu()
        return {
            "wall_us": (t1 - t0) / runs * 1e6,
            "app_us": (app1 - app0) / runs * 1e6,
            "cpu_us": (cpu1 - cpu0) / runs * 1e6,
            "spans_per_run": (count() - before) / runs,
            **collector.figures(),
        }

    return block


# -- the driver --------------------------------------------------------------------------------


def main() -> int:
    options = driver.parse_options(__doc__, CONFIGS, VARIANTS, COUNT, WARMUP)
    if options.worker:
        return driver.serve_worker(session, options)

    # The SDK's exporter is never registered; dropping its key and its off switch is belt and braces.
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_AGENTS_DISABLE_TRACING")}
    results = driver.run_rounds(__file__, options, env)
    overhead = functools.partial(driver.median_overhead, results)
    configs, variants, rounds = options.configs, options.variants, options.rounds

    print(
        f"\n{options.count} runs per block, {rounds} rounds, median overhead in µs per agent run (wall / app-thread CPU / total CPU)"
    )
    print(driver.baseline_summary(results, variants, "no extra processor") + "  (" + ", ".join(variants) + ")\n")
    driver.print_overhead_table(results, variants, LABELS, keys=("wall_us", "app_us", "cpu_us"), unit="run")

    if "llmobs" in configs and "openinference" in configs:
        print()
        for v in variants:
            ours = [overhead("llmobs", v, k) for k in ("wall_us", "app_us", "cpu_us")]
            theirs = [overhead("openinference", v, k) for k in ("wall_us", "app_us", "cpu_us")]
            verdicts = [
                f"{name} ≤ 1/3 ({t / 3:.0f}): {'ok' if o <= t / 3 else 'MISS'}"
                for name, o, t in zip(("wall", "app", "cpu"), ours, theirs, strict=True)
            ]
            print(
                f"goal {v}: llmobs "
                + " / ".join(f"+{x:.0f}" for x in ours)
                + " vs OpenInference "
                + " / ".join(f"+{x:.0f}" for x in theirs)
                + "; "
                + "; ".join(verdicts)
            )
    if options.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
