"""What `llmobs watch` does when an alert fires: POST its JSON to a webhook, or run a command.

Both are bounded by a timeout and never raise: a webhook that is down, slow or answers 500, or a
command that fails, is reported on stderr and counted, and watching goes on.

The JSON (`alert_payload`) is `Alert.to_dict()` (rule, kind, window, value, threshold, time,
time_ns, trace_ids, span_id, span_name) plus `text`, a one-line summary (which Slack and
Mattermost incoming webhooks display as is), and `source`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmobs.core.alerts import Alert

USER_AGENT = "llmobs-watch"


def alert_payload(alert: Alert, text: str) -> dict[str, Any]:
    """The JSON posted to webhooks and given to `--exec` commands."""
    return {**alert.to_dict(), "text": text, "source": "llmobs"}


@dataclass(slots=True)
class Delivery:
    """How one action went: ok, or what failed."""

    ok: bool
    detail: str


def post_webhook(url: str, payload: Mapping[str, Any], *, timeout_s: float, headers: Mapping[str, str]) -> Delivery:
    """POST `payload` as JSON to `url`. A 2xx answer is a success; anything else is reported."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = int(response.status)
            response.read(65536)
    except urllib.error.HTTPError as exc:
        return Delivery(False, f"webhook {url} answered {exc.code} {exc.reason}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Delivery(False, f"webhook {url} failed: {reason}")
    except Exception as exc:  # an unexpected failure must not stop the watcher
        return Delivery(False, f"webhook {url} failed: {exc!r}")
    if not 200 <= status < 300:
        return Delivery(False, f"webhook {url} answered {status}")
    return Delivery(True, f"webhook {url} answered {status}")


def command_environment(payload: Mapping[str, Any]) -> dict[str, str]:
    """The variables an `--exec` command sees besides the JSON on its stdin."""
    value = payload.get("value")
    return {
        "LLMOBS_ALERT": json.dumps(payload, ensure_ascii=False),
        "LLMOBS_ALERT_RULE": str(payload.get("rule", "")),
        "LLMOBS_ALERT_WINDOW": str(payload.get("window") or ""),
        "LLMOBS_ALERT_VALUE": "" if value is None else repr(float(value)),
        "LLMOBS_ALERT_TRACE_IDS": " ".join(payload.get("trace_ids") or ()),
        "LLMOBS_ALERT_TEXT": str(payload.get("text", "")),
    }


def run_command(command: str, payload: Mapping[str, Any], *, timeout_s: float) -> Delivery:
    """Run `command` with the shell, the alert JSON on stdin and in `LLMOBS_ALERT*` variables.

    Its output is discarded (a failure reports the last line of its stderr). Past `timeout_s` it
    is killed, with whatever it started (it runs in a process group of its own).
    """
    env = {**os.environ, **command_environment(payload)}
    try:
        process = subprocess.Popen(  # the user's own command line, like a git hook
            command,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=os.name == "posix",
        )
    except Exception as exc:  # OSError and anything else: report, keep watching
        return Delivery(False, f"command {command!r} could not run: {exc}")
    try:
        _, err = process.communicate(json.dumps(payload, ensure_ascii=False).encode("utf-8"), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill(process)
        return Delivery(False, f"command {command!r} did not finish within {timeout_s:g}s and was stopped")
    except Exception as exc:
        _kill(process)
        return Delivery(False, f"command {command!r} failed: {exc!r}")
    if process.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        last = f": {lines[-1]}" if lines else ""
        return Delivery(False, f"command {command!r} exited with status {process.returncode}{last}")
    return Delivery(True, f"command {command!r} ran")


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    except OSError:
        pass
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:  # pragma: no cover - an unkillable process: leave it
        pass
    for stream in (process.stdin, process.stderr):
        if stream is not None:
            stream.close()
