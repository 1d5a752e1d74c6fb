"""Feedback and the next step for one phase grade, from the criteria the grade marks met.

Both graders use it: the offline grader for every grade, the LLM grader when the model left
the feedback or the next step out, or proposed a next step that restates a criterion the
verified grade marks met. The rule it keeps: the next step is never a criterion the grade
marks as met. It is the most important unmet criterion's tip; with every criterion met, it is
what held the score down (a hard rule's cap), else the phase's step beyond its criteria
(rubrics/grading.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from coach.content.models import Criterion, Phase
from coach.grading.models import CriterionResult
from coach.grading.rules import GradingRules
from coach.grading.scoring import in_sentence


def phase_feedback(
    phase: Phase,
    results: Sequence[CriterionResult],
    reasons: Sequence[str],
    rules: GradingRules,
) -> tuple[str, str]:
    """(feedback, next_step) for a grade whose criteria came out as `results`.

    `reasons` are the hard rules that capped the score, most important first.
    """
    met = [in_sentence(r.title) for r in results if r.met]
    parts = []
    if met:
        parts.append(f"Good: {_join(met)}.")
    missing = unmet_criteria(phase, results)
    if missing:
        parts.append(f"Missing: {_join([in_sentence(c.title) for c in missing])}.")
    else:
        parts.append("Every criterion for this phase is covered.")
    if reasons:
        parts.append(reasons[0])
    return " ".join(parts[:3]), next_step(phase, results, reasons, rules)


def unmet_criteria(phase: Phase, results: Sequence[CriterionResult]) -> list[Criterion]:
    """The phase's criteria the grade does not mark met, most important (weight) first."""
    met = {r.id for r in results if r.met}
    return sorted((c for c in phase.criteria if c.id not in met), key=lambda c: (-c.weight, c.id))


def next_step(
    phase: Phase,
    results: Sequence[CriterionResult],
    reasons: Sequence[str],
    rules: GradingRules,
) -> str:
    """One concrete thing to do next; never a criterion that `results` marks met."""
    met = [c for c in phase.criteria if any(r.id == c.id and r.met for r in results)]
    for criterion in unmet_criteria(phase, results):
        step = criterion.tip or f"Work on '{in_sentence(criterion.title)}': {criterion.levels[4]}"
        if not any(restates_criterion(step, done) for done in met):
            return step
    if reasons:
        return f"Fix what held this phase back: {reasons[0]}"
    return rules.beyond_criteria[phase.id]


# Words that say nothing about which criterion a sentence is about.
_STOP_WORDS = """
    a an the and or of on in is are be to for with by at as from each its it this that
    only not when where what how who which your you we i
    say says put puts give gives draw draws cover covers concrete matter matters
"""
_STOP = frozenset(_STOP_WORDS.split())
_WORDS = re.compile(r"[a-z]+")


def _stem(word: str) -> str:
    """A crude stem that maps state/states/stated/stating (and scale/scales/scaling) alike."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def _content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORDS.findall(text.lower()) if w not in _STOP}


def restates_criterion(step: str, criterion: Criterion) -> bool:
    """Does `step` ask for `criterion` itself: every content word of its title, or its tip?

    "Put a number on the scale (daily users, growth)" restates "Puts a number on the scale";
    "Say what each endpoint returns on error" does not restate "Parameters and responses".
    """
    title = _content_words(criterion.title)
    words = _content_words(step)
    if title and title <= words:
        return True
    tip = " ".join((criterion.tip or "").lower().split())
    return bool(tip) and tip in " ".join(step.lower().split())


def _join(items: Iterable[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
