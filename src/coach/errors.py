"""Every error coach raises on purpose, each with a message that says how to fix it."""

from __future__ import annotations


def shown_id(value: str, limit: int = 64) -> str:
    """An id as an error message quotes it: a caller's 65 KB 'id' is not echoed back whole."""
    return value if len(value) <= limit else value[:limit] + f"\u2026 ({len(value):,} characters)"


class CoachError(Exception):
    """Base of coach's own errors; front doors turn these into messages, never tracebacks."""

    code = "coach_error"


class ContentError(CoachError):
    """A question, rubric or prompt file is missing or does not match its schema."""

    code = "content_invalid"


class UnknownQuestionError(CoachError):
    """No question has the requested id."""

    code = "unknown_question"


class InputError(CoachError):
    """Candidate input was rejected; the session it was meant for is unchanged.

    `field` names the request field the input came in (for API clients that highlight it).
    """

    code = "invalid_input"

    def __init__(self, message: str, *, field: str = "text") -> None:
        super().__init__(message)
        self.field = field


class EmptyInputError(InputError):
    """The text was empty or only whitespace."""

    code = "empty_input"


class BinaryInputError(InputError):
    """The bytes were not text (NUL bytes, undecodable, or mostly control characters)."""

    code = "binary_input"


class InvalidTextError(InputError):
    """The text holds something that is no character (an unpaired UTF-16 surrogate)."""

    code = "invalid_text"


class InputTooLargeError(InputError):
    """The text is longer than the configured limit."""

    code = "input_too_large"


class InterviewStateError(CoachError):
    """The requested action does not fit the interview's current state."""

    code = "invalid_state"


class LLMError(CoachError):
    """The LLM could not give a usable grade; callers fall back to the offline grader."""

    code = "llm_error"


class LLMUnavailableError(LLMError):
    """Timeout, connection failure, rate limit or server error from the LLM endpoint."""

    code = "llm_unavailable"


class LLMInvalidOutputError(LLMError):
    """The LLM answered, but not with JSON matching the grade schema."""

    code = "llm_invalid_output"
    usage: object | None = None  # the TokenUsage the unusable reply still cost, when known


class SessionNotFoundError(CoachError):
    """No saved interview session has the requested id."""

    code = "session_not_found"


class InterviewNotFoundError(CoachError):
    """No stored interview has that id for this caller (other owners' interviews are hidden)."""

    code = "interview_not_found"


class InterviewConflictError(CoachError):
    """The interview changed since it was loaded; reload it and apply the change again."""

    code = "interview_conflict"


class GradingNotFoundError(CoachError):
    """No stored grading has that id for this caller."""

    code = "grading_not_found"


class StoreUnavailableError(CoachError):
    """The database cannot be reached, or its tables are missing or out of date."""

    code = "store_unavailable"
