"""The `Sink` interface: where finished spans go.

The pipeline decides when and how spans are batched; a sink only writes a batch somewhere. Sinks
are called from the pipeline's one background thread, never from the application's, so `write`
may block on disk or network, but it should bound how long (timeouts, bounded retries).

A complete sink::

    class JsonlSink(Sink):
        name = "jsonl"

        def __init__(self, path: str) -> None:
            self._fh = open(path, "a", encoding="utf-8")

        def write(self, spans: Sequence[Span]) -> None:
            for span in spans:
                self._fh.write(json.dumps(span.to_dict()) + "\\n")

        def flush(self) -> None:
            self._fh.flush()

        def close(self) -> None:
            self._fh.close()

`write` may raise: the pipeline counts the failure against the sink, logs it once, and goes on
with the next batch; other sinks still receive the batch.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from llmobs.core.model import Span

if TYPE_CHECKING:
    from llmobs.core.content import ContentPolicy
    from llmobs.core.pricing import Pricer


class Sink(abc.ABC):
    """Receives finished, priced and redacted spans in batches, on the pipeline thread."""

    #: Short name used in health snapshots and log messages.
    name: str = "sink"

    @abc.abstractmethod
    def write(self, spans: Sequence[Span]) -> None:
        """Deliver a batch. Spans are final: JSON-safe content, cost set where known."""

    def deliver(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Do the I/O `write` left for later. The pipeline calls it once it no longer holds the spans.

        A write that releases the GIL (a socket, a pipe) lets the application run while the
        batch's spans are still referenced, and those then outlive the application's young
        garbage collections. A sink may keep `write` to serialising and do the I/O here.
        `flush` and `close` must deliver too.
        """

    def flush(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Push out anything buffered. Called by `llmobs.flush()` and at exit."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources. Called once at shutdown, after the last `flush`."""

    def takes_raw_spans(self, policy: ContentPolicy | None) -> bool:
        """Whether this sink applies `policy` itself, later and elsewhere (the store's writer process).

        The pipeline asks when this is its only sink; True means `write` then receives spans whose
        content has not been through the content policy yet (arbitrary Python objects included).
        `None` takes that back: spans come prepared again. Most sinks answer False.
        """
        return False

    def takes_offloaded(self, pricer: Pricer | None) -> bool:
        """Whether this sink finishes offloaded spans itself (see `core/offload.py`), pricing with `pricer`.

        Asked after `takes_raw_spans` answered True. True means `write` may receive spans whose
        `deferred` is an `offload.Offloaded` payload not extracted, sanitised or priced yet; the
        sink reports what it priced as `priced` and `unpriced` in `stats()`. `None` takes that
        back. Most sinks answer False.
        """
        return False

    def stats(self) -> Mapping[str, Any]:
        """The sink's own counters for `llmobs.health()`. A sink that sends from a thread of its own
        reports `dropped` (spans it gave up queueing) and `failed` (spans its exports lost) here."""
        return {}
