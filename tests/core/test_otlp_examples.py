"""examples/forward_to_langfuse.py and examples/forward_to_phoenix.py, offline."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import llmobs
from llmobs.core import store
from tests.otlp_receiver import OTLPReceiver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield
    for name in ("forward_to_langfuse", "forward_to_phoenix", "manual_spans"):
        sys.modules.pop(name, None)


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_forward_to_phoenix_sends_the_demo_trace_and_the_store_has_it(
    examples: None, otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", otlp_receiver.base_url)
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "demo")
    [trace_id] = load("forward_to_phoenix").run()
    llmobs.shutdown()
    received = otlp_receiver.wait_for_spans(6)
    conn = store.connect(isolated_llmobs, readonly=True)
    stored = store.trace_spans(conn, trace_id)
    assert len(stored) == 6
    assert sorted(received, key=lambda s: s.span_id) == sorted(stored, key=lambda s: s.span_id)
    assert {r.headers["x-project-name"] for r in otlp_receiver.requests} == {"demo"}


def test_forward_to_langfuse_without_keys_says_what_is_missing(
    examples: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    assert load("forward_to_langfuse").main() == 2
    err = capsys.readouterr().err
    assert "Langfuse is not configured: the langfuse sink needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY" in err


def test_forward_to_langfuse_reports_an_unreachable_host(
    examples: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with OTLPReceiver(status=503) as receiver:
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk")
        monkeypatch.setenv("LANGFUSE_BASE_URL", receiver.base_url)
        module = load("forward_to_langfuse")
        sink = module.langfuse(timeout=0.2, flush_timeout=5.0)
        monkeypatch.setattr(module, "langfuse", lambda **_: sink)
        assert module.main() == 0
    err = capsys.readouterr().err
    assert f"could not deliver to langfuse ({receiver.base_url}/api/public/otel/v1/traces)" in err
    assert "`llmobs export --to langfuse` can send them later" in err
