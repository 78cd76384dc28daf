"""`LLMJudge`: an evaluator that asks a model to grade an answer against a rubric.

    from langchain_openai import ChatOpenAI
    from llmobs.evaluators import LLMJudge

    judge = LLMJudge(ChatOpenAI(model="gpt-4o-mini"), rubric="Is the answer grounded in the policy?",
                     calls_per_minute=30)
    llmobs.configure(evaluators=[judge], eval_sample_rate=0.05)

The judge takes a LangChain chat model (anything with `invoke(messages)` returning a message) or
any callable `fn(prompt: str)`. Its own model call is recorded as an `evaluator` span under the
judged span, with usage and cost, and never counts in the application's totals; inside it,
tracing is suppressed, so the instrumented framework records no application `llm` span for it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from llmobs.core.evaluation import Evaluator, content_captured, record_model_call
from llmobs.core.evaluators import answer_text
from llmobs.core.model import Evaluation, Span, Usage

DEFAULT_TEMPLATE = """You are grading the answer of an AI application.

Rubric:
{rubric}

Question or input:
{input}

Answer to grade:
{output}

Reply with one JSON object and nothing else:
{{"score": <number from 0 (fails the rubric) to 1 (fully meets it)>, "label": "<one word>", "explanation": "<one sentence>"}}"""

_SCORE_RE = re.compile(r"score\W{0,3}([01](?:\.\d+)?|\.\d+)", re.IGNORECASE)


class LLMJudge(Evaluator):
    """Grades a span's answer with a model and a rubric, within a calls-per-minute budget.

    Args:
        model_or_callable: a LangChain chat model (its `invoke` is called with one user
            message, the prompt) or any callable taking the prompt string. Either may return a message
            (`.content`, and `.usage_metadata` for tokens), a string, a number (the score) or a
            dict with `score`, `label`, `explanation` and optionally `usage`
            (`{"input_tokens": ..., "output_tokens": ...}`) and `model`.
        rubric: what a good answer is, in plain words.
        name: the result's name (default "llm_judge").
        calls_per_minute: budget of judge calls; past it, spans get a "skipped" result (score None).
        model: model name for the evaluator span's pricing when the model does not report one.
        provider: provider name (OTel `gen_ai.provider.name`) for pricing, likewise.
        template: the prompt, with `{rubric}`, `{input}` and `{output}` placeholders.
        targets: "root" (default: the request's final answer), "llm" or "all".
        timeout_s: seconds before the call is abandoned and an error result recorded.
    """

    name = "llm_judge"

    def __init__(
        self,
        model_or_callable: Any,
        rubric: str,
        *,
        name: str | None = None,
        calls_per_minute: float | None = 60.0,
        model: str | None = None,
        provider: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        targets: str = "root",
        timeout_s: float = 30.0,
        max_chars: int = 8000,
    ) -> None:
        if not callable(getattr(model_or_callable, "invoke", None)) and not callable(model_or_callable):
            raise TypeError("LLMJudge needs a LangChain chat model (with .invoke) or a callable")
        self.target = model_or_callable
        self.rubric = rubric
        if name:
            self.name = name
        self.targets = targets
        self.timeout_s = timeout_s
        self.template = template
        self.max_chars = max_chars
        self.model = model or _model_name(model_or_callable)
        self.provider = provider or _provider_name(model_or_callable)
        self._bucket = _TokenBucket(calls_per_minute) if calls_per_minute else None

    def evaluate(self, span: Span) -> Evaluation | None:
        output = answer_text(span)
        if output is None or not output.strip() or not content_captured():
            return None
        if self._bucket is not None and not self._bucket.take():
            return Evaluation(self.name, None, "skipped", "calls_per_minute budget exhausted")
        prompt = self.template.format(
            rubric=self.rubric, input=_clip(_as_text(span.input), self.max_chars), output=_clip(output, self.max_chars)
        )
        start_ns = time.time_ns()
        try:
            reply = self._call(prompt)
        except Exception as exc:
            record_model_call(
                self.model,
                self.provider,
                None,
                start_ns,
                time.time_ns(),
                input=prompt,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        end_ns = time.time_ns()
        text, usage, reported_model, verdict = _read_reply(reply)
        record_model_call(
            reported_model or self.model, self.provider, usage, start_ns, end_ns, input=prompt, output=text
        )
        if verdict is None:
            verdict = parse_verdict(text)
        score = verdict.get("score")
        if score is None:
            return Evaluation(self.name, None, "error", f"no score in the judge's reply: {text[:200]!r}")
        score = min(1.0, max(0.0, float(score)))
        label = verdict.get("label")
        explanation = verdict.get("explanation")
        return Evaluation(
            self.name,
            score,
            str(label) if label is not None else None,
            str(explanation) if explanation is not None else None,
        )

    def _call(self, prompt: str) -> Any:
        invoke = getattr(self.target, "invoke", None)
        if callable(invoke):
            return invoke([("human", prompt)])
        fn: Callable[[str], Any] = self.target
        return fn(prompt)


def parse_verdict(text: str) -> dict[str, Any]:
    """Score, label and explanation from a judge's reply: a JSON object, else "score: 0.8" in prose."""
    for match in re.finditer(r"\{.*?\}", text, re.DOTALL):
        try:
            value = json.loads(match.group(0))
        except ValueError:
            continue
        if isinstance(value, dict) and "score" in value:
            try:
                value["score"] = float(value["score"])
            except (TypeError, ValueError):
                value["score"] = None
            return value
    found = _SCORE_RE.search(text)
    if found:
        return {"score": float(found.group(1)), "explanation": text.strip()[:500] or None}
    return {}


def _read_reply(reply: Any) -> tuple[str, Usage | None, str | None, dict[str, Any] | None]:
    """(text, usage, model, verdict-if-structured) from whatever the judge returned."""
    if isinstance(reply, bool):
        return str(reply), None, None, {"score": 1.0 if reply else 0.0}
    if isinstance(reply, int | float):
        return str(reply), None, None, {"score": float(reply)}
    if isinstance(reply, str):
        return reply, None, None, None
    if isinstance(reply, Mapping):
        usage = _usage_from(reply.get("usage"))
        model = reply.get("model")
        verdict = dict(reply) if "score" in reply else None
        text = str(reply.get("text") or reply.get("content") or json.dumps(reply, default=str))
        return text, usage, str(model) if model else None, verdict
    # A LangChain message (AIMessage): content, usage_metadata, response_metadata.
    content = getattr(reply, "content", reply)
    text = content if isinstance(content, str) else _as_text(content)
    usage = _usage_from(getattr(reply, "usage_metadata", None))
    metadata = getattr(reply, "response_metadata", None) or {}
    model = metadata.get("model_name") or metadata.get("model") if isinstance(metadata, Mapping) else None
    return text, usage, str(model) if model else None, None


def _usage_from(data: Any) -> Usage | None:
    if not isinstance(data, Mapping):
        return None
    inp, out = data.get("input_tokens"), data.get("output_tokens")
    if inp is None and out is None:
        return None
    in_details = data.get("input_token_details") or {}
    out_details = data.get("output_token_details") or {}
    total = data.get("total_tokens")
    return Usage(
        input_tokens=int(inp) if inp is not None else None,
        output_tokens=int(out) if out is not None else None,
        total_tokens=int(total) if total is not None else (int(inp or 0) + int(out or 0)),
        cache_read_tokens=in_details.get("cache_read") or data.get("cache_read_tokens") or None,
        cache_write_tokens=in_details.get("cache_creation") or data.get("cache_write_tokens") or None,
        reasoning_tokens=out_details.get("reasoning") or data.get("reasoning_tokens") or None,
    )


def _model_name(target: Any) -> str | None:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(target, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _provider_name(target: Any) -> str | None:
    get_params = getattr(target, "_get_ls_params", None)
    if callable(get_params):
        try:
            provider = get_params().get("ls_provider")
        except Exception:
            return None
        return str(provider) if provider else None
    return None


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


class _TokenBucket:
    """`rate` calls per minute, with bursts up to one minute's worth. Thread-safe."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = max(1.0, float(per_minute))
        self.rate_per_s = float(per_minute) / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False
