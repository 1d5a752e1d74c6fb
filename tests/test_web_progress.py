"""The progress page's rule for the weakest phase and the next question, as a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coach.content import Content
from coach.content.models import PHASE_IDS
from coach.engine import PhaseState, Session
from coach.grading.models import PhaseGrade
from coach.web.progress import progress

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def finished(question_id: str, scores: list[int], day: int = 0) -> Session:
    """A finished interview with these six phase scores."""
    return Session(
        question_id=question_id,
        created_at=START + timedelta(days=day),
        status="finished",
        phase_index=len(PHASE_IDS) - 1,
        phases=[
            PhaseState(
                phase=phase,
                grade=PhaseGrade(
                    phase=phase,
                    score=score,
                    criteria=[],
                    feedback="",
                    next_step="",
                    source="offline",
                ),
            )
            for phase, score in zip(PHASE_IDS, scores, strict=True)
        ],
    )


@pytest.mark.parametrize(
    ("sessions", "tried", "weakest", "question", "reason_has"),
    [
        # Nothing finished yet: the first canonical question not tried.
        ([], set(), None, "twitter", "Finish a mock interview"),
        ([], {"twitter"}, None, "url-shortener", "not tried yet"),
        # Data model weakest: the untried question whose tags lean on it most.
        (
            [finished("twitter", [4, 4, 3, 1, 3, 3])],
            {"twitter"},
            "data_model",
            "key-value-store",
            "partitioning, storage",
        ),
        # A tie goes to the earlier phase; estimation leans on read- or write-heavy problems.
        (
            [finished("twitter", [4, 2, 2, 4, 4, 4]), finished("chat", [4, 2, 2, 4, 4, 4], 1)],
            {"twitter", "chat"},
            "estimation",
            "video-streaming",
            "object-storage, read-heavy, video",
        ),
    ],
)
def test_weakest_phase_and_suggestion(
    content: Content,
    sessions: list[Session],
    tried: set[str],
    weakest: str | None,
    question: str,
    reason_has: str,
) -> None:
    result = progress(content, sessions, tried)
    assert (result.weakest.phase if result.weakest else None) == weakest
    assert result.suggestion.question.id == question
    assert reason_has in result.suggestion.reason
    assert result.suggestion.practised is False


def test_every_question_tried_suggests_where_the_phase_went_worst(content: Content) -> None:
    sessions = [
        finished(q, [4, 4, 4, 3 if q != "payments" else 0, 4, 4], day)
        for day, q in enumerate(content.questions)
    ]
    result = progress(content, sessions, set(content.questions))
    assert result.weakest is not None and result.weakest.phase == "data_model"
    assert result.suggestion.question.id == "payments"
    assert result.suggestion.practised
    assert "went worst" in result.suggestion.reason
