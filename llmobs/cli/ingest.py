"""`SpanIngestor`: received OTLP request bodies → priced, cleaned spans in the local store.

Decoding OTLP is CPU work, and the GIL lets one process do it on one core only. So by default the
work (decode, price, content policy, SQLite write) runs in a small pool of worker processes, each
with its own store connection: SQLite in WAL mode takes concurrent writers from several processes
as it does from several apps. `workers=0` does it all in the calling thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from llmobs.core.config import Settings
from llmobs.core.content import ContentPolicy
from llmobs.core.model import MODEL_KINDS, Span
from llmobs.core.otlp import decode_request
from llmobs.core.pricing import Pricer
from llmobs.core.sinks import SQLiteSink

logger = logging.getLogger("llmobs")

MAX_WORKERS = 4


def default_workers() -> int:
    """Worker processes for `tail --otlp`: one per core beyond the receiver's own, up to MAX_WORKERS.

    Below 4 cores none: the receiver process, `tail` and the sending app already share them, and
    measured on 2 cores the pool was no faster than decoding in the receiver.
    """
    cores = os.cpu_count() or 1
    return 0 if cores < 4 else min(MAX_WORKERS, cores - 1)


@dataclass(slots=True)
class IngestCounters:
    requests: int = 0
    spans: int = 0
    rejected: int = 0


class SpanIngestor:
    """Decodes, prices, cleans and stores received spans. Thread-safe.

    Args:
        db_path: the store to write.
        workers: worker processes for decoding and storing (0: in the calling thread).
        pricer: prices model calls that arrive with usage and no cost (in-thread mode; workers
            build theirs from the environment, as `llmobs` does).
        policy: the content policy applied before storing (likewise).
    """

    def __init__(
        self,
        db_path: str | Path,
        *,
        workers: int = 0,
        pricer: Pricer | None = None,
        policy: ContentPolicy | None = None,
    ) -> None:
        self.db_path = Path(db_path)
        settings = Settings.from_env()
        self.pricer = pricer if pricer is not None else Pricer()
        self.policy = (
            policy
            if policy is not None
            else ContentPolicy(capture=settings.capture_content, max_chars=settings.max_content_chars)
        )
        # Inline: a request is answered once its spans are committed (or with the error that stopped them).
        self._sink = SQLiteSink(db_path, writer="inline")
        self._lock = threading.Lock()
        self.counters = IngestCounters()
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            self._pool = _start_pool(workers, str(self.db_path))

    def ingest_body(self, body: bytes, content_type: str) -> int:
        """Decode an `ExportTraceServiceRequest` body and store its spans; returns how many.

        Raises OTLPDecodeError when the body does not parse, other exceptions when the store
        cannot be written.
        """
        pool = self._pool
        if pool is not None:
            try:
                count = pool.submit(_ingest_in_worker, body, content_type).result()
            except BrokenProcessPool:
                logger.warning("llmobs: OTLP worker processes died; decoding in the receiver from now on")
                self._pool = None
            else:
                with self._lock:
                    self.counters.requests += 1
                    self.counters.spans += count
                return count
        spans = decode_request(body, content_type)
        self.ingest(spans)
        return len(spans)

    def ingest(self, spans: Sequence[Span]) -> None:
        """Price, clean and store decoded spans. Raises when the store cannot be written."""
        for span in spans:
            if span.cost is None and span.usage is not None and span.kind in MODEL_KINDS:
                span.cost = self.pricer.price(
                    span.model, span.usage, span.provider, response_model=span.response_model, at_ns=span.start_ns
                )
            self.policy.apply(span)
        with self._lock:
            self.counters.requests += 1
            self.counters.spans += len(spans)
            if spans:
                self._sink.write(spans)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._sink.close()


def _start_pool(workers: int, db_path: str) -> ProcessPoolExecutor | None:
    """Worker processes, started and ready; None (decode in-process) when they cannot start."""
    # spawn, not fork: this process has threads (the HTTP server, tail's reader).
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(db_path,),
    )
    try:
        for future in [pool.submit(_ready) for _ in range(workers)]:
            future.result(timeout=60)  # start them now, not on the first request
    except Exception as exc:  # e.g. a __main__ that spawn cannot re-import (stdin, some embeddings)
        logger.warning("llmobs: OTLP worker processes did not start (%r); decoding in the receiver", exc)
        pool.shutdown(wait=False, cancel_futures=True)
        return None
    return pool


# -- in a worker process -----------------------------------------------------------------------

_worker: SpanIngestor | None = None


def _init_worker(db_path: str) -> None:
    global _worker
    _worker = SpanIngestor(db_path)


def _ready() -> bool:
    return _worker is not None


def _ingest_in_worker(body: bytes, content_type: str) -> int:
    assert _worker is not None
    spans = decode_request(body, content_type)
    _worker.ingest(spans)
    return len(spans)
