"""A tiny "agent" built from manual spans: no framework, no network, real prices.

    python examples/manual_spans.py

It plans with a model call, retrieves documents, calls a tool that fails once and is retried,
and answers with a second model call; each step is a span, the model calls carry usage
(cached and reasoning tokens included) and are priced from genai-prices.
"""

from __future__ import annotations

import time

import llmobs
from llmobs import Usage

DOCS = [
    {"id": "kb-17", "score": 0.82, "content": "Refunds are issued within 5 business days."},
    {"id": "kb-03", "score": 0.64, "content": "Orders ship from Rotterdam."},
]


def call_model(name: str, model: str, provider: str, prompt: str, usage: Usage, answer: str) -> str:
    with llmobs.span(f"chat {model}", kind="llm", model=model, provider=provider) as s:
        s.input = [{"role": "user", "content": prompt}]
        time.sleep(0.02)
        s.ttft_ms = 8.0
        s.usage = usage
        s.output = {"role": "assistant", "content": answer}
        s.attributes["step"] = name
        return answer


@llmobs.trace(kind="tool")
def lookup_order(order_id: str, attempt: int) -> dict[str, str]:
    time.sleep(0.005)
    if attempt == 0:
        raise TimeoutError("order service did not answer in 5s")
    return {"order_id": order_id, "status": "refunded"}


def run() -> list[str]:
    """Record one trace; return its trace id."""
    with llmobs.span("support-agent", kind="agent", input="Where is my refund for order 42?") as root:
        root.agent = {"name": "support-agent"}
        root.attributes["session_id"] = "demo-session"
        call_model(
            "plan",
            "gpt-4o-mini",
            "openai",
            "Plan how to answer: Where is my refund for order 42?",
            Usage(input_tokens=1200, output_tokens=150, total_tokens=1350, cache_read_tokens=1024),
            "Look up the order, then check the refund policy.",
        )
        with llmobs.span("retrieve refund policy", kind="retriever", input="refund policy") as r:
            time.sleep(0.004)
            r.documents = DOCS
        result: dict[str, str] = {}
        for attempt in range(2):
            try:
                result = lookup_order("42", attempt)
                break
            except TimeoutError:
                continue
        answer = call_model(
            "answer",
            "o3-mini",
            "openai",
            f"Order: {result}. Policy: {DOCS[0]['content']}",
            Usage(input_tokens=900, output_tokens=420, total_tokens=1320, reasoning_tokens=256),
            "Your refund for order 42 was issued; expect it within 5 business days.",
        )
        root.output = answer
        trace_id = root.trace_id
    return [trace_id]


if __name__ == "__main__":
    from demo import show_traces

    show_traces(run())
