"""LLM call records written from one background thread, grouped into as few commits as possible.

Every advance makes two LLM calls. Writing each record in its own transaction took the
database's write lock twice more per request, on the request's own thread. Here the request
thread only queues the record; the writer takes whatever has queued by the time it wakes and
stores it in one transaction, so under light load a record is written at once and under heavy
load many share a commit. `close()` writes what is still queued.
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
_STOP = None


class LLMCallLog:
    """Queue `LLMCallRecord`s for the llm_calls table; a daemon thread stores them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(
            target=self._write_loop, name="coach-llm-calls", daemon=True
        )
        self._writer.start()

    def add(self, record: LLMCallRecord) -> None:
        self._queue.put(asdict(record) | {"at": datetime.now(UTC)})

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._writer.join(timeout)

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
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
