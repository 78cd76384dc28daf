"""The pipeline: from a finished span on the application's thread to every sink.

The application's thread only appends the span to a bounded queue (`submit`); when the queue is
full the span is dropped and counted, never waited for. One background thread takes spans off in
batches, runs the integration's deferred extraction, prices model calls, applies the content
policy and writes the batch to every sink. When the only sink is the local store written by its
writer process (the default), the content policy is applied there instead
(`Sink.takes_raw_spans`), keeping that Python work off the GIL this process shares with the
application. `flush()` waits until everything submitted before it has been written; an atexit
hook does the same when the process exits normally, so no span is lost at exit.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmobs.core.config import Settings
from llmobs.core.content import ContentPolicy
from llmobs.core.evaluation import Evaluator
from llmobs.core.evaluation_worker import EvaluationWorker
from llmobs.core.model import Span
from llmobs.core.offload import finish_fields
from llmobs.core.pricing import Pricer
from llmobs.core.sinks.base import Sink
from llmobs.core.threads import leave_signals_to_main_thread

logger = logging.getLogger("llmobs")


class _FlushMarker:
    """Queued by `flush()`: the worker sets `done` once everything ahead of it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


@dataclass(slots=True)
class SinkHealth:
    written: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class Counters:
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    priced: int = 0
    unpriced: int = 0
    sinks: dict[str, SinkHealth] = field(default_factory=dict)


class Pipeline:
    """A bounded queue and one worker thread that prices, redacts, batches and writes spans.

    Args:
        sinks: where batches go; each is written independently, a failing one does not stop the others.
        settings: queue size, batch size and flush interval.
        pricer: prices model spans that carry usage and no cost.
        policy: content capture, truncation and redaction.
    """

    def __init__(self, sinks: Sequence[Sink], settings: Settings, pricer: Pricer, policy: ContentPolicy) -> None:
        self.sinks = list(sinks)
        self.settings = settings
        self.pricer = pricer
        self.policy = policy
        self._sink_keys = _unique_names(self.sinks)
        self.counters = Counters(sinks={key: SinkHealth() for key in self._sink_keys})
        self._max = max(1, settings.queue_size)
        self._batch_size = max(1, settings.batch_size)
        # The queue length at which `submit` wakes the worker: a full batch, or fewer when the
        # garbage collector is about to promote what waits (`_drain_before_promotion`).
        self._wake_at = self._batch_size
        self._interval = max(0.001, settings.flush_interval_s)
        self._queue: deque[Span | _FlushMarker] = deque()
        self._wake = threading.Event()
        # Reentrant: the SIGTERM handler may flush on the main thread in the middle of a drain.
        self._drain_lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._warned: set[str] = set()
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        # Online evaluation (optional): sampled spans wait there and come back in `_evaluated`.
        self.evaluation: EvaluationWorker | None = None
        self._evaluated: deque[Span] = deque()
        # A lone sink that applies the content policy itself (in the store's writer process)
        # takes spans raw: the policy's Python walk then stays off the GIL this process shares.
        self._raw = len(self.sinks) == 1 and self._ask_raw(self.sinks[0], policy)
        # ... and one that also finishes offloaded spans (`core/offload.py`) takes their payloads
        # as JSON: extraction, sanitising and pricing then run on that process's GIL too.
        self._offload = self._raw and self._ask_offload(self.sinks[0], pricer)
        self._start_worker()
        _live_pipelines.add(self)

    def start_evaluation(self, evaluators: Sequence[Evaluator], sample_rate: float, seed: int = 0) -> None:
        """Evaluate a deterministic sample of finished `llm` spans and trace roots (see core/evaluation.py)."""
        if evaluators:
            with self._drain_lock:
                # Evaluators read prepared spans: the policy is applied here again.
                if self._raw:
                    self._raw = False
                    if self._offload:
                        self._offload = False
                        self._ask_offload(self.sinks[0], None)
                    self._ask_raw(self.sinks[0], None)
            self.evaluation = EvaluationWorker(
                evaluators,
                sample_rate,
                seed,
                self._evaluated.append,
                self.submit,
                content_captured=self.policy.capture,
            )

    # -- the application's side ----------------------------------------------------------------

    def submit(self, span: Span) -> None:
        """Queue a finished span. Never blocks; drops and counts when the queue is full."""
        queue = self._queue
        if len(queue) >= self._max or self._closed:
            with self._count_lock:
                self.counters.dropped += 1
            self._warn_once("dropped", "llmobs: span queue full (%d); dropping spans", self._max)
            return
        queue.append(span)
        if len(queue) == self._wake_at:
            self._wake.set()

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Wait until every span submitted so far is written to every sink. False on timeout.

        With online evaluation, that includes the spans held for evaluation and the evaluator
        spans their evaluation recorded.
        """
        evaluation = self.evaluation
        if evaluation is None:
            return self._flush_queue(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        return self._flush_queue(timeout) and evaluation.wait_idle(remaining()) and self._flush_queue(remaining())

    def _flush_queue(self, timeout: float | None) -> bool:
        marker = _FlushMarker()
        self._queue.append(marker)
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._wake.set()
            return marker.done.wait(timeout)
        # No worker (stopped, or lost across a fork): deliver on the calling thread.
        self._drain()
        return marker.done.is_set()

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the worker and close the sinks. Spans submitted afterwards are dropped."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._closed = True
        if self.evaluation is not None:
            # Spans still waiting for evaluation are written without it rather than lost.
            self._evaluated.extend(self.evaluation.stop(timeout))
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._drain()
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self._warn_once(f"close:{sink.name}", "llmobs: closing sink %s failed: %s", sink.name, exc)
        _live_pipelines.discard(self)
        return ok

    def health(self) -> dict[str, Any]:
        """A snapshot of the counters: queued, exported, dropped, unpriced, sink errors, ...

        `dropped` adds the spans a sink dropped itself (an exporter that fell behind) to those the
        queue dropped; `sink_errors` adds the exports a sink reports as failed to its raised writes.
        Each sink's own counters (`Sink.stats()`) are under `sinks`; a sink that reports `written`
        and `errors` itself (the store, written by another process) is believed on those.
        """
        c = self.counters
        evaluation = self.evaluation
        sinks: dict[str, dict[str, Any]] = {}
        for key, sink in zip(self._sink_keys, self.sinks, strict=True):
            h = c.sinks[key]
            try:
                own = dict(sink.stats())
            except Exception:
                own = {}
            sinks[key] = {
                **own,
                # A sink that writes elsewhere (the store's writer process) knows what was really
                # written, and the failures that happened there.
                "written": int(own.get("written", h.written)),
                "errors": h.errors + int(own.get("errors") or 0),
                "last_error": h.last_error or own.get("last_error"),
            }
        return {
            "evaluation": evaluation.health() if evaluation is not None else None,
            "queued": len(self._queue),
            "processed": c.processed,
            "exported": min((s["written"] for s in sinks.values()), default=c.processed),
            "dropped": c.dropped + sum(int(s.get("dropped") or 0) for s in sinks.values()),
            "failed": c.failed,
            # Spans the store's writer process finished were priced there (see `_offload`).
            "priced": c.priced + sum(int(s.get("priced") or 0) for s in sinks.values()),
            "unpriced": c.unpriced + sum(int(s.get("unpriced") or 0) for s in sinks.values()),
            "sink_errors": sum(s["errors"] for s in sinks.values())
            + sum(int(s.get("failed") or 0) for s in sinks.values()),
            "sinks": sinks,
        }

    # -- the worker's side ---------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="llmobs-pipeline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        leave_signals_to_main_thread()
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._wake_at = self._batch_size
            try:
                self._drain()
            except Exception as exc:  # pragma: no cover - _drain guards each step
                self._warn_once("worker", "llmobs: pipeline error: %r", exc)
            if self._stopping and not self._queue and not self._evaluated:
                return

    def _drain(self) -> None:
        with self._drain_lock:
            if self._evaluated:
                self._write_evaluated()
            queue = self._queue
            batch: list[Span] = []
            item: Span | _FlushMarker | None = None
            limit = self._batch_size
            while queue:
                item = queue.popleft()
                if type(item) is _FlushMarker:
                    self._write(batch)
                    batch = []
                    if self._evaluated:
                        self._write_evaluated()
                    self._flush_sinks()
                    item.done.set()
                    continue
                assert isinstance(item, Span)
                batch.append(item)
                if len(batch) >= limit:
                    item = None
                    self._write(batch)
                    batch = []
                    self._deliver()
            item = None  # the last span popped: not held while the sinks deliver either
            self._write(batch)
            batch = []
            self._deliver()

    def _write(self, batch: list[Span]) -> None:
        if not batch:
            return
        ready = [span for span in batch if self._prepare(span)]
        evaluation = self.evaluation
        if evaluation is not None:
            # Sampled spans are held by the evaluation worker and come back through `_evaluated`.
            offer = evaluation.offer
            ready = [span for span in ready if not offer(span)]
        self._emit(ready)

    def _deliver(self) -> None:
        """Let each sink do its deferred I/O; the caller holds no span by now (see `Sink.deliver`)."""
        for key, sink in zip(self._sink_keys, self.sinks, strict=True):
            try:
                sink.deliver()
            except Exception as exc:
                self._sink_failed(key, sink, exc)

    def _sink_failed(self, key: str, sink: Sink, exc: Exception) -> None:
        """Count and report (once per sink) a batch a sink lost."""
        health = self.counters.sinks[key]
        health.errors += 1
        health.last_error = f"{type(exc).__name__}: {exc}"
        self._warn_once(f"sink:{sink.name}", "llmobs: sink %s failed, its batch is lost: %s", sink.name, exc)

    def _write_evaluated(self) -> None:
        """Write the spans evaluation has finished with (already prepared)."""
        evaluated = self._evaluated
        ready: list[Span] = []
        while evaluated:
            ready.append(evaluated.popleft())
        self._emit(ready)

    def _emit(self, ready: list[Span]) -> None:
        if not ready:
            return
        counters = self.counters
        counters.processed += len(ready)
        for key, sink in zip(self._sink_keys, self.sinks, strict=True):
            try:
                sink.write(ready)
            except Exception as exc:
                self._sink_failed(key, sink, exc)
            else:
                counters.sinks[key].written += len(ready)

    def _prepare(self, span: Span) -> bool:
        """Deferred extraction, pricing and content policy for one span. False drops it."""
        try:
            deferred = span.deferred
            if deferred is not None:
                span.deferred = None
                try:
                    offload = getattr(deferred, "offload", None) if self._offload else None
                    if offload is not None:
                        # The sink's writer process extracts, sanitises, prices and applies the policy.
                        span.deferred = offload()
                        return True
                    deferred(span)
                except Exception as exc:
                    # The integration could not read its payload: keep the span with what it has.
                    self._warn_once(
                        f"deferred:{span.framework}", "llmobs: %s payload not understood: %r", span.framework, exc
                    )
            priced = finish_fields(span, self.pricer)
            if priced is not None:
                if priced:
                    self.counters.priced += 1
                else:
                    self.counters.unpriced += 1
            if not self._raw:
                self.policy.apply(span)
            return True
        except Exception as exc:
            self.counters.failed += 1
            self._warn_once(
                "prepare", "llmobs: could not prepare span %r, dropped: %r", getattr(span, "name", "?"), exc
            )
            return False

    def _ask_offload(self, sink: Sink, pricer: Pricer | None) -> bool:
        try:
            return bool(sink.takes_offloaded(pricer))
        except Exception as exc:
            self._warn_once(f"raw:{sink.name}", "llmobs: sink %s failed: %s", sink.name, exc)
            return False

    def _ask_raw(self, sink: Sink, policy: ContentPolicy | None) -> bool:
        try:
            return bool(sink.takes_raw_spans(policy))
        except Exception as exc:
            self._warn_once(f"raw:{sink.name}", "llmobs: sink %s failed: %s", sink.name, exc)
            return False

    def _flush_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.flush()
            except Exception as exc:
                self._warn_once(f"flush:{sink.name}", "llmobs: flushing sink %s failed: %s", sink.name, exc)

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)

    def _after_fork_in_child(self) -> None:
        # The worker thread does not survive fork; the child gets a fresh queue and worker.
        self._queue = deque()
        self._wake = threading.Event()
        self._drain_lock = threading.RLock()
        self._count_lock = threading.Lock()
        self._evaluated = deque()
        if self.evaluation is not None:
            self.evaluation = self.evaluation.restarted(self._evaluated.append, self.submit)
        if not self._closed:
            self._start_worker()


def _unique_names(sinks: Sequence[Sink]) -> list[str]:
    """Sink names for the health snapshot, numbered when two sinks share a name."""
    names: list[str] = []
    for sink in sinks:
        name = sink.name
        number = 2
        while name in names:
            name = f"{sink.name}#{number}"
            number += 1
        names.append(name)
    return names


_live_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def _shutdown_all(timeout: float = 10.0) -> None:
    for pipeline in list(_live_pipelines):
        try:
            pipeline.shutdown(timeout=timeout)
        except Exception:  # pragma: no cover - never let exit fail because of us
            pass


SIGTERM_FLUSH_TIMEOUT_S = 3.0


def install_sigterm_flush() -> bool:
    """On SIGTERM, deliver what is queued before the process dies. True if installed.

    Only where SIGTERM still has its default action (which kills the process without running
    atexit hooks) and only from the main thread. An application with its own SIGTERM handler
    keeps it: its orderly exit runs our atexit flush anyway. After flushing (bounded by
    `SIGTERM_FLUSH_TIMEOUT_S`), the default action is restored and the signal re-raised, so the
    process still dies of SIGTERM with the usual exit status.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        signal.signal(signal.SIGTERM, _flush_then_die)
    except (ValueError, OSError, AttributeError):  # no signals here (embedded, odd platforms)
        return False
    return True


def _flush_then_die(signum: int, frame: object) -> None:
    _shutdown_all(timeout=SIGTERM_FLUSH_TIMEOUT_S)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _after_fork() -> None:
    for pipeline in list(_live_pipelines):
        pipeline._after_fork_in_child()


atexit.register(_shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)

# -- draining before the application's garbage collector promotes the queue --------------------

#: Fewer spans than this waiting are not worth an early drain.
DRAIN_BEFORE_PROMOTION_MIN = 16
#: In how many of the young collection periods before a middle collection the queue is drained.
#: The pipeline thread gets the GIL from a busy application thread only after
#: `sys.getswitchinterval()` (5 ms), about one period of a tight streaming loop: asked in the last
#: period only, it lost that race and the queue was promoted anyway.
DRAIN_BEFORE_PROMOTION_PERIODS = 3


def _drain_before_promotion(phase: str, info: Mapping[str, int]) -> None:
    """A `gc.callbacks` hook: when a middle-generation collection is at most
    `DRAIN_BEFORE_PROMOTION_PERIODS` young collections away, have each pipeline drain its queue.

    What is alive at a middle collection is promoted to the old generation, and promotions are
    what bring on the application's full collections (tens of ms each, with every object it
    has). Queued spans hold what their integration will extract from, which would otherwise die
    within milliseconds. The event is not set here: a collection can start inside `Event.set`
    on this very thread, holding the lock it takes. Lowering the wake threshold has the next
    `submit` set it.
    """
    if phase != "stop" or info.get("generation") != 0:
        return
    # After a young collection the middle count has grown by one; the middle generation is
    # collected at the first trigger that finds it above its threshold.
    if gc.get_threshold()[1] + 2 - gc.get_count()[1] > DRAIN_BEFORE_PROMOTION_PERIODS:
        return
    for pipeline in _live_pipelines:
        queued = len(pipeline._queue)
        if queued >= DRAIN_BEFORE_PROMOTION_MIN:
            pipeline._wake_at = queued + 1


# CPython's generational collector up to 3.13; 3.14's incremental one counts differently.
if sys.implementation.name == "cpython" and sys.version_info < (3, 14):
    gc.callbacks.append(_drain_before_promotion)
