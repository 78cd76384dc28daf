"""Client-side cost of model calls, from genai-prices' bundled (offline) price data.

Cache-read, cache-write and reasoning tokens are priced exactly as genai-prices prices them,
including long-context tiers. User overrides per model (from `configure(prices=...)` or a TOML
file named by `LLMOBS_PRICES`) win over the data. A model that cannot be priced gets `None`,
never $0: an unknown model is never shown as free.

    [models."my-finetune"]      # USD per million tokens
    input = 1.0
    output = 2.0
    cache_read = 0.1            # optional; defaults to the input price
    cache_write = 1.25          # optional; defaults to the input price
    reasoning = 2.0             # optional; defaults to the output price
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmobs.core.config import LLMOBS_PRICES
from llmobs.core.model import Cost, Usage

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

logger = logging.getLogger("llmobs")

#: OpenTelemetry `gen_ai.provider.name` values (and a few common spellings) → genai-prices ids.
PROVIDER_ALIASES: dict[str, str] = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "vertexai": "google",
    "gemini": "google",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "moonshot_ai": "moonshotai",
}

OVERRIDE_SOURCE = "override"
_NS_PER_DAY = 86_400 * 10**9


def genai_prices_version() -> str:
    try:
        from genai_prices import __version__

        return str(__version__)
    except Exception:  # pragma: no cover - broken install
        return "unknown"


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A user's price for one model, in USD per million tokens."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None

    @classmethod
    def from_mapping(cls, model: str, data: Mapping[str, Any]) -> PriceOverride:
        try:
            return cls(
                input=float(data["input"]),
                output=float(data["output"]),
                cache_read=_opt_float(data.get("cache_read")),
                cache_write=_opt_float(data.get("cache_write")),
                reasoning=_opt_float(data.get("reasoning")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"price override for {model!r} needs numeric 'input' and 'output' (USD per million tokens): {exc}"
            ) from exc

    def cost(self, usage: Usage) -> Cost:
        inp = usage.input_tokens or 0
        out = usage.output_tokens or 0
        cache_read = usage.cache_read_tokens or 0
        cache_write = usage.cache_write_tokens or 0
        reasoning = usage.reasoning_tokens or 0
        uncached = max(0, inp - cache_read - cache_write)
        input_usd = (
            uncached * self.input
            + cache_read * (self.input if self.cache_read is None else self.cache_read)
            + cache_write * (self.input if self.cache_write is None else self.cache_write)
        ) / 1e6
        output_usd = (
            max(0, out - reasoning) * self.output
            + reasoning * (self.output if self.reasoning is None else self.reasoning)
        ) / 1e6
        return Cost(
            input_usd=input_usd, output_usd=output_usd, total_usd=input_usd + output_usd, source=OVERRIDE_SOURCE
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def load_price_file(path: str | Path) -> dict[str, PriceOverride]:
    """Read overrides from a TOML file (`[models."NAME"]` tables). Raises ValueError when malformed."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read price file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"price file {path} is not valid TOML: {exc}") from exc
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ValueError(f"price file {path}: [models] must be a table of model names")
    return {str(name): PriceOverride.from_mapping(name, spec) for name, spec in models.items()}


def normalise_model(model: str) -> tuple[str, str | None]:
    """Strip decorations genai-prices does not match: `models/` and a `provider/` prefix.

    Returns the bare model and the provider named by the prefix, if any.
    """
    name = model.strip()
    if name.startswith("models/"):
        name = name[len("models/") :]
    if "/" in name:
        prefix, rest = name.split("/", 1)
        if rest:
            return rest, prefix.lower()
    return name, None


class Pricer:
    """Prices usage for a model; thread-safe, lookups cached.

    Args:
        overrides: per-model prices that win over genai-prices (`*` globs allowed in names).
        read_env: also read the TOML file named by `LLMOBS_PRICES` (the arguments win over it).
    """

    def __init__(
        self, overrides: Mapping[str, PriceOverride | Mapping[str, Any]] | None = None, *, read_env: bool = True
    ) -> None:
        merged: dict[str, PriceOverride] = {}
        env_file = os.environ.get(LLMOBS_PRICES) if read_env else None
        if env_file:
            merged.update(load_price_file(env_file))
        for name, spec in (overrides or {}).items():
            merged[name] = spec if isinstance(spec, PriceOverride) else PriceOverride.from_mapping(name, spec)
        self._exact = {name.lower(): spec for name, spec in merged.items() if "*" not in name}
        self._globs = [(name.lower(), spec) for name, spec in merged.items() if "*" in name]
        self.source = f"genai-prices {genai_prices_version()}"
        self._calc = lru_cache(maxsize=4096)(self._calc_uncached)
        self._warned: set[str] = set()

    def options(self) -> dict[str, dict[str, float | None]]:
        """The overrides as `Pricer(overrides, read_env=False)` takes them (the store's writer process prices too)."""
        return {name: asdict(spec) for name, spec in [*self._exact.items(), *self._globs]}

    def override_for(self, model: str) -> PriceOverride | None:
        """The user's price for `model` (exact name, case-insensitive, else the first glob)."""
        if not self._exact and not self._globs:
            return None
        key = model.lower()
        found = self._exact.get(key)
        if found is not None:
            return found
        for pattern, spec in self._globs:
            if fnmatch.fnmatchcase(key, pattern):
                return spec
        return None

    def price(
        self,
        model: str | None,
        usage: Usage | None,
        provider: str | None = None,
        *,
        response_model: str | None = None,
        at_ns: int | None = None,
    ) -> Cost | None:
        """The cost of `usage` on `model` (else `response_model`), or None when it cannot be priced."""
        if usage is None or (usage.input_tokens is None and usage.output_tokens is None):
            # A total (or cache count) alone says nothing of what was bought: unknown, not free.
            return None
        for candidate in (model, response_model):
            if not candidate:
                continue
            override = self.override_for(candidate)
            if override is not None:
                return override.cost(usage)
        # Prices are looked up by UTC day (genai-prices knows dated price changes); an int day
        # number keeps the cache key cheap on the pipeline's hot path.
        day = at_ns // _NS_PER_DAY if at_ns else None
        key = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
            usage.reasoning_tokens,
        )
        for candidate in (model, response_model):
            if candidate:
                cost = self._calc(candidate, provider, key, day)
                if cost is not None:
                    # A fresh record per span: cached results are shared and must not be mutated.
                    return Cost(cost.input_usd, cost.output_usd, cost.total_usd, cost.source)
        return None

    def _calc_uncached(
        self, model: str, provider: str | None, usage_key: tuple[int | None, ...], day: int | None
    ) -> Cost | None:
        from genai_prices import Usage as GPUsage
        from genai_prices import calc_price

        bare, prefix_provider = normalise_model(model)
        provider_id = _provider_id(provider) or _provider_id(prefix_provider)
        inp, out, cache_read, cache_write, reasoning = usage_key
        values = {
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": cache_read,
            "cache_write_tokens": cache_write,
            "output_reasoning_tokens": reasoning,
        }
        gp_usage = GPUsage(**{k: v for k, v in values.items() if v})
        when = datetime.fromtimestamp(day * 86_400, tz=timezone.utc) if day is not None else None
        attempts: list[tuple[str, str | None]] = [(bare, provider_id)]
        if provider_id is not None and not _provider_known(provider_id):
            # A provider genai-prices does not know (a proxy, a fake): price by the model alone.
            attempts.append((bare, None))
        if bare != model:
            attempts.append((model, None))
        for model_ref, pid in attempts:
            try:
                result = calc_price(gp_usage, model_ref, provider_id=pid, genai_request_timestamp=when)
            except LookupError:
                continue
            except Exception as exc:  # inconsistent usage, a data problem: unknown, never free
                self._warn_once(model, f"llmobs: cannot price {model!r}: {exc}")
                return None
            return Cost(
                input_usd=float(result.input_price),
                output_usd=float(result.output_price),
                total_usd=float(result.total_price),
                source=self.source,
            )
        return None

    def _warn_once(self, model: str, message: str) -> None:
        if model not in self._warned:
            self._warned.add(model)
            logger.warning(message)


def _provider_id(provider: str | None) -> str | None:
    if not provider:
        return None
    key = provider.strip().lower()
    return PROVIDER_ALIASES.get(key, key)


@lru_cache(maxsize=256)
def _provider_known(provider_id: str) -> bool:
    from genai_prices import data_snapshot

    try:
        data_snapshot.get_snapshot().find_provider(None, provider_id, None)
    except LookupError:
        return False
    return True
