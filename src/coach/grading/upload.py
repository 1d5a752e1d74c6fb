"""Grade a whole written answer: split it into phases, grade each, then review it whole."""

from __future__ import annotations

from coach.content.loader import Content
from coach.content.models import PHASE_IDS
from coach.grading.models import Report
from coach.grading.port import AnswerReviewRequest, Grader, PhaseGradingRequest
from coach.grading.report import build_report


def grade_answer(
    text: str, *, content: Content, grader: Grader, question_id: str | None = None
) -> Report:
    """Phase-by-phase report for one uploaded answer (text already passed clean_text)."""
    question = content.question(question_id) if question_id else None
    split = grader.split(text)
    grades = [
        grader.grade_phase(
            PhaseGradingRequest(
                phase=phase, text=split.sections.get(phase, ""), full_text=text, question=question
            )
        )
        for phase in PHASE_IDS
    ]
    mistakes = grader.find_mistakes(
        AnswerReviewRequest(
            full_text=text, sections=split.sections, phase_grades=tuple(grades), question=question
        )
    )
    return build_report(
        content=content,
        question_id=question.id if question else None,
        phase_grades=grades,
        mistakes=mistakes,
        split_method=split.method,
    )
