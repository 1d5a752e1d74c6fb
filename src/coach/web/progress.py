"""A candidate's progress: scores over time, the weakest phase, and what to practise next.

Pure functions over interviews the service already returned, so the page route stays thin
and the suggestion rule can be read (and tested) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId, Question
from coach.engine import Session

# Question tags whose design leans hard on a phase: practising such a question trains it.
PHASE_TAGS: dict[PhaseId, frozenset[str]] = {
    "requirements": frozenset(
        {"payments", "third-party-providers", "external-api", "collaboration", "ranking"}
    ),
    "estimation": frozenset(
        {"read-heavy", "write-heavy", "time-series", "video", "media", "object-storage"}
    ),
    "api": frozenset(
        {"api-gateway", "external-api", "idempotency", "rate-limiting", "key-value", "search"}
    ),
    "data_model": frozenset(
        {"storage", "key-value", "ledger", "partitioning", "geospatial", "trie", "time-series"}
    ),
    "architecture": frozenset(
        {"fan-out", "caching", "cdn", "queues", "async-processing", "streaming", "feeds"}
    ),
    "deep_dive": frozenset(
        {"consistency", "ordering", "delivery-guarantees", "quorum", "replication", "real-time"}
    ),
}


@dataclass(frozen=True)
class PhaseAverage:
    phase: PhaseId
    title: str
    average: float
    count: int


@dataclass(frozen=True)
class Suggestion:
    question: Question
    phase: PhaseId | None  # the phase it trains (None before any finished interview)
    reason: str
    practised: bool  # True when every question was practised and this one is a re-run


@dataclass(frozen=True)
class Progress:
    finished: list[Session]  # oldest first
    averages: list[PhaseAverage]
    weakest: PhaseAverage | None
    suggestion: Suggestion


def phase_averages(content: Content, sessions: list[Session]) -> list[PhaseAverage]:
    """Mean score per phase over every graded phase of `sessions` (phases never graded: 0 n)."""
    totals: dict[PhaseId, list[int]] = {p: [] for p in PHASE_IDS}
    for session in sessions:
        for state in session.phases:
            if state.grade is not None:
                totals[state.phase].append(state.grade.score)
    return [
        PhaseAverage(
            phase=p,
            title=content.phase(p).title,
            average=sum(scores) / len(scores) if scores else 0.0,
            count=len(scores),
        )
        for p, scores in totals.items()
    ]


def progress(content: Content, finished: list[Session], practised: set[str]) -> Progress:
    """`finished` interviews (any order) and the ids of every question tried, finished or not."""
    finished = sorted(finished, key=lambda s: s.created_at)
    averages = phase_averages(content, finished)
    graded = [a for a in averages if a.count]
    # The lowest mean; on a tie the earlier phase, since later phases build on it.
    weakest = min(graded, key=lambda a: (a.average, PHASE_IDS.index(a.phase)), default=None)
    return Progress(
        finished=finished,
        averages=averages,
        weakest=weakest,
        suggestion=suggest(content, weakest, practised, finished),
    )


def suggest(
    content: Content,
    weakest: PhaseAverage | None,
    practised: set[str],
    finished: list[Session],
) -> Suggestion:
    """The next question to practise, and why.

    A question not tried yet whose tags lean on the weakest phase comes first, canonical ones
    before the rest; if every question was tried, the one where that phase scored lowest.
    """
    questions = list(content.questions.values())  # canonical first, in listing order
    fresh = [q for q in questions if q.id not in practised]
    if weakest is None:
        first = fresh[0] if fresh else questions[0]
        return Suggestion(
            question=first,
            phase=None,
            reason="Finish a mock interview to see your weakest phase; the canonical "
            f"questions are the place to start, and {first.title} is the first of them"
            + (" you have not tried yet." if fresh else "."),
            practised=not fresh,
        )
    phase = weakest.phase
    title = weakest.title
    because = (
        f"{title} is your weakest phase: {weakest.average:.1f}/4 on average over "
        f"{weakest.count} interview{'s' if weakest.count != 1 else ''}."
    )
    if fresh:
        tags = PHASE_TAGS[phase]

        def overlap(q: Question) -> int:
            return len(tags & set(q.tags))

        best = max(fresh, key=overlap)  # max keeps the first on ties: listing order
        shared = sorted(tags & set(best.tags))
        if shared:
            why = (
                f" You have not practised this question yet, and it leans on that phase "
                f"({', '.join(shared)})."
            )
        else:
            why = " You have not practised this question yet: a fresh problem for that phase."
        return Suggestion(question=best, phase=phase, reason=because + why, practised=False)
    # Everything was tried: redo the question where this phase went worst.
    worst = min(
        finished,
        key=lambda s: next(
            (st.grade.score for st in s.phases if st.phase == phase and st.grade), 5
        ),
        default=None,
    )
    question = content.question(worst.question_id) if worst else questions[0]
    return Suggestion(
        question=question,
        phase=phase,
        reason=because
        + f" You have tried every question; {question.title} is where this phase went worst, "
        "so run it again after studying its model answer.",
        practised=True,
    )


def score_points(content: Content, finished: list[Session]) -> list[tuple[datetime, int, str]]:
    """(when, overall, question title) for each finished interview, oldest first."""
    return [
        (s.created_at, s.report.overall, content.question(s.question_id).title)
        for s in finished
        if s.report is not None
    ]
