"""`llmobs demo`: record example traces into the store, offline, and show them.

From a source checkout it runs the examples in `examples/` (one per installed framework, with
fake models); from an installed package, which does not ship them, a built-in scenario of
manual spans. `--loop` keeps recording so `llmobs tail` in another terminal has something to show.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import click

import llmobs
from llmobs.cli.options import make_console
from llmobs.cli.render import fmt_cost, fmt_ms, fmt_tokens, trace_totals, trace_tree
from llmobs.core import store
from llmobs.core.config import LLMOBS_DB, default_db_path
from llmobs.core.model import Usage

SERVICE = "llmobs-demo"


def examples_dir() -> Path | None:
    """The source tree's `examples/` folder, when llmobs runs from a checkout."""
    folder = Path(llmobs.__file__).resolve().parents[1] / "examples"
    return folder if (folder / "demo.py").is_file() else None


def _load_examples(folder: Path) -> list[tuple[str, Callable[[], list[str]]]]:
    """(name, run) of every example whose framework is installed, in examples/demo.py's order."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("llmobs_examples_demo", folder / "demo.py")
    if spec is None or spec.loader is None:
        return []
    demo: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    found = []
    for name, framework in demo.EXAMPLES.items():
        if not (folder / f"{name}.py").exists() or not demo._installed(framework):
            continue
        module = importlib.import_module(name)
        found.append((name, module.run))
    return found


def builtin_scenario() -> list[str]:
    """A support agent from manual spans: plan, retrieve, a tool that fails once, answer."""
    with llmobs.span("support-agent", kind="agent", input="Where is my refund for order 42?") as root:
        root.agent = {"name": "support-agent"}
        root.attributes["session_id"] = f"demo-{random.randint(1, 3)}"
        with llmobs.span("chat gpt-4o-mini", kind="llm", model="gpt-4o-mini", provider="openai") as s:
            s.input = [{"role": "user", "content": "Plan how to answer: Where is my refund for order 42?"}]
            time.sleep(0.02)
            s.ttft_ms = 8.0
            s.usage = Usage(input_tokens=1200, output_tokens=150, total_tokens=1350, cache_read_tokens=1024)
            s.output = {"role": "assistant", "content": "Look up the order, then check the refund policy."}
        with llmobs.span("retrieve refund policy", kind="retriever", input="refund policy") as r:
            time.sleep(0.004)
            r.documents = [{"id": "kb-17", "score": 0.82, "content": "Refunds are issued within 5 business days."}]
        for attempt in range(2):
            try:
                with llmobs.span("lookup_order", kind="tool", input={"order_id": "42"}) as t:
                    t.tool = {"name": "lookup_order", "call_id": f"call_{attempt}"}
                    time.sleep(0.005)
                    if attempt == 0:
                        raise TimeoutError("order service did not answer in 5s")
                    t.output = {"order_id": "42", "status": "refunded"}
                break
            except TimeoutError:
                continue
        with llmobs.span("chat o3-mini", kind="llm", model="o3-mini", provider="openai") as s:
            s.input = [{"role": "user", "content": "Order 42 refunded. Policy: 5 business days."}]
            time.sleep(0.02)
            s.ttft_ms = 9.0
            s.usage = Usage(input_tokens=900, output_tokens=420, total_tokens=1320, reasoning_tokens=256)
            s.output = {"role": "assistant", "content": "Your refund for order 42 was issued."}
        root.output = "Your refund for order 42 was issued; expect it within 5 business days."
        return [root.trace_id]


def _one_line(trace_id: str) -> str:
    conn = store.connect(default_db_path(), readonly=True)
    try:
        spans = store.trace_spans(conn, trace_id)
    finally:
        conn.close()
    t = trace_totals(spans)
    root = next((s.name for s in spans if s.parent_id is None), spans[0].name if spans else "?")
    return (
        f"{trace_id[:8]}  {root}  {t.spans} spans  {fmt_tokens(t.input_tokens)}→{fmt_tokens(t.output_tokens)} tok  "
        f"{fmt_cost(t.cost_usd, unpriced=bool(t.unpriced))}  {fmt_ms(t.duration_ms)}"
        + (f"  {t.errors} error(s)" if t.errors else "")
    )


@click.command()
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Store to record into [default: $LLMOBS_DB or ~/.llmobs/traces.db].",
)
@click.option("--loop", is_flag=True, help="Keep recording (Ctrl-C stops): run `llmobs tail` beside it.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.0),
    default=2.0,
    show_default=True,
    help="Seconds between rounds with --loop.",
)
@click.option("--builtin", is_flag=True, help="Run the built-in scenario even when examples/ is present.")
def demo(db: Path | None, loop: bool, interval: float, builtin: bool) -> None:
    """Record example traces (offline, fake models, real prices) and show their trees.

    From a source checkout it runs examples/ for every installed framework (LangChain,
    LlamaIndex, OpenAI Agents SDK, manual spans); otherwise a built-in manual-spans agent.

    \b
    Examples:
      llmobs demo
      llmobs demo --loop          # and in another terminal: llmobs tail
      llmobs demo --db /tmp/demo.db && llmobs traces --db /tmp/demo.db
    """
    if db is not None:
        os.environ[LLMOBS_DB] = str(Path(db).expanduser())
    console = make_console()
    llmobs.configure(service_name=SERVICE)
    folder = None if builtin else examples_dir()
    runs: list[tuple[str, Callable[[], list[str]]]] = []
    if folder is not None:
        llmobs.instrument()  # the framework examples need it; the built-in scenario does not
        runs = _load_examples(folder)
    if not runs:
        runs = [("manual_spans (built-in)", builtin_scenario)]
    rounds = 0
    try:
        while True:
            rounds += 1
            for name, run in runs:
                trace_ids = run()
                llmobs.flush()
                if rounds == 1:
                    console.rule(f"[bold]{name}")
                    conn = store.connect(default_db_path(), readonly=True)
                    try:
                        for trace_id in trace_ids:
                            console.print(trace_tree(store.trace_spans(conn, trace_id)))
                            console.print()
                    finally:
                        conn.close()
                else:
                    for trace_id in trace_ids:
                        console.print(f"[dim]round {rounds}[/] {name}: {_one_line(trace_id)}")
            if not loop:
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        console.print(f"[dim]stopped after {rounds} round(s)[/]")
    llmobs.flush()
    console.print(f"[dim]stored in {default_db_path()}; try `llmobs traces`, `llmobs show <id>`, `llmobs tail`[/]")
