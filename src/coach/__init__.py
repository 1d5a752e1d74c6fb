"""coach: a system design interview coach with an LLM grader and an offline fallback."""

__version__ = "0.1.0"
