"""The content policy: capture switch, truncation with a marker, redaction by pattern, key and path."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import llmobs
from llmobs.core.config import default_capture_content
from llmobs.core.content import REDACTED, ContentPolicy
from llmobs.core.model import Span, SpanKind
from tests.conftest import Recorder

SECRETS = {
    "openai": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
    "bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "google": "AIzaSyA1234567890abcdefghijklmnopqrstuv",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB",
}


def make_span(**fields: object) -> Span:
    span = Span(trace_id="a" * 32, span_id="b" * 16, name="s", kind=SpanKind.LLM)
    for key, value in fields.items():
        setattr(span, key, value)
    return span


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_default_patterns_redact_secrets_inside_text(name: str) -> None:
    policy = ContentPolicy()
    text = f"please use {SECRETS[name]} for the call"
    cleaned = policy.clean_str(text)
    assert SECRETS[name] not in cleaned
    assert REDACTED in cleaned
    assert cleaned.startswith("please use ")


def test_secret_named_keys_are_redacted_whole_at_any_depth() -> None:
    policy = ContentPolicy()
    value = {
        "invocation_params": {"model": "gpt-4o", "openai_api_key": "abc", "temperature": 0.2, "max_tokens": 10},
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "X-Api-Key": "k"},
        "password": "hunter2",
        "user": {"client_secret": "s3cr3t", "name": "Ada"},
    }
    cleaned = policy.clean(value)
    assert cleaned["invocation_params"] == {
        "model": "gpt-4o",
        "openai_api_key": REDACTED,
        "temperature": 0.2,
        "max_tokens": 10,
    }
    assert cleaned["headers"] == {"Authorization": REDACTED, "X-Api-Key": REDACTED}
    assert cleaned["password"] == REDACTED
    assert cleaned["user"] == {"client_secret": REDACTED, "name": "Ada"}


def test_truncation_keeps_the_head_and_marks_what_was_cut() -> None:
    policy = ContentPolicy(max_chars=100)
    cleaned = policy.clean({"content": "x" * 1000})
    assert cleaned["content"] == "x" * 100 + "…[truncated 900 chars]"
    assert ContentPolicy().clean("y" * 16384) == "y" * 16384  # the 16 KiB default keeps 16 KiB
    long_list = ContentPolicy(max_items=3).clean(list(range(10)))
    assert long_list == [0, 1, 2, "…[truncated 7 items]"]
    long_map = ContentPolicy(max_items=3).clean({f"k{i}": i for i in range(10)})
    assert long_map == {"k0": 0, "k1": 1, "k2": 2, "…": "[truncated 7 items]"}


def test_content_nested_deeper_than_the_limit_is_cut_with_a_marker() -> None:
    from llmobs.core.content import MAX_DEPTH

    def nested(levels: int, leaf: object) -> object:
        """`levels` containers, lists and dicts in turn from the outside in, around `leaf`."""
        value = leaf
        for level in reversed(range(levels)):
            value = {"k": value} if level % 2 else [value]
        return value

    # MAX_DEPTH containers are kept; what the last one holds becomes the marker.
    assert ContentPolicy().clean(nested(MAX_DEPTH + 8, "leaf")) == nested(MAX_DEPTH, "…[max depth]")
    assert ContentPolicy().clean(nested(MAX_DEPTH, "leaf")) == nested(MAX_DEPTH, "leaf")
    record = {"input": nested(MAX_DEPTH + 1, "leaf"), "output": None, "attributes": {}}
    ContentPolicy().apply_record(record)
    assert record["input"] == nested(MAX_DEPTH, "…[max depth]")


def test_repeated_strings_are_cleaned_the_same_and_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import llmobs.core.content as content

    monkeypatch.setattr(content, "_CACHE_CHAR_BUDGET", 1_000)
    policy = ContentPolicy(max_chars=50)
    leaked = f"my key is {SECRETS['openai']} ok"
    long_text = "x" * 80
    for _ in range(3):  # the second and third answers come from the cache
        assert policy.clean({"a": leaked, "b": [long_text]}) == {
            "a": f"my key is {REDACTED} ok",
            "b": ["x" * 50 + "…[truncated 30 chars]"],
        }
    for n in range(500):
        policy.clean_str(f"a distinct string number {n:06d}")
    assert policy._cleaned_chars <= 1_000
    assert sum(len(key) for key in policy._cleaned) == policy._cleaned_chars
    assert policy.clean_str(leaked) == f"my key is {REDACTED} ok"


def test_objects_become_json_values() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque>"

    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    cleaned = ContentPolicy().clean(
        {"obj": Opaque(), "bytes": b"\x00\x01", "nan": float("nan"), "cycle": cyclic, 3: (1, 2), "set": {1}}
    )
    assert cleaned == {
        "obj": "<Opaque>",
        "bytes": "<2 bytes>",
        "nan": "nan",
        "cycle": [1, "…[cycle]"],
        "3": [1, 2],
        "set": [1],
    }
    json.dumps(cleaned)


def test_user_patterns_keys_and_paths() -> None:
    policy = ContentPolicy(
        redact_patterns=[r"\b\d{3}-\d{2}-\d{4}\b"],
        redact_keys=r"^email$",
        redact_paths=["input.*.content", "attributes.user.phone"],
    )
    span = make_span(
        input=[{"role": "user", "content": "hello"}, {"role": "system", "content": "be nice"}],
        output={"text": "SSN 123-45-6789 on file"},
        attributes={"user": {"phone": "555-1234", "email": "a@b.c", "plan": "pro"}},
    )
    policy.apply(span)
    assert span.input == [{"role": "user", "content": REDACTED}, {"role": "system", "content": REDACTED}]
    assert span.output == {"text": f"SSN {REDACTED} on file"}
    assert span.attributes == {"user": {"phone": REDACTED, "email": REDACTED, "plan": "pro"}}


def test_capture_off_drops_content_but_keeps_the_numbers() -> None:
    span = make_span(
        input=[{"role": "user", "content": "secret plans"}],
        output="answer",
        documents=[{"id": "d1", "score": 0.5, "content": "doc text"}],
        model="gpt-4o",
    )
    ContentPolicy(capture=False).apply(span)
    assert span.input is None and span.output is None
    assert span.documents == [{"id": "d1", "score": 0.5}]
    assert span.model == "gpt-4o"


def test_capture_switches_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_capture_content() is True
    monkeypatch.setenv("LLMOBS_CAPTURE_CONTENT", "false")
    assert default_capture_content() is False
    monkeypatch.delenv("LLMOBS_CAPTURE_CONTENT")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    assert default_capture_content() is False
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    assert default_capture_content() is True


def test_capture_off_through_the_environment_reaches_the_store(
    isolated_llmobs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOBS_CAPTURE_CONTENT", "false")
    with llmobs.span("chat", kind="llm", input="the prompt") as s:
        s.output = "the completion"
    assert llmobs.flush()
    (data,) = sqlite3.connect(isolated_llmobs).execute("SELECT data FROM spans").fetchone()
    assert "the prompt" not in data and "the completion" not in data


def test_default_secrets_never_reach_the_store(isolated_llmobs: Path) -> None:
    with llmobs.span("chat gpt-4o", kind="llm", model="gpt-4o") as s:
        s.input = [{"role": "user", "content": f"my key is {SECRETS['openai']}"}]
        s.attributes["invocation_params"] = {"api_key": "plain-but-secret-value", "model": "gpt-4o"}
        s.attributes["headers"] = {"Authorization": SECRETS["bearer"]}
        s.output = f"use {SECRETS['anthropic']} and {SECRETS['aws']}"
    with llmobs.span("tool", kind="tool", input={"token_url": f"https://x.test/?k={SECRETS['github']}"}):
        pass
    try:
        with llmobs.span("failing"):
            raise RuntimeError(f"auth failed for {SECRETS['google']}")
    except RuntimeError:
        pass
    assert llmobs.flush()
    rows = [row[0] for row in sqlite3.connect(isolated_llmobs).execute("SELECT data FROM spans")]
    assert len(rows) == 3
    dump = "\n".join(rows)
    assert "auth failed for " in dump
    for secret in [*SECRETS.values(), "plain-but-secret-value"]:
        assert secret not in dump
    assert REDACTED in dump


def test_redaction_applies_to_user_rules_in_the_store(isolated_llmobs: Path) -> None:
    llmobs.configure(redact_patterns=[r"ACME-\d+"], redact_paths=["attributes.customer"])
    with llmobs.span("x", input="ticket ACME-1234") as s:
        s.attributes["customer"] = {"name": "Ada Lovelace"}
    assert llmobs.flush()
    (data,) = sqlite3.connect(isolated_llmobs).execute("SELECT data FROM spans").fetchone()
    record = json.loads(data)
    assert record["input"] == f"ticket {REDACTED}"
    assert record["attributes"]["customer"] == REDACTED


def test_policy_is_applied_before_any_sink_sees_the_span(recorder: Recorder) -> None:
    with llmobs.span("x", input={"api_key": "zzz"}):
        pass
    (span,) = recorder.spans()
    assert span.input == {"api_key": REDACTED}
