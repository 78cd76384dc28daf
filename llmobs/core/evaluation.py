"""Online evaluation: the `Evaluator` interface, its results, and the deterministic sample.

The worker that runs evaluators lives in `core/evaluation_worker.py`; the built-in evaluators in
`core/evaluators.py` and `core/judge.py`.

The pipeline hands every prepared span (priced, content policy applied) to `EvaluationWorker.offer`.
A span that is sampled and that some evaluator applies to is held back; every other span is
written at once, so unsampled spans are never delayed. The worker runs on its own thread and
gives each evaluator a runner thread of its own, so an evaluator that hangs costs at most its
timeout once (later spans find it still busy and get an error result at once) and never holds
up the others, the pipeline or the application. An evaluator that raises or times out becomes
an error result (score None, label "error"). The evaluated span goes back to the pipeline with
`evaluations` set and is written then.

Model calls an evaluator makes (an `LLMJudge`) run inside `suppress_tracing()`, so an instrumented
framework records no application span for them; the evaluator reports each call with
`record_model_call()` and it becomes an `evaluator`-kind span, child of the evaluated span,
priced by the pipeline but never counted in the application's totals (`MODEL_KINDS`).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from llmobs.core.model import Evaluation, Span, SpanKind, Usage

ERROR_LABEL = "error"
DEFAULT_TIMEOUT_S = 10.0


class Evaluator(ABC):
    """Scores one finished span. Subclass it, or use the built-ins in `llmobs.core.evaluators`.

        class MentionsOrder(Evaluator):
            name = "mentions_order"
            targets = "root"             # "root" (trace roots), "llm" (model calls) or "all"

            def evaluate(self, span: Span) -> Evaluation | None:
                text = str(span.output or "")
                ok = "order" in text
                return Evaluation(self.name, 1.0 if ok else 0.0, "pass" if ok else "fail")

        llmobs.configure(evaluators=[MentionsOrder()], eval_sample_rate=0.1)

    Contract: `evaluate` runs on a thread of the evaluation worker, never the application's;
    it may block (a model call) up to `timeout_s`, after which its result is an error. It sees
    the span after pricing and the content policy (redacted, JSON-safe `input`/`output`). It
    returns an `Evaluation` (score in [0, 1], higher is better, or None; a label; an
    explanation), a bool (pass/fail), a number (the score), or None when the span is not
    something it judges (no result is recorded). Raising is allowed: it is recorded as an error
    result. It must not modify the span. `applies_to` runs on the pipeline thread and must be cheap.
    """

    #: The result's name (`Evaluation.name`); defaults to the class name in snake case.
    name: str = ""
    #: Which sampled spans it judges: "root" (trace roots), "llm" (model calls) or "all".
    targets: str = "all"
    #: Seconds before a running evaluation is abandoned and recorded as an error.
    timeout_s: float = DEFAULT_TIMEOUT_S

    @abstractmethod
    def evaluate(self, span: Span) -> Evaluation | bool | float | None:
        """Judge `span`. See the class docstring for what may be returned."""

    def applies_to(self, span: Span) -> bool:
        """Whether this evaluator judges `span` (called only for sampled roots and llm spans)."""
        targets = self.targets
        if targets == "all":
            return True
        if targets == "root":
            return span.parent_id is None
        return span.kind is SpanKind.LLM

    @property
    def result_name(self) -> str:
        if self.name:
            return self.name
        cls = type(self).__name__
        return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(cls))


def error_result(name: str, explanation: str) -> Evaluation:
    """The result recorded when an evaluator raised, timed out or returned something invalid."""
    return Evaluation(name=name, score=None, label=ERROR_LABEL, explanation=explanation)


def normalise_result(name: str, value: Any) -> Evaluation | None:
    """An evaluator's return value as an `Evaluation` (or None: no result). Invalid → error result."""
    if value is None:
        return None
    result: Evaluation
    if isinstance(value, Evaluation):
        result = value
        if not result.name:
            result.name = name
    elif isinstance(value, bool):
        return Evaluation(name, 1.0 if value else 0.0, "pass" if value else "fail", None)
    elif isinstance(value, int | float):
        result = Evaluation(name, float(value))
    else:
        return error_result(name, f"evaluator returned {type(value).__name__}, not an Evaluation, bool or number")
    score = result.score
    if score is not None and not (0.0 <= score <= 1.0):
        return error_result(name, f"score {score!r} outside [0, 1]")
    return result


# -- sampling ----------------------------------------------------------------------------------


def sample_fraction(trace_id: str, seed: int) -> float:
    """A deterministic number in [0, 1) from the trace id and the seed (uniform over trace ids)."""
    digest = hashlib.blake2b(f"{seed}:{trace_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def is_eval_sampled(trace_id: str, rate: float, seed: int = 0) -> bool:
    """Whether a trace is in the evaluation sample. Same answer for the same trace, rate and seed.

    The decision is per trace: a sampled trace has its root and every `llm` span evaluated,
    so a root's score and its model calls' scores describe the same request.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return sample_fraction(trace_id, seed) < rate


def is_eval_candidate(span: Span) -> bool:
    """Spans online evaluation considers: model calls (`llm`) and trace roots, never evaluator spans."""
    kind = span.kind
    return kind is not SpanKind.EVALUATOR and (kind is SpanKind.LLM or span.parent_id is None)


# -- what an evaluator can see and report while it runs ------------------------------------------


@dataclass(slots=True)
class TraceTotals:
    """The application's model spend in a sampled trace, from spans that finished before the one judged."""

    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    unpriced: int = 0


@dataclass(slots=True)
class ModelCall:
    """One model call an evaluator made; becomes an `evaluator` span."""

    model: str | None
    provider: str | None
    usage: Usage | None
    start_ns: int
    end_ns: int
    input: Any = None
    output: Any = None
    error: str | None = None


@dataclass(slots=True)
class EvaluationContext:
    """What the worker tells a running evaluator (per thread): the span, its trace's spend, its calls."""

    span: Span
    totals: TraceTotals
    calls: list[ModelCall] = field(default_factory=list)
    content_captured: bool = True


_local = threading.local()


def set_context(ctx: EvaluationContext | None) -> None:
    """Set (or clear) the running evaluator's context on this thread. For the evaluation worker."""
    _local.context = ctx


def record_model_call(
    model: str | None,
    provider: str | None,
    usage: Usage | None,
    start_ns: int,
    end_ns: int,
    *,
    input: Any = None,
    output: Any = None,
    error: str | None = None,
) -> None:
    """Report a model call made by the running evaluator; it is recorded as an `evaluator` span.

    Outside an evaluation (an evaluator called directly, in a test) this does nothing.
    """
    ctx: EvaluationContext | None = getattr(_local, "context", None)
    if ctx is not None:
        ctx.calls.append(ModelCall(model, provider, usage, start_ns, end_ns, input, output, error))


def content_captured() -> bool:
    """For the running evaluator: False when content capture is off (no input/output to judge)."""
    ctx: EvaluationContext | None = getattr(_local, "context", None)
    return ctx.content_captured if ctx is not None else True


def trace_totals() -> TraceTotals | None:
    """For the running evaluator: model spend of the judged span's trace so far (None outside one)."""
    ctx: EvaluationContext | None = getattr(_local, "context", None)
    return ctx.totals if ctx is not None else None
