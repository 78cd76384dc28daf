"""`MemorySink`: keeps spans in a list, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llmobs.core.model import Span
from llmobs.core.sinks.base import Sink


class MemorySink(Sink):
    """Collects every span written to it, in order. Thread-safe.

    Args:
        max_spans: keep at most this many (the oldest are dropped); None keeps all.
    """

    name = "memory"

    def __init__(self, max_spans: int | None = None) -> None:
        self._spans: list[Span] = []
        self._max = max_spans
        self._lock = threading.Lock()

    def write(self, spans: Sequence[Span]) -> None:
        with self._lock:
            self._spans.extend(spans)
            if self._max is not None and len(self._spans) > self._max:
                del self._spans[: len(self._spans) - self._max]

    @property
    def spans(self) -> list[Span]:
        """A copy of the spans received so far."""
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
