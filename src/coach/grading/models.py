"""Grade and report objects: every score carries its evidence and says where it came from."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.content.models import MistakeId, PhaseId

GradeSource = Literal["llm", "offline"]
HireSignal = Literal["strong_hire", "hire", "lean_hire", "lean_no_hire", "no_hire"]


class GradeModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CriterionResult(GradeModel):
    id: str
    title: str
    met: bool
    evidence: str | None = Field(
        default=None, description="A quote that occurs in the candidate's text; set when met."
    )
    note: str | None = Field(default=None, description="Why it was not met, or a correction.")


class MistakeFinding(GradeModel):
    id: MistakeId
    title: str
    evidence: str | None = Field(
        default=None, description="A quote that occurs in the candidate's text, when one shows it."
    )
    note: str | None = Field(
        default=None, description="What was seen, or not seen, when no single quote shows it."
    )
    fix: str
    phase: PhaseId | None = None


class TokenUsage(GradeModel):
    """What one LLM call cost; cached tokens are 0 when the server does not report them."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0


class PhaseGrade(GradeModel):
    phase: PhaseId
    score: int = Field(ge=0, le=4)
    criteria: list[CriterionResult]
    mistakes: list[MistakeFinding] = Field(default_factory=list)
    feedback: str
    next_step: str = Field(description="One concrete thing to do better next time.")
    source: GradeSource
    model: str | None = Field(default=None, description="LLM model name, or the offline grader's.")
    fallback_reason: str | None = Field(
        default=None, description="Why an LLM grade was replaced by the offline grader."
    )
    corrections: list[str] = Field(
        default_factory=list, description="What code changed in the LLM's answer, and why."
    )
    usage: TokenUsage | None = Field(default=None, description="LLM tokens spent on this grade.")


class PhaseTime(GradeModel):
    phase: PhaseId
    budget_seconds: float
    used_seconds: float

    @property
    def over_budget(self) -> bool:
        return self.used_seconds > self.budget_seconds


class Report(GradeModel):
    """The final word on one answer or interview; `coach grade --json` prints this."""

    question_id: str | None
    overall: int = Field(ge=0, le=100)
    hire_signal: HireSignal
    phases: list[PhaseGrade]
    mistakes: list[MistakeFinding]
    strongest_phase: PhaseId
    weakest_phase: PhaseId
    time_per_phase: list[PhaseTime] = Field(default_factory=list)
    sources: list[GradeSource] = Field(description="Which graders produced the phase scores.")
    split_method: Literal["headings", "content", "llm", "interview"] | None = None
