"""Schemas of the content files. After loading, the rest of coach trusts these objects."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PhaseId = Literal["requirements", "estimation", "api", "data_model", "architecture", "deep_dive"]
PHASE_IDS: tuple[PhaseId, ...] = get_args(PhaseId)

MistakeId = Literal[
    "skipping_requirements",
    "no_tradeoffs",
    "final_state_first",
    "silent_thinking",
    "defends_first_answer",
    "keyword_stuffing",
    "fake_certainty",
    "prompt_injection",
]
MISTAKE_IDS: tuple[MistakeId, ...] = get_args(MistakeId)

NonEmpty = Annotated[str, Field(min_length=1)]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")]


class StrictModel(BaseModel):
    """Unknown keys are typos: reject them rather than silently ignore them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return patterns


# --- rubrics/phases.yaml -----------------------------------------------------------------


class CriterionCues(StrictModel):
    """What the offline grader looks for in the candidate's text to call a criterion met."""

    patterns: list[NonEmpty] = Field(min_length=1, description="Case-insensitive regexes.")
    min_signals: int = Field(default=1, ge=1, description="Distinct patterns that must match.")
    needs_reasoning: bool = Field(
        default=False, description="The matching sentence must also give a reason."
    )
    across_sentences: bool = Field(
        default=False,
        description="Patterns may match in different sentences (else all in one sentence).",
    )
    min_distinct_matches: int = Field(
        default=1, ge=1, description="Distinct matched texts needed; repeats never count."
    )
    window: int = Field(
        default=0,
        ge=0,
        le=5,
        description="Patterns may match in sentences this many places apart (same section).",
    )
    touch: list[NonEmpty] = Field(
        default_factory=list,
        description="Weaker regexes: the topic came up (a score of 1) without meeting this.",
    )
    anywhere: bool = Field(
        default=False,
        description="Specific enough to count in full when met outside the phase's section.",
    )
    reject_hedged: bool = Field(
        default=False, description="A sentence that hedges (it depends, maybe) does not count."
    )

    _valid = field_validator("patterns", "touch")(_check_regexes)


class Criterion(StrictModel):
    id: Slug
    title: NonEmpty
    levels: dict[int, NonEmpty] = Field(description="Descriptor for each level 0..4.")
    cues: CriterionCues
    weight: float = Field(default=1.0, gt=0, description="Share of the phase score.")
    cap_if_unmet: int | None = Field(
        default=None, ge=0, le=4, description="Highest phase score while this is not met."
    )
    tip: NonEmpty | None = Field(
        default=None, description="One concrete thing to do when this criterion is missing."
    )

    @field_validator("levels")
    @classmethod
    def _all_levels(cls, levels: dict[int, str]) -> dict[int, str]:
        if sorted(levels) != [0, 1, 2, 3, 4]:
            raise ValueError(f"needs descriptors for levels 0,1,2,3,4; got {sorted(levels)}")
        return levels


class Phase(StrictModel):
    id: PhaseId
    order: int = Field(ge=1, le=6)
    title: NonEmpty
    purpose: NonEmpty
    opening_question: NonEmpty = Field(description="What the interviewer asks to open the phase.")
    time_budget_minutes: float = Field(gt=0, le=45)
    prompts_to_hit: list[NonEmpty] = Field(min_length=2)
    criteria: list[Criterion] = Field(min_length=3, max_length=6)


class PhaseRubric(StrictModel):
    phases: list[Phase]

    @model_validator(mode="after")
    def _six_in_order(self) -> PhaseRubric:
        ids = [p.id for p in sorted(self.phases, key=lambda p: p.order)]
        if ids != list(PHASE_IDS):
            raise ValueError(f"phases must be exactly {list(PHASE_IDS)} in order; got {ids}")
        total = sum(p.time_budget_minutes for p in self.phases)
        if total > 45:
            raise ValueError(f"time budgets add up to {total} minutes; a 45-minute interview")
        return self


# --- rubrics/mistakes.yaml, vocabulary.yaml, quiz.yaml -------------------------------------


class Mistake(StrictModel):
    id: MistakeId
    title: NonEmpty
    looks_like: NonEmpty = Field(description="How the mistake shows in an answer.")
    example: NonEmpty = Field(description="A short line a candidate making it might say.")
    fix: NonEmpty
    phases: list[PhaseId] = Field(default_factory=list, description="Phases it usually hurts.")
    deducted: bool = Field(
        default=False, description="Costs overall points on top of the phase scores."
    )


class MistakeCatalogue(StrictModel):
    mistakes: list[Mistake]

    @model_validator(mode="after")
    def _all_ids(self) -> MistakeCatalogue:
        missing = set(MISTAKE_IDS) - {m.id for m in self.mistakes}
        if missing:
            raise ValueError(f"missing mistakes: {sorted(missing)}")
        return self


class VocabularyTerm(StrictModel):
    term: NonEmpty
    definition: NonEmpty
    phase: PhaseId
    example: NonEmpty | None = None


class Vocabulary(StrictModel):
    terms: list[VocabularyTerm] = Field(min_length=8)


class QuizQuestion(StrictModel):
    id: Slug
    topic: NonEmpty
    question: NonEmpty
    options: list[NonEmpty] = Field(min_length=2, max_length=6)
    answer: int = Field(ge=0, description="Index of the correct option.")
    explanation: NonEmpty

    @model_validator(mode="after")
    def _answer_in_range(self) -> QuizQuestion:
        if self.answer >= len(self.options):
            raise ValueError(
                f"answer {self.answer} is out of range for {len(self.options)} options"
            )
        return self


class QuizBank(StrictModel):
    questions: list[QuizQuestion] = Field(min_length=20)


# --- questions/*.yaml ----------------------------------------------------------------------


class Fact(StrictModel):
    """Something the interviewer reveals when the candidate asks about it in phase 1."""

    topic: NonEmpty = Field(description="Short label, e.g. 'scale' or 'media'.")
    keywords: list[NonEmpty] = Field(
        min_length=1, description="Words in a clarifying question that this fact answers."
    )
    answer: NonEmpty


class Pushback(StrictModel):
    """A deep-dive challenge, chosen when the candidate's own words touch its triggers."""

    id: Slug
    triggers: list[NonEmpty] = Field(
        min_length=1, description="Case-insensitive regexes matched against the candidate's text."
    )
    prompt: NonEmpty = Field(description="What the interviewer says.")
    good_reply: NonEmpty = Field(description="What a strong candidate would say back.")

    _valid = field_validator("triggers")(_check_regexes)


class Question(StrictModel):
    id: Slug
    title: NonEmpty
    prompt: NonEmpty = Field(description="The question as the interviewer first states it.")
    canonical: bool = False
    rank: int = Field(default=100, ge=0, description="Listing order; lower comes first.")
    difficulty: Literal["easy", "medium", "hard"]
    tags: list[NonEmpty] = Field(min_length=1)
    aliases: list[Slug] = Field(default_factory=list)
    facts: list[Fact] = Field(min_length=3)
    model_answers: dict[PhaseId, NonEmpty]
    pushbacks: list[Pushback] = Field(min_length=2)

    @field_validator("model_answers")
    @classmethod
    def _every_phase(cls, answers: dict[str, str]) -> dict[str, str]:
        missing = [p for p in PHASE_IDS if p not in answers]
        if missing:
            raise ValueError(f"needs a model answer for every phase; missing {missing}")
        return answers
