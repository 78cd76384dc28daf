"""The evaluation worker: runs evaluators on sampled spans, on threads of its own.

The pipeline hands every prepared span (priced, content policy applied) to `EvaluationWorker.offer`.
A span that is sampled and that some evaluator applies to is held back; every other span is
written at once, so unsampled spans are never delayed. The worker runs on its own thread and
gives each evaluator a runner thread of its own, so an evaluator that hangs costs at most its
timeout once (later spans find it still busy and get an error result at once) and never holds
up the others, the pipeline or the application. The evaluated span goes back to the pipeline
(`deliver`) with `evaluations` set and is written then.

Each evaluator runs inside `suppress_tracing()`: a judge's call through an instrumented framework
records no application span. Each model call it reports with `record_model_call()` becomes an
`evaluator` span, child of the evaluated span, which the pipeline prices and the application's
totals (`MODEL_KINDS`) never count.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmobs.core.conventions import ATTR_EVALUATION_NAME, EVALUATION_FRAMEWORK
from llmobs.core.evaluation import (
    ERROR_LABEL,
    EvaluationContext,
    Evaluator,
    TraceTotals,
    error_result,
    is_eval_candidate,
    is_eval_sampled,
    normalise_result,
    set_context,
)
from llmobs.core.model import MODEL_KINDS, ErrorInfo, Evaluation, Span, SpanKind, Status
from llmobs.core.tracer import new_span_id, suppress_tracing

logger = logging.getLogger("llmobs")

DEFAULT_EVAL_QUEUE_SIZE = 10_000
_TRACE_TOTALS_CAP = 10_000


@dataclass(slots=True)
class EvaluationCounters:
    sampled: int = 0
    evaluated: int = 0
    results: int = 0
    errors: int = 0
    timeouts: int = 0
    skipped_queue_full: int = 0
    evaluator_spans: int = 0


class _Job:
    __slots__ = ("ctx", "done", "result")

    def __init__(self, ctx: EvaluationContext) -> None:
        self.ctx = ctx
        self.done = threading.Event()
        self.result: Evaluation | None = None


class _Runner:
    """One evaluator's own thread. `busy` while a call runs, including one that timed out."""

    def __init__(
        self, evaluator: Evaluator, name: str, on_calls: Callable[[Evaluator, EvaluationContext], None]
    ) -> None:
        self.evaluator = evaluator
        self.name = name
        self._on_calls = on_calls
        self._inbox: deque[_Job | None] = deque()
        self._wake = threading.Event()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name=f"llmobs-eval-{name}", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self.busy = True
        self._inbox.append(job)
        self._wake.set()

    def stop(self) -> None:
        self._inbox.append(None)
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._inbox:
                item = self._inbox.popleft()
                if item is None:
                    return
                try:
                    self._call(item)
                except BaseException as exc:  # this thread must outlive any evaluator (SystemExit included)
                    item.result = error_result(self.name, f"{type(exc).__name__}: {exc}")
                finally:
                    self.busy = False
                    item.done.set()

    def _call(self, job: _Job) -> None:
        set_context(job.ctx)
        try:
            with suppress_tracing():
                value = self.evaluator.evaluate(job.ctx.span)
            job.result = normalise_result(self.name, value)
        except Exception as exc:
            job.result = error_result(self.name, f"{type(exc).__name__}: {exc}")
        finally:
            set_context(None)
        if job.ctx.calls:
            # Recorded even when the caller stopped waiting: the judge spent the tokens anyway.
            try:
                self._on_calls(self.evaluator, job.ctx)
            except Exception as exc:  # pragma: no cover - building a span does not fail
                logger.warning("llmobs: could not record the model calls of evaluator %s: %r", self.name, exc)


class EvaluationWorker:
    """Runs evaluators on a deterministic sample of finished spans, off every other thread.

    Args:
        evaluators: what to run on each sampled span.
        sample_rate: fraction of traces evaluated (0..1), decided by `is_eval_sampled`.
        seed: changes which traces are sampled, deterministically.
        deliver: called with each evaluated span (evaluations set), to be written to the sinks.
        submit: called with each new `evaluator` span (a judge's model call), to be priced and written.
        queue_size: sampled spans waiting for evaluation; past it, spans are written unevaluated.
        content_captured: False when the content policy drops inputs and outputs; evaluators of
            the answer then record nothing rather than judge an absent answer.
    """

    def __init__(
        self,
        evaluators: Sequence[Evaluator],
        sample_rate: float,
        seed: int,
        deliver: Callable[[Span], None],
        submit: Callable[[Span], None],
        queue_size: int = DEFAULT_EVAL_QUEUE_SIZE,
        content_captured: bool = True,
    ) -> None:
        self.evaluators = list(evaluators)
        self.sample_rate = float(sample_rate)
        self.seed = int(seed)
        self._deliver = deliver
        self._submit = submit
        self._max = max(1, queue_size)
        self.content_captured = content_captured
        self.counters = EvaluationCounters()
        self._queue: deque[tuple[Span, TraceTotals]] = deque()
        self._totals: OrderedDict[str, TraceTotals] = OrderedDict()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0  # held spans not yet delivered (queued or being evaluated)
        self._current: Span | None = None  # the span being evaluated
        self._stopping = False
        self._warned: set[str] = set()
        names = _unique_result_names(self.evaluators)
        self._runners = [_Runner(e, n, self._record_calls) for e, n in zip(self.evaluators, names, strict=True)]
        self._thread = threading.Thread(target=self._run, name="llmobs-evaluation", daemon=True)
        self._thread.start()

    # -- the pipeline's side -------------------------------------------------------------------

    def offer(self, span: Span) -> bool:
        """Take `span` for evaluation if it is sampled and judged by some evaluator. Never blocks.

        True: the worker holds the span and delivers it later. False: write it now.
        """
        if not is_eval_candidate(span) and span.kind not in MODEL_KINDS:
            return False
        try:
            if not is_eval_sampled(span.trace_id, self.sample_rate, self.seed):
                return False
            totals = self._add_to_totals(span)
            if not is_eval_candidate(span):
                return False
            if not any(self._applies(e, span) for e in self.evaluators):
                return False
            counters = self.counters
            if len(self._queue) >= self._max or self._stopping:
                # Written unevaluated rather than dropped or waited for.
                counters.skipped_queue_full += 1
                self._warn_once("full", "llmobs: evaluation queue full (%d); writing spans unevaluated", self._max)
                return False
            counters.sampled += 1
            with self._idle:
                self._pending += 1
                self._queue.append((span, totals))
            self._wake.set()
            return True
        except Exception as exc:
            self._warn_once("offer", "llmobs: evaluation sampling failed: %r", exc)
            return False

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait until every span taken so far has been delivered. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self, timeout: float | None = 5.0) -> list[Span]:
        """Stop the worker after what is queued (up to `timeout`); returns spans left unevaluated."""
        self.wait_idle(timeout)
        with self._idle:
            self._stopping = True
            left = [span for span, _ in self._queue]
            self._queue.clear()
            if self._current is not None:
                # Still being evaluated (a slow evaluator): written now, its late result dropped.
                left.insert(0, self._current)
                self._current = None
            self._pending = 0
            self._idle.notify_all()
        self._wake.set()
        for runner in self._runners:
            runner.stop()
        return left

    def restarted(self, deliver: Callable[[Span], None], submit: Callable[[Span], None]) -> EvaluationWorker:
        """A fresh worker with the same evaluators and sample (threads do not survive a fork)."""
        return EvaluationWorker(
            self.evaluators, self.sample_rate, self.seed, deliver, submit, self._max, self.content_captured
        )

    def health(self) -> dict[str, Any]:
        """Counters: sampled, evaluated, results, errors (timeouts included), timeouts, pending, ..."""
        c = self.counters
        return {
            "sampled": c.sampled,
            "evaluated": c.evaluated,
            "results": c.results,
            "errors": c.errors,
            "timeouts": c.timeouts,
            "skipped_queue_full": c.skipped_queue_full,
            "evaluator_spans": c.evaluator_spans,
            "pending": self._pending,
        }

    # -- the worker's side ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            while True:
                with self._idle:
                    if self._stopping or not self._queue:
                        break
                    span, totals = self._queue.popleft()
                    self._current = span
                try:
                    self._evaluate(span, totals)
                except Exception as exc:  # pragma: no cover - _evaluate guards each evaluator
                    self._warn_once("worker", "llmobs: evaluation failed: %r", exc)
                with self._idle:
                    if self._current is not span:
                        continue  # stop() took it and wrote it unevaluated
                    self._current = None
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()
                try:
                    self._deliver(span)
                except Exception as exc:  # pragma: no cover - the pipeline's deliver only enqueues
                    self._warn_once("deliver", "llmobs: could not deliver an evaluated span: %r", exc)
            if self._stopping:
                return

    def _evaluate(self, span: Span, totals: TraceTotals) -> None:
        started: list[tuple[_Runner, _Job | None, float]] = []
        now = time.monotonic()
        for runner in self._runners:
            if not self._applies(runner.evaluator, span):
                continue
            if runner.busy:
                started.append((runner, None, now))
                continue
            new_job = _Job(EvaluationContext(span, totals, content_captured=self.content_captured))
            runner.submit(new_job)
            started.append((runner, new_job, now + max(0.0, float(runner.evaluator.timeout_s))))
        results: list[Evaluation] = []
        counters = self.counters
        for runner, job, deadline in started:
            if job is None:
                counters.timeouts += 1
                result: Evaluation | None = error_result(
                    runner.name, "skipped: a previous evaluation is still running past its timeout"
                )
            elif job.done.wait(max(0.0, deadline - time.monotonic())):
                result = job.result
            else:
                counters.timeouts += 1
                result = error_result(runner.name, f"timed out after {runner.evaluator.timeout_s:g}s")
            if result is not None:
                results.append(result)
                if result.label == ERROR_LABEL and result.score is None:
                    counters.errors += 1
        counters.evaluated += 1
        counters.results += len(results)
        if results:
            span.evaluations = (span.evaluations or []) + results

    def _applies(self, evaluator: Evaluator, span: Span) -> bool:
        try:
            return bool(evaluator.applies_to(span))
        except Exception as exc:
            self._warn_once(f"applies:{type(evaluator).__name__}", "llmobs: evaluator applies_to failed: %r", exc)
            return False

    def _add_to_totals(self, span: Span) -> TraceTotals:
        """Accumulate a sampled trace's model spend; the trace's totals so far."""
        totals = self._totals.get(span.trace_id)
        if totals is None:
            totals = self._totals[span.trace_id] = TraceTotals()
            if len(self._totals) > _TRACE_TOTALS_CAP:
                self._totals.popitem(last=False)
        if span.kind in MODEL_KINDS:
            totals.model_calls += 1
            if span.cost is not None:
                totals.cost_usd += span.cost.total_usd
            elif span.usage is not None:
                totals.unpriced += 1
            if span.usage is not None:
                totals.input_tokens += span.usage.input_tokens or 0
                totals.output_tokens += span.usage.output_tokens or 0
        if span.parent_id is None:
            # The root ends its trace (for our purposes): later spans of it start afresh.
            self._totals.pop(span.trace_id, None)
        return totals

    def _record_calls(self, evaluator: Evaluator, ctx: EvaluationContext) -> None:
        target = ctx.span
        name = next((r.name for r in self._runners if r.evaluator is evaluator), evaluator.result_name)
        for call in ctx.calls:
            span = Span(
                trace_id=target.trace_id,
                span_id=new_span_id(),
                parent_id=target.span_id,
                name=f"evaluate {name}",
                kind=SpanKind.EVALUATOR,
                framework=EVALUATION_FRAMEWORK,
                service=target.service,
                start_ns=call.start_ns,
                end_ns=max(call.end_ns, call.start_ns),
                provider=call.provider,
                model=call.model,
                usage=call.usage,
                input=call.input,
                output=call.output,
                attributes={ATTR_EVALUATION_NAME: name},
            )
            if call.error is not None:
                span.status = Status.ERROR
                span.error = ErrorInfo("llmobs.EvaluatorModelError", call.error)
            self.counters.evaluator_spans += 1
            try:
                self._submit(span)
            except Exception as exc:  # pragma: no cover - submit never raises
                self._warn_once("submit", "llmobs: could not record an evaluator span: %r", exc)

    def _warn_once(self, kind: str, message: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning(message, *args)


def _unique_result_names(evaluators: Sequence[Evaluator]) -> list[str]:
    names: list[str] = []
    for evaluator in evaluators:
        base = evaluator.result_name
        name, number = base, 2
        while name in names:
            name = f"{base}#{number}"
            number += 1
        names.append(name)
    return names
