"""Run `coach serve`'s app in a real uvicorn process on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from coach.config import Settings
from llm_double import free_port


class ChildProcess:
    """A process a test started: stop it politely, or kill it outright."""

    process: subprocess.Popen[bytes] | None = None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class ServerProcess(ChildProcess):
    """uvicorn serving coach.api.app:create_app in its own process, configured by env vars.

    Example::

        with ServerProcess({"COACH_DATABASE_URL": url}, log_dir=tmp_path) as server:
            httpx.get(server.url + "/healthz")
    """

    # What uvicorn serves: coach's app factory (benchmarks/stack_floor.py serves another).
    app_options: tuple[str, ...] = ("coach.api.app:create_app",)

    def __init__(self, env: dict[str, str], *, log_dir: Path, port: int | None = None) -> None:
        self.env = env
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COACH_")}
        env.update(self.env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                *self.app_options,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                # As `coach serve` runs it (its timeout_keep_alive).
                "--timeout-keep-alive",
                env.get("COACH_KEEP_ALIVE_SECONDS")
                or str(Settings.model_fields["keep_alive_seconds"].default),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log_path.read_text()}")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
