"""Request and response bodies of the HTTP API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.content.models import PhaseId, Question
from coach.engine import PhaseState, Session, Turn
from coach.grading.models import PhaseGrade, PhaseTime, Report


class ErrorBody(BaseModel):
    """Every error the API returns: a stable code to branch on, a message for people."""

    code: str = Field(description="Stable, e.g. not_found, empty_input, rate_limited.")
    message: str = Field(description="What went wrong and how to fix it.")
    field: str | None = Field(default=None, description="The request field at fault, if one.")


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for a router: the error statuses its routes may answer with."""
    meaning = {
        401: "No or an unknown bearer token (COACH_AUTH=token).",
        404: "No such question, interview or grading (or not yours).",
        409: "The interview is not in a state for this (finished, or moved on).",
        413: "The body is over the size limit.",
        422: "Empty, binary or malformed input; `field` names the part at fault.",
        429: "Over the per-token limit on LLM-backed calls; see Retry-After.",
        503: "The database (or the shared rate-limit store) cannot be reached.",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in statuses}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuestionSummary(BaseModel):
    id: str
    title: str
    difficulty: Literal["easy", "medium", "hard"]
    tags: list[str]
    canonical: bool

    @classmethod
    def of(cls, q: Question) -> QuestionSummary:
        return cls(
            id=q.id, title=q.title, difficulty=q.difficulty, tags=q.tags, canonical=q.canonical
        )


class PhaseGuide(BaseModel):
    """One phase as the study simulator shows it: what to cover and a strong answer."""

    id: PhaseId
    order: int
    title: str
    purpose: str
    opening_question: str
    time_budget_minutes: float
    prompts_to_hit: list[str]
    model_answer: str


class QuestionDetail(QuestionSummary):
    prompt: str
    phases: list[PhaseGuide]


class QuizItem(BaseModel):
    id: str
    topic: str
    question: str
    options: list[str]


class QuizAnswer(Body):
    answer: int = Field(ge=0, le=20, strict=True, description="Index of the chosen option.")


class QuizVerdict(BaseModel):
    id: str
    correct: bool
    correct_answer: int
    explanation: str


class NewInterview(Body):
    question_id: str = Field(min_length=1, max_length=100, examples=["twitter"])
    candidate: str | None = Field(default=None, max_length=200)


class TextBody(Body):
    text: str = Field(description="What the candidate says; empty text is refused with 422.")


class AdvanceBody(Body):
    phase: PhaseId | None = Field(
        default=None,
        description="The phase you mean to grade; if the interview has moved on, 409 "
        "instead of grading the next phase by mistake.",
    )


class FinishBody(Body):
    wait: bool = Field(
        default=True,
        description="false: finish in a job (the report may take several LLM calls) and "
        "answer 202 at once with the job to poll at /v1/gradings/{id}.",
    )


class InterviewView(BaseModel):
    """An interview as any front door needs it: transcript, phase states, time and report."""

    id: str
    question_id: str
    candidate: str | None
    status: str
    phase: PhaseId
    phase_index: int
    version: int
    created_at: datetime
    awaiting_pushback_reply: bool
    turns: list[Turn]
    phases: list[PhaseState]
    time_per_phase: list[PhaseTime]
    report: Report | None

    @classmethod
    def of(cls, session: Session, time_per_phase: list[PhaseTime]) -> InterviewView:
        return cls(
            id=session.id,
            question_id=session.question_id,
            candidate=session.candidate,
            status=session.status,
            phase=session.phase,
            phase_index=session.phase_index,
            version=session.version,
            created_at=session.created_at,
            awaiting_pushback_reply=session.awaiting_pushback_reply(),
            turns=session.turns,
            phases=session.phases,
            time_per_phase=time_per_phase,
            report=session.report,
        )


class TurnsReply(BaseModel):
    """The interviewer's new turns after a candidate's message, and the interview now."""

    turns: list[Turn]
    interview: InterviewView


class AdvanceReply(BaseModel):
    outcome: Literal["advanced", "pushback", "finished"]
    phase: PhaseId = Field(description="The phase the interview is in now.")
    grade: PhaseGrade | None = Field(description="The grade of the phase just left.")
    opening: str | None = Field(description="The interviewer's opening of the next phase.")
    turns: list[Turn]
    report: Report | None
    version: int


class GradingRequest(Body):
    text: str = Field(description="The whole written answer (Markdown or plain text).")
    question_id: str | None = Field(default=None, max_length=100)
    filename: str | None = Field(default=None, max_length=255, description="Shown in reports.")
    wait: bool | None = Field(
        default=None,
        description="true: grade in this request; false: always a job to poll; "
        "unset: a job only when the answer is long.",
    )


class GradingProgress(BaseModel):
    """How far a grading job has got: `done` of `total` steps, and the one under way."""

    done: int
    total: int
    step: str


class GradingStatus(BaseModel):
    grading_id: str
    status: Literal["pending", "running", "done", "failed"]
    filename: str | None
    question_id: str | None
    interview_id: str | None = Field(
        default=None, description="Set when the job finishes this interview (finish, wait=false)."
    )
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    report: Report | None
    progress: GradingProgress | None = Field(
        default=None,
        description="Set once a job has started: e.g. 3 of 8 steps, 'Grading phase 3 of 6: "
        "API design'. An upload has eight steps (the split, six phases, the mistake review); "
        "a finish job one per phase not graded yet, and the review.",
    )
    poll: str
