"""rubrics/grading.yaml: rules both graders apply on top of the criteria in phases.yaml.

- `quantity_evidence`: criteria about numbers, whose evidence must state a quantity.
- `considered_rejection`: criteria a negated mention still meets when it gives a reason.
- `identifier_purpose`: criteria a bare identifier (`api_key` in a parameter list) does not
  meet unless its sentence says what it does; the value is that "says what it does" regex.
- `need_shown`: criteria about justifying a choice, whose evidence must show the need (a
  number, a cause, a limit or a failure), not only a purpose ("a CDN so photos load fast").
- `beyond_criteria`: each phase's next step when every one of its criteria is met.

The file is validated against the loaded rubric when a grader is built, so a criterion id
that does not exist, or a phase without a step, fails at start naming the file and field.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from coach.content.loader import Content, default_content_root, load_model
from coach.content.models import PHASE_IDS, PhaseId
from coach.errors import ContentError

RULES_FILE = Path("rubrics") / "grading.yaml"


class GradingRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity_evidence: dict[PhaseId, frozenset[str]] = Field(
        default_factory=dict,
        description="Per phase, the criteria whose evidence must state a quantity.",
    )
    considered_rejection: dict[PhaseId, frozenset[str]] = Field(
        default_factory=dict,
        description="Per phase, the criteria a reasoned rejection ('no cache, because') meets.",
    )
    identifier_purpose: dict[PhaseId, dict[str, str]] = Field(
        default_factory=dict,
        description=(
            "Per phase, criterion id -> regex of what the mechanism does; a cue matched only "
            "as a code identifier counts when its sentence also matches it."
        ),
    )
    need_shown: dict[PhaseId, dict[str, str]] = Field(
        default_factory=dict,
        description=(
            "Per phase, criterion id -> regex of a shown need; a reasoned sentence counts for "
            "the criterion only when it also matches it."
        ),
    )
    beyond_criteria: dict[PhaseId, str] = Field(
        description="Per phase, the next step when every criterion is met."
    )

    @field_validator("beyond_criteria")
    @classmethod
    def _every_phase(cls, steps: dict[PhaseId, str]) -> dict[PhaseId, str]:
        missing = [p for p in PHASE_IDS if not (steps.get(p) or "").strip()]
        if missing:
            raise ValueError(f"needs a step for every phase; missing {missing}")
        return {p: " ".join(step.split()) for p, step in steps.items()}

    def needs_quantity(self, phase: PhaseId, criterion_id: str) -> bool:
        return criterion_id in self.quantity_evidence.get(phase, frozenset())

    def counts_rejection(self, phase: PhaseId, criterion_id: str) -> bool:
        return criterion_id in self.considered_rejection.get(phase, frozenset())

    def purpose_pattern(self, phase: PhaseId, criterion_id: str) -> str | None:
        return self.identifier_purpose.get(phase, {}).get(criterion_id)

    def need_pattern(self, phase: PhaseId, criterion_id: str) -> str | None:
        return self.need_shown.get(phase, {}).get(criterion_id)

    @field_validator("identifier_purpose", "need_shown")
    @classmethod
    def _valid_regexes(
        cls, purposes: dict[PhaseId, dict[str, str]]
    ) -> dict[PhaseId, dict[str, str]]:
        for phase, by_id in purposes.items():
            for criterion_id, pattern in by_id.items():
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{phase}.{criterion_id}: bad regex: {exc}") from exc
        return purposes


def load_rules(content: Content) -> GradingRules:
    """The rules for `content`, read from its rubrics folder and checked against its phases.

    A content folder made before this file existed (COACH_CONTENT_DIR) has none: it gets
    the shipped rules, keeping only the number criteria its own rubric has, since an id it
    never wrote must not stop it from starting.
    """
    path = content.root / RULES_FILE
    if not path.is_file() and (shipped := default_content_root() / RULES_FILE).is_file():
        rules = _read(shipped, shipped.stat().st_mtime_ns)
        return rules.model_copy(
            update={
                field: {
                    phase_id: ids & {c.id for c in content.phase(phase_id).criteria}
                    for phase_id, ids in getattr(rules, field).items()
                }
                for field in ("quantity_evidence", "considered_rejection")
            }
            | {
                field: {
                    phase_id: {
                        cid: pattern
                        for cid, pattern in by_id.items()
                        if cid in {c.id for c in content.phase(phase_id).criteria}
                    }
                    for phase_id, by_id in getattr(rules, field).items()
                }
                for field in ("identifier_purpose", "need_shown")
            }
        )
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError as exc:
        raise ContentError(f"{path}: file is missing; coach needs it to run.") from exc
    rules = _read(path, stamp)
    for field in ("quantity_evidence", "considered_rejection", "identifier_purpose", "need_shown"):
        for phase_id, ids in getattr(rules, field).items():
            known = {c.id for c in content.phase(phase_id).criteria}
            unknown = sorted(set(ids) - known)
            if unknown:
                raise ContentError(
                    f"{path}: field '{field}.{phase_id}': unknown criterion ids "
                    f"{unknown}; {phase_id} has {sorted(known)}"
                )
    return rules


@lru_cache(maxsize=8)
def _read(path: Path, stamp: int) -> GradingRules:
    """Parsed once per file version (`stamp` is its modification time)."""
    return load_model(path, GradingRules)
