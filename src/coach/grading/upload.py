"""Grade a whole written answer: split it into phases, grade each, then review it whole."""

from __future__ import annotations

from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId
from coach.grading.models import Report
from coach.grading.port import AnswerReviewRequest, Grader, PhaseGradingRequest, Progress
from coach.grading.report import build_report

MISTAKES_STEP = "Looking for common mistakes"
REPORT_STEP = "Writing the report"


def grading_step(content: Content, phase: PhaseId) -> str:
    """The progress step of grading one phase, e.g. 'Grading phase 3 of 6: API design'."""
    number = PHASE_IDS.index(phase) + 1
    return f"Grading phase {number} of {len(PHASE_IDS)}: {content.phase(phase).title}"


def announce(progress: Progress | None, steps: list[str], done: int) -> None:
    """Tell `progress` that `done` of `steps` are done; past the last, the report is written."""
    if progress is not None:
        progress(done, len(steps), steps[done] if done < len(steps) else REPORT_STEP)


def grade_answer(
    text: str,
    *,
    content: Content,
    grader: Grader,
    question_id: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Phase-by-phase report for one uploaded answer (text already passed clean_text)."""
    steps = [
        "Splitting the answer into phases",
        *(grading_step(content, phase) for phase in PHASE_IDS),
        MISTAKES_STEP,
    ]

    def reached(done: int) -> None:
        announce(progress, steps, done)

    question = content.question(question_id) if question_id else None
    reached(0)
    split = grader.split(text)
    grades = []
    for n, phase in enumerate(PHASE_IDS, start=1):
        reached(n)
        section = split.sections.get(phase, "")
        grades.append(
            grader.grade_phase(
                PhaseGradingRequest(phase=phase, text=section, full_text=text, question=question)
            )
        )
    reached(len(steps) - 1)
    mistakes = grader.find_mistakes(
        AnswerReviewRequest(
            full_text=text, sections=split.sections, phase_grades=tuple(grades), question=question
        )
    )
    reached(len(steps))
    return build_report(
        content=content,
        question_id=question.id if question else None,
        phase_grades=grades,
        mistakes=mistakes,
        split_method=split.method,
    )
