"""Run every example whose framework is installed into the local store, and show their traces.

    python examples/demo.py        # what `make demo` runs

Each example module in this folder has a `run()` that records its traces and returns their ids.
The spans go to the local store (`LLMOBS_DB`, else ~/.llmobs/traces.db), so afterwards
`llmobs traces` and `llmobs show ID` find them too.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from rich.console import Console

import llmobs
from llmobs.cli.render import trace_tree
from llmobs.core import store
from llmobs.core.config import default_db_path

HERE = Path(__file__).resolve().parent

#: example module → the framework it needs (None: llmobs alone).
EXAMPLES: dict[str, str | None] = {
    "manual_spans": None,
    "langchain_agent": "langchain_core",
    "llamaindex_rag": "llama_index.core",
    "openai_agents_handoff": "agents",
}


def _installed(module: str | None) -> bool:
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def show_traces(trace_ids: list[str], console: Console | None = None) -> None:
    """Flush, then print each trace as a tree read back from the local store."""
    console = console or Console()
    llmobs.flush()
    conn = store.connect(default_db_path(), readonly=True)
    for trace_id in trace_ids:
        console.print(trace_tree(store.trace_spans(conn, trace_id)))
        console.print()


def main() -> int:
    sys.path.insert(0, str(HERE))
    console = Console()
    llmobs.configure(service_name="llmobs-demo")
    llmobs.instrument()
    for name, framework in EXAMPLES.items():
        if not (HERE / f"{name}.py").exists() or not _installed(framework):
            continue
        console.rule(f"[bold]{name}")
        module = importlib.import_module(name)
        show_traces(module.run(), console)
    console.print(f"[dim]stored in {default_db_path()}; try `llmobs traces` and `llmobs show <id>`[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
