"""The one grader interface the engine talks to; offline and LLM graders both implement it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from coach.content.models import PhaseId, Question
from coach.grading.models import MistakeFinding, PhaseGrade


@dataclass(frozen=True)
class PushbackExchange:
    """One deep-dive challenge and what the candidate said back."""

    prompt: str
    reply: str


@dataclass(frozen=True)
class SplitResult:
    """An uploaded answer cut into phases; a phase with nothing is absent or empty."""

    sections: dict[PhaseId, str]
    method: Literal["headings", "content", "llm"]


@dataclass(frozen=True)
class PhaseGradingRequest:
    """What a grader needs to score one phase.

    `text` is the candidate's answer for this phase; `full_text` the whole answer or
    transcript, so content that shows up under another phase still counts.
    """

    phase: PhaseId
    text: str
    full_text: str
    question: Question | None = None
    pushbacks: tuple[PushbackExchange, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class AnswerReviewRequest:
    """What a grader needs to find answer-wide mistakes once every phase is graded."""

    full_text: str
    sections: dict[PhaseId, str]
    phase_grades: tuple[PhaseGrade, ...]
    question: Question | None = None
    pushbacks: tuple[PushbackExchange, ...] = field(default_factory=tuple)


# (steps done, steps in all, what is being done now): with an LLM each step is a call, so
# whoever waits on a whole answer or a final report is shown how far it has got.
Progress = Callable[[int, int, str], None]


class Grader(Protocol):
    """Scores phases against the rubric and spots the common mistakes."""

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade: ...

    def find_mistakes(self, request: AnswerReviewRequest) -> list[MistakeFinding]: ...

    def split(self, text: str) -> SplitResult: ...
