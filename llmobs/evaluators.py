"""Evaluators for online evaluation: `llmobs.configure(evaluators=[...], eval_sample_rate=0.1)`.

    from llmobs.evaluators import LatencyBudget, LLMJudge, NonEmptyAnswer, Refusal

    llmobs.configure(
        evaluators=[NonEmptyAnswer(), Refusal(), LatencyBudget("5s", targets="root"),
                    LLMJudge(judge_model, rubric="Is the answer grounded in the context?")],
        eval_sample_rate=0.1,
    )

Write your own by subclassing `Evaluator` (see its docstring).
"""

from __future__ import annotations

from llmobs.core.evaluation import Evaluator, record_model_call, trace_totals
from llmobs.core.evaluators import (
    REFUSAL_PATTERNS,
    Contains,
    CostBudget,
    LatencyBudget,
    NonEmptyAnswer,
    Refusal,
    Regex,
    ValidJSON,
    answer_text,
)
from llmobs.core.judge import LLMJudge
from llmobs.core.model import Evaluation

__all__ = [
    "REFUSAL_PATTERNS",
    "Contains",
    "CostBudget",
    "Evaluation",
    "Evaluator",
    "LLMJudge",
    "LatencyBudget",
    "NonEmptyAnswer",
    "Refusal",
    "Regex",
    "ValidJSON",
    "answer_text",
    "record_model_call",
    "trace_totals",
]
