"""The driver shared by the overhead benchmarks (LangChain, LlamaIndex, OpenAI Agents).

Each configuration is measured in a worker of its own: the benchmark's script, started again in a
fresh interpreter with `--worker CONFIG`, sets the configuration up once and then runs one timed
block per variant name it reads on stdin, answering each with a JSON line. Every round starts a
worker per configuration and interleaves their blocks: each variant is measured in every
configuration back to back, in an order that changes from variant to variant and round to
round. A configuration and the baseline it is compared with are so measured seconds apart, not
a whole round apart, drift (other load on the machine, thermal, caches) does not always favour
the same configuration, and neither does a process's own speed (fresh processes each round).
The tables show medians over rounds of "configuration minus baseline" in the same round.

    import _overhead as driver

    COUNT = driver.CountOption("calls", full=2000, quick=200, help="calls per timed block (...)")
    WARMUP = driver.CountOption("warmup", full=200, quick=30, help="untimed calls before each block (...)")

    def session(config: str) -> driver.Block:
        ...  # set the configuration up, once
        def block(variant: str, count: int, warmup: int) -> dict[str, float]: ...
        return block

    def main() -> int:
        options = driver.parse_options(__doc__, CONFIGS, VARIANTS, COUNT, WARMUP)
        if options.worker:
            return driver.serve_worker(session, options)
        results = driver.run_rounds(__file__, options, dict(os.environ))
        driver.print_overhead_table(results, options.variants, LABELS, keys=("wall_us", "cpu_us"), unit="call")
        wall = driver.median_overhead(results, "llmobs", "simple", "wall_us")

What a block measures, the worker's environment, the labels, the goal lines and which figures
make a cell stay in each benchmark.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The configuration every other one is compared against (nothing attached).
BASELINE = "none"
#: Rounds when `--rounds` is not given: a full run, and a `--quick` smoke run.
ROUNDS = 5
QUICK_ROUNDS = 2

#: Results per configuration: its figures per round, `{variant: {key: value}}`.
Results = Mapping[str, Sequence[Mapping[str, Any]]]
#: One timed block in a worker: `(variant, count, warmup) -> {key: value}`.
Block = Callable[[str, int, int], Mapping[str, Any]]
#: A benchmark's measurement: set a configuration up once, return its block function.
Session = Callable[[str], Block]

#: What starts the line that carries a block's figures (libraries may print their own lines).
RESULT_MARK = "@@overhead-result "


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
    `--json`, and the hidden `--worker CONFIG` with which `run_rounds` starts the script again.

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


class FullCollections:
    """Counts the garbage collector's full collections, and the time they take, while entered.

    Recorded with each block (`full_gcs`, `full_gc_ms` in `--json`): a full collection walks every
    object of the process and takes tens of ms, so a few of them in a block explain a jump of
    hundreds of µs per call in that block's figures.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def figures(self) -> dict[str, float]:
        return {"full_gcs": self.count, "full_gc_ms": self.seconds * 1e3}

    def _callback(self, phase: str, info: Mapping[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._started


def draining_count(exporter: Any) -> Callable[[], int]:
    """A count of the spans an OTel `InMemorySpanExporter` received so far that empties it each time.

    A worker serves one block per variant: an exporter that kept every span would grow its
    process's heap from block to block (and its garbage collections with it). Call it after a
    flush only.
    """
    total = 0

    def count() -> int:
        nonlocal total
        total += len(exporter.get_finished_spans())
        exporter.clear()
        return total

    return count


def serve_worker(session: Session, options: Options) -> int:
    """Set up `options.worker`, then run one block per variant name read from stdin; the exit status.

    Each block's figures go to stdout as one JSON line after `RESULT_MARK`. This is the other end
    of `run_rounds`, which stops the worker by closing its stdin.
    """
    assert options.worker is not None
    block = session(options.worker)
    for line in sys.stdin:
        variant = line.strip()
        if variant:
            figures = block(variant, options.count, options.warmup)
            print(RESULT_MARK + json.dumps(figures), flush=True)
    return 0


class _Worker:
    """A running worker of one configuration, with a fresh temporary `LLMOBS_DB`."""

    def __init__(self, script: str, config: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.config = config
        self._tmp = tempfile.TemporaryDirectory()
        self._stderr = open(os.path.join(self._tmp.name, "stderr"), "w+")  # noqa: SIM115 - closed in close()
        worker_env = dict(env)
        worker_env["LLMOBS_DB"] = os.path.join(self._tmp.name, "bench.db")
        self._proc = subprocess.Popen(
            [sys.executable, script, "--worker", config, *args],
            env=worker_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def run(self, variant: str) -> dict[str, Any]:
        """Run one block of `variant`; its figures. SystemExit (with the worker's stderr) if it died."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(variant + "\n")
            proc.stdin.flush()
            for line in proc.stdout:
                if line.startswith(RESULT_MARK):
                    return dict(json.loads(line[len(RESULT_MARK) :]))
        except BrokenPipeError:
            pass
        proc.wait()
        self._stderr.seek(0)
        raise SystemExit(f"worker {self.config} failed (status {proc.returncode}):\n{self._stderr.read()[-4000:]}")

    def close(self) -> None:
        proc = self._proc
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            self._stderr.close()
            self._tmp.cleanup()


def round_order(configs: Sequence[str], turn: int) -> list[str]:
    """The order of the configurations in turn `turn` (from 0; one turn per round and variant).

    Rotated by the turn number, and reversed on odd turns, so that each configuration runs
    early and late, and next to different neighbours.
    """
    shift = turn % len(configs)
    order = [*configs[shift:], *configs[:shift]]
    if turn % 2:
        order.reverse()
    return order


def run_rounds(script: str, options: Options, env: Mapping[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Measure every variant of every configuration once per round, interleaved; `{config: [figures per round]}`.

    Each round starts a fresh worker of `script` per configuration (with `env`): a process's own
    speed (its memory layout, hash seed) then varies from round to round instead of favouring one
    configuration for the whole run. Within the round each variant is timed in every
    configuration back to back. The dict keeps the order of `options.configs`, so it prints (and
    dumps to JSON) in the order asked for. Progress goes to stderr, a line per variant and round.
    """
    configs, variants = options.configs, options.variants
    args = options.worker_args()
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for r in range(options.rounds):
        workers: dict[str, _Worker] = {}
        try:
            for config in configs:
                workers[config] = _Worker(script, config, args, env)
            figures: dict[str, dict[str, Any]] = {c: {} for c in configs}
            for i, variant in enumerate(variants):
                for config in round_order(configs, r * len(variants) + i):
                    figures[config][variant] = workers[config].run(variant)
                print(f"round {r + 1}/{options.rounds}: {variant} done", file=sys.stderr)
        finally:
            for worker in workers.values():
                worker.close()
        for config in configs:
            results[config].append(figures[config])
    return results


def median_baseline(results: Results, variant: str, key: str) -> float:
    """The baseline's own figure `key` for `variant`, median over rounds."""
    return float(statistics.median(x[variant][key] for x in results[BASELINE]))


def median_overhead(results: Results, config: str, variant: str, key: str) -> float:
    """The median over rounds of `config` minus the baseline of the same round, for `variant`'s `key`."""
    rounds = zip(results[config], results[BASELINE], strict=True)
    return float(statistics.median(ours[variant][key] - base[variant][key] for ours, base in rounds))


def overhead_quartiles(results: Results, config: str, variant: str, key: str) -> tuple[float, float, float]:
    """The quartiles over rounds of `config` minus the baseline of the same round (as `median_overhead`).

    How far apart rounds of the same code land: on a noisy machine, further than a goal's margin.
    """
    rounds = [
        ours[variant][key] - base[variant][key] for ours, base in zip(results[config], results[BASELINE], strict=True)
    ]
    if len(rounds) < 2:
        return (rounds[0],) * 3 if rounds else (0.0, 0.0, 0.0)
    low, mid, high = statistics.quantiles(rounds, n=4, method="inclusive")
    return low, mid, high


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

    Under the table, the full garbage collections per timed block of each configuration (see
    `FullCollections`), one figure per variant: the most any round had.
    """
    print("| configuration | " + " | ".join(variants) + f" | spans/{unit} |")
    print("|---|" + "---|" * len(variants) + "---|")
    for config in results:
        if config == BASELINE:
            continue
        cells = [" / ".join(f"+{median_overhead(results, config, v, k):.0f}" for k in keys) for v in variants]
        spans = "/".join(f"{results[config][-1][v][f'spans_per_{unit}']:.0f}" for v in variants)
        print(f"| {labels.get(config, config)} | " + " | ".join(cells) + f" | {spans} |")
    most = {
        config: "/".join(str(max(int(r[v].get("full_gcs", 0)) for r in rounds)) for v in variants)
        for config, rounds in results.items()
    }
    print(
        "\nfull garbage collections per timed block, most in any round: "
        + ", ".join(f"{c} {n}" for c, n in most.items())
    )
