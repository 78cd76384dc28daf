"""From incident to test: capture spans in pytest, turn a trace into a regression case, check trajectories.

Enable the fixture in a `conftest.py` (or a test module):

    pytest_plugins = ["llmobs.testing"]

Then record a case from a trace you care about (`llmobs export --trace ID --format case`, or
`append_case(path, case_from_trace(spans))`) and replay it:

    from llmobs.testing import assert_trajectory, load_cases

    @pytest.mark.parametrize("case", load_cases("tests/cases.jsonl"), ids=lambda c: c["id"])
    def test_agent_keeps_its_trajectory(case, llmobs_spans):
        answer = agent.invoke(case["input"], config={"callbacks": [CallbackHandler()]})
        assert_trajectory(llmobs_spans, case, ignore_args=["request_id"])

A case is one JSON object per line: `id`, `name`, `service`, `input`, `output` (recorded),
`trajectory` (the tool calls in start order, each `{"tool", "arguments", "status"}`), `model`
(the first model called) and `models`, `evaluations` (each with the `span` it was made on), `status`,
`error` and `recorded_at`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmobs.core import runtime
from llmobs.core.model import Span, SpanKind, tool_arguments
from llmobs.core.sinks import MemorySink

_TOOL_PREFIX = "execute_tool "


class SpanCapture:
    """The spans recorded while a test runs (what the `llmobs_spans` fixture yields)."""

    def __init__(self, sink: MemorySink) -> None:
        self.sink = sink

    def spans(self) -> list[Span]:
        """Every span finished so far, in the order they finished (flushes the pipeline first)."""
        if not runtime.get_runtime().pipeline.flush(timeout=10):
            raise AssertionError("llmobs: spans did not reach the capture within 10 s")
        return self.sink.spans

    def traces(self) -> dict[str, list[Span]]:
        """Spans by trace id, in start order."""
        out: dict[str, list[Span]] = {}
        for span in sorted(self.spans(), key=lambda s: (s.start_ns, s.end_ns)):
            out.setdefault(span.trace_id, []).append(span)
        return out

    def clear(self) -> None:
        runtime.get_runtime().pipeline.flush(timeout=10)
        self.sink.clear()

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans())

    def __len__(self) -> int:
        return len(self.spans())


def start_capture() -> SpanCapture:
    """Record every span into memory from now on (replaces the llmobs configuration)."""
    sink = MemorySink()
    runtime.configure(sinks=[sink], flush_interval=0.005, capture_content=True)
    return SpanCapture(sink)


def stop_capture() -> None:
    """Flush and forget the capture; the next span builds the default runtime again."""
    runtime.reset()


# -- cases -------------------------------------------------------------------------------------------


def _span_list(spans: SpanCapture | Iterable[Span]) -> list[Span]:
    items = spans.spans() if isinstance(spans, SpanCapture) else list(spans)
    return sorted(items, key=lambda s: (s.start_ns, s.end_ns))


def _tool_name(span: Span) -> str:
    if span.tool and span.tool.get("name"):
        return str(span.tool["name"])
    return span.name[len(_TOOL_PREFIX) :] if span.name.startswith(_TOOL_PREFIX) else span.name


def trajectory(spans: SpanCapture | Iterable[Span]) -> list[dict[str, Any]]:
    """The tool calls in start order: `{"tool", "arguments", "status"}` each."""
    return [
        {"tool": _tool_name(s), "arguments": tool_arguments(s.input), "status": s.status.value}
        for s in _span_list(spans)
        if s.kind is SpanKind.TOOL
    ]


def _root(spans: list[Span]) -> Span:
    ids = {s.span_id for s in spans}
    return next((s for s in spans if s.parent_id is None), next((s for s in spans if s.parent_id not in ids), spans[0]))


def case_from_trace(spans: SpanCapture | Iterable[Span]) -> dict[str, Any]:
    """A regression case (JSON-ready dict) from the spans of one trace.

    Raises:
        ValueError: no spans, or spans of more than one trace.
    """
    items = _span_list(spans)
    if not items:
        raise ValueError("case_from_trace needs the spans of one trace, got none")
    trace_ids = {s.trace_id for s in items}
    if len(trace_ids) > 1:
        raise ValueError(f"case_from_trace needs the spans of one trace, got {len(trace_ids)} traces")
    root = _root(items)
    models: list[str] = []
    for span in items:
        if span.kind is SpanKind.LLM and span.model and span.model not in models:
            models.append(span.model)
    evaluations = [
        {"span": span.name, **evaluation.to_dict()} for span in items for evaluation in span.evaluations or ()
    ]
    return {
        "id": root.trace_id,
        "name": root.name,
        "service": root.service,
        "input": root.input,
        "output": root.output,
        "trajectory": trajectory(items),
        "model": models[0] if models else None,
        "models": models,
        "evaluations": evaluations,
        "status": root.status.value,
        "error": root.error.to_dict() if root.error is not None else None,
        "recorded_at": datetime.fromtimestamp(root.start_ns / 1e9, UTC).isoformat().replace("+00:00", "Z"),
    }


def append_case(path: str | Path, case: Mapping[str, Any]) -> None:
    """Append one case to a JSONL file (created with its folder if needed)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as out:
        out.write(json.dumps(case, ensure_ascii=False, default=str) + "\n")


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """The cases of a JSONL file, in order (blank lines skipped).

    Raises:
        ValueError: a line that is not a JSON object (the message names the line).
    """
    cases = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(case, dict):
                raise ValueError(f"{path}:{number}: a case is a JSON object, got {type(case).__name__}")
            cases.append(case)
    return cases


def _drop(arguments: Any, ignore: Sequence[str]) -> Any:
    """`arguments` without the ignored fields (names anywhere, or dotted paths from the top)."""
    if not ignore:
        return arguments
    if isinstance(arguments, Mapping):
        out = {}
        for key, value in arguments.items():
            if key in ignore:
                continue
            nested = [p[len(key) + 1 :] for p in ignore if p.startswith(f"{key}.")]
            out[key] = _drop(value, [*(p for p in ignore if "." not in p), *nested])
        return out
    if isinstance(arguments, list):
        return [_drop(item, ignore) for item in arguments]
    return arguments


def _calls(steps: Iterable[Mapping[str, Any]], ignore: Sequence[str]) -> list[tuple[str, Any]]:
    return [(str(step.get("tool")), _drop(step.get("arguments"), ignore)) for step in steps]


def assert_trajectory(
    spans: SpanCapture | Iterable[Span],
    case: Mapping[str, Any],
    ignore_args: Sequence[str] = (),
) -> None:
    """Assert the spans called the same tools, in the same order, with the same arguments as `case`.

    Args:
        spans: the spans of the run under test (the `llmobs_spans` fixture, or a list).
        case: a case from `case_from_trace` / `load_cases`.
        ignore_args: argument fields not compared: a name (ignored at any depth) or a dotted path.

    Raises:
        AssertionError: naming the first step that differs, with both trajectories.
    """
    want = _calls(case.get("trajectory") or (), ignore_args)
    got = _calls(trajectory(spans), ignore_args)
    if want == got:
        return
    step = next((i for i, (w, g) in enumerate(zip(want, got, strict=False)) if w != g), min(len(want), len(got)))
    if step >= len(got):
        problem = f"the run stopped after {len(got)} tool call(s); expected next: {_show(want[step])}"
    elif step >= len(want):
        problem = f"the run made an extra tool call: {_show(got[step])}"
    else:
        problem = f"expected {_show(want[step])}, got {_show(got[step])}"
    raise AssertionError(
        f"tool trajectory differs from case {case.get('id', '?')} at step {step + 1}: {problem}\n"
        f"  expected: {[_show(c) for c in want]}\n"
        f"  got:      {[_show(c) for c in got]}"
    )


def _show(call: tuple[str, Any]) -> str:
    return f"{call[0]}({json.dumps(call[1], sort_keys=True, default=str)})"


# -- the pytest plugin ---------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - the case helpers work without pytest
    pass
else:

    @pytest.fixture
    def llmobs_spans() -> Iterator[SpanCapture]:
        """Capture the spans of the code under test into memory (content capture on).

        llmobs is reconfigured for the test (memory sink only) and reset afterwards.
        """
        capture = start_capture()
        try:
            yield capture
        finally:
            stop_capture()
