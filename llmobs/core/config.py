"""Environment variables llmobs reads, with their defaults, and the resolved settings.

Every variable name is spelled here once. `Settings.from_env()` reads them; `configure()`
arguments override what the environment says.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

LLMOBS_DB = "LLMOBS_DB"
"""Path of the local SQLite store. Default: `~/.llmobs/traces.db`."""

LLMOBS_PRICES = "LLMOBS_PRICES"
"""Path of a TOML file of per-model price overrides (USD per million tokens)."""

LLMOBS_CAPTURE_CONTENT = "LLMOBS_CAPTURE_CONTENT"
"""`true` (default) or `false`: record prompts, completions, tool arguments and results."""

LLMOBS_MAX_CONTENT_CHARS = "LLMOBS_MAX_CONTENT_CHARS"
"""Longest string kept in captured content before it is truncated with a marker. Default 16384."""

LLMOBS_SAMPLE_RATE = "LLMOBS_SAMPLE_RATE"
"""Fraction of traces recorded, 0.0 to 1.0, decided per trace. Default 1.0."""

LLMOBS_SERVICE_NAME = "LLMOBS_SERVICE_NAME"
"""The application's name on every span; `OTEL_SERVICE_NAME` is read after it."""

LLMOBS_DISABLED = "LLMOBS_DISABLED"
"""`true` turns tracing off entirely: spans are neither created nor stored."""

LLMOBS_FLUSH_ON_SIGTERM = "LLMOBS_FLUSH_ON_SIGTERM"
"""`true` (default): on SIGTERM, when the app has no handler of its own, flush queued spans first."""

LLMOBS_EVAL_SAMPLE_RATE = "LLMOBS_EVAL_SAMPLE_RATE"
"""Fraction of traces whose root and `llm` spans the configured evaluators judge, 0.0 to 1.0. Default 0.1."""

LLMOBS_EVAL_SEED = "LLMOBS_EVAL_SEED"
"""Integer seed of the deterministic evaluation sample (which traces are judged). Default 0."""

OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
"""The OpenTelemetry service name, used when `LLMOBS_SERVICE_NAME` is not set."""

OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""OpenTelemetry's content switch; `NO_CONTENT` turns capture off when set explicitly."""

DEFAULT_DB_PATH = Path("~/.llmobs/traces.db")
DEFAULT_MAX_CONTENT_CHARS = 16 * 1024
DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_BATCH_SIZE = 512
DEFAULT_FLUSH_INTERVAL_S = 0.05
DEFAULT_MAX_IN_FLIGHT = 10_000
DEFAULT_IN_FLIGHT_TTL_S = 3600.0
DEFAULT_MAX_STORED_SPANS = 1_000_000
DEFAULT_EVAL_SAMPLE_RATE = 0.1

_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean variable: 1/true/yes/on or 0/false/no/off, anything else means `default`."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return default


def default_db_path() -> Path:
    """The local store: `LLMOBS_DB` if set, else `~/.llmobs/traces.db`."""
    raw = os.environ.get(LLMOBS_DB)
    return Path(raw).expanduser() if raw else DEFAULT_DB_PATH.expanduser()


def default_service_name() -> str:
    """`LLMOBS_SERVICE_NAME`, else `OTEL_SERVICE_NAME`, else the running script's name."""
    for name in (LLMOBS_SERVICE_NAME, OTEL_SERVICE_NAME):
        value = os.environ.get(name)
        if value:
            return value
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = Path(argv0).stem if argv0 and argv0 != "-c" else ""
    return stem or "python"


def default_capture_content() -> bool:
    """Content capture is on unless switched off by ours or OpenTelemetry's variable."""
    otel = os.environ.get(OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)
    if otel is not None and otel.strip().upper() == "NO_CONTENT":
        return False
    return env_flag(LLMOBS_CAPTURE_CONTENT, True)


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        return default


@dataclass(slots=True)
class Settings:
    """Everything the tracer and pipeline need to know, resolved once by `configure()`."""

    service_name: str = field(default_factory=default_service_name)
    enabled: bool = True
    sample_rate: float = 1.0
    capture_content: bool = True
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    queue_size: int = DEFAULT_QUEUE_SIZE
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    in_flight_ttl_s: float = DEFAULT_IN_FLIGHT_TTL_S
    flush_on_sigterm: bool = True
    eval_sample_rate: float = DEFAULT_EVAL_SAMPLE_RATE
    eval_seed: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        rate = min(1.0, max(0.0, _env_float(LLMOBS_SAMPLE_RATE, 1.0)))
        chars = int(_env_float(LLMOBS_MAX_CONTENT_CHARS, DEFAULT_MAX_CONTENT_CHARS))
        return cls(
            enabled=not env_flag(LLMOBS_DISABLED, False),
            sample_rate=rate,
            capture_content=default_capture_content(),
            max_content_chars=max(1, chars),
            flush_on_sigterm=env_flag(LLMOBS_FLUSH_ON_SIGTERM, True),
            eval_sample_rate=min(1.0, max(0.0, _env_float(LLMOBS_EVAL_SAMPLE_RATE, DEFAULT_EVAL_SAMPLE_RATE))),
            eval_seed=int(_env_float(LLMOBS_EVAL_SEED, 0)),
        )
