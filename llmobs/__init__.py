"""llmobs: observability for LLM applications with one callback.

    import llmobs
    llmobs.configure(service_name="support-bot")   # optional: defaults work
    llmobs.instrument()                            # LangChain, LlamaIndex, OpenAI Agents: whichever are installed

    with llmobs.span("answer", kind="chain"):
        ...

Spans go to the local SQLite store (`~/.llmobs/traces.db`, or `LLMOBS_DB`); `llmobs tail` and
`llmobs traces` read it. Importing llmobs imports no framework.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

from llmobs.core import runtime as _runtime
from llmobs.core.evaluation import Evaluator
from llmobs.core.model import Cost, ErrorInfo, Evaluation, Span, SpanKind, Status, Usage
from llmobs.core.pricing import PriceOverride
from llmobs.core.sinks import ConsoleSink, MemorySink, Sink, SQLiteSink
from llmobs.core.tracer import current_span
from llmobs.integrations import instrument
from llmobs.manual import span, trace

try:
    __version__ = _version("llmobs")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"


def configure(
    *,
    service_name: str | None = None,
    sinks: Sequence[Sink | str] | None = None,
    db_path: str | Path | None = None,
    capture_content: bool | None = None,
    max_content_chars: int | None = None,
    redact_patterns: Iterable[str | re.Pattern[str]] = (),
    redact_keys: str | None = None,
    redact_paths: Iterable[str] = (),
    default_redaction: bool = True,
    sample_rate: float | None = None,
    prices: Mapping[str, PriceOverride | Mapping[str, Any]] | None = None,
    enabled: bool | None = None,
    queue_size: int | None = None,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    max_in_flight: int | None = None,
    in_flight_ttl: float | None = None,
    flush_on_sigterm: bool | None = None,
    evaluators: Sequence[Evaluator] | None = None,
    eval_sample_rate: float | None = None,
    eval_seed: int | None = None,
) -> None:
    """Set up llmobs. Every argument is optional; the environment supplies the defaults.

    Args:
        service_name: the application's name on every span (default: `LLMOBS_SERVICE_NAME`,
            `OTEL_SERVICE_NAME`, else the script's name).
        sinks: where spans go: `Sink` instances or names (`"sqlite"`, `"console"`, `"memory"`,
            and those other modules register). Default: `LLMOBS_SINKS`, else the local store.
        db_path: the local store's file (default: `LLMOBS_DB`, else `~/.llmobs/traces.db`).
        capture_content: record prompts, completions, tool arguments and results (default on;
            `LLMOBS_CAPTURE_CONTENT=false` turns it off).
        max_content_chars: longest string kept before truncation (default 16384).
        redact_patterns: extra regular expressions replaced by `[REDACTED]` in every string.
        redact_keys: an extra regular expression for mapping keys whose values are redacted whole.
        redact_paths: key paths redacted whole, e.g. `"input.*.content"`, `"attributes.user.email"`.
        default_redaction: keep the built-in secret patterns (API keys, bearer tokens, ...).
        sample_rate: fraction of traces recorded, decided per trace (default 1.0).
        prices: per-model price overrides in USD per million tokens, e.g.
            `{"my-model": {"input": 1.0, "output": 2.0, "cache_read": 0.1}}`; they win over
            genai-prices and over the `LLMOBS_PRICES` file.
        enabled: False turns recording off.
        queue_size: spans held for the pipeline before new ones are dropped (default 100000).
        batch_size: spans per sink write (default 512).
        flush_interval: seconds between pipeline wake-ups (default 0.05).
        max_in_flight: cap on spans started and not yet ended (default 10000).
        in_flight_ttl: seconds after which a span that never ended is evicted (default 3600).
        flush_on_sigterm: when SIGTERM has its default action, flush queued spans before the
            process dies of it (default on; `LLMOBS_FLUSH_ON_SIGTERM=false` turns it off).
        evaluators: online evaluation: `Evaluator`s (see `llmobs.evaluators`) run on their own
            threads over a deterministic sample of finished `llm` spans and trace roots; their
            verdicts are written in the span's `evaluations`.
        eval_sample_rate: fraction of traces evaluated, decided per trace (default 0.1, or
            `LLMOBS_EVAL_SAMPLE_RATE`).
        eval_seed: seed of that sample: the same seed picks the same traces (default 0).

    Raises:
        ValueError: an unknown sink name, a sample rate outside [0, 1], a malformed price
            override or `LLMOBS_PRICES` file.
        TypeError: an evaluator that is not an `Evaluator`.
    """
    _runtime.configure(
        service_name=service_name,
        sinks=sinks,
        db_path=db_path,
        capture_content=capture_content,
        max_content_chars=max_content_chars,
        redact_patterns=redact_patterns,
        redact_keys=redact_keys,
        redact_paths=redact_paths,
        default_redaction=default_redaction,
        sample_rate=sample_rate,
        prices=prices,
        enabled=enabled,
        queue_size=queue_size,
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_in_flight=max_in_flight,
        in_flight_ttl=in_flight_ttl,
        flush_on_sigterm=flush_on_sigterm,
        evaluators=evaluators,
        eval_sample_rate=eval_sample_rate,
        eval_seed=eval_seed,
    )


def flush(timeout: float | None = 5.0) -> bool:
    """Wait until every span recorded so far has reached every sink. False if `timeout` ran out."""
    return _runtime.get_runtime().pipeline.flush(timeout)


def shutdown(timeout: float | None = 5.0) -> bool:
    """Flush and close the sinks. Recording starts afresh (with defaults) if spans follow."""
    runtime = _runtime._runtime
    if runtime is None:
        return True
    ok = runtime.pipeline.shutdown(timeout)
    _runtime.reset()
    return ok


def health() -> dict[str, Any]:
    """A snapshot of llmobs' own counters.

    Keys: `queued` (waiting for the pipeline), `exported` (written to every sink), `dropped`
    (queue full), `unpriced` (model spans with usage but no known price), `evicted` (spans that
    never ended), `in_flight`, `sink_errors`, per-sink `sinks`, and `evaluation` (None without
    evaluators, else `sampled`, `evaluated`, `results`, `errors`, `timeouts`, `pending`, ...).
    """
    runtime = _runtime.get_runtime()
    snapshot = runtime.pipeline.health()
    snapshot["evicted"] = runtime.tracer.evicted
    snapshot["in_flight"] = runtime.tracer.in_flight_count()
    return snapshot


__all__ = [
    "ConsoleSink",
    "Cost",
    "ErrorInfo",
    "Evaluation",
    "Evaluator",
    "MemorySink",
    "PriceOverride",
    "SQLiteSink",
    "Sink",
    "Span",
    "SpanKind",
    "Status",
    "Usage",
    "__version__",
    "configure",
    "current_span",
    "flush",
    "health",
    "instrument",
    "shutdown",
    "span",
    "trace",
]
