"""Questions, the study simulator's data and the quiz: read-only content."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from coach.api.deps import Owner, Service
from coach.api.errors import APIError
from coach.api.schemas import (
    PhaseGuide,
    QuestionDetail,
    QuestionSummary,
    QuizAnswer,
    QuizItem,
    QuizVerdict,
    error_responses,
)

router = APIRouter(prefix="/v1", tags=["content"], responses=error_responses(404, 422))


@router.get("/questions")
def list_questions(
    service: Service,
    _: Owner,
    tag: str | None = None,
    difficulty: Literal["easy", "medium", "hard"] | None = None,
) -> list[QuestionSummary]:
    """The question bank, the five canonical questions first; filter by tag or difficulty."""
    questions = service.content.questions.values()
    return [
        QuestionSummary.of(q)
        for q in questions
        if (tag is None or tag.lower() in (t.lower() for t in q.tags))
        and (difficulty is None or q.difficulty == difficulty)
    ]


@router.get("/questions/{question_id}")
def get_question(question_id: str, service: Service, _: Owner) -> QuestionDetail:
    """One question with each phase's prompts to hit and model answer (the simulator)."""
    question = service.content.question(question_id)
    phases = [
        PhaseGuide(
            id=p.id,
            order=p.order,
            title=p.title,
            purpose=p.purpose,
            opening_question=p.opening_question,
            time_budget_minutes=p.time_budget_minutes,
            prompts_to_hit=p.prompts_to_hit,
            model_answer=question.model_answers[p.id],
        )
        for p in service.content.phases
    ]
    summary = QuestionSummary.of(question).model_dump()
    return QuestionDetail(**summary, prompt=question.prompt, phases=phases)


@router.get("/quiz")
def quiz(service: Service, _: Owner) -> list[QuizItem]:
    """The quiz bank, without the answers (check one with POST /v1/quiz/{id}/check)."""
    return [
        QuizItem(id=q.id, topic=q.topic, question=q.question, options=q.options)
        for q in service.content.quiz
    ]


@router.post("/quiz/{quiz_id}/check")
def check_quiz(quiz_id: str, body: QuizAnswer, service: Service, _: Owner) -> QuizVerdict:
    """Is this the right option? Always returns the right one and why."""
    item = next((q for q in service.content.quiz if q.id == quiz_id), None)
    if item is None:
        raise APIError(404, "unknown_quiz_question", f"No quiz question with id {quiz_id!r}.")
    if body.answer >= len(item.options):
        raise APIError(
            422,
            "validation_error",
            f"answer must be an option index from 0 to {len(item.options) - 1}.",
            field="answer",
        )
    return QuizVerdict(
        id=item.id,
        correct=body.answer == item.answer,
        correct_answer=item.answer,
        explanation=item.explanation,
    )
