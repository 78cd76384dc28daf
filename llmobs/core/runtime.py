"""The process-wide wiring: one tracer, one pipeline, built from settings.

`get_tracer()` is what integrations call on every event; it builds the default runtime (the local
SQLite store, settings from the environment) the first time it is needed. `configure()` rebuilds
the pipeline with new settings while the tracer, and every span in flight, carries on.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmobs.core.config import Settings
from llmobs.core.content import ContentPolicy
from llmobs.core.evaluation import Evaluator
from llmobs.core.pipeline import Pipeline, install_sigterm_flush
from llmobs.core.pricing import PriceOverride, Pricer
from llmobs.core.sinks import ConsoleSink, MemorySink, Sink, SQLiteSink
from llmobs.core.tracer import Tracer

logger = logging.getLogger("llmobs")

LLMOBS_SINKS = "LLMOBS_SINKS"
"""Comma-separated sink names used when `configure()` is given none, e.g. `sqlite,console`."""

#: Sinks that can be named in `LLMOBS_SINKS` or `configure(sinks=[...])`. Other modules (the OTLP
#: sinks) add theirs with `register_sink`.
SINK_FACTORIES: dict[str, Callable[[], Sink]] = {
    "sqlite": SQLiteSink,
    "console": ConsoleSink,
    "memory": MemorySink,
}


def _otlp_sink_factory(preset: str) -> Callable[[], Sink]:
    """A factory for an OTLP sink preset that imports OpenTelemetry's exporter only when used."""

    def factory() -> Sink:
        from llmobs.core.sinks import otlp

        sink: Sink = getattr(otlp, preset)()
        return sink

    return factory


for _preset in ("otlp", "langfuse", "phoenix"):
    SINK_FACTORIES[_preset] = _otlp_sink_factory(_preset)


def register_sink(name: str, factory: Callable[[], Sink]) -> None:
    """Make `name` usable in `LLMOBS_SINKS` and `configure(sinks=[name])`."""
    SINK_FACTORIES[name] = factory


def make_sink(spec: Sink | str) -> Sink:
    """A sink from an instance or a registered name. Raises ValueError for an unknown name."""
    if isinstance(spec, Sink):
        return spec
    name = str(spec).strip().lower()
    factory = SINK_FACTORIES.get(name)
    if factory is None:
        known = ", ".join(sorted(SINK_FACTORIES))
        raise ValueError(f"unknown llmobs sink {spec!r}; known sinks: {known}")
    return factory()


class Runtime:
    """The tracer and the pipeline it submits to."""

    __slots__ = ("pipeline", "tracer")

    def __init__(self, tracer: Tracer, pipeline: Pipeline) -> None:
        self.tracer = tracer
        self.pipeline = pipeline


_lock = threading.RLock()
_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    runtime = _runtime
    if runtime is None:
        runtime = _default_runtime()
    return runtime


def get_tracer() -> Tracer:
    """The process's tracer (built with defaults on first use)."""
    runtime = _runtime
    if runtime is None:
        runtime = _default_runtime()
    return runtime.tracer


def _default_runtime() -> Runtime:
    with _lock:
        if _runtime is not None:
            return _runtime
        try:
            return configure()
        except Exception as exc:
            # Bad environment (a malformed LLMOBS_PRICES, an unknown LLMOBS_SINKS name) must not
            # break the application: say so once and record to the local store only.
            logger.warning("llmobs: configuration from the environment failed (%s); using the local store only", exc)
            return configure(sinks=[SQLiteSink()], _ignore_env=True)


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
    _ignore_env: bool = False,
) -> Runtime:
    """Build (or rebuild) the runtime. See `llmobs.configure` for the arguments."""
    global _runtime
    settings = Settings.from_env()
    if service_name is not None:
        settings.service_name = service_name
    if capture_content is not None:
        settings.capture_content = capture_content
    if max_content_chars is not None:
        settings.max_content_chars = max(1, int(max_content_chars))
    if sample_rate is not None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate}")
        settings.sample_rate = float(sample_rate)
    if enabled is not None:
        settings.enabled = enabled
    if queue_size is not None:
        settings.queue_size = max(1, int(queue_size))
    if batch_size is not None:
        settings.batch_size = max(1, int(batch_size))
    if flush_interval is not None:
        settings.flush_interval_s = max(0.001, float(flush_interval))
    if max_in_flight is not None:
        settings.max_in_flight = max(1, int(max_in_flight))
    if in_flight_ttl is not None:
        settings.in_flight_ttl_s = max(0.001, float(in_flight_ttl))
    if flush_on_sigterm is not None:
        settings.flush_on_sigterm = flush_on_sigterm
    if eval_sample_rate is not None:
        if not 0.0 <= eval_sample_rate <= 1.0:
            raise ValueError(f"eval_sample_rate must be between 0 and 1, got {eval_sample_rate}")
        settings.eval_sample_rate = float(eval_sample_rate)
    if eval_seed is not None:
        settings.eval_seed = int(eval_seed)
    for evaluator in evaluators or ():
        if not isinstance(evaluator, Evaluator):
            raise TypeError(f"evaluators must be llmobs Evaluator instances, got {type(evaluator).__name__}")

    if sinks is None:
        env_sinks = "" if _ignore_env else os.environ.get(LLMOBS_SINKS, "")
        names = [n for n in (s.strip() for s in env_sinks.split(",")) if n] or ["sqlite"]
        built = [SQLiteSink(db_path) if n.lower() == "sqlite" else make_sink(n) for n in names]
    else:
        built = [make_sink(s) for s in sinks]
        if db_path is not None and not any(isinstance(s, SQLiteSink) for s in built):
            built.append(SQLiteSink(db_path))
    pricer = Pricer(prices, read_env=not _ignore_env)
    policy = ContentPolicy(
        capture=settings.capture_content,
        max_chars=settings.max_content_chars,
        redact_patterns=redact_patterns,
        redact_keys=redact_keys,
        redact_paths=redact_paths,
        default_redaction=default_redaction,
    )

    with _lock:
        old = _runtime
        pipeline = Pipeline(built, settings, pricer, policy)
        if evaluators:
            pipeline.start_evaluation(evaluators, settings.eval_sample_rate, settings.eval_seed)
        if old is None:
            tracer = Tracer(pipeline.submit, settings)
        else:
            # Keep the tracer so spans already in flight end normally into the new pipeline.
            tracer = old.tracer
            tracer.settings = settings
            tracer._submit = pipeline.submit
        _runtime = Runtime(tracer, pipeline)
    if old is not None:
        old.pipeline.shutdown()
    if settings.flush_on_sigterm:
        install_sigterm_flush()
    return _runtime


def reset() -> None:
    """Shut the runtime down and forget it; the next span builds a fresh default. For tests."""
    global _runtime
    with _lock:
        old, _runtime = _runtime, None
    if old is not None:
        old.pipeline.shutdown()
