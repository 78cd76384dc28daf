"""The driver shared by the overhead benchmarks (LangChain, LlamaIndex, OpenAI Agents).

Each benchmark measures one configuration per worker: its own script, started again in a fresh
interpreter with `--worker CONFIG`, prints its figures per variant as the last line of stdout. The
driver runs every configuration once per round, alternating the order from round to round so that
drift (thermal, caches, other load) does not always favour the same configuration, and reports
medians over rounds of "configuration minus baseline" measured in the same round.

    import _overhead as driver

    COUNT = driver.CountOption("calls", full=2000, quick=200, help="calls per timed block (...)")
    WARMUP = driver.CountOption("warmup", full=200, quick=30, help="untimed calls before each block (...)")

    def main() -> int:
        options = driver.parse_options(__doc__, CONFIGS, VARIANTS, COUNT, WARMUP)
        if options.worker:
            return driver.serve_worker(worker, options)
        results = driver.run_rounds(__file__, options, dict(os.environ))
        driver.print_overhead_table(results, options.variants, LABELS, keys=("wall_us", "cpu_us"), unit="call")
        wall = driver.median_overhead(results, "llmobs", "simple", "wall_us")

What a worker measures, its environment, the labels, the goal lines and which figures make a
cell stay in each benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

#: The configuration every other one is compared against (nothing attached).
BASELINE = "none"
#: Rounds when `--rounds` is not given: a full run, and a `--quick` smoke run.
ROUNDS = 5
QUICK_ROUNDS = 2

#: Results per configuration: one worker's figures per round, `{variant: {key: value}}`.
Results = Mapping[str, Sequence[Mapping[str, Any]]]
#: A benchmark's measurement: `(config, variants, count, warmup) -> {variant: {key: value}}`.
Worker = Callable[[str, list[str], int, int], Mapping[str, Any]]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CountOption:
    """An option `--{name} N` whose default depends on `--quick`."""

    name: str
    full: int
    quick: int
    help: str

    def default(self, quick: bool) -> int:
        """The value when the option is not given."""
        return self.quick if quick else self.full


@dataclass(frozen=True, slots=True)
class Options:
    """A benchmark's command line, every default resolved."""

    #: The configurations to compare, the baseline among them (first if it was left out).
    configs: list[str]
    variants: list[str]
    #: Calls (or runs) per timed block, and its option's name.
    count: int
    count_name: str
    #: Untimed calls before each block.
    warmup: int
    rounds: int
    #: Print the raw results as JSON after the table.
    json: bool
    #: Set in a worker: the one configuration to measure.
    worker: str | None

    def worker_args(self) -> list[str]:
        """The arguments after `--worker CONFIG` that make a worker measure what these options say."""
        return [
            *("--variants", ",".join(self.variants)),
            *(f"--{self.count_name}", str(self.count), "--warmup", str(self.warmup)),
        ]


def parse_options(
    description: str, configs: Sequence[str], variants: Sequence[str], count: CountOption, warmup: CountOption
) -> Options:
    """Parse the command line every overhead benchmark takes.

    In this order: `--quick`, `--{count.name}`, `--rounds`, `--warmup`, `--configs`, `--variants`,
    `--json`, and the hidden `--worker CONFIG` with which `run_worker` starts the script again.

    Args:
        description: the benchmark's module docstring (printed as is by `--help`).
        configs: all configurations, the default of `--configs`.
        variants: all variants, the default of `--variants`.
        count: how many calls (or runs) go in a timed block; 0 means the default.
        warmup: how many untimed calls go before each block; 0 is allowed.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument(f"--{count.name}", type=int, help=count.help)
    parser.add_argument("--rounds", type=int, help=f"rounds (default {ROUNDS}; quick {QUICK_ROUNDS})")
    parser.add_argument(f"--{warmup.name}", type=int, help=warmup.help)
    parser.add_argument("--configs", default=",".join(configs), help="comma-separated configurations")
    parser.add_argument("--variants", default=",".join(variants), help="comma-separated variants")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    warmup_given = getattr(args, warmup.name)
    return Options(
        configs=with_baseline(args.configs),
        variants=comma_list(args.variants),
        count=getattr(args, count.name) or count.default(args.quick),
        count_name=count.name,
        warmup=warmup_given if warmup_given is not None else warmup.default(args.quick),
        rounds=args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS),
        json=args.json,
        worker=args.worker,
    )


def comma_list(names: str) -> list[str]:
    """The names in a comma-separated option such as `--variants`, empty ones dropped."""
    return [name for name in names.split(",") if name]


def with_baseline(configs: str) -> list[str]:
    """The comma-separated configurations as a list, with the baseline first if it was left out."""
    names = comma_list(configs)
    if BASELINE not in names:
        names.insert(0, BASELINE)
    return names


def total_cpu() -> float:
    """CPU seconds used so far by this process (every thread) and by llmobs' store writer process.

    The writer's figure is the one it reported at the last `llmobs.flush()`: read this right
    after a flush. Configurations without llmobs have no writer (llmobs is not even imported).
    """
    cpu = time.process_time()
    llmobs = sys.modules.get("llmobs")
    if llmobs is not None:
        try:
            for sink in llmobs.health()["sinks"].values():
                cpu += float(sink.get("writer_cpu_s") or 0.0)
        except Exception:  # not configured: nothing was written
            pass
    return cpu


def serve_worker(worker: Worker, options: Options) -> int:
    """Measure `options.worker` in this process and print the figures as one JSON line; the exit status.

    This is the other end of `run_worker`, which reads that line.
    """
    assert options.worker is not None
    print(json.dumps(worker(options.worker, options.variants, options.count, options.warmup)))
    return 0


def run_worker(script: str, config: str, args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """Run `script --worker CONFIG *args` in a fresh interpreter and return the dict it printed.

    Args:
        script: the benchmark's own path (its `__file__`); it must answer `--worker`.
        config: the configuration to measure.
        args: the further worker arguments, e.g. `["--variants", "simple", "--calls", "200"]`.
        env: the worker's environment; `LLMOBS_DB` is set on top of it to a fresh temporary
            database, removed when the worker ends.

    Raises:
        SystemExit: the worker exited non-zero (the message carries the tail of its stderr).
    """
    worker_env = dict(env)
    with tempfile.TemporaryDirectory() as tmp:
        worker_env["LLMOBS_DB"] = os.path.join(tmp, "bench.db")
        proc = subprocess.run(
            [sys.executable, script, "--worker", config, *args],
            env=worker_env,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"worker {config} failed:\n{proc.stderr[-4000:]}")
    # Only the last line is the result: libraries may print their own notices before it.
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def round_order(configs: Sequence[str], round_index: int) -> list[str]:
    """The order in which round `round_index` (from 0) runs the configurations.

    Rotated by the round number, and reversed on odd rounds, so that each configuration runs
    early and late, and next to different neighbours.
    """
    shift = round_index % len(configs)
    order = [*configs[shift:], *configs[:shift]]
    if round_index % 2:
        order.reverse()
    return order


def alternate_rounds(configs: Sequence[str], rounds: int, run_one: Callable[[str], T]) -> dict[str, list[T]]:
    """Run every configuration once per round in `round_order`; `{config: [result per round]}`.

    Progress goes to stderr, one line per finished configuration. The dict keeps the order of
    `configs`, so it prints (and dumps to JSON) in the order the user asked for.
    """
    results: dict[str, list[T]] = {c: [] for c in configs}
    for r in range(rounds):
        for config in round_order(configs, r):
            results[config].append(run_one(config))
            print(f"round {r + 1}/{rounds}: {config} done", file=sys.stderr)
    return results


def run_rounds(script: str, options: Options, env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """`alternate_rounds` over the configurations of `options`, each in a worker of `script` with `env`."""
    args = options.worker_args()
    return alternate_rounds(options.configs, options.rounds, lambda config: run_worker(script, config, args, env))


def median_baseline(results: Results, variant: str, key: str) -> float:
    """The baseline's own figure `key` for `variant`, median over rounds."""
    return float(statistics.median(x[variant][key] for x in results[BASELINE]))


def median_overhead(results: Results, config: str, variant: str, key: str) -> float:
    """The median over rounds of `config` minus the baseline of the same round, for `variant`'s `key`."""
    rounds = zip(results[config], results[BASELINE], strict=True)
    return float(statistics.median(ours[variant][key] - base[variant][key] for ours, base in rounds))


def baseline_summary(results: Results, variants: Sequence[str], name: str) -> str:
    """`"{name} = W1 / W2 µs wall, C1 / C2 µs CPU"`: the baseline's own medians, one per variant."""
    walls = " / ".join(f"{median_baseline(results, v, 'wall_us'):.0f}" for v in variants)
    cpus = " / ".join(f"{median_baseline(results, v, 'cpu_us'):.0f}" for v in variants)
    return f"{name} = {walls} µs wall, {cpus} µs CPU"


def print_overhead_table(
    results: Results,
    variants: Sequence[str],
    labels: Mapping[str, str],
    *,
    keys: Sequence[str],
    unit: str,
) -> None:
    """Print a Markdown table of median overheads: a row per configuration but the baseline.

    Args:
        results: as `alternate_rounds` returns them; the rows follow its order.
        variants: one column each.
        labels: the row title of a configuration (its name if it has none).
        keys: the figures of a cell, joined by " / ", e.g. `("wall_us", "cpu_us")` gives
            `+12 / +15`.
        unit: what one timed call is, e.g. `"call"` or `"run"`: the last column shows the worker's
            `spans_per_{unit}` of the last round, headed `spans/{unit}`.
    """
    print("| configuration | " + " | ".join(variants) + f" | spans/{unit} |")
    print("|---|" + "---|" * len(variants) + "---|")
    for config in results:
        if config == BASELINE:
            continue
        cells = [" / ".join(f"+{median_overhead(results, config, v, k):.0f}" for k in keys) for v in variants]
        spans = "/".join(f"{results[config][-1][v][f'spans_per_{unit}']:.0f}" for v in variants)
        print(f"| {labels.get(config, config)} | " + " | ".join(cells) + f" | {spans} |")
