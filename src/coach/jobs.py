"""Grading jobs on a real queue (rq on Redis) for several instances and `coach worker`.

Why rq: it is small, well kept and synchronous like the rest of coach (arq would need an
asyncio service), and Redis is already what the instances share. The queue only carries a
grading's id: the candidate's text is in the database before the job is queued, and the
database claim (`Store.claim_grading`) keeps grading exactly-once even if rq delivers a job
twice. A job whose worker died is found by the lease (COACH_JOB_LEASE_SECONDS) and queued
again under a new rq job id (one per attempt), so rq's own bookkeeping never blocks it.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from coach.config import Settings
from coach.redis_client import connect

if TYPE_CHECKING:
    from redis import Redis
    from rq import Queue

    from coach.service import CoachService

log = logging.getLogger(__name__)

# Generous: a large upload graded phase by phase by a slow LLM; the lease, not this, is
# what notices a dead worker.
JOB_TIMEOUT_SECONDS = 3600

_service: CoachService | None = None  # the worker's service, bound by `run_worker`


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}:gradings"


class GradingQueue:
    """The rq queue grading jobs go to; `submit` is safe to call again for the same attempt.

    Example::

        GradingQueue(settings).submit("g-123", attempt=0)
    """

    def __init__(self, settings: Settings) -> None:
        from rq import Queue

        self.redis: Redis = connect(settings)
        self.queue: Queue = Queue(queue_name(settings), connection=self.redis)
        # rq's job keys are not under the prefix, so the id carries it: two deployments on
        # one Redis never mistake each other's job for their own (rq allows [A-Za-z0-9_-]).
        self.job_prefix = re.sub(r"[^A-Za-z0-9_-]", "_", settings.redis_prefix)

    def submit(self, grading_id: str, *, attempt: int) -> bool:
        """Queue the grading unless this attempt is already queued or running; True if queued."""
        from rq.exceptions import DuplicateJobError, NoSuchJobError
        from rq.job import Job, JobStatus

        live = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}

        job_id = f"{self.job_prefix}-grading-{grading_id}-{attempt}"
        try:
            existing = Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            existing = None
        if existing is not None:
            if existing.get_status() in live:
                return False
            existing.delete()  # finished or failed earlier (e.g. a retried grading)
        try:
            self.queue.enqueue_call(
                "coach.jobs.run_grading",
                args=(grading_id,),
                job_id=job_id,
                timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=600,
                failure_ttl=86_400,
                unique=True,
            )
        except DuplicateJobError:
            return False  # another instance queued it a moment ago
        return True

    def ping(self) -> dict[str, object]:
        """For /readyz: jobs waiting and workers listening (raises if Redis is away)."""
        from rq import Worker

        return {"waiting": self.queue.count, "workers": Worker.count(queue=self.queue)}


def bind(service: CoachService) -> None:
    """Make `run_grading` in this process use `service` (the worker's)."""
    global _service
    _service = service


def run_grading(grading_id: str) -> str:
    """The rq job: grade a stored upload once; the database claim skips a duplicate delivery."""
    global _service
    if _service is None:  # started by plain `rq worker` rather than `coach worker`
        from coach.service import CoachService

        _service = CoachService(Settings())
    report = _service.run_grading(grading_id)
    return "graded" if report is not None else "skipped: another worker has it"


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """`coach worker`: grade queued jobs until stopped (SIGTERM/SIGINT finish the current one).

    A SimpleWorker grades in this process, so this process's keeper thread renews the
    lease on the job it is grading; run more `coach worker` processes for more at once.
    """
    from rq import SimpleWorker

    from coach.llm import add_call_observer
    from coach.service import CoachService

    service = CoachService(settings)
    if service.job_queue is None:
        raise ValueError("coach worker needs COACH_REDIS_URL: its jobs come from Redis")
    bind(service)
    queue = service.job_queue
    resumed = service.start_jobs()
    if resumed:
        log.info("queued %d unfinished grading job(s)", resumed)
    stop_recording = add_call_observer(service.start_call_log().add)  # llm_calls, as the API does
    try:
        worker = SimpleWorker([queue.queue], connection=queue.redis)
        worker.work(burst=burst, with_scheduler=False)
    finally:
        stop_recording()
        service.close()
