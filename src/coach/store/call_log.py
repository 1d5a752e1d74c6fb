"""LLM call records written from one background thread, grouped into as few commits as possible.

Every advance makes two LLM calls. Writing each record in its own transaction took the
database's write lock twice more per request, on the request's own thread. Here the request
thread only queues the record; the writer waits LINGER_SECONDS after the first one, then
stores everything queued by then in one transaction. `close()` writes what is still queued
at once.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coach.llm import LLMCallRecord
    from coach.store.repository import Store

log = logging.getLogger(__name__)

BATCH_LIMIT = 500  # records in one transaction at most
LINGER_SECONDS = 0.25
"""How long the writer waits after a batch's first record. Written at once, a record's commit
ran while the request that made the call was still grading and saving, and took the
interpreter lock and (on SQLite) the write lock from it. With the wait, an advance's two
records and those of requests around it share one commit made after the answer has gone.
Three paired runs of benchmarks/service_overhead.py --think-ms 3000 each: the LLM-backed
requests' added latency fell from 7.1 to 6.2 ms at the median on SQLite, from 10.3 to 9.3 ms
on PostgreSQL (p99 there 29 to 24 ms, on average). A process killed meanwhile loses these
usage records, never candidate text."""
_STOP = None


class LLMCallLog:
    """Queue `LLMCallRecord`s for the llm_calls table; a daemon thread stores them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._closing = threading.Event()  # set by close(): write without lingering
        self._writer = threading.Thread(
            target=self._write_loop, name="coach-llm-calls", daemon=True
        )
        self._writer.start()

    def add(self, record: LLMCallRecord) -> None:
        self._queue.put(asdict(record) | {"at": datetime.now(UTC)})

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self._closing.set()
        self._queue.put(_STOP)
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            if batch[0] is not _STOP:
                self._closing.wait(LINGER_SECONDS)
            while len(batch) < BATCH_LIMIT:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [record for record in batch if record is not _STOP]
            stopping = len(records) < len(batch)
            if not records:
                continue
            try:
                self.store.record_llm_calls(records)
            except Exception:  # the database may be away; usage records must never stop grading
                log.exception(
                    "could not store %d LLM call record(s); they are dropped", len(records)
                )
