"""Fetch a file a member shared with the bot, and turn it into answer text.

Slack serves shared files at `url_private`, readable with the bot token. The token is only
ever sent to Slack itself (or to the configured Web API host, a stand-in in tests), never to
whatever URL a payload names, and the download stops at COACH_MAX_UPLOAD_BYTES.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from coach.errors import InputError
from coach.text_input import upload_text, upload_too_large

SLACK_FILE_HOSTS = ("files.slack.com", "slack-files.com")
DOWNLOAD_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class FileDownloadError(InputError):
    """The shared file could not be fetched from Slack."""

    code = "slack_file_unavailable"


def trusted_file_url(url: str, *, api_url: str) -> bool:
    """Is this a URL the bot token may be sent to? Slack's file hosts, or the API's own host."""
    parts, api = urlsplit(url), urlsplit(api_url)
    if parts.scheme == "https" and (
        parts.hostname in SLACK_FILE_HOSTS or (parts.hostname or "").endswith(".slack.com")
    ):
        return True
    return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


def download(url: str, *, token: str, api_url: str, max_bytes: int) -> bytes:
    """The file's bytes, refusing untrusted hosts and files over `max_bytes`."""
    if not trusted_file_url(url, api_url=api_url):
        raise FileDownloadError(f"The file is not on Slack's file host ({urlsplit(url).netloc}).")
    chunks: list[bytes] = []
    size = 0
    try:
        with (
            httpx.Client(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as client,
            client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response,
        ):
            if response.status_code != 200:
                raise FileDownloadError(
                    f"Slack answered {response.status_code} when the file was fetched; "
                    "check that the app has the files:read scope."
                )
            if "text/html" in response.headers.get("content-type", ""):
                raise FileDownloadError(
                    "Slack sent a sign-in page instead of the file; the bot token lacks "
                    "the files:read scope."
                )
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise upload_too_large("file", size, max_bytes, whole=False)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise FileDownloadError(f"The file could not be fetched from Slack ({exc}).") from exc
    return b"".join(chunks)


def answer_text(data: bytes, *, name: str, max_bytes: int) -> str:
    """Markdown, plain text or PDF bytes as clean answer text (the API's upload rules)."""
    return upload_text(data, what=f"file {name!r}", max_bytes=max_bytes)


def file_url(file: dict[str, Any]) -> str | None:
    return file.get("url_private_download") or file.get("url_private")
