"""Where spans go: the `Sink` interface and the built-in sinks."""

from llmobs.core.sinks.base import Sink
from llmobs.core.sinks.console import ConsoleSink
from llmobs.core.sinks.memory import MemorySink
from llmobs.core.sinks.sqlite import SQLiteSink

__all__ = ["ConsoleSink", "MemorySink", "SQLiteSink", "Sink"]
