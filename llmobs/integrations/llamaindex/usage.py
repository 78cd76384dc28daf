"""Token usage and response model from a LlamaIndex `ChatResponse` / `CompletionResponse`.

Usage is provider-defined in LlamaIndex: each LLM integration puts the provider's raw response
(a dict, or the SDK's pydantic object) in `response.raw`. We read the three shapes in use:

- OpenAI chat completions: `raw.usage` = `prompt_tokens` (includes cached), `completion_tokens`
  (includes reasoning), `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`;
  the Responses API spells them `input_tokens` / `output_tokens` with `*_tokens_details`.
- Anthropic: `raw.usage` = `input_tokens` (excludes cache reads and writes), `output_tokens`,
  `cache_read_input_tokens`, `cache_creation_input_tokens`.
- Gemini: `raw.usage_metadata` = `prompt_token_count` (includes cached), `candidates_token_count`
  (excludes thoughts), `thoughts_token_count`, `cached_content_token_count`, `total_token_count`.

Else `response.additional_kwargs` `prompt_tokens` / `completion_tokens` / `total_tokens`, which is
what llama-index-llms-openai sets. Counts are normalised to the span model: input includes cached
tokens, output includes reasoning tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmobs.core.model import Usage, int_or_none


def field(obj: Any, name: str) -> Any:
    """`obj[name]` for a mapping, else `obj.name`; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_from_response(response: Any) -> Usage | None:
    """The normalised usage of one LLM response, or None when it reports none."""
    raw = field(response, "raw")
    usage = None
    raw_usage = field(raw, "usage")
    if raw_usage is not None:
        usage = _from_usage_block(raw_usage)
    if usage is None:
        metadata = field(raw, "usage_metadata")
        if metadata is not None:
            usage = _from_gemini(metadata)
    if usage is None:
        usage = _from_openai_style(field(response, "additional_kwargs"))
    return usage


def response_model_of(response: Any) -> str | None:
    """The model the provider says answered (`raw.model`, Gemini `raw.model_version`)."""
    raw = field(response, "raw")
    for name in ("model", "model_version"):
        value = field(raw, name)
        if isinstance(value, str) and value:
            return value
    return None


def _from_usage_block(u: Any) -> Usage | None:
    if field(u, "prompt_tokens") is not None or field(u, "completion_tokens") is not None:
        return _from_openai_style(u)
    if field(u, "input_tokens") is None and field(u, "output_tokens") is None:
        return None
    if field(u, "input_tokens_details") is not None or field(u, "output_tokens_details") is not None:
        # OpenAI Responses API: input already includes cached tokens.
        inp = int_or_none(field(u, "input_tokens"))
        out = int_or_none(field(u, "output_tokens"))
        return _make(
            inp,
            out,
            int_or_none(field(u, "total_tokens")),
            cache_read=int_or_none(field(field(u, "input_tokens_details"), "cached_tokens")),
            reasoning=int_or_none(field(field(u, "output_tokens_details"), "reasoning_tokens")),
        )
    # Anthropic: cache reads and writes are reported beside input_tokens, not inside it.
    cache_read = int_or_none(field(u, "cache_read_input_tokens"))
    cache_write = int_or_none(field(u, "cache_creation_input_tokens"))
    inp = int_or_none(field(u, "input_tokens"))
    if inp is not None:
        inp += (cache_read or 0) + (cache_write or 0)
    return _make(inp, int_or_none(field(u, "output_tokens")), None, cache_read=cache_read, cache_write=cache_write)


def _from_openai_style(u: Any) -> Usage | None:
    if u is None:
        return None
    inp = int_or_none(field(u, "prompt_tokens"))
    out = int_or_none(field(u, "completion_tokens"))
    if inp is None and out is None:
        inp = int_or_none(field(u, "input_tokens"))
        out = int_or_none(field(u, "output_tokens"))
        if inp is None and out is None:
            return None
    return _make(
        inp,
        out,
        int_or_none(field(u, "total_tokens")),
        cache_read=int_or_none(field(field(u, "prompt_tokens_details"), "cached_tokens")),
        reasoning=int_or_none(field(field(u, "completion_tokens_details"), "reasoning_tokens")),
    )


def _from_gemini(m: Any) -> Usage | None:
    inp = int_or_none(field(m, "prompt_token_count"))
    candidates = int_or_none(field(m, "candidates_token_count"))
    thoughts = int_or_none(field(m, "thoughts_token_count"))
    if inp is None and candidates is None:
        return None
    out = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    return _make(
        inp,
        out,
        int_or_none(field(m, "total_token_count")),
        cache_read=int_or_none(field(m, "cached_content_token_count")),
        reasoning=thoughts,
    )


def _make(
    inp: int | None,
    out: int | None,
    total: int | None,
    *,
    cache_read: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
) -> Usage:
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
        reasoning_tokens=reasoning or None,
    )
