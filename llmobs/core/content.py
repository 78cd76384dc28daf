"""The content policy: what of a span's content is kept, how long it may be, and what is redacted.

Applied on the pipeline thread, before a span reaches any sink, in one walk over each content
field that also turns arbitrary Python objects into JSON values:

- capture: on by default; `LLMOBS_CAPTURE_CONTENT=false` (or OpenTelemetry's
  `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=NO_CONTENT`) drops `input`, `output` and
  document contents, keeping ids, scores, models, usage and timing;
- truncation: a string longer than `max_chars` keeps its head and ends with a visible marker,
  `…[truncated N chars]`; a container longer than `max_items` keeps its first items and a marker;
- redaction: strings matching a secret pattern (API keys, bearer tokens, ...) have the match
  replaced by `[REDACTED]`; values under a key named like a secret (password, api_key,
  authorization, ...) are replaced whole; key paths such as `input.*.content` or
  `attributes.user.email` replace what they point at.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from typing import Any

from llmobs.core.model import Span

REDACTED = "[REDACTED]"

#: Secrets recognised inside any string, by default.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"\bsk-[A-Za-z0-9_\-]{16,}",  # OpenAI, Anthropic (sk-ant-), Langfuse secret (sk-lf-), ...
    r"(?i:\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*)",
    r"(?i:\bbasic\s+[A-Za-z0-9+/]{16,}=*)",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API keys
    r"\bgh[pousr]_[A-Za-z0-9]{36,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"\bhf_[A-Za-z0-9]{30,}",  # Hugging Face tokens
    r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)

#: Keys whose values are secrets whatever they look like, by default (searched case-insensitively).
DEFAULT_SECRET_KEYS = (
    r"password|passwd|secret|api[-_]?key|authorization|auth[-_]?token|access[-_]?token"
    r"|refresh[-_]?token|session[-_]?token|private[-_]?key|credential|cookie"
)

#: Lowercase literals of which every match of a default secret pattern contains one.
_DEFAULT_SECRET_MARKERS: tuple[str, ...] = (
    "sk-",
    "bearer",
    "basic",
    "akia",
    "asia",
    "aiza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "hf_",
    "eyj",
    "-----begin",
)


def _has_marker(value: str, markers: tuple[str, ...]) -> bool:
    low = value.lower()
    for marker in markers:  # noqa: SIM110 - twice as fast as any() over a generator
        if marker in low:
            return True
    return False


DEFAULT_MAX_ITEMS = 1000
MAX_DEPTH = 32
_MIN_SECRET_LEN = 10  # no default pattern matches a shorter string

#: The cleaned form of strings seen recently is remembered: system prompts, tool descriptions and
#: an agent loop's growing history come back in span after span, and each string is searched for
#: secrets once. Strings up to `_CACHED_STR_MAX` characters, `_CACHE_CHAR_BUDGET` in all (the
#: cache starts over when full).
_CACHED_STR_MAX = 16 * 1024
_CACHE_CHAR_BUDGET = 2_000_000


class ContentPolicy:
    """Capture, truncation and redaction settings, and their application to spans.

    Args:
        capture: keep prompts, completions, tool arguments/results and document contents.
        max_chars: longest string kept before truncation.
        redact_patterns: extra regular expressions whose matches are replaced in every string.
        redact_keys: extra regular expression matched (searched) against mapping keys; a match
            replaces the whole value.
        redact_paths: dotted key paths (`*` matches any key or list index) replaced whole, e.g.
            `input.*.content` or `attributes.user.email`.
        default_redaction: include the default secret patterns and keys.
    """

    def __init__(
        self,
        *,
        capture: bool = True,
        max_chars: int = 16 * 1024,
        max_items: int = DEFAULT_MAX_ITEMS,
        redact_patterns: Iterable[str | re.Pattern[str]] = (),
        redact_keys: str | None = None,
        redact_paths: Iterable[str] = (),
        default_redaction: bool = True,
    ) -> None:
        self.capture = capture
        self.max_chars = max(1, int(max_chars))
        self.max_items = max(1, int(max_items))
        patterns = [p.pattern if isinstance(p, re.Pattern) else p for p in redact_patterns]
        self._options: dict[str, Any] = {
            "capture": capture,
            "max_chars": self.max_chars,
            "max_items": self.max_items,
            "redact_patterns": list(patterns),
            "redact_keys": redact_keys,
            "redact_paths": [p for p in redact_paths if p],
            "default_redaction": default_redaction,
        }
        if default_redaction:
            patterns = [*DEFAULT_SECRET_PATTERNS, *patterns]
        self._secret_re = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._min_secret_len = _MIN_SECRET_LEN if not redact_patterns else 1
        # Strings shorter than this can neither hold a secret nor need truncation: kept as they are.
        self._short = (
            min(self._min_secret_len, self.max_chars + 1) if self._secret_re is not None else self.max_chars + 1
        )
        # With only the default patterns, a string is searched only when it holds one of their
        # literal markers: the combined regex costs ~0.1 µs per character, a substring test far less.
        self._markers = _DEFAULT_SECRET_MARKERS if patterns == list(DEFAULT_SECRET_PATTERNS) else None
        keys = [k for k in (DEFAULT_SECRET_KEYS if default_redaction else None, redact_keys) if k]
        self._key_re = re.compile("|".join(f"(?:{k})" for k in keys), re.IGNORECASE) if keys else None
        self._key_verdicts: dict[str, bool] = {}
        self._cleaned: dict[str, str] = {}
        self._cleaned_chars = 0
        self._paths = [tuple(p.split(".")) for p in self._options["redact_paths"]]
        self._clean = self._make_walk()

    def options(self) -> dict[str, Any]:
        """The arguments that make an equal policy (JSON values), for a policy in another process."""
        return dict(self._options)

    # -- applying to a span ------------------------------------------------------------------

    def apply(self, span: Span) -> None:
        """Make the span's content JSON-safe, truncated and redacted, in place."""
        self._apply(span, getattr, setattr)
        error = span.error
        if error is not None:
            error.message = self.clean_str(str(error.message))

    def apply_record(self, record: dict[str, Any]) -> None:
        """`apply` for a span in its JSON form (`Span.to_dict()`, as the store's writer process gets it)."""
        self._apply(record, dict.get, dict.__setitem__)
        error = record.get("error")
        if isinstance(error, dict):
            error["message"] = self.clean_str(str(error.get("message")))

    def _apply(self, span: Any, get: Any, put: Any) -> None:
        # One walk state for the span's fields; empty fields cost nothing (most spans have a few).
        seen: set[int] = set()
        walk = self._clean
        if self.capture:
            value = get(span, "input")
            if value is not None:
                put(span, "input", walk(value, 0, seen))
            value = get(span, "output")
            if value is not None:
                put(span, "output", walk(value, 0, seen))
        else:
            put(span, "input", None)
            put(span, "output", None)
        documents = get(span, "documents")
        if documents is not None:
            docs = documents if self.capture else [_without_content(d) for d in documents]
            cleaned = walk(docs, 0, seen)
            put(span, "documents", cleaned if isinstance(cleaned, list) else None)
        attributes = get(span, "attributes")
        if attributes:
            attributes = walk(attributes, 0, seen)
            put(span, "attributes", attributes if isinstance(attributes, dict) else {"value": attributes})
        elif type(attributes) is not dict:
            put(span, "attributes", {})
        for name in ("tool", "agent"):
            value = get(span, name)
            if value is not None:
                value = walk(value, 0, seen)
                put(span, name, value if isinstance(value, dict) else None)
        if self._paths:
            self._redact_paths(span, get, put)

    # -- values --------------------------------------------------------------------------------

    def clean(self, value: Any) -> Any:
        """A JSON value made from `value`: converted, truncated and redacted."""
        return self._clean(value, 0, set())

    def clean_str(self, value: str) -> str:
        """`value` truncated and redacted (answered from the cache when seen recently)."""
        cleaned = self._cleaned.get(value)
        if cleaned is not None:
            return cleaned
        cleaned = self._clean_str_uncached(value)
        size = len(value)
        if size <= _CACHED_STR_MAX:
            if self._cleaned_chars + size > _CACHE_CHAR_BUDGET:
                self._cleaned.clear()
                self._cleaned_chars = 0
            self._cleaned[value] = cleaned
            self._cleaned_chars += size
        return cleaned

    def _clean_str_uncached(self, value: str) -> str:
        key_re = self._key_re
        if key_re is not None and value[:1] in ("{", "[") and key_re.search(value):
            value = self._redact_json_text(value)
        secret_re = self._secret_re
        if (
            secret_re is not None
            and len(value) >= self._min_secret_len
            and (self._markers is None or _has_marker(value, self._markers))
            and secret_re.search(value)
        ):
            value = secret_re.sub(REDACTED, value)
        if len(value) > self.max_chars:
            value = f"{value[: self.max_chars]}…[truncated {len(value) - self.max_chars} chars]"
        return value

    def _redact_json_text(self, value: str) -> str:
        """JSON carried as text (tool-call `arguments` in a conversation history, say) with its
        secret keys redacted like any other mapping's; other text is returned as it is."""
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            return value
        if not isinstance(parsed, (dict, list)):
            return value
        cleaned = self._clean(parsed, 1, set())
        if cleaned == parsed:
            return value  # nothing to redact: keep the text exactly as it was
        return json.dumps(cleaned, ensure_ascii=False)

    def is_secret_key(self, key: str) -> bool:
        if self._key_re is None:
            return False
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            verdict = self._key_re.search(key) is not None
            if len(self._key_verdicts) < 10_000:
                self._key_verdicts[key] = verdict
        return verdict

    def _make_walk(self) -> Callable[[Any, int, set[int]], Any]:
        """The walk that `clean` and `_apply` run: three closures over this policy's settings.

        Closures, not methods: a method would look the settings up again in every container, and
        the containers of a span's content are many and small (a message is a dict of a few
        strings). `seen` holds the ids of the containers being walked, to stop at cycles.
        """
        cached = self._cleaned.get
        clean_str = self.clean_str
        short = self._short
        verdicts = self._key_verdicts.get
        is_secret_key = self.is_secret_key
        limit = self.max_items
        isfinite = math.isfinite

        def walk(value: Any, depth: int, seen: set[int]) -> Any:
            kind = type(value)
            if kind is str:
                return clean_str(value)
            if value is None or kind is bool or kind is int:
                return value
            if kind is float:
                return value if isfinite(value) else str(value)
            if depth >= MAX_DEPTH:
                return "…[max depth]"
            if kind is dict or (kind is not list and isinstance(value, Mapping)):
                return mapping(value, depth, seen)
            if kind is list or kind is tuple or isinstance(value, (list, tuple, set, frozenset)):
                return items(value, depth, seen)
            if isinstance(value, str):  # str subclasses (enums with str mixin, ...)
                return clean_str(str(value))
            if isinstance(value, (int, float)):
                return walk(int(value) if isinstance(value, int) else float(value), depth, seen)
            if isinstance(value, (bytes, bytearray, memoryview)):
                return f"<{len(value)} bytes>"
            return walk(to_plain(value), depth + 1, seen)

        # The two container walks handle str, None, int and bool leaves inline, and go down into
        # dicts and lists directly: most of a span's content is such leaves and containers, and a
        # call per leaf is most of the cost of the walk.

        def mapping(value: Mapping[Any, Any], depth: int, seen: set[int]) -> Any:
            marker = id(value)
            if marker in seen:
                return "…[cycle]"
            seen.add(marker)
            out: dict[str, Any] = {}
            over = len(value) - limit
            pairs: Iterable[tuple[Any, Any]] = value.items() if over <= 0 else islice(value.items(), limit)
            deeper = depth + 1
            for key, item in pairs:
                name = key if type(key) is str else str(key)
                secret = verdicts(name)
                if secret is None:
                    secret = is_secret_key(name)
                if secret and item is not None and item != "":
                    out[name] = REDACTED
                    continue
                kind = type(item)
                if kind is str:
                    out[name] = item if len(item) < short else (cached(item) or clean_str(item))
                elif item is None or kind is int or kind is bool:
                    out[name] = item
                elif kind is dict and deeper < MAX_DEPTH:
                    out[name] = mapping(item, deeper, seen)
                elif kind is list and deeper < MAX_DEPTH:
                    out[name] = items(item, deeper, seen)
                else:
                    out[name] = walk(item, deeper, seen)
            if over > 0:
                out["…"] = f"[truncated {over} items]"
            seen.discard(marker)
            return out

        def items(value: Any, depth: int, seen: set[int]) -> Any:
            marker = id(value)
            if marker in seen:
                return "…[cycle]"
            seen.add(marker)
            out: list[Any] = []
            append = out.append
            over = len(value) - limit
            deeper = depth + 1
            for item in value if over <= 0 else islice(value, limit):
                kind = type(item)
                if kind is str:
                    append(item if len(item) < short else (cached(item) or clean_str(item)))
                elif item is None or kind is int or kind is bool:
                    append(item)
                elif kind is dict and deeper < MAX_DEPTH:
                    append(mapping(item, deeper, seen))
                elif kind is list and deeper < MAX_DEPTH:
                    append(items(item, deeper, seen))
                else:
                    append(walk(item, deeper, seen))
            if over > 0:
                append(f"…[truncated {over} items]")
            seen.discard(marker)
            return out

        return walk

    def _redact_paths(self, span: Any, get: Any, put: Any) -> None:
        roots = {name: get(span, name) for name in ("input", "output", "attributes", "documents")}
        for path in self._paths:
            head, rest = path[0], path[1:]
            if head not in roots:
                continue
            if not rest:
                if head in ("input", "output") and roots[head] is not None:
                    put(span, head, REDACTED)
                continue
            _replace_at(roots[head], rest)


def _replace_at(node: Any, path: tuple[str, ...]) -> None:
    step, rest = path[0], path[1:]
    if isinstance(node, dict):
        keys = list(node) if step == "*" else ([step] if step in node else [])
        for key in keys:
            if rest:
                _replace_at(node[key], rest)
            elif node[key] is not None:
                node[key] = REDACTED
    elif isinstance(node, list):
        if step == "*":
            indexes = range(len(node))
        elif step.isdigit() and int(step) < len(node):
            indexes = range(int(step), int(step) + 1)
        else:
            indexes = range(0)
        for i in indexes:
            if rest:
                _replace_at(node[i], rest)
            elif node[i] is not None:
                node[i] = REDACTED


def _without_content(doc: Any) -> Any:
    if isinstance(doc, Mapping):
        return {k: v for k, v in doc.items() if k != "content"}
    return None


def _attribute(value: Any, name: str) -> Any:
    """`getattr(value, name, None)` that also survives a `__getattr__` raising something else
    (lazy proxies, ORM objects whose session is gone): such a value must not cost its span."""
    try:
        return getattr(value, name, None)
    except Exception:
        return None


def to_plain(value: Any) -> Any:
    """A plain Python structure for an arbitrary object (pydantic models, dataclasses, ...)."""
    dump = _attribute(value, "model_dump")
    if callable(dump):
        try:
            return dump(mode="json", exclude_none=True)
        except Exception:
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        except Exception:
            pass
    to_dict = _attribute(value, "to_dict")
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            pass
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text
