"""Pricing equals genai-prices for the same usage; unknown models are unpriced, never free."""

from __future__ import annotations

from pathlib import Path

import genai_prices
import pytest
from genai_prices import Usage as GPUsage

import llmobs
from llmobs.core.model import Usage
from llmobs.core.pricing import PriceOverride, Pricer, load_price_file, normalise_model
from tests.conftest import Recorder

# (model, provider as the integrations report it, usage)
CASES = [
    ("gpt-4o", "openai", Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=4_000)),
    ("gpt-4o-2024-08-06", None, Usage(input_tokens=10_000, output_tokens=1_000)),
    ("gpt-4o-mini", "openai", Usage(input_tokens=12_345, output_tokens=678, cache_read_tokens=1_024)),
    ("gpt-4.1", "openai", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("o3", "openai", Usage(input_tokens=10_000, output_tokens=1_000, reasoning_tokens=600)),
    ("o3-mini", "openai", Usage(input_tokens=900, output_tokens=420, reasoning_tokens=256)),
    (
        "gpt-5",
        "openai",
        Usage(input_tokens=10_000, output_tokens=2_000, cache_read_tokens=5_000, reasoning_tokens=1_500),
    ),
    (
        "claude-sonnet-4-5",
        "anthropic",
        Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=2_000),
    ),
    ("claude-sonnet-4-5-20250929", "anthropic", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("claude-sonnet-4-5", "anthropic", Usage(input_tokens=250_000, output_tokens=1_000)),  # long-context tier
    ("claude-3-5-haiku-latest", "anthropic", Usage(input_tokens=10_000, output_tokens=1_000, cache_write_tokens=3_000)),
    ("claude-opus-4-1", "anthropic", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("gemini-2.5-pro", "gcp.gemini", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("gemini-2.5-pro", "gcp.vertex_ai", Usage(input_tokens=250_000, output_tokens=1_000)),  # long-context tier
    ("gemini-2.5-flash", "gcp.gemini", Usage(input_tokens=10_000, output_tokens=1_000, reasoning_tokens=400)),
    ("mistral-large-latest", "mistral_ai", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("mistral-small-latest", "mistral_ai", Usage(input_tokens=10_000, output_tokens=1_000)),
    ("codestral-latest", "mistral_ai", Usage(input_tokens=10_000, output_tokens=1_000)),
]

GP_PROVIDER = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "mistral_ai": "mistral",
    None: None,
}


def reference_price(model: str, provider: str | None, usage: Usage) -> genai_prices.types.PriceCalculation:
    values = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "output_reasoning_tokens": usage.reasoning_tokens,
    }
    gp_usage = GPUsage(**{k: v for k, v in values.items() if v})
    return genai_prices.calc_price(gp_usage, model, provider_id=GP_PROVIDER[provider])


@pytest.mark.parametrize(("model", "provider", "usage"), CASES, ids=[f"{m}-{p}-{u.input_tokens}" for m, p, u in CASES])
def test_price_equals_genai_prices(model: str, provider: str | None, usage: Usage) -> None:
    expected = reference_price(model, provider, usage)
    cost = Pricer(read_env=False).price(model, usage, provider)
    assert cost is not None
    assert cost.input_usd == float(expected.input_price)
    assert cost.output_usd == float(expected.output_price)
    assert cost.total_usd == float(expected.total_price)
    assert cost.source == f"genai-prices {genai_prices.__version__}"


def test_cached_tokens_are_cheaper_and_the_tier_is_applied() -> None:
    pricer = Pricer(read_env=False)
    full = pricer.price("gpt-4o", Usage(input_tokens=10_000, output_tokens=0), "openai")
    cached = pricer.price("gpt-4o", Usage(input_tokens=10_000, output_tokens=0, cache_read_tokens=4_000), "openai")
    assert full is not None and cached is not None
    assert full.input_usd == pytest.approx(0.025)
    assert cached.input_usd == pytest.approx(0.020)  # 6000 x $2.50 + 4000 x $1.25 per million
    long = pricer.price("claude-sonnet-4-5", Usage(input_tokens=250_000, output_tokens=1_000), "anthropic")
    assert long is not None and long.total_usd == pytest.approx(1.5225)  # $6 / $22.50 above 200k


def test_unknown_model_is_unpriced_not_free() -> None:
    pricer = Pricer(read_env=False)
    assert pricer.price("totally-made-up-model", Usage(input_tokens=10, output_tokens=5), "openai") is None
    assert pricer.price("totally-made-up-model", Usage(input_tokens=10, output_tokens=5)) is None
    assert pricer.price(None, Usage(input_tokens=10, output_tokens=5)) is None
    assert pricer.price("gpt-4o", None) is None


def test_unknown_model_span_counts_as_unpriced(recorder: Recorder) -> None:
    with llmobs.span("chat mystery", kind="llm", model="mystery-model-9000") as s:
        s.usage = Usage(input_tokens=10, output_tokens=5)
    with llmobs.span("chat gpt-4o", kind="llm", model="gpt-4o", provider="openai") as s:
        s.usage = Usage(input_tokens=10, output_tokens=5)
    spans = {s.name: s for s in recorder.spans()}
    assert spans["chat mystery"].cost is None
    assert spans["chat mystery"].to_dict()["cost"] is None
    assert spans["chat gpt-4o"].cost is not None
    health = llmobs.health()
    assert health["unpriced"] == 1
    assert health["priced"] == 1


def test_usage_on_a_non_model_span_is_not_priced(recorder: Recorder) -> None:
    # Agent frameworks report aggregate usage on turn/task spans; pricing it would count it twice.
    with llmobs.span("turn 1", kind="chain", model="gpt-4o") as s:
        s.usage = Usage(input_tokens=100, output_tokens=10)
    (span,) = recorder.spans()
    assert span.cost is None
    assert llmobs.health()["unpriced"] == 0


def test_provider_aliases_and_model_prefixes() -> None:
    pricer = Pricer(read_env=False)
    usage = Usage(input_tokens=1_000, output_tokens=100)
    direct = pricer.price("gemini-2.5-flash", usage, "gcp.gemini")
    assert direct is not None
    assert pricer.price("models/gemini-2.5-flash", usage, "gcp.gen_ai") == direct
    assert pricer.price("gemini-2.5-flash", usage, "some-proxy-we-do-not-know") == direct
    assert normalise_model("anthropic/claude-sonnet-4-5") == ("claude-sonnet-4-5", "anthropic")


def test_override_from_configure_wins(recorder: Recorder) -> None:
    llmobs.configure(
        sinks=[recorder.sink],
        flush_interval=0.005,
        prices={"gpt-4o": {"input": 1.0, "output": 2.0, "cache_read": 0.5}, "my-finetune-*": {"input": 3, "output": 4}},
    )
    with llmobs.span("a", kind="llm", model="gpt-4o", provider="openai") as s:
        s.usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=200_000)
    with llmobs.span("b", kind="llm", model="my-finetune-v2") as s:
        s.usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    a, b = recorder.by_name("a"), recorder.by_name("b")
    assert a.cost is not None and a.cost.source == "override"
    assert a.cost.input_usd == pytest.approx(0.8 + 0.1)
    assert a.cost.output_usd == pytest.approx(1.0)
    assert b.cost is not None and b.cost.total_usd == pytest.approx(7.0)


def test_override_from_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."house-model"]\ninput = 2.0\noutput = 8.0\nreasoning = 10.0\n')
    monkeypatch.setenv("LLMOBS_PRICES", str(prices))
    cost = Pricer().price(
        "house-model", Usage(input_tokens=1_000_000, output_tokens=1_000_000, reasoning_tokens=500_000)
    )
    assert cost is not None
    assert cost.input_usd == pytest.approx(2.0)
    assert cost.output_usd == pytest.approx(0.5 * 8.0 + 0.5 * 10.0)
    # configure() arguments win over the file.
    argument = Pricer({"house-model": PriceOverride(input=1.0, output=1.0)})
    assert argument.price("house-model", Usage(input_tokens=1_000_000, output_tokens=0)) is not None
    assert argument.price("house-model", Usage(input_tokens=1_000_000, output_tokens=0)).total_usd == 1.0  # type: ignore[union-attr]


def test_malformed_price_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[models."x"]\ninput = "cheap"\n')
    with pytest.raises(ValueError, match="needs numeric 'input' and 'output'"):
        load_price_file(bad)
    bad.write_text("not toml [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_price_file(bad)


def test_a_bad_price_file_in_the_environment_does_not_break_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("not toml [")
    monkeypatch.setenv("LLMOBS_PRICES", str(bad))
    with llmobs.span("still works", kind="llm", model="gpt-4o") as s:
        s.usage = Usage(input_tokens=10, output_tokens=1)
    assert llmobs.flush()
    assert "configuration from the environment failed" in caplog.text
    assert llmobs.health()["exported"] == 1


def test_pipeline_prices_with_the_spans_own_fields(recorder: Recorder) -> None:
    with llmobs.span("chat", kind="llm", model="claude-sonnet-4-5", provider="anthropic") as s:
        s.usage = Usage(input_tokens=10_000, output_tokens=1_000, cache_read_tokens=6_000, cache_write_tokens=2_000)
    span = recorder.by_name("chat")
    expected = reference_price("claude-sonnet-4-5", "anthropic", span.usage)  # type: ignore[arg-type]
    assert span.cost is not None and span.cost.total_usd == float(expected.total_price)
