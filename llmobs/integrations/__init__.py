"""Framework integrations: each module only translates its framework's events into tracer calls.

`llmobs.instrument()` registers every integration whose framework is installed. A framework that
is not installed is skipped; importing `llmobs` never imports a framework.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

logger = logging.getLogger("llmobs")

#: integration module name → the import name of the framework it needs.
INTEGRATIONS: dict[str, str] = {
    "langchain": "langchain_core",
    "llamaindex": "llama_index.core",
    "openai_agents": "agents",
}


def framework_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def instrument(*names: str) -> list[str]:
    """Register the named integrations (all by default) whose frameworks are installed.

    Returns the names registered. Calling it again registers nothing twice. An unknown name raises
    ValueError; an integration that fails to register is logged and skipped.
    """
    wanted = names or tuple(INTEGRATIONS)
    unknown = [n for n in wanted if n not in INTEGRATIONS]
    if unknown:
        raise ValueError(f"unknown integration(s) {unknown}; known: {sorted(INTEGRATIONS)}")
    done: list[str] = []
    for name in wanted:
        if not framework_installed(INTEGRATIONS[name].split(".")[0]):
            continue
        if importlib.util.find_spec(f"llmobs.integrations.{name}") is None:
            logger.debug("llmobs: no %s integration in this version", name)
            continue
        try:
            module = importlib.import_module(f"llmobs.integrations.{name}")
            module.instrument()
        except Exception as exc:
            logger.warning("llmobs: could not instrument %s: %r", name, exc)
            continue
        done.append(name)
    return done
