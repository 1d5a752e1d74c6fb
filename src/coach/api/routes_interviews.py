"""Mock interviews: create, answer, clarify, advance (also streamed), finish, report."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator

import anyio
from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

from coach.api.deps import Budget, Owner, Service
from coach.api.errors import APIError, error_body, status_of
from coach.api.routes_gradings import accepted
from coach.api.schemas import (
    AdvanceBody,
    AdvanceReply,
    FinishBody,
    GradingStatus,
    InterviewView,
    NewInterview,
    TextBody,
    TurnsReply,
    error_responses,
)
from coach.engine import AdvanceResult, Session
from coach.errors import CoachError
from coach.grading.models import Report
from coach.llm import streaming_tokens
from coach.render import report_markdown
from coach.service import CoachService, check_can_advance
from coach.store import InterviewSummary

router = APIRouter(
    prefix="/v1/interviews",
    tags=["interviews"],
    responses=error_responses(401, 404, 409, 413, 422, 429, 503),
)


def json_reply(model: BaseModel, *, status_code: int = 200) -> Response:
    """The model as JSON, serialised once: FastAPI would validate a returned model against
    the route's response_model again first, a cost that shows on the busiest routes. The
    routes using this still declare their response_model for the OpenAPI schema."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def view(service: CoachService, session: Session) -> InterviewView:
    return InterviewView.of(session, service.engine.time_per_phase(session))


def advance_reply(request: Request, session: Session, result: AdvanceResult) -> AdvanceReply:
    if result.grade is not None:  # the only new grade, even when this finishes the interview
        request.app.state.metrics.observe_grade(result.grade)
    opening = next((t.text for t in result.turns if t.kind == "opening"), None)
    return AdvanceReply(
        outcome=result.outcome,
        phase=result.phase,
        grade=result.grade,
        opening=opening,
        turns=result.turns,
        report=result.report,
        version=session.version,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=InterviewView)
def create_interview(body: NewInterview, service: Service, owner: Owner) -> Response:
    """Start a mock interview; the interviewer's opening is the first turn."""
    session = service.create_interview(body.question_id, candidate=body.candidate, owner=owner)
    reply = json_reply(view(service, session), status_code=status.HTTP_201_CREATED)
    reply.headers["Location"] = f"/v1/interviews/{session.id}"
    return reply


@router.get("")
def list_interviews(
    service: Service, owner: Owner, candidate: str | None = None
) -> list[InterviewSummary]:
    """My interviews, newest first (in token mode, only the ones this token created)."""
    return service.list_interviews(owner=owner, candidate=candidate)


@router.get("/{interview_id}", response_model=InterviewView)
def get_interview(interview_id: str, service: Service, owner: Owner) -> Response:
    return json_reply(view(service, service.get_interview(interview_id, owner=owner)))


@router.post("/{interview_id}/answers", response_model=TurnsReply)
def post_answer(interview_id: str, body: TextBody, service: Service, owner: Owner) -> Response:
    """Add the candidate's answer to the current phase (or reply to a pushback)."""
    session, turns = service.answer(interview_id, body.text, owner=owner)
    return json_reply(TurnsReply(turns=turns, interview=view(service, session)))


@router.post("/{interview_id}/pushback")
def answer_pushback(
    interview_id: str, body: TextBody, service: Service, owner: Owner
) -> TurnsReply:
    """Reply to the interviewer's deep-dive pushback (409 when none is waiting)."""
    session = service.get_interview(interview_id, owner=owner)
    if not session.awaiting_pushback_reply():
        raise APIError(
            409,
            "no_pushback",
            "No pushback is waiting for a reply; send your answer to /answers instead.",
        )
    session, turns = service.answer(interview_id, body.text, owner=owner)
    return TurnsReply(turns=turns, interview=view(service, session))


@router.post("/{interview_id}/clarify")
def clarify(interview_id: str, body: TextBody, service: Service, budget: Budget) -> TurnsReply:
    """Ask a clarifying question in phase 1; the answer comes from the question's facts."""
    session, turn = service.clarify(interview_id, body.text, owner=budget.owner, spend=budget.spend)
    return TurnsReply(turns=[turn], interview=view(service, session))


@router.post("/{interview_id}/advance", response_model=AdvanceReply)
def advance(
    interview_id: str,
    service: Service,
    budget: Budget,
    request: Request,
    body: AdvanceBody | None = None,
) -> Response:
    """Grade the current phase and open the next (in the deep dive, push back first)."""
    expected = body.phase if body else None
    session, result = service.advance(
        interview_id, owner=budget.owner, expected_phase=expected, spend=budget.spend
    )
    return json_reply(advance_reply(request, session, result))


@router.post(
    "/{interview_id}/advance/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def advance_stream(
    interview_id: str,
    service: Service,
    budget: Budget,
    request: Request,
    body: AdvanceBody | None = None,
) -> EventSourceResponse:
    """Like /advance, as Server-Sent Events: `token` events while the LLM writes, then one
    `grade` event with the validated result (or one `error` event). Offline: `grade` at once."""
    # 404 or 409 before the stream starts; a database read, so not on the event loop.
    owner = budget.owner
    session = await anyio.to_thread.run_sync(
        functools.partial(service.get_interview, interview_id, owner=owner)
    )
    expected = body.phase if body else None
    check_can_advance(session, expected)
    await anyio.to_thread.run_sync(budget.spend)  # a 429 too comes before the stream starts
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def sink(token: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, token)

    def work() -> tuple[Session, AdvanceResult]:
        with streaming_tokens(sink):  # set in the grading thread: contextvars stay per thread
            return service.advance(interview_id, owner=owner, expected_phase=expected)

    async def events() -> AsyncIterator[dict[str, str]]:
        job = asyncio.ensure_future(anyio.to_thread.run_sync(work))
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                yield {"event": "token", "data": getter.result()}
                continue
            getter.cancel()
            while not queue.empty():
                yield {"event": "token", "data": queue.get_nowait()}
            try:
                session, result = job.result()
            except CoachError as exc:
                payload = error_body(exc.code, str(exc)) | {"status": status_of(exc)}
                yield {"event": "error", "data": json.dumps(payload)}
                return
            reply = advance_reply(request, session, result)
            yield {"event": "grade", "data": reply.model_dump_json()}
            return

    return EventSourceResponse(events())


@router.post(
    "/{interview_id}/finish",
    response_model=Report,
    responses={202: {"model": GradingStatus, "description": "Finishing as a job; poll it."}},
)
def finish(
    interview_id: str,
    service: Service,
    budget: Budget,
    request: Request,
    body: FinishBody | None = None,
) -> Report | JSONResponse:
    """End now: grade the phases not yet graded and return the report.

    With `{"wait": false}` the work runs as a job (on the shared queue when COACH_REDIS_URL
    is set) and the answer is 202 with the job to poll; the report is then also at
    /v1/interviews/{id}/report.
    """
    owner = budget.owner
    if body is not None and not body.wait:
        job = service.finish_as_job(interview_id, owner=owner, spend=budget.spend)
        if job is not None:
            return accepted(job)
    before = service.get_interview(interview_id, owner=owner)
    graded = {p.phase for p in before.phases if p.grade is not None}
    _, report = service.finish(interview_id, owner=owner, spend=budget.spend)
    for grade in report.phases:
        if grade.phase not in graded:
            request.app.state.metrics.observe_grade(grade)
    return report


@router.get("/{interview_id}/report")
def report(interview_id: str, service: Service, owner: Owner) -> Report:
    """The finished interview's report; the same JSON as `coach grade --json`."""
    return service.report(interview_id, owner=owner)


@router.get("/{interview_id}/report.md", response_class=PlainTextResponse)
def report_md(interview_id: str, service: Service, owner: Owner) -> PlainTextResponse:
    """The report as Markdown, for export."""
    text = report_markdown(service.report(interview_id, owner=owner), service.content)
    return PlainTextResponse(text, media_type="text/markdown; charset=utf-8")
