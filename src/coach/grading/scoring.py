"""Turn the set of rubric criteria a grader found met into a 0-4 phase score.

Both graders share this so a score always means the same thing: the LLM grader calls it on
the criteria it verified, the offline grader on the criteria its cues found, and then each
may apply its own caps on top (keyword stuffing, wrong arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterable

from coach.content.models import Phase

# Weighted share of criteria met -> level. A 4 needs nearly everything ("complete"), a 3
# most of it ("small holes"), a 2 real content with obvious holes; anything met is a 1.
LEVELS: tuple[tuple[float, int], ...] = ((0.85, 4), (0.6, 3), (0.35, 2), (0.0, 1))


def met_fraction(phase: Phase, met: Iterable[str]) -> float:
    """Weighted share (0..1) of the phase's criteria that are met."""
    met_ids = set(met)
    total = sum(c.weight for c in phase.criteria)
    return sum(c.weight for c in phase.criteria if c.id in met_ids) / total


def score_from_criteria(phase: Phase, met: set[str]) -> int:
    """Score 0-4 from the met criterion ids: weighted share, then the rubric's caps.

    Pure: depends only on the phase rubric and the ids. Nothing met scores 0; anything met
    scores at least 1 ("touched on"). A criterion with `cap_if_unmet` limits the score while
    it is missing, which encodes the scoring guide's tie-breakers (e.g. a deep dive without
    explicit costs scores 2 at most).
    """
    known = {c.id for c in phase.criteria}
    unknown = set(met) - known
    if unknown:
        raise ValueError(
            f"unknown criterion ids for phase {phase.id!r}: {sorted(unknown)}; "
            f"known ids are {sorted(known)}"
        )
    fraction = met_fraction(phase, met)
    if fraction == 0:
        return 0
    score = next(level for floor, level in LEVELS if fraction >= floor)
    for criterion in phase.criteria:
        if criterion.id not in met and criterion.cap_if_unmet is not None:
            score = min(score, criterion.cap_if_unmet)
    return score
