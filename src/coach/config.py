"""The one settings object: every knob is an environment variable with the COACH_ prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("coach", appauthor=False))


class Settings(BaseSettings):
    """Read once at start; front doors and tests build their own with overrides."""

    model_config = SettingsConfigDict(env_prefix="COACH_", extra="ignore")

    # --- LLM (any OpenAI-compatible endpoint) -------------------------------------------
    llm_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1. "
        "Unset with no API key: grade offline.",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="API key for the LLM endpoint (local servers accept any)."
    )
    llm_model: str = Field(default="gpt-4o-mini", description="Model name sent to the endpoint.")
    llm_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for the LLM's TCP connection."
    )
    llm_read_timeout: float = Field(
        default=20.0, gt=0, description="Seconds to wait for the LLM's answer before falling back."
    )
    llm_max_tokens: int = Field(default=700, gt=0, description="Cap on tokens the LLM may write.")
    llm_temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    llm_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive LLM failures that open the circuit breaker."
    )
    llm_breaker_cooldown: float = Field(
        default=60.0, ge=0, description="Seconds to grade offline after the breaker opens."
    )
    llm_json_mode: Literal["auto", "json_schema", "json_object"] = Field(
        default="auto",
        description="How to ask for JSON: json_schema (OpenAI structured outputs), json_object "
        "(with the schema attached, what llama.cpp servers accept), or auto (try json_schema, "
        "switch to json_object for good if the endpoint rejects it and json_object works).",
    )
    llm_prompt_detail: Literal["full", "compact"] = Field(
        default="full",
        description="Grading prompt size: full (every rubric level descriptor and the question's "
        "reference answer, ~7k tokens, cached across calls) or compact (~2k tokens, for small "
        "local models with a 4k context window).",
    )
    llm_split_answers: bool = Field(
        default=False,
        description="Ask the LLM where each phase starts in an uploaded answer that has no "
        "headings (every section stays verbatim answer text); off: the offline splitter only.",
    )
    llm_context_chars: int = Field(
        default=12_000,
        gt=0,
        description="Longest whole answer sent to the LLM as context when grading one phase; "
        "longer answers are cut (the phase's own text is always sent in full).",
    )

    # --- Content --------------------------------------------------------------------------
    content_dir: Path | None = Field(
        default=None,
        description="Folder holding prompts/, rubrics/ and questions/ (default: the shipped ones).",
    )
    extra_questions_dir: Path | None = Field(
        default=None, description="Folder of your own question YAML files, added to the bank."
    )

    # --- Storage and limits -----------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="Where coach keeps its files."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is a SQLite file in the data dir."
    )
    max_answer_chars: int = Field(
        default=60_000, gt=0, description="Longest single answer accepted, in characters."
    )
    max_upload_bytes: int = Field(
        default=400_000, gt=0, description="Largest whole-answer upload accepted, in bytes."
    )

    # --- The service (coach serve) -------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address `coach serve` listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `coach serve` listens on.")
    workers: int = Field(
        default=1, ge=1, description="Server processes; more than one needs PostgreSQL."
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description="How long `coach serve` keeps an idle HTTP connection open. Above the 60 s "
        "idle timeout of common load balancers, so a balancer never reuses a connection the "
        "server has just closed (a 502); a candidate thinking between requests keeps theirs.",
    )
    auth: Literal["none", "token"] = Field(
        default="none",
        description="none: local single-user mode, no login; token: every /v1/ call needs a "
        "bearer token made with `coach tokens create NAME`, and sees only its own interviews "
        "(the health probes, /metrics and /docs stay open).",
    )
    rate_limit: str = Field(
        default="60/minute",
        description="LLM-backed calls (advance, finish, clarify, gradings) allowed per token "
        "(or per client in local mode), in the `limits` notation, e.g. 30/minute.",
    )
    max_request_bytes: int = Field(
        default=1_000_000, gt=0, description="Largest HTTP request body accepted, in bytes."
    )
    sync_grading_max_chars: int = Field(
        default=20_000,
        ge=0,
        description="Uploads up to this many characters are graded in the request; longer "
        "ones become a job to poll at /v1/gradings/{id}.",
    )
    job_threads: int = Field(
        default=2, ge=1, description="Background threads grading upload jobs in this process."
    )
    request_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads that run requests' blocking work in one server process. Unset: "
        "200 with an LLM (each request waiting on the LLM holds one), 16 without (the work is "
        "all CPU, and more threads only take turns at the interpreter lock).",
    )
    db_pool_size: int | None = Field(
        default=None,
        ge=1,
        description="Database connections one process keeps open (as many more are opened "
        "for bursts, then closed). Unset: 32 with SQLite, 10 with PostgreSQL (mind its "
        "max_connections across processes).",
    )
    job_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A grading job its server process has not renewed for this long is taken "
        "as abandoned (the process died) and graded by another; live processes renew theirs "
        "five times per lease.",
    )

    # --- Scale-out (several instances sharing Redis; unset: one process, nothing shared) ---
    redis_url: str | None = Field(
        default=None,
        description="Redis URL, e.g. redis://127.0.0.1:6379/0. Set it to run several "
        "instances: rate limits and the LLM circuit breaker are shared there, and grading "
        "jobs go to a queue that `coach worker` processes. Unset: all of it stays in-process.",
    )
    redis_prefix: str = Field(
        default="coach",
        min_length=1,
        description="Prefix of coach's own Redis names (the job queue, breaker keys, rate-limit "
        "counters); rq's bookkeeping keys are not prefixed, so deployments that must not see "
        "each other's jobs use separate Redis databases.",
    )

    # --- Slack (the bot at /slack/events) -----------------------------------------------------
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret (Basic Information > App Credentials); "
        "with COACH_SLACK_BOT_TOKEN it turns the Slack bot on at /slack/events.",
    )
    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="The Slack app's bot token, xoxb-... (OAuth & Permissions, after "
        "installing the app to the workspace).",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="Base URL of Slack's Web API; tests point it at a local stand-in.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The address people reach this server at, for links the Slack bot posts "
        "(web reports).",
    )

    @property
    def llm_enabled(self) -> bool:
        """An LLM is used when an endpoint or a key is given; otherwise grading is offline."""
        return bool(self.llm_base_url or self.llm_api_key)

    @property
    def resolved_request_threads(self) -> int:
        if self.request_threads is not None:
            return self.request_threads
        return 200 if self.llm_enabled else 16

    @property
    def uses_sqlite(self) -> bool:
        """The embedded SQLite file (or another SQLite URL), rather than a database server."""
        return self.resolved_database_url.startswith("sqlite")

    @property
    def resolved_db_pool_size(self) -> int:
        if self.db_pool_size is not None:
            return self.db_pool_size
        return 32 if self.uses_sqlite else 10

    @property
    def slack_enabled(self) -> bool:
        """The Slack bot runs only when both its secret and its token are set."""
        return bool(self.slack_signing_secret and self.slack_bot_token)

    @property
    def scale_out(self) -> bool:
        """Shared state and jobs live in Redis when a URL is given."""
        return bool(self.redis_url)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'coach.db'}"


def settings_help() -> str:
    """One line per setting, for `coach --help` and the README."""
    lines = []
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else "(per-user data folder)"
        lines.append(f"COACH_{name.upper()}  {field.description}  [default: {default}]")
    return "\n".join(lines)
