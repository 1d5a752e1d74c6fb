"""How the interviewer's lines are worded: static text from content, or rephrased by an LLM."""

from __future__ import annotations

from typing import Literal, Protocol

from coach.content.models import PhaseId, Question

VoiceKind = Literal["opening", "pushback", "report"]


class InterviewerVoice(Protocol):
    """Turns the engine's draft line into what the interviewer says.

    The engine always writes a complete, correct draft from content; a voice may only
    reword it, and must return the draft unchanged when it cannot do better. Answers to
    clarifying questions never go through a voice, so no fact is ever invented.
    """

    def speak(
        self,
        *,
        kind: VoiceKind,
        question: Question,
        phase: PhaseId,
        draft: str,
        candidate_text: str,
    ) -> str: ...


class StaticVoice:
    """The offline interviewer: says the draft as written."""

    def speak(
        self,
        *,
        kind: VoiceKind,
        question: Question,
        phase: PhaseId,
        draft: str,
        candidate_text: str,
    ) -> str:
        return draft
