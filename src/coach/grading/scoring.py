"""Turn the set of rubric criteria a grader found met into a 0-4 phase score.

Both graders share this so a score always means the same thing: the LLM grader calls it on
the criteria it verified, the offline grader on the criteria its cues found, and then each
may apply its own caps on top (keyword stuffing, wrong arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterable

from coach.content.models import Criterion, Phase

# Weighted share of criteria met -> level. A 4 needs nearly everything ("complete"), a 3
# most of it ("small holes"), a 2 real content with obvious holes; anything met is a 1.
LEVELS: tuple[tuple[float, int], ...] = ((0.85, 4), (0.6, 3), (0.35, 2), (0.0, 1))


def met_fraction(phase: Phase, met: Iterable[str]) -> float:
    """Weighted share (0..1) of the phase's criteria that are met."""
    met_ids = set(met)
    total = sum(c.weight for c in phase.criteria)
    return sum(c.weight for c in phase.criteria if c.id in met_ids) / total


def share_score(phase: Phase, met: Iterable[str]) -> int:
    """The level the weighted share of met criteria gives, before any criterion's cap."""
    fraction = met_fraction(phase, met)
    if fraction == 0:
        return 0
    return next(level for floor, level in LEVELS if fraction >= floor)


def binding_cap(phase: Phase, met: Iterable[str]) -> Criterion | None:
    """The unmet criterion whose `cap_if_unmet` holds the score below what the share gives.

    The lowest cap wins (it is the one the score sits at); among equal caps, the heaviest
    criterion, since that is the one most worth adding. None when no cap bites.
    """
    met_ids = set(met)
    level = share_score(phase, met_ids)
    biting = [
        c
        for c in phase.criteria
        if c.id not in met_ids and c.cap_if_unmet is not None and c.cap_if_unmet < level
    ]
    if not biting:
        return None
    return min(biting, key=lambda c: (c.cap_if_unmet, -c.weight, c.id))


def cap_reason(phase: Phase, criterion: Criterion, met: Iterable[str]) -> str:
    """One sentence naming the missing criterion that caps the phase, and at what."""
    met_ids = set(met) & {c.id for c in phase.criteria}
    return (
        f"Held at {criterion.cap_if_unmet}/4 because '{in_sentence(criterion.title)}' is missing: "
        f"without it {in_sentence(phase.title)} cannot score above {criterion.cap_if_unmet}, even "
        f"with {len(met_ids)} of {len(phase.criteria)} criteria met."
    )


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
    score = share_score(phase, met)
    for criterion in phase.criteria:
        if criterion.id not in met and criterion.cap_if_unmet is not None:
            score = min(score, criterion.cap_if_unmet)
    return score


def in_sentence(title: str) -> str:
    """A criterion or phase title as it reads inside a sentence: only a capital that starts a
    plain word is lowered, so acronyms and names keep theirs ('API design', 'RPCs', 'QPS')."""
    if len(title) > 1 and title[0].isupper() and title[1].islower():
        return title[0].lower() + title[1:]
    return title
