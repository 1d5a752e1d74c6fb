"""Small helpers the end-to-end API tests share: starting a server, reading SSE and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from coach.store import Store
from llm_double import LLMDouble
from server_process import ServerProcess


def serve(database_url: str, tmp_path: Path, **env: str) -> ServerProcess:
    """A started server on `database_url` (migrated first); `env` keys are settings names."""
    Store(database_url).upgrade()
    return ServerProcess(server_env(database_url, tmp_path, **env), log_dir=tmp_path).start()


def serve_with_llm(
    database_url: str, tmp_path: Path, double: LLMDouble, **env: str
) -> ServerProcess:
    """A started server grading with the LLM test double (`env` may override any setting)."""
    settings = {
        "llm_base_url": double.base_url,
        "llm_json_mode": "json_object",
        "llm_model": "double-model",
        "llm_read_timeout": "10",
    } | env
    return serve(database_url, tmp_path, **settings)


def server_env(database_url: str, tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        "COACH_DATABASE_URL": database_url,
        "COACH_DATA_DIR": str(tmp_path / "data"),
        "COACH_RATE_LIMIT": "1000/minute",
    } | {f"COACH_{k.upper()}": v for k, v in env.items()}


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event and when it arrived (monotonic seconds)."""

    event: str
    data: str
    at: float


def read_events(response: httpx.Response) -> list[Event]:
    """Parse a text/event-stream response as the SSE spec says (multi-line data joined)."""
    events: list[Event] = []
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                events.append(Event(name, "\n".join(data), time.monotonic()))
            name, data = "message", []
        elif line.startswith(":"):
            continue  # a comment (keep-alive ping)
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        events.append(Event(name, "\n".join(data), time.monotonic()))
    return events


def metric_values(api: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics, keyed by (name, sorted labels)."""
    text = api.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value; 0 when it has not been recorded yet."""
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_grading(
    api: httpx.Client, grading_id: str, *, timeout: float = 60.0
) -> dict[str, object]:
    """Poll a grading until it is done or failed (or `timeout` passes); the last status."""
    statuses = ("done", "failed")
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, object] = api.get(f"/v1/gradings/{grading_id}").json()
        if status["status"] in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def wait_until(
    condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
