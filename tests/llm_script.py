"""Responders for the LLM double that answer from the request, as a real model would.

The service makes two kinds of LLM calls in one request: grading a phase (the grade schema,
with a "criteria" property) and rewording an interviewer line (the voice's {"line": ...}
schema). `ScriptedLLM` tells them apart by the response_format's schema and answers each
from what was sent: a grade whose quotes come verbatim from the candidate's text, and the
draft line unchanged.

Example::

    scripted = ScriptedLLM(content)
    llm.default = scripted
    ...                                   # drive the server
    scripted.grade_replies[-1]            # the raw JSON of the last grade reply
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from coach.content import Content
from llm_double import Reply

_PHASE = re.compile(r'<candidate_answer phase="(\w+)">\n(.*?)\n</candidate_answer>', re.DOTALL)
_DRAFT = re.compile(r"<draft>\n(.*?)\n</draft>", re.DOTALL)
QUOTE_CHARS = 60


def kind_of(body: dict[str, Any]) -> str:
    """ "grade", "voice" or "other", read from the JSON schema the request asks for."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    properties = schema.get("properties") or {}
    if "criteria" in properties:
        return "grade"
    if "line" in properties:
        return "voice"
    return "other"


def last_user_message(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1]["content"]) if users else ""


def phase_and_section(body: dict[str, Any]) -> tuple[str, str]:
    """The phase being graded and the candidate's text for it, as the prompt fenced them."""
    found = _PHASE.search(last_user_message(body))
    assert found, "a grade request fences the candidate's text with its phase"
    return found.group(1), found.group(2).strip()


@dataclass
class ScriptedLLM:
    """A callable responder: every criterion met, quoting the section's first words.

    `grade_status` other than 200 fails every grade request with that HTTP status;
    `grade_delay` and `chunk_delay` slow the grade replies down, `voice_delay` the
    interviewer's lines. Every good grade reply's raw
    text is kept in `grade_replies`, in order.
    """

    content: Content
    grade_status: int = 200
    grade_delay: float = 0.0
    voice_delay: float = 0.0  # the interviewer's lines (an interview's opening among them)
    chunk_delay: float = 0.0
    chunk_size: int = 16
    grade_replies: list[str] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: {"grade": 0, "voice": 0, "other": 0})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> Reply:
        kind = kind_of(body)
        with self._lock:
            self.calls[kind] += 1
        if kind == "voice":
            found = _DRAFT.search(last_user_message(body))
            return Reply.json({"line": found.group(1) if found else ""}, delay=self.voice_delay)
        if kind != "grade":
            return Reply.error(400, "this double only grades phases and rewords lines")
        reply = self.grade(body)
        if reply.status == 200:
            with self._lock:
                self.grade_replies.append(reply.content)
        return reply

    def grade(self, body: dict[str, Any]) -> Reply:
        if self.grade_status != 200:
            return Reply(
                content="scripted grading failure", status=self.grade_status, delay=self.grade_delay
            )
        phase, section = phase_and_section(body)
        quote = section[:QUOTE_CHARS].strip()
        criteria = [
            {"id": c.id, "met": bool(quote), "quote": quote}
            for c in self.content.phase(phase).criteria  # type: ignore[arg-type]
        ]
        data = {
            "criteria": criteria,
            "score": 4,
            "mistakes": [],
            "feedback": f"Scripted feedback for {phase}.",
            "next_step": "Say what you would measure.",
        }
        return Reply(
            content=json.dumps(data),
            delay=self.grade_delay,
            chunk_size=self.chunk_size,
            chunk_delay=self.chunk_delay,
        )
