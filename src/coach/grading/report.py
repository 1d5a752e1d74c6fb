"""Turn phase grades and mistakes into the final report: overall score and hire signal."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId
from coach.grading.models import (
    GradeSource,
    HireSignal,
    MistakeFinding,
    PhaseGrade,
    PhaseTime,
    Report,
)

# Architecture and the deep dive carry the senior signal, so they weigh more.
PHASE_WEIGHTS: dict[PhaseId, float] = {
    "requirements": 1.0,
    "estimation": 1.0,
    "api": 1.0,
    "data_model": 1.0,
    "architecture": 1.5,
    "deep_dive": 1.5,
}
MISTAKE_PENALTY = 3  # points off the overall for each mistake marked `deducted` in the rubric

HIRE_BANDS: tuple[tuple[int, HireSignal], ...] = (
    (85, "strong_hire"),
    (70, "hire"),
    (55, "lean_hire"),
    (35, "lean_no_hire"),
    (0, "no_hire"),
)


def overall_score(phase_scores: dict[PhaseId, int], penalties: int = 0) -> int:
    """Weighted mean of the 0-4 phase scores on a 0-100 scale, less mistake penalties."""
    total_weight = sum(PHASE_WEIGHTS.values())
    weighted = sum(PHASE_WEIGHTS[p] * phase_scores.get(p, 0) for p in PHASE_IDS)
    raw = Decimal(100 * weighted) / Decimal(4 * total_weight)
    return max(0, int(raw.quantize(Decimal(1), rounding=ROUND_HALF_UP)) - penalties)


def hire_signal(overall: int) -> HireSignal:
    return next(signal for floor, signal in HIRE_BANDS if overall >= floor)


def _dedupe(mistakes: list[MistakeFinding]) -> list[MistakeFinding]:
    seen: dict[str, MistakeFinding] = {}
    for mistake in mistakes:
        seen.setdefault(mistake.id, mistake)
    return list(seen.values())


def build_report(
    *,
    content: Content,
    question_id: str | None,
    phase_grades: list[PhaseGrade],
    mistakes: list[MistakeFinding],
    time_per_phase: list[PhaseTime] | None = None,
    split_method: str | None = None,
) -> Report:
    by_phase = {g.phase: g for g in phase_grades}
    ordered = [by_phase[p] for p in PHASE_IDS if p in by_phase]
    all_mistakes = _dedupe([m for g in ordered for m in g.mistakes] + mistakes)
    penalties = MISTAKE_PENALTY * sum(1 for m in all_mistakes if content.mistakes[m.id].deducted)
    scores = {g.phase: g.score for g in ordered}
    overall = overall_score(scores, penalties)
    # Ties go to the phase that weighs more (strongest) or comes first (weakest).
    strongest = max(ordered, key=lambda g: (g.score, PHASE_WEIGHTS[g.phase])).phase
    weakest = min(ordered, key=lambda g: g.score).phase
    sources: list[GradeSource] = sorted({g.source for g in ordered})
    return Report(
        question_id=question_id,
        overall=overall,
        hire_signal=hire_signal(overall),
        phases=ordered,
        mistakes=all_mistakes,
        strongest_phase=strongest,
        weakest_phase=weakest,
        time_per_phase=time_per_phase or [],
        sources=sources,
        split_method=split_method,
    )


def even_score(report: Report) -> int | None:
    """The one score every phase got, if they all got the same: then no phase is the
    strongest or the weakest, and naming one (the first by tie-break) would mislead."""
    scores = {grade.score for grade in report.phases}
    return scores.pop() if len(scores) == 1 else None
