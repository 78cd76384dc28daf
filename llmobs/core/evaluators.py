"""Built-in evaluators: non-empty answer, valid JSON, regex / contains, refusal, latency and cost budgets.

Every score is in [0, 1] and higher is better (1.0: the answer passes). Each takes `targets`
("root", "llm" or "all") and `name` to rename its result.

    from llmobs.evaluators import NonEmptyAnswer, ValidJSON, LatencyBudget
    llmobs.configure(evaluators=[NonEmptyAnswer(), LatencyBudget("5s", targets="root")])

An `llm` span whose output is only tool calls (a turn that asks for tools, not an answer) is
not judged by the answer evaluators, nor is any span when content capture is off; the budgets
judge every targeted span. `LLMJudge` lives in
`core/judge.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from llmobs.core.evaluation import Evaluator, content_captured, trace_totals
from llmobs.core.model import MODEL_KINDS, Evaluation, Span

_TEXT_KEYS = ("content", "text", "output", "answer", "result", "response")


def _text_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in _TEXT_KEYS:
            if key in value:
                return _text_of(value[key])
        return None
    if isinstance(value, list | tuple):
        # A message list (or content parts): the answer is the last message with text.
        parts = [t for t in (_text_of(v) for v in value) if t is not None]
        if value and all(isinstance(v, Mapping) and "role" in v for v in value):
            return parts[-1] if parts else None
        return "".join(parts) if parts else None
    return str(value)


def answer_text(span: Span) -> str | None:
    """The text of a span's answer (its output): a string, a message's content, a list's last message."""
    return _text_of(span.output)


def is_tool_call_turn(span: Span) -> bool:
    """True for a model output that asks for tools and says nothing: not an answer to judge."""
    output = span.output
    if isinstance(output, Mapping) and output.get("tool_calls"):
        return not (_text_of(output) or "").strip()
    return False


def parse_duration_ms(value: str | float | int) -> float:
    """`"250ms"`, `"2s"`, `"1.5m"`, `"1h"` or a number of milliseconds, as milliseconds."""
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 250ms, 2s, 1.5m, 1h)")
    number, unit = float(match.group(1)), match.group(2) or "ms"
    return number * {"ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}[unit]


class _AnswerEvaluator(Evaluator):
    """Base for evaluators of the answer text: skips tool-call turns and spans without output."""

    def __init__(self, name: str | None = None, targets: str = "all") -> None:
        if targets not in ("root", "llm", "all"):
            raise ValueError(f"targets must be 'root', 'llm' or 'all', got {targets!r}")
        if name:
            self.name = name
        self.targets = targets

    def evaluate(self, span: Span) -> Evaluation | None:
        if is_tool_call_turn(span) or not content_captured():
            return None
        return self.judge(answer_text(span))

    def judge(self, text: str | None) -> Evaluation | None:
        raise NotImplementedError


class NonEmptyAnswer(_AnswerEvaluator):
    """1.0 when the answer has any non-whitespace text, else 0.0 ("empty")."""

    name = "non_empty"

    def judge(self, text: str | None) -> Evaluation:
        if text is not None and text.strip():
            return Evaluation(self.name, 1.0, "pass", None)
        return Evaluation(self.name, 0.0, "empty", "the answer is empty" if text is not None else "no answer")


class ValidJSON(_AnswerEvaluator):
    """1.0 when the answer parses as JSON (and, with `schema`, validates against that JSON Schema).

    Args:
        schema: a JSON Schema (dict); needs the `jsonschema` package.
        strip_fences: accept an answer wrapped in a Markdown code fence (```json ... ```).

    Raises:
        ImportError: `schema` given and `jsonschema` is not installed.
    """

    name = "valid_json"

    def __init__(
        self,
        schema: Mapping[str, Any] | None = None,
        *,
        strip_fences: bool = True,
        name: str | None = None,
        targets: str = "all",
    ) -> None:
        super().__init__(name, targets)
        self.strip_fences = strip_fences
        self._validator: Any = None
        if schema is not None:
            try:
                import jsonschema  # type: ignore[import-untyped]
            except ImportError as exc:
                raise ImportError("ValidJSON(schema=...) needs the jsonschema package: pip install jsonschema") from exc
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validator = cls(schema)

    def judge(self, text: str | None) -> Evaluation:
        if text is None:
            return Evaluation(self.name, 0.0, "invalid", "no answer")
        body = text.strip()
        if self.strip_fences:
            fenced = re.fullmatch(r"```[a-zA-Z]*\s*\n?(.*?)\n?```", body, re.DOTALL)
            if fenced:
                body = fenced.group(1).strip()
        try:
            value = json.loads(body)
        except ValueError as exc:
            return Evaluation(self.name, 0.0, "invalid", f"not JSON: {exc}")
        if self._validator is not None:
            errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                first = errors[0]
                where = "/".join(str(p) for p in first.path) or "(root)"
                return Evaluation(self.name, 0.0, "schema_mismatch", f"{where}: {first.message}")
        return Evaluation(self.name, 1.0, "valid", None)


class Regex(_AnswerEvaluator):
    """1.0 when the answer matches `pattern` (searched anywhere), or with `must_match=False`, when it does not."""

    name = "regex"

    def __init__(
        self,
        pattern: str | re.Pattern[str],
        *,
        must_match: bool = True,
        flags: int = 0,
        name: str | None = None,
        targets: str = "all",
    ) -> None:
        super().__init__(name, targets)
        self.pattern = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, flags)
        self.must_match = must_match

    def judge(self, text: str | None) -> Evaluation:
        found = self.pattern.search(text or "")
        ok = bool(found) == self.must_match
        why = f"matched {found.group(0)[:80]!r}" if found else f"no match for {self.pattern.pattern!r}"
        return Evaluation(self.name, 1.0 if ok else 0.0, "pass" if ok else "fail", why)


class Contains(_AnswerEvaluator):
    """1.0 when the answer contains the phrase(s): `mode="all"` needs each, `"any"` one, `"none"` none.

    Case-insensitive unless `case_sensitive`.
    """

    name = "contains"

    def __init__(
        self,
        phrases: str | Iterable[str],
        *,
        mode: str = "all",
        case_sensitive: bool = False,
        name: str | None = None,
        targets: str = "all",
    ) -> None:
        super().__init__(name, targets)
        if mode not in ("all", "any", "none"):
            raise ValueError(f"mode must be 'all', 'any' or 'none', got {mode!r}")
        self.phrases = [phrases] if isinstance(phrases, str) else list(phrases)
        self.mode = mode
        self.case_sensitive = case_sensitive

    def judge(self, text: str | None) -> Evaluation:
        haystack = text or ""
        if not self.case_sensitive:
            haystack = haystack.lower()
        present = [p for p in self.phrases if (p if self.case_sensitive else p.lower()) in haystack]
        missing = [p for p in self.phrases if p not in present]
        if self.mode == "all":
            ok, why = not missing, f"missing {missing}" if missing else None
        elif self.mode == "any":
            ok, why = bool(present), None if present else f"none of {self.phrases}"
        else:
            ok, why = not present, f"contains {present}" if present else None
        return Evaluation(self.name, 1.0 if ok else 0.0, "pass" if ok else "fail", why)


#: Phrases models use to decline. Matched case-insensitively near the start of the answer.
REFUSAL_PATTERNS = (
    r"\bI(?:'m| am) (?:sorry|afraid),? (?:but )?I (?:can(?:'|no)t|cannot|won't|am unable to|'m unable to)",
    r"\bI (?:can(?:'|no)t|cannot|won't|will not) (?:help|assist|provide|comply|do that|answer|support)",
    r"\bI(?:'m| am) (?:unable|not able) to (?:help|assist|provide|comply|answer|fulfil)",
    r"\bas an AI(?: language model)?,? I (?:can(?:'|no)t|cannot|don't|do not)",
    r"\bI must (?:decline|refuse)\b",
    r"\b(?:this|that) request (?:violates|goes against)\b",
)


class Refusal(_AnswerEvaluator):
    """0.0 ("refusal") when the answer declines ("I'm sorry, but I can't help with that"), else 1.0 ("answer").

    Args:
        patterns: regular expressions that mark a refusal (default `REFUSAL_PATTERNS`).
        window: only the first `window` characters are searched: refusals come first, and a long
            answer that quotes such a phrase later is still an answer.
    """

    name = "refusal"

    def __init__(
        self,
        patterns: Iterable[str] = REFUSAL_PATTERNS,
        *,
        window: int = 300,
        name: str | None = None,
        targets: str = "all",
    ) -> None:
        super().__init__(name, targets)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)
        self.window = window

    def judge(self, text: str | None) -> Evaluation | None:
        if text is None or not text.strip():
            return None  # nothing said: NonEmptyAnswer's business, not a refusal
        # Typographic apostrophes are common in model output.
        found = self._pattern.search(text[: self.window].replace("\u2019", "'"))
        if found:
            return Evaluation(self.name, 0.0, "refusal", f"declined: {found.group(0)!r}")
        return Evaluation(self.name, 1.0, "answer", None)


class LatencyBudget(Evaluator):
    """1.0 ("within_budget") when the span took at most `max_duration`, else budget/actual (< 1).

    Args:
        max_duration: e.g. `"5s"`, `"800ms"`, or milliseconds.
        ttft: judge time to first token instead of duration (spans without TTFT are skipped).
    """

    name = "latency_budget"

    def __init__(
        self, max_duration: str | float, *, ttft: bool = False, name: str | None = None, targets: str = "all"
    ) -> None:
        self.budget_ms = parse_duration_ms(max_duration)
        if self.budget_ms <= 0:
            raise ValueError("max_duration must be positive")
        self.ttft = ttft
        self.name = name or ("ttft_budget" if ttft else "latency_budget")
        self.targets = targets

    def evaluate(self, span: Span) -> Evaluation | None:
        actual = span.ttft_ms if self.ttft else span.duration_ms
        if actual is None:
            return None
        if actual <= self.budget_ms:
            return Evaluation(self.name, 1.0, "within_budget", None)
        return Evaluation(
            self.name,
            self.budget_ms / actual,
            "over_budget",
            f"{actual:.0f}ms over a {self.budget_ms:.0f}ms budget",
        )


class CostBudget(Evaluator):
    """1.0 ("within_budget") when the cost is at most `max_usd`, else budget/actual (< 1).

    For a model span the cost is its own; for a trace root it is the application's model spend in
    the whole trace (its `llm`, `embedding` and `reranker` spans; judge calls excluded). A span
    whose cost is unknown (an unpriced model) gets no result: unknown is not free.
    """

    name = "cost_budget"

    def __init__(self, max_usd: float, *, name: str | None = None, targets: str = "all") -> None:
        if max_usd <= 0:
            raise ValueError("max_usd must be positive")
        self.budget_usd = float(max_usd)
        if name:
            self.name = name
        self.targets = targets

    def evaluate(self, span: Span) -> Evaluation | None:
        if span.kind in MODEL_KINDS:
            if span.cost is None:
                return None
            actual = span.cost.total_usd
        else:
            totals = trace_totals()
            if totals is None or totals.unpriced or not totals.model_calls:
                return None
            actual = totals.cost_usd
        if actual <= self.budget_usd:
            return Evaluation(self.name, 1.0, "within_budget", None)
        return Evaluation(
            self.name,
            self.budget_usd / actual,
            "over_budget",
            f"${actual:.6f} over a ${self.budget_usd:.6f} budget",
        )
