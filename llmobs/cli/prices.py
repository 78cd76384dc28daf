"""`llmobs prices`: what a call with these token counts costs, priced exactly as spans are."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from llmobs.cli.options import make_console
from llmobs.cli.render import fmt_tokens
from llmobs.core.model import Usage
from llmobs.core.pricing import OVERRIDE_SOURCE, Pricer, normalise_model

_TOKENS = click.IntRange(min=0)


def _usd(value: float) -> str:
    return f"${value:.10f}".rstrip("0").rstrip(".") if value else "$0"


def describe_match(model: str, provider: str | None) -> dict[str, Any] | None:
    """The genai-prices model and provider a name resolves to, and its price per million tokens."""
    from genai_prices import Usage as GPUsage
    from genai_prices import calc_price

    from llmobs.core.pricing import PROVIDER_ALIASES

    bare, prefix = normalise_model(model)
    pid = provider or prefix
    pid = PROVIDER_ALIASES.get(pid.lower(), pid.lower()) if pid else None
    for model_ref, provider_id in ((bare, pid), (bare, None), (model, None)):
        try:
            result = calc_price(GPUsage(input_tokens=1), model_ref, provider_id=provider_id)
        except LookupError:
            continue
        except Exception:
            return None
        return {
            "model_id": result.model.id,
            "model_name": result.model.name,
            "provider_id": result.provider.id,
            "provider_name": result.provider.name,
            "prices_per_mtok": str(result.model_price),
        }
    return None


@click.command()
@click.argument("model")
@click.option(
    "--input", "input_tokens", type=_TOKENS, default=0, show_default=True, help="Input tokens (cached included)."
)
@click.option(
    "--output", "output_tokens", type=_TOKENS, default=0, show_default=True, help="Output tokens (reasoning included)."
)
@click.option("--cache-read", type=_TOKENS, default=0, show_default=True, help="Of the input, tokens read from cache.")
@click.option(
    "--cache-write", type=_TOKENS, default=0, show_default=True, help="Of the input, tokens written to cache."
)
@click.option("--reasoning", type=_TOKENS, default=0, show_default=True, help="Of the output, reasoning tokens.")
@click.option("--provider", default=None, help="Provider id or OTel name (openai, anthropic, gcp.gemini, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prices(
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
    reasoning: int,
    provider: str | None,
    as_json: bool,
) -> None:
    """Price a model call: the cost breakdown and total, as llmobs prices spans.

    Prices come from genai-prices' bundled data (offline), with your overrides from
    LLMOBS_PRICES winning. An unknown model exits with status 1: it is never shown as free.

    \b
    Examples:
      llmobs prices gpt-4o-mini --input 1200 --output 150 --cache-read 1024
      llmobs prices o3-mini --input 900 --output 420 --reasoning 256
      llmobs prices claude-sonnet-4-5 --provider anthropic --input 50000 --output 800 --cache-write 40000
      llmobs prices gpt-4o --input 1000 --output 200 --json
    """
    if cache_read + cache_write > input_tokens:
        raise click.BadParameter("--cache-read plus --cache-write cannot exceed --input (input includes cached)")
    if reasoning > output_tokens:
        raise click.BadParameter("--reasoning cannot exceed --output (output includes reasoning)")
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        cache_read_tokens=cache_read or None,
        cache_write_tokens=cache_write or None,
        reasoning_tokens=reasoning or None,
    )
    try:
        pricer = Pricer()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    cost = pricer.price(model, usage, provider)
    if cost is None:
        where = f" from provider {provider!r}" if provider else ""
        click.echo(
            f"llmobs: no price known for model {model!r}{where}: genai-prices has no such model and no "
            "override matches (add one in the file named by LLMOBS_PRICES)",
            err=True,
        )
        raise SystemExit(1)
    match = describe_match(model, provider) if cost.source != OVERRIDE_SOURCE else None
    result = {
        "model": model,
        "provider": provider,
        "usage": usage.to_dict(),
        "cost": cost.to_dict(),
        "match": match,
    }
    if as_json:
        click.echo(json.dumps(result))
        return
    console = make_console()
    if match is not None:
        console.print(f"[bold]{match['model_name']}[/] ({match['provider_name']}: {match['model_id']})")
        console.print(f"[dim]{match['prices_per_mtok']}[/]")
    else:
        console.print(f"[bold]{model}[/] [dim](your override price)[/]")
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(justify="left")
    table.add_column(justify="right")
    table.add_column(justify="right")
    uncached = input_tokens - cache_read - cache_write
    detail = ", ".join(
        part
        for part in (
            f"{fmt_tokens(uncached)} uncached" if (cache_read or cache_write) else "",
            f"{fmt_tokens(cache_read)} cache read" if cache_read else "",
            f"{fmt_tokens(cache_write)} cache write" if cache_write else "",
        )
        if part
    )
    table.add_row("input", f"{input_tokens:,} tok" + (f" ({detail})" if detail else ""), _usd(cost.input_usd))
    out_detail = f" ({fmt_tokens(reasoning)} reasoning)" if reasoning else ""
    table.add_row("output", f"{output_tokens:,} tok{out_detail}", _usd(cost.output_usd))
    table.add_row("[bold]total[/]", "", f"[bold green]{_usd(cost.total_usd)}[/]")
    console.print(table)
    console.print(f"[dim]{cost.source}[/]")
