"""Interview sessions as JSON files, for the terminal: one file per session, written atomically.

A crash or Ctrl-C mid-write never leaves a half-written session: the JSON goes to a temporary
file in the same folder and replaces the old file in one `os.replace`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import ValidationError

from coach.engine import Session
from coach.errors import CoachError, SessionNotFoundError

_SESSION_ID = re.compile(r"^[0-9a-f]{32}$")


class SessionFiles:
    """Save and load sessions under one folder (normally <data_dir>/sessions)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, session_id: str) -> Path:
        session_id = session_id.strip().lower()
        if not _SESSION_ID.match(session_id):
            raise SessionNotFoundError(
                f"{session_id!r} is not a session id (32 hex characters, as printed when the "
                "interview was saved)."
            )
        return self.folder / f"{session_id}.json"

    @contextmanager
    def open_exclusively(self, session_id: str) -> Iterator[None]:
        """Hold the session for one terminal: a second `coach practice` on it would save over
        the first one's answers (each keeps its own copy in memory), so it is refused.

        The lock is the operating system's (filelock), so a killed process leaves none behind.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path(session_id).with_suffix(".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise CoachError(
                f"Interview {session_id} is open in another `coach practice`. Carry on there, "
                "or type /quit there and then resume it here."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def save(self, session: Session) -> Path:
        target = self.path(session.id)
        self.folder.mkdir(parents=True, exist_ok=True)
        data = session.model_dump_json(indent=2)
        fd, tmp = tempfile.mkstemp(prefix=f".{session.id}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def load(self, session_id: str) -> Session:
        path = self.path(session_id)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionNotFoundError(
                f"No saved session {session_id} in {self.folder}. Check the id, or the "
                "COACH_DATA_DIR it was saved under."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CoachError(f"{path}: cannot read the saved session: {exc}") from exc
        try:
            return Session.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise CoachError(
                f"{path}: the saved session is damaged (field '{where}': {first['msg']}). "
                "Start a new interview."
            ) from exc
