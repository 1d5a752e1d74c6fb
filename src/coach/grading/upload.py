"""Grade a whole written answer: split it into phases, grade each, then review it whole."""

from __future__ import annotations

from collections.abc import Callable

from coach.content.loader import Content
from coach.content.models import PHASE_IDS
from coach.grading.models import Report
from coach.grading.port import AnswerReviewRequest, Grader, PhaseGradingRequest
from coach.grading.report import build_report

# (steps done, steps in all, what is being done now): with an LLM each step is a call, and a
# whole answer takes eight of them, so whoever waits is shown how far it has got.
Progress = Callable[[int, int, str], None]


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
        *(
            f"Grading phase {n} of {len(PHASE_IDS)}: {content.phase(phase).title}"
            for n, phase in enumerate(PHASE_IDS, start=1)
        ),
        "Looking for common mistakes",
    ]

    def reached(done: int) -> None:
        if progress is not None:
            progress(done, len(steps), steps[done] if done < len(steps) else "Writing the report")

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
