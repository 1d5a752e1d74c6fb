"""The LLM interviewer voice: rewords the engine's draft line, or says the draft unchanged.

The engine's draft is always complete and correct, so the LLM only adds tone. Any failure
(breaker open, timeout, bad JSON, an empty or overlong line) means the draft is used as is;
an interview never waits on, or breaks because of, the LLM.
"""

from __future__ import annotations

import logging
import re

from pydantic import BaseModel, ConfigDict

from coach.breaker import Breaker, CircuitBreaker
from coach.config import Settings
from coach.content.loader import Content
from coach.content.models import PhaseId, Question
from coach.errors import ContentError, LLMError
from coach.evidence import neutralise_fences
from coach.llm import LLMClient
from coach.voice import VoiceKind

log = logging.getLogger(__name__)

TEMPLATES: dict[VoiceKind, str] = {
    "opening": "interviewer_turn",
    "pushback": "pushback",
    "report": "final_report",
}
VOICE_MAX_TOKENS = 200
CANDIDATE_CONTEXT_CHARS = 1500  # the tail of what the candidate said is enough for tone

LINE_SCHEMA = {
    "type": "object",
    "properties": {"line": {"type": "string", "maxLength": 700}},
    "required": ["line"],
    "additionalProperties": False,
}


class _LineReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    line: str


class LLMVoice:
    """InterviewerVoice backed by an LLM, with the draft as the answer to every failure."""

    def __init__(
        self,
        *,
        content: Content,
        settings: Settings,
        client: LLMClient,
        breaker: Breaker | None = None,
    ):
        self.content = content
        self.settings = settings
        self.client = client
        self.breaker: Breaker = breaker or CircuitBreaker.from_settings(settings)

    def speak(
        self,
        *,
        kind: VoiceKind,
        question: Question,
        phase: PhaseId,
        draft: str,
        candidate_text: str,
    ) -> str:
        if not draft.strip():
            return draft
        try:
            messages = voice_messages(
                self.content,
                kind=kind,
                question=question,
                phase=phase,
                draft=draft,
                candidate_text=candidate_text,
            )
        except ContentError as exc:  # a broken template: say the draft, report the bug
            log.warning("LLM voice template failed, using the draft: %s", exc)
            return draft
        if not self.breaker.allow():
            return draft
        try:
            reply = self.client.complete_json(
                messages,
                LINE_SCHEMA,
                max_tokens=VOICE_MAX_TOKENS,
                name="line",
                validate=_LineReply,
                purpose="voice",
            )
        except LLMError as exc:
            self.breaker.record_failure()
            log.info("LLM voice fell back to the draft: %s", exc)
            return draft
        self.breaker.record_success()
        assert isinstance(reply.parsed, _LineReply)
        line = " ".join(reply.parsed.line.split())
        return line if is_rewording(draft, line) else draft


def voice_messages(
    content: Content,
    *,
    kind: VoiceKind,
    question: Question,
    phase: PhaseId,
    draft: str,
    candidate_text: str,
) -> list[dict[str, str]]:
    """System message: fixed instructions for this question; user: the candidate's words, fenced."""
    template = TEMPLATES[kind]
    system = content.render(template, part="system", question=question)
    user = content.render(
        template,
        part="user",
        phase=content.phase(phase),
        draft=neutralise_fences(draft),
        candidate_text=neutralise_fences(candidate_text[-CANDIDATE_CONTEXT_CHARS:]),
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def is_rewording(draft: str, line: str) -> bool:
    """Could `line` stand in for `draft`? Not empty, not much longer, and the same numbers.

    Numbers carry the facts (scores, scale, time), so a line that drops or invents one is
    not a rewording, whatever it says.
    """
    if not line or len(line) > max(2 * len(draft), len(draft) + 200):
        return False
    return set(_NUMBER.findall(line)) == set(_NUMBER.findall(draft))
