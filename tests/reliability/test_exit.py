"""Exits: spans survive normal exit, sys.exit and SIGTERM (tests/core/test_store.py); under
SIGKILL what is lost is at most what was still queued, and the store stays consistent."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

KEEPS_RECORDING = textwrap.dedent(
    """
    import time
    import llmobs
    llmobs.configure(service_name="killed")
    i = 0
    while True:  # an app recording about 10,000 spans/s
        with llmobs.span(f"s{i}", input="x" * 200):
            pass
        i += 1
        if i % 100 == 0:
            time.sleep(0.01)
        if i % 2000 == 0:
            print(i, flush=True)
    """
)


def test_sigkill_loses_at_most_the_queue_and_leaves_a_consistent_store(isolated_llmobs: Path) -> None:
    env = {**os.environ, "LLMOBS_DB": str(isolated_llmobs)}
    proc = subprocess.Popen([sys.executable, "-c", KEEPS_RECORDING], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    recorded = 0
    while recorded < 10_000:
        line = proc.stdout.readline()
        assert line, "the recording process died"
        recorded = int(line)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    conn = sqlite3.connect(isolated_llmobs)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    # Spans are stored in whole batches, in order: what is missing is the tail still in the queue.
    names = [row[0] for row in conn.execute("SELECT name FROM spans ORDER BY seq")]
    assert names == [f"s{i}" for i in range(stored)]
    assert 0 < stored <= recorded + 2000
    # The queue holds about one flush interval (50 ms) of spans; allow for a slow machine.
    assert recorded - stored <= 5000, f"lost {recorded - stored} spans"
    print(f"SIGKILL after >= {recorded} recorded spans: {stored} stored, store consistent")
