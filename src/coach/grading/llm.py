"""The LLM grader: the model proposes, code verifies, the offline grader catches every failure.

What the LLM may decide: which criteria are met (with a quote), which mistakes show, and
the feedback wording. What code decides: whether each quote really is in the candidate's
text, the score (recomputed from the verified criteria with the rubric's own formula), and
whether text addressed to the grader may influence anything (it may not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coach.breaker import Breaker, CircuitBreaker
from coach.config import Settings
from coach.content.loader import Content
from coach.content.models import MISTAKE_IDS, PHASE_IDS, PhaseId
from coach.errors import LLMError, LLMInvalidOutputError
from coach.evidence import injected_spans, locate_quote, neutralise_fences, overlaps
from coach.grading.feedback import phase_feedback, restates_criterion
from coach.grading.mistakes import injection_finding, mistake_finding
from coach.grading.models import CriterionResult, MistakeFinding, PhaseGrade, TokenUsage
from coach.grading.offline import OfflineGrader, split_sentences
from coach.grading.port import (
    AnswerReviewRequest,
    PhaseGradingRequest,
    SplitResult,
)
from coach.grading.scoring import score_from_criteria
from coach.llm import LLMClient, LLMReply

MAX_QUOTE_CHARS = 200
MAX_FEEDBACK_CHARS = 1200


# --- what the LLM must send back ------------------------------------------------------------


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CriterionVerdict(_Reply):
    id: str
    met: bool
    quote: str = ""


class GradeReply(_Reply):
    """The LLM's proposal for one phase; nothing in it is trusted until code checks it."""

    criteria: list[CriterionVerdict]
    score: int = Field(ge=0, le=4, description="The LLM's own holistic score; only a cap.")
    mistakes: list[str] = Field(default_factory=list)
    feedback: str = ""
    next_step: str = ""


def grade_schema(content: Content) -> dict[str, Any]:
    """JSON schema of GradeReply, the same for every phase so the prompt prefix stays cached.

    Criterion ids are an enum over all six phases (code drops ids of other phases); string
    and list lengths are bounded so a small local model cannot ramble past max_tokens.
    """
    criterion_ids = list(dict.fromkeys(c.id for p in content.phases for c in p.criteria))
    return {
        "type": "object",
        "properties": {
            "criteria": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "enum": criterion_ids},
                        "met": {"type": "boolean"},
                        "quote": {"type": "string", "maxLength": MAX_QUOTE_CHARS},
                    },
                    "required": ["id", "met", "quote"],
                    "additionalProperties": False,
                },
            },
            "score": {"type": "integer", "enum": [0, 1, 2, 3, 4]},
            "mistakes": {
                "type": "array",
                "maxItems": len(MISTAKE_IDS),
                "items": {"type": "string", "enum": list(MISTAKE_IDS)},
            },
            "feedback": {"type": "string", "maxLength": 600},
            "next_step": {"type": "string", "maxLength": 300},
        },
        "required": ["criteria", "score", "mistakes", "feedback", "next_step"],
        "additionalProperties": False,
    }


class SectionStart(_Reply):
    phase: PhaseId
    starts_with: str


class SplitReply(_Reply):
    sections: list[SectionStart]


SPLIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sections": {
            "type": "array",
            "maxItems": len(PHASE_IDS),
            "items": {
                "type": "object",
                "properties": {
                    "phase": {"type": "string", "enum": list(PHASE_IDS)},
                    "starts_with": {"type": "string", "maxLength": MAX_QUOTE_CHARS},
                },
                "required": ["phase", "starts_with"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["sections"],
    "additionalProperties": False,
}


def cut_at_starts(text: str, starts: list[tuple[PhaseId, str]]) -> dict[PhaseId, str]:
    """Cut `text` where each phase's quoted opening words occur; {} if fewer than two do.

    Text before the first start belongs to the first section, so nothing is lost. A phase
    quoted twice keeps its first position; two phases at one position keep the first named.
    """
    found: dict[int, PhaseId] = {}
    for phase, quote in starts:
        where = locate_quote(quote, text)
        if where is not None and phase not in found.values():
            found.setdefault(where[0], phase)
    if len(found) < 2:
        return {}
    positions = sorted(found)
    sections: dict[PhaseId, str] = {}
    for i, at in enumerate(positions):
        start = 0 if i == 0 else at
        end = positions[i + 1] if i + 1 < len(positions) else len(text)
        sections[found[at]] = text[start:end].strip()
    return sections


# --- prompt building ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Exchange:
    prompt: str
    reply: str


def grade_messages(
    content: Content,
    request: PhaseGradingRequest,
    *,
    detail: str = "full",
    context_chars: int = 12_000,
    system_cache: dict[tuple[str | None, str], str] | None = None,
) -> list[dict[str, str]]:
    """System message = the fixed prefix (rubric, schema, rules, reference answer); user = the rest.

    The whole answer goes first in the user message (same for all six phases of one answer,
    so it is cached too), then the phase and its text last, fenced as untrusted data.
    `system_cache` keeps rendered prefixes (they depend only on the question and detail).
    """
    key = (request.question.id if request.question else None, detail)
    system = system_cache.get(key) if system_cache is not None else None
    if system is None:
        system = content.render(
            "grade_phase",
            part="system",
            phases=content.phases,
            mistakes=list(content.mistakes.values()),
            question=request.question,
            schema=json.dumps(grade_schema(content), separators=(",", ":")),
            detail=detail,
        )
        if system_cache is not None:
            system_cache[key] = system
    section = request.text.strip()
    whole = request.full_text.strip()
    context = "" if not whole or whole == section else whole[:context_chars]
    user = content.render(
        "grade_phase",
        part="user",
        phase=content.phase(request.phase),
        section=neutralise_fences(section),
        context=neutralise_fences(context),
        exchanges=[
            _Exchange(prompt=neutralise_fences(ex.prompt), reply=neutralise_fences(ex.reply))
            for ex in request.pushbacks
        ],
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# --- the grader ----------------------------------------------------------------------------------


def _add_usage(a: TokenUsage | None, b: TokenUsage) -> TokenUsage:
    if a is None:
        return b
    return TokenUsage(
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        latency_ms=a.latency_ms + b.latency_ms,
    )


class LLMGrader:
    """Grades phases with an LLM, verifies every claim, and falls back to `fallback`.

    Example::

        grader = LLMGrader(content=content, settings=settings, client=LLMClient(settings),
                           fallback=OfflineGrader(content), breaker=CircuitBreaker())
        grade = grader.grade_phase(request)   # source "llm", or "offline" + fallback_reason
    """

    def __init__(
        self,
        *,
        content: Content,
        settings: Settings,
        client: LLMClient,
        fallback: OfflineGrader,
        breaker: Breaker | None = None,
    ):
        self.content = content
        self.settings = settings
        self.client = client
        self.fallback = fallback
        self.breaker: Breaker = breaker or CircuitBreaker.from_settings(settings)
        self._system_prompts: dict[tuple[str | None, str], str] = {}
        self._schema = grade_schema(content)  # one object, so the client's prepared form is reused

    # -- Grader protocol -----------------------------------------------------------------

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade:
        messages = grade_messages(
            self.content,
            request,
            detail=self.settings.llm_prompt_detail,
            context_chars=self.settings.llm_context_chars,
            system_cache=self._system_prompts,
        )
        if not self.breaker.allow():
            return self._offline(request, self._breaker_reason())
        try:
            reply, usage = self._ask(messages)
        except LLMError as exc:
            self.breaker.record_failure()
            spent = getattr(exc, "usage", None)  # tokens an unusable reply still cost
            return self._offline(
                request, str(exc), spent if isinstance(spent, TokenUsage) else None
            )
        self.breaker.record_success()
        assert isinstance(reply.parsed, GradeReply)
        return self._verify(request, reply.parsed, model=reply.model, usage=usage)

    def find_mistakes(self, request: AnswerReviewRequest) -> list[MistakeFinding]:
        """The offline detectors' findings: deterministic, and each backed by a matched cue.

        Answer-wide mistakes (defends_first_answer, fake_certainty, ...) cost overall points,
        so they come from checks that give the same result every run; the LLM's per-phase
        mistake ids still reach the report through each PhaseGrade.
        """
        return self.fallback.find_mistakes(request)

    def split(self, text: str) -> SplitResult:
        """The offline splitter's sections; optionally the LLM's, when there are no headings.

        The LLM only names where each phase starts (a verbatim quote); code finds the quotes
        and cuts the answer there, so every section is the candidate's own text. Anything
        unusable (fewer than two quotes found, an error, an open breaker) keeps the offline
        split.
        """
        offline = self.fallback.split(text)
        if not self.settings.llm_split_answers or offline.method == "headings":
            return offline
        messages = [
            {
                "role": "system",
                "content": self.content.render(
                    "split_answer",
                    part="system",
                    phases=self.content.phases,
                    schema=json.dumps(SPLIT_SCHEMA, separators=(",", ":")),
                ),
            },
            {
                "role": "user",
                "content": self.content.render(
                    "split_answer", part="user", text=neutralise_fences(text)
                ),
            },
        ]
        if not self.breaker.allow():
            return offline
        try:
            reply = self.client.complete_json(
                messages,
                SPLIT_SCHEMA,
                max_tokens=self.settings.llm_max_tokens,
                name="split",
                validate=SplitReply,
                purpose="split",
            )
        except LLMError:
            self.breaker.record_failure()
            return offline
        self.breaker.record_success()
        assert isinstance(reply.parsed, SplitReply)
        sections = cut_at_starts(text, [(s.phase, s.starts_with) for s in reply.parsed.sections])
        return SplitResult(sections=sections, method="llm") if sections else offline

    # -- internals -----------------------------------------------------------------------

    def _ask(self, messages: list[dict[str, str]]) -> tuple[LLMReply, TokenUsage]:
        """One call, and one retry if the reply is unusable; the retry says what was wrong.

        At temperature 0 the same prompt would give the same reply, so the retry appends the
        problem to the conversation (after the cached prefix) instead of asking again blindly.
        """
        schema = self._schema
        max_tokens = self.settings.llm_max_tokens
        try:
            reply = self.client.complete_json(
                messages,
                schema,
                max_tokens=max_tokens,
                name="phase_grade",
                validate=GradeReply,
                purpose="grade",
            )
            return reply, reply.usage
        except LLMInvalidOutputError as first:
            spent = first.usage if isinstance(first.usage, TokenUsage) else None
            retry = [
                *messages,
                {
                    "role": "user",
                    "content": f"Your reply could not be used: {first} Reply again with only "
                    "the JSON object that matches the schema.",
                },
            ]
            try:
                reply = self.client.complete_json(
                    retry,
                    schema,
                    max_tokens=max_tokens,
                    name="phase_grade",
                    validate=GradeReply,
                    purpose="grade",
                )
            except LLMInvalidOutputError as second:
                error = LLMInvalidOutputError(f"LLM gave unusable output twice: {second}")
                if isinstance(second.usage, TokenUsage):
                    error.usage = _add_usage(spent, second.usage)
                raise error from second
            return reply, _add_usage(spent, reply.usage)

    def _breaker_reason(self) -> str:
        until = datetime.now(UTC) + timedelta(seconds=self.breaker.retry_in())
        return (
            f"LLM circuit breaker open after {self.breaker.consecutive_failures} failures; "
            "grading offline until "
            f"{until:%H:%M:%S} UTC"
        )

    def _offline(
        self, request: PhaseGradingRequest, reason: str, usage: TokenUsage | None = None
    ) -> PhaseGrade:
        grade = self.fallback.grade_phase(request)
        update: dict[str, Any] = {"source": "offline", "fallback_reason": reason}
        if usage is not None:
            update["usage"] = usage
        return grade.model_copy(update=update)

    def _verify(
        self, request: PhaseGradingRequest, reply: GradeReply, *, model: str, usage: TokenUsage
    ) -> PhaseGrade:
        phase = self.content.phase(request.phase)
        corrections: list[str] = []
        texts = [request.text, request.full_text, *(ex.reply for ex in request.pushbacks)]
        injected = [text[a:b] for text in texts if text for a, b in injected_spans(text)]
        # Each text's regions are worked out when a quote is first found in it: most quotes
        # come from the phase's own text, so the whole transcript is rarely split at all.
        excluded: dict[int, list[tuple[int, int, str]]] = {}

        verdicts: dict[str, CriterionVerdict] = {}
        for verdict in reply.criteria:
            if verdict.id not in {c.id for c in phase.criteria}:
                corrections.append(f"Dropped unknown criterion id {verdict.id!r} for {phase.id}.")
            else:
                verdicts.setdefault(verdict.id, verdict)

        results: list[CriterionResult] = []
        for criterion in phase.criteria:
            verdict = verdicts.get(criterion.id)
            result = CriterionResult(id=criterion.id, title=criterion.title, met=False)
            if verdict is None:
                result.note = "The LLM gave no verdict on this criterion."
            elif not verdict.met:
                result.note = "Not shown in the answer (LLM)."
            else:
                span, why = _check_quote(verdict.quote, texts, excluded)
                if span is not None and why is None:
                    result.met, result.evidence = True, span
                elif span is None:
                    result.note = "Marked unmet: the LLM's quote is not in the answer."
                    corrections.append(
                        f"{criterion.id}: quote {_clip(verdict.quote)!r} is not in the "
                        "candidate's text; marked unmet."
                    )
                else:
                    result.note = f"Marked unmet: the quote is {why}, not evidence."
                    corrections.append(
                        f"{criterion.id}: quote {_clip(span)!r} is {why}, not evidence; "
                        "marked unmet."
                    )
            results.append(result)

        met = {r.id for r in results if r.met}
        recomputed = score_from_criteria(phase, met)
        score = recomputed
        if reply.score < score:
            # The LLM may see what ticks cannot (wrong arithmetic, buzzwords only): its own
            # lower score is a cap. A higher claim is never taken on its word.
            score = reply.score
            corrections.append(
                f"Score capped at the LLM's own {reply.score}/4 (criteria alone give {recomputed})."
            )
        elif reply.score > score:
            corrections.append(
                f"LLM claimed {reply.score}/4; recomputed {recomputed}/4 from the criteria its "
                "quotes prove."
            )

        cap, why = self.fallback.hard_caps(request)
        if score > cap:
            # Ticks cannot see stuffing, hedging or wrong arithmetic; the scoring guide's
            # hard rules hold whoever marked the criteria.
            corrections.append(f"Score capped at {cap}/4 by the scoring rules: {why[0]}")
            score = cap

        mistake_ids = [m for m in dict.fromkeys(reply.mistakes) if m in self.content.mistakes]
        offline: PhaseGrade | None = None
        if injected:
            # Defence in depth: with text aimed at the grader in the answer, the LLM grade may
            # have been steered, so it can never exceed what the offline rubric check gives.
            offline = self.fallback.grade_phase(request)
            if score > offline.score:
                corrections.append(
                    f"The answer contains text addressed to the grader; score capped at the "
                    f"offline grade {offline.score}/4 (the LLM's verified grade was {score}/4)."
                )
                score = offline.score
            if "prompt_injection" not in mistake_ids:
                mistake_ids.append("prompt_injection")
        mistakes = [self._finding(m, phase.id, injected) for m in mistake_ids]

        # Built from the criteria verified here (not the offline grader's own ticks), for
        # whatever the LLM left out or got wrong: the next step never asks for a criterion
        # this grade marks met.
        # Only then: most replies need neither, and this runs on every LLM-graded phase.
        feedback, next_step = reply.feedback.strip(), reply.next_step.strip()
        repeated = next(
            (c for c in phase.criteria if c.id in met and restates_criterion(next_step, c)), None
        )
        if not feedback or not next_step or repeated is not None:
            reasons = why if score < 4 else []
            own_feedback, own_step = phase_feedback(phase, results, reasons, self.fallback.rules)
            feedback = feedback or own_feedback
            if repeated is not None:
                corrections.append(
                    f"Next step {_clip(next_step)!r} asks for {repeated.id!r}, which this grade "
                    f"marks met; replaced with {_clip(own_step)!r}."
                )
            if not next_step or repeated is not None:
                next_step = own_step
        return PhaseGrade(
            phase=phase.id,
            score=score,
            criteria=results,
            mistakes=mistakes,
            feedback=feedback[:MAX_FEEDBACK_CHARS],
            next_step=next_step[:MAX_FEEDBACK_CHARS],
            source="llm",
            model=model,
            corrections=corrections,
            usage=usage,
        )

    def _finding(self, mistake_id: str, phase: PhaseId, injected: list[str]) -> MistakeFinding:
        if mistake_id == "prompt_injection" and injected:
            return injection_finding(self.content, phase, injected[0])
        # the caller keeps only the catalogue's ids
        return mistake_finding(self.content, mistake_id, phase=phase)  # type: ignore[arg-type]


GRADER = "text addressed to the grader"
INTERVIEWER = "the interviewer's words"
HIDDEN = "hidden text (an HTML comment)"


def not_evidence(text: str) -> list[tuple[int, int, str]]:
    """Regions of `text` no quote may come from, each with the reason.

    Grader-addressed text comes from our own detector; interviewer turns in a transcript and
    hidden HTML comments from the offline grader's sentence splitter, so both graders agree on
    what counts as the candidate's answer. (The offline `is_injection` check is not used here:
    it also fires on ordinary "API: ..." labels, which would cap honest answers.)
    """
    regions = [(a, b, GRADER) for a, b in injected_spans(text)]
    for sentence in split_sentences(text):
        why = INTERVIEWER if sentence.interviewer else HIDDEN if sentence.hidden else None
        if why:
            regions.append((sentence.start, sentence.end, why))
    return regions


def _check_quote(
    quote: str, texts: list[str], excluded: dict[int, list[tuple[int, int, str]]]
) -> tuple[str | None, str | None]:
    """(span, None) for a good quote; (span, why) when it sits in excluded text; (None, None).

    `excluded` caches `not_evidence` of each text by its index, filled on first use.
    """
    for i, text in enumerate(texts):
        if not text or (where := locate_quote(quote, text)) is None:
            continue
        if i not in excluded:
            excluded[i] = not_evidence(text)
        for a, b, why in excluded[i]:
            if overlaps(where, [(a, b)]):
                return text[where[0] : where[1]], why
        return text[where[0] : where[1]], None
    return None, None


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
