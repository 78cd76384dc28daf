"""`llmobs export --to otlp|langfuse|phoenix` (llmobs/cli/replay.py, llmobs/core/otlp/replay.py):
stored spans replayed in batches to a real loopback receiver."""

from __future__ import annotations

import base64
import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmobs.cli.main import cli
from llmobs.core.model import Span, SpanKind
from llmobs.core.otlp.destinations import otlp_destination
from llmobs.core.otlp.replay import replay_spans
from llmobs.core.sinks import SQLiteSink
from tests.core.test_sinks_otlp import four_spans
from tests.otlp_receiver import OTLPReceiver

OTHER_TRACE = "5b8efff798038103d269b633813fc60c"
HOUR_NS = 3600 * 10**9


def stored(db: Path, spans: list[Span]) -> None:
    sink = SQLiteSink(db)
    sink.write(spans)
    sink.close()


def many_spans(n: int, start_ns: int) -> list[Span]:
    return [
        Span(OTHER_TRACE, f"{i + 1:016x}", f"step {i}", SpanKind.CHAIN, start_ns=start_ns + i, end_ns=start_ns + i + 1)
        for i in range(n)
    ]


def test_export_to_langfuse_sends_one_trace_in_batches_and_counts(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    import time

    now = time.time_ns()
    spans = [replace(s, start_ns=now - 10, end_ns=now) for s in four_spans()]
    stored(isolated_llmobs, spans + many_spans(600, now - HOUR_NS))
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-2")
    monkeypatch.setenv("LANGFUSE_BASE_URL", otlp_receiver.base_url)

    result = CliRunner().invoke(cli, ["export", "--to", "langfuse", "--trace", "0af765"])
    assert result.exit_code == 0, result.output
    assert f"sent 4 spans to langfuse ({otlp_receiver.base_url}/api/public/otel/v1/traces), refused 0" in result.output
    [request] = otlp_receiver.requests
    assert request.path == "/api/public/otel/v1/traces"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"pk-lf-1:sk-lf-2").decode()
    assert request.headers["x-langfuse-ingestion-version"] == "4"
    assert sorted(request.spans, key=lambda s: s.span_id) == sorted(spans, key=lambda s: s.span_id)

    otlp_receiver.requests.clear()
    result = CliRunner().invoke(cli, ["export", "--to", "langfuse", "--trace", OTHER_TRACE[:6]])
    assert result.exit_code == 0, result.output
    assert "sent 600 spans to langfuse" in result.output
    assert [r.span_count() for r in otlp_receiver.requests] == [256, 256, 88]

    otlp_receiver.requests.clear()
    result = CliRunner().invoke(cli, ["export", "--to", "langfuse", "--since", "30m"])
    assert "sent 4 spans" in result.output  # the 600 older spans are outside the window


def test_export_to_phoenix_and_otlp_use_their_own_variables(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    stored(isolated_llmobs, four_spans())
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", otlp_receiver.base_url)
    monkeypatch.setenv("PHOENIX_PROJECT_NAME", "shared")
    result = CliRunner().invoke(cli, ["export", "--to", "phoenix"])
    assert result.exit_code == 0, result.output
    assert otlp_receiver.requests[-1].headers["x-project-name"] == "shared"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.url("/collector/v1/traces"))
    result = CliRunner().invoke(cli, ["export", "--to", "otlp"])
    assert result.exit_code == 0, result.output
    assert otlp_receiver.requests[-1].path == "/collector/v1/traces"
    assert otlp_receiver.requests[-1].span_count() == 4


def test_refused_spans_are_counted_and_the_exit_status_says_so(
    monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    stored(isolated_llmobs, four_spans())
    with OTLPReceiver(status=400) as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url())
        result = CliRunner().invoke(cli, ["export", "--to", "otlp"])
    assert result.exit_code == 1
    assert "sent 0 spans to otlp" in result.output
    assert "refused 4" in result.output
    assert "4 spans were refused" in result.output


def test_missing_langfuse_keys_is_a_clear_cli_error(monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path) -> None:
    stored(isolated_llmobs, four_spans())
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY", raising=False)
    monkeypatch.delenv("LANGFUSE_SECRET_KEY", raising=False)
    result = CliRunner().invoke(cli, ["export", "--to", "langfuse"])
    assert result.exit_code == 1
    assert "Error: the langfuse sink needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY" in result.output


def test_progress_bar_path_on_a_terminal(
    otlp_receiver: OTLPReceiver, monkeypatch: pytest.MonkeyPatch, isolated_llmobs: Path
) -> None:
    from llmobs.cli.replay import export_to
    from llmobs.core import store

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    stored(isolated_llmobs, many_spans(300, 1))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", otlp_receiver.url())
    monkeypatch.setattr(sys, "stderr", FakeTTY())
    export_to(store.connect(isolated_llmobs, readonly=True), "otlp", since_ns=None, trace_id=None)
    assert sum(r.span_count() for r in otlp_receiver.requests) == 300
    assert "sent 300 spans to otlp" in sys.stderr.getvalue()


def test_replay_spans_reports_each_batch(otlp_receiver: OTLPReceiver) -> None:
    exporter = otlp_destination(otlp_receiver.url()).make_exporter()
    seen: list[tuple[int, bool]] = []
    result = replay_spans(iter(many_spans(5, 1)), exporter, batch_size=2, on_batch=lambda n, ok: seen.append((n, ok)))
    exporter.shutdown()
    assert (result.sent, result.refused, result.batches) == (5, 0, 3)
    assert seen == [(2, True), (2, True), (1, True)]
