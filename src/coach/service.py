"""The application core the front doors share: the engine, the store and upload grading jobs.

A front door (API, web page, Slack, CLI) calls one method here; this module loads the
interview, lets the engine change it, and saves it with an optimistic version check, so two
requests on the same interview can never lose a turn or store a phase's grade twice.
Candidate text is always stored before any grading starts, so a crash or an LLM failure
loses nothing: the grade is simply asked for again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from coach.config import Settings
from coach.content.loader import Content, load_content
from coach.content.models import PHASE_IDS
from coach.engine import AdvanceResult, InterviewEngine, Session, Turn
from coach.errors import InterviewConflictError, InterviewStateError
from coach.grading.factory import make_grader, make_voice
from coach.grading.models import Report
from coach.grading.port import Grader, Progress
from coach.grading.upload import grade_answer
from coach.store import GradingRecord, InterviewSummary, LLMCallLog, Store
from coach.text_input import clean_text
from coach.voice import InterviewerVoice, StaticVoice

if TYPE_CHECKING:
    from coach.jobs import GradingQueue

log = logging.getLogger(__name__)

T = TypeVar("T")

# Concurrent answers on one interview are rare and cheap to redo; a handful of retries lets
# every one of them land instead of bouncing a candidate's text back with an error.
SAVE_RETRIES = 8


def _back_off(attempt: int) -> None:
    """Wait a random moment before retrying a save that lost a race, longer each time.

    Without it, requests that collided retry in lockstep and collide again; with a jittered,
    growing wait (at most ~0.3 s per try) a burst of concurrent answers lands in a few rounds.
    """
    time.sleep(random.uniform(0, min(0.3, 0.002 * 2**attempt)))


@dataclass(frozen=True)
class GradingOutcome:
    """A stored upload and, when it was graded in the request, its report."""

    record: GradingRecord
    report: Report | None


Spend = Callable[[], None]
"""Spends the caller's LLM budget (the API's rate limit) once a request is known to be valid:
called after the input and the interview's state are checked, just before the work, so a
request refused for what it asks costs nothing. Calling it again does nothing."""


def _free() -> None:
    """The budget of front doors without a rate limit (CLI, Slack, jobs)."""


def check_can_advance(session: Session, expected_phase: str | None) -> None:
    """Refuse an advance that cannot happen: the interview is past `expected_phase` (another
    request graded it), not yet at it, or finished."""
    if expected_phase is not None and session.phase != expected_phase:
        if expected_phase in PHASE_IDS and PHASE_IDS.index(expected_phase) > session.phase_index:
            raise InterviewConflictError(
                f"The interview is in the {session.phase} phase, not {expected_phase}: "
                f"{expected_phase} has not been reached yet. Advance grades the current phase."
            )
        raise InterviewConflictError(
            f"The interview is in the {session.phase} phase, not {expected_phase}: the "
            "phase was already graded (perhaps by another request). Reload it."
        )
    if session.finished:
        raise InterviewStateError(
            f"This interview is finished; get its report at /v1/interviews/{session.id}/report."
        )


class CoachService:
    """Interviews and upload grading over one store, shared by every front door.

    Example::

        service = CoachService(Settings())
        session = service.create_interview("twitter", candidate="ada", owner=None)
        service.answer(session.id, "Who are the users?", owner=None)
    """

    def __init__(
        self,
        settings: Settings,
        *,
        content: Content | None = None,
        store: Store | None = None,
        grader: Grader | None = None,
        voice: InterviewerVoice | None = None,
    ) -> None:
        self.settings = settings
        self.content = content or load_content(settings)
        self.store = store or Store.from_settings(settings)
        self.grader = grader or make_grader(settings, self.content)
        breaker = getattr(self.grader, "breaker", None)
        self.voice = voice or make_voice(settings, self.content, breaker=breaker)
        # With an LLM voice, an advance words the next opening on these threads while it
        # grades (one LLM wait instead of two); one thread per request thread at most.
        self._voice_threads: ThreadPoolExecutor | None = None
        if not isinstance(self.voice, StaticVoice):
            self._voice_threads = ThreadPoolExecutor(
                max_workers=settings.resolved_request_threads, thread_name_prefix="coach-voice"
            )
        self.engine = InterviewEngine(
            self.content,
            self.grader,
            voice=self.voice,
            max_answer_chars=settings.max_answer_chars,
            voice_executor=self._voice_threads,
        )
        self._jobs = ThreadPoolExecutor(
            max_workers=settings.job_threads, thread_name_prefix="coach-grading"
        )
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._queued: set[str] = set()  # jobs waiting for or in a thread of this process
        self._running: set[str] = set()  # jobs this process has claimed and is grading
        self._keeper: threading.Thread | None = None
        self.call_log: LLMCallLog | None = None
        # With COACH_REDIS_URL, jobs go to the shared queue that `coach worker` processes.
        self.job_queue: GradingQueue | None = None
        if settings.scale_out:
            from coach.jobs import GradingQueue

            self.job_queue = GradingQueue(settings)

    def start_jobs(self) -> int:
        """Queue the jobs no live process is grading, and keep doing so in the background.

        Every server process runs this when it starts. A keeper thread renews the lease on
        this process's running jobs and, once per beat, picks up jobs whose process died
        (their lease ran out), so a job is graded by exactly one live process. Returns how
        many jobs were queued at once.
        """
        resumed = self.resume_pending_gradings()
        if self._keeper is None:
            self._keeper = threading.Thread(
                target=self._keep_jobs, name="coach-grading-keeper", daemon=True
            )
            self._keeper.start()
        return resumed

    def start_call_log(self) -> LLMCallLog:
        """The writer that stores LLM call records (llm_calls) in batches; close() flushes it."""
        if self.call_log is None:
            self.call_log = LLMCallLog(self.store)
        return self.call_log

    def close(self) -> None:
        """Stop taking jobs; running ones finish (pending ones resume at the next start)."""
        self._closed.set()
        if self._keeper is not None:
            self._keeper.join()
        self._jobs.shutdown(wait=True, cancel_futures=True)
        if self._voice_threads is not None:
            self._voice_threads.shutdown(wait=True, cancel_futures=True)
        if self.call_log is not None:
            self.call_log.close()
        self.store.close()

    # -- interviews ------------------------------------------------------------------------

    def create_interview(
        self, question_id: str, *, candidate: str | None = None, owner: str | None
    ) -> Session:
        session = self.engine.start(question_id, candidate)
        self.store.create_interview(session, owner=owner)
        return session

    def get_interview(self, interview_id: str, *, owner: str | None) -> Session:
        return self.store.get_interview(interview_id, owner=owner)

    def list_interviews(
        self, *, owner: str | None, candidate: str | None = None
    ) -> list[InterviewSummary]:
        return self.store.list_interviews(owner=owner, candidate=candidate)

    def answer(
        self, interview_id: str, text: str, *, owner: str | None
    ) -> tuple[Session, list[Turn]]:
        """Store the candidate's answer; concurrent answers are all kept, in arrival order."""
        text = clean_text(text, max_chars=self.settings.max_answer_chars, what="answer")
        return self._retrying(interview_id, owner, lambda s: self.engine.answer(s, text))

    def clarify(
        self, interview_id: str, text: str, *, owner: str | None, spend: Spend = _free
    ) -> tuple[Session, Turn]:
        text = clean_text(
            text, max_chars=self.settings.max_answer_chars, what="clarifying question"
        )

        def ask(session: Session) -> Turn:
            self.engine.check_can_clarify(session)
            spend()
            return self.engine.clarify(session, text)

        return self._retrying(interview_id, owner, ask)

    def advance(
        self,
        interview_id: str,
        *,
        owner: str | None,
        expected_phase: str | None = None,
        progress: Progress | None = None,
        spend: Spend = _free,
    ) -> tuple[Session, AdvanceResult]:
        """Grade the current phase and open the next, exactly once per phase.

        If another request changed the interview while this one was grading, a new answer
        is graded too (the phase is graded again on the fresh text); if the other request
        already moved past the phase, this one stops with a conflict instead of grading
        the next phase by accident. `progress` hears of each grading step as it starts.
        """
        for attempt in range(SAVE_RETRIES):
            session = self.store.get_interview(interview_id, owner=owner)
            check_can_advance(session, expected_phase)
            spend()
            expected_phase = expected_phase or session.phase
            version = session.version
            result = self.engine.advance(session, progress=progress)
            try:
                self.store.save_interview(session, expected_version=version)
            except InterviewConflictError:
                _back_off(attempt)
                continue
            return session, result
        raise InterviewConflictError(
            "The interview kept changing while it was graded; try advancing again."
        )

    def finish(
        self,
        interview_id: str,
        *,
        owner: str | None,
        progress: Progress | None = None,
        spend: Spend = _free,
    ) -> tuple[Session, Report]:
        def finish(session: Session) -> Report:
            if session.report is not None:
                return session.report  # finished already: nothing to grade, nothing spent
            spend()
            return self.engine.finish(session, progress=progress)

        return self._retrying(interview_id, owner, finish)

    def finish_as_job(
        self, interview_id: str, *, owner: str | None, spend: Spend = _free
    ) -> GradingRecord | None:
        """Finish the interview in a job (the final report may take several LLM calls).

        Returns the job to poll at /v1/gradings/{id}, the same one while it is unfinished, or
        None when the interview is already finished (its report is ready). With Redis the
        job goes to the shared queue, so any `coach worker` may run it; the engine's version
        check means a job run twice still finishes the interview once.
        """
        session = self.store.get_interview(interview_id, owner=owner)
        if session.finished:
            return None
        if (job := self.store.open_finish_job(interview_id, owner=owner)) is not None:
            return job
        spend()
        record = self.store.create_grading(
            text=session.candidate_text(),
            owner=owner,
            question_id=session.question_id,
            interview_id=interview_id,
        )
        self.enqueue_grading(record.id, attempt=record.attempts)
        return record

    def report(self, interview_id: str, *, owner: str | None) -> Report:
        return self.engine.report(self.store.get_interview(interview_id, owner=owner))

    def _retrying(
        self, interview_id: str, owner: str | None, change: Callable[[Session], T]
    ) -> tuple[Session, T]:
        """Load, change, save with the version check; on a conflict reload and redo."""
        for attempt in range(SAVE_RETRIES):
            session = self.store.get_interview(interview_id, owner=owner)
            version = session.version
            result = change(session)
            if session.version == version:
                return session, result  # nothing changed, nothing to save
            try:
                self.store.save_interview(session, expected_version=version)
            except InterviewConflictError:
                _back_off(attempt)
                continue
            return session, result
        raise InterviewConflictError(
            "The interview is being changed by many requests at once; send this again."
        )

    # -- upload grading --------------------------------------------------------------------

    def submit_grading(
        self,
        text: str,
        *,
        owner: str | None,
        filename: str | None = None,
        question_id: str | None = None,
        wait: bool | None = None,
        progress: Progress | None = None,
        spend: Spend = _free,
    ) -> GradingOutcome:
        """Store the answer, then grade it now (small) or as a background job (large).

        `wait=None` decides by size (COACH_SYNC_GRADING_MAX_CHARS); True or False forces it.
        `progress` hears of each step of a grading done in this call (a job stores its own).
        """
        if question_id:
            self.content.question(question_id)  # an unknown id fails before anything is stored
        spend()
        if wait is None:
            wait = len(text) <= self.settings.sync_grading_max_chars
        record = self.store.create_grading(
            text=text, owner=owner, filename=filename, question_id=question_id, claimed=wait
        )
        if not wait:
            self.enqueue_grading(record.id, attempt=record.attempts)
            return GradingOutcome(record=record, report=None)
        report = self._grade(record, progress=progress)  # nobody polls it: it is answered
        return GradingOutcome(record=self.store.get_grading(record.id, owner=owner), report=report)

    def enqueue_grading(self, grading_id: str, *, attempt: int) -> None:
        """Queue a pending grading: on the shared queue when Redis is set, else in-process.

        A queue that cannot be reached is logged, not raised: the grading is stored pending,
        and the keeper queues it again on its next beat.
        """
        if self.job_queue is not None:
            try:
                self.job_queue.submit(grading_id, attempt=attempt)
            except Exception as exc:
                log.warning("could not queue grading %s (%s); retrying later", grading_id, exc)
            return
        with self._lock:
            if self._closed.is_set() or grading_id in self._queued:
                return
            self._queued.add(grading_id)
        self._jobs.submit(self._run_job, grading_id)

    def _run_job(self, grading_id: str) -> None:
        try:
            self.run_grading(grading_id)
        except Exception:  # a job thread must never die silently
            log.exception("grading job %s failed", grading_id)
        finally:
            with self._lock:
                self._queued.discard(grading_id)

    def run_grading(self, grading_id: str) -> Report | None:
        """Grade a stored upload exactly once; None if another worker already has it."""
        record = self.store.claim_grading(grading_id)
        if record is None:
            return None
        return self._grade(record, progress=self._stored_progress(grading_id))

    def _stored_progress(self, grading_id: str) -> Progress:
        """Stores each step of a job as it starts, for whoever polls the job."""

        def progress(done: int, total: int, step: str) -> None:
            try:
                self.store.record_progress(grading_id, done=done, total=total, step=step)
            except Exception as exc:  # progress is for show: the grading goes on without it
                log.warning("could not store progress of grading %s: %s", grading_id, exc)

        return progress

    def _grade(self, record: GradingRecord, *, progress: Progress | None) -> Report:
        """Grade a grading this process has claimed, and store the report or the failure."""
        grading_id = record.id

        with self._lock:
            self._running.add(grading_id)
        try:
            if record.interview_id is not None:  # a finish job: the interview's final report
                _, report = self.finish(record.interview_id, owner=record.owner, progress=progress)
            else:
                report = grade_answer(
                    record.text,
                    content=self.content,
                    grader=self.grader,
                    question_id=record.question_id,
                    progress=progress,
                )
        except Exception as exc:
            self.store.fail_grading(grading_id, f"{type(exc).__name__}: {exc}")
            raise
        else:
            self.store.finish_grading(grading_id, report.model_dump_json())
        finally:
            with self._lock:
                self._running.discard(grading_id)
        return report

    def retry_grading(
        self, grading_id: str, *, owner: str | None, spend: Spend = _free
    ) -> GradingRecord:
        if self.store.get_grading(grading_id, owner=owner).status == "failed":
            spend()  # only a failed grading is graded again; the others are refused or queued
        record = self.store.retry_grading(grading_id, owner=owner)
        self.enqueue_grading(grading_id, attempt=record.attempts)
        return record

    def get_grading(self, grading_id: str, *, owner: str | None) -> GradingRecord:
        return self.store.get_grading(grading_id, owner=owner)

    def resume_pending_gradings(self) -> int:
        """Queue uploads accepted but not being graded by any live process; returns how many."""
        pending = self.store.pending_gradings(stale_after=self.settings.job_lease_seconds)
        for grading_id, attempts in pending.items():
            self.enqueue_grading(grading_id, attempt=attempts)
        return len(pending)

    def _keep_jobs(self) -> None:
        """The keeper thread: renew this process's leases, pick up abandoned jobs."""
        beat = self.settings.job_lease_seconds / 5
        while not self._closed.wait(beat):
            try:
                with self._lock:
                    running = set(self._running)
                self.store.touch_gradings(running)
                self.resume_pending_gradings()
            except Exception:  # the database may be away for a while; try again next beat
                log.exception("renewing grading jobs failed")
