"""Slack, played over real HTTP: its Web API for the bot's calls, and its signed requests.

`SlackAPIDouble` stands in for https://slack.com/api/ (point COACH_SLACK_API_URL at
`double.api_url`), for the file host behind `url_private` and for `response_url`. It records
every call so tests can assert on the messages, blocks and views the bot sent.
`SlackSender` sends what Slack sends: slash commands, Events API callbacks and interactive
payloads, each signed with the signing secret exactly as Slack signs them.

Example::

    with SlackAPIDouble(token="xoxb-test") as slack:
        sender = SlackSender(server.url, secret="s3cret", response_url=slack.response_url)
        sender.command("start twitter", user="U1", channel="C1")
        opening = slack.wait_for_message(channel="C1", thread=True)
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.signature import SignatureVerifier

from threaded_server import ThreadedServer

T = TypeVar("T")


@dataclass
class Call:
    """One request the bot made: a Web API method (or `response_url`) and its arguments."""

    method: str
    args: dict[str, Any]
    token: str | None
    response: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)

    @property
    def ts(self) -> str:
        """The posted message's timestamp, as Slack answered it."""
        return str(self.response.get("ts", ""))

    def text(self) -> str:
        """Everything a person would read in this message: its text and its blocks' text."""
        parts = [str(self.args.get("text") or "")]
        parts += list(_block_texts(self.args.get("blocks")))
        return "\n".join(p for p in parts if p)


def _block_texts(node: Any) -> list[str]:
    if isinstance(node, str):
        try:
            node = json.loads(node)
        except ValueError:
            return []
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("text"), str):
            found.append(node["text"])
        for value in node.values():
            if isinstance(value, dict | list):
                found += _block_texts(value)
    elif isinstance(node, list):
        for item in node:
            found += _block_texts(item)
    return found


class SlackAPIDouble:
    """The server; a context manager that runs uvicorn in a background thread."""

    def __init__(
        self, *, token: str, team_id: str = "T0TEAM", team: str = "Acme", bot_user: str = "UBOT"
    ) -> None:
        self.token = token
        self.team_id, self.team, self.bot_user = team_id, team, bot_user
        self.calls: list[Call] = []
        self.users: dict[str, str] = {}
        self.files: dict[str, tuple[str, bytes]] = {}
        self.file_fetches: list[str | None] = []  # the Authorization header of each download
        self._errors: dict[str, deque[str]] = defaultdict(deque)
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._runner = ThreadedServer()

    # -- scripting and reading --------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def response_url(self) -> str:
        return f"{self.url}/respond"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.users.clear()
            self.files.clear()
            self.file_fetches.clear()
            self._errors.clear()

    def add_user(self, user_id: str, display_name: str) -> None:
        self.users[user_id] = display_name

    def add_file(
        self, name: str, data: bytes, *, mimetype: str = "text/markdown"
    ) -> dict[str, Any]:
        """Host a file; returns the file object as a `file_share` message event carries it."""
        file_id = f"F{len(self.files) + 1:05d}"
        self.files[file_id] = (name, data)
        url = f"{self.url}/files-pri/{self.team_id}-{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(data),
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    def fail(self, method: str, error: str, times: int = 1) -> None:
        """The next `times` calls of `method` answer {"ok": false, "error": error}."""
        self._errors[method].extend([error] * times)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def messages(self, *, channel: str | None = None, thread_ts: str | None = None) -> list[Call]:
        """chat.postMessage calls, optionally in one channel and one thread."""
        return [
            c
            for c in self.calls_to("chat.postMessage")
            if (channel is None or c.args.get("channel") == channel)
            and (thread_ts is None or c.args.get("thread_ts") == thread_ts)
        ]

    def wait_for(
        self, check: Callable[[], T | None], *, timeout: float = 15.0, what: str = ""
    ) -> T:
        """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                posted = "\n---\n".join(f"{c.method}: {c.text()[:300]}" for c in self.calls)
                raise AssertionError(f"timed out waiting for {what or check}; calls:\n{posted}")
            time.sleep(0.02)

    def wait_for_messages(
        self, count: int, *, timeout: float = 15.0, **where: str | None
    ) -> list[Call]:
        """At least `count` messages posted (in the channel/thread given)."""
        return self.wait_for(
            lambda: (found := self.messages(**where)) and len(found) >= count and found,
            timeout=timeout,
            what=f"{count} message(s) {where}",
        )

    # -- the app --------------------------------------------------------------------------

    def _answer(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if token != self.token:
            return {"ok": False, "error": "invalid_auth"}
        if self._errors.get(method):
            return {"ok": False, "error": self._errors[method].popleft()}
        if method == "auth.test":
            return {
                "ok": True,
                "url": f"https://{self.team.lower()}.slack.com/",
                "team": self.team,
                "user": "coach",
                "team_id": self.team_id,
                "user_id": self.bot_user,
                "bot_id": "BBOT",
            }
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            return {"ok": True, "channel": args.get("channel"), "ts": ts, "message": args}
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts"), **args}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D" + str(args.get("users", "")).lstrip("U")}}
        if method == "views.open":
            view = args.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {"ok": True, "view": {"id": "V0VIEW", **(view or {})}}
        if method == "users.info":
            user = str(args.get("user"))
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            name = self.users[user]
            return {
                "ok": True,
                "user": {
                    "id": user,
                    "team_id": self.team_id,
                    "name": name.lower().replace(" ", "."),
                    "real_name": name,
                    "profile": {"display_name": name, "real_name": name},
                },
            }
        if method == "files.info":
            file_id = str(args.get("file"))
            if file_id not in self.files:
                return {"ok": False, "error": "file_not_found"}
            name, _ = self.files[file_id]
            url = f"{self.url}/files-pri/{self.team_id}-{file_id}/{name}"
            return {"ok": True, "file": {"id": file_id, "name": name, "url_private": url}}
        return {"ok": True}

    def _record(
        self, method: str, args: dict[str, Any], token: str | None, response: dict[str, Any]
    ) -> None:
        with self._lock:
            self.calls.append(Call(method=method, args=args, token=token, response=response))

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/api/{method}", methods=["GET", "POST"])
        async def web_api(method: str, request: Request) -> JSONResponse:
            args: dict[str, Any] = dict(request.query_params)
            body = await request.body()
            kind = request.headers.get("content-type", "")
            if body and kind.startswith("application/json"):
                args.update(json.loads(body))
            elif body:
                args.update(parse_qsl(body.decode()))
            header = request.headers.get("authorization", "")
            token = header.removeprefix("Bearer ") if header else args.pop("token", None)
            with self._lock:
                answer = self._answer(method, args, token)
            self._record(method, args, token, answer)
            return JSONResponse(answer)

        @app.post("/respond")
        async def respond(request: Request) -> JSONResponse:
            self._record("response_url", json.loads(await request.body()), None, {"ok": True})
            return JSONResponse({"ok": True})

        @app.get("/files-pri/{key}/{name}")
        async def file(key: str, name: str, request: Request) -> Response:
            header = request.headers.get("authorization")
            self.file_fetches.append(header)
            if header != f"Bearer {self.token}":  # Slack answers a sign-in page
                return Response("<html>sign in</html>", media_type="text/html")
            stored = self.files.get(key.rsplit("-", 1)[-1])
            if stored is None:
                return Response("not found", status_code=404)
            return Response(stored[1], media_type="application/octet-stream")

        return app

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> SlackAPIDouble:
        self._runner.start(self._app(), "Slack API double")
        return self

    @property
    def port(self) -> int:
        return self._runner.port

    def __exit__(self, *exc: object) -> None:
        self._runner.stop()


class SlackSender:
    """Sends the server what Slack would, signed with `secret` (v0 HMAC-SHA256 of v0:ts:body)."""

    def __init__(
        self, server_url: str, *, secret: str, response_url: str, team_id: str = "T0TEAM"
    ) -> None:
        self.url = server_url + "/slack/events"
        self.verifier = SignatureVerifier(secret)
        self.response_url = response_url
        self.team_id = team_id
        self._ids = itertools.count(1)
        self.client = httpx.Client(timeout=30)

    def close(self) -> None:
        self.client.close()

    def headers(self, body: str, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
        }

    def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        sent = {"Content-Type": content_type}
        if signed:
            sent |= self.headers(body)
        sent |= headers or {}
        return self.client.post(self.url, content=body.encode(), headers=sent)

    def command(
        self, text: str, *, user: str = "U1", channel: str = "C1", user_name: str = "ada"
    ) -> httpx.Response:
        """A slash command, as the form Slack posts."""
        form = {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "team_domain": "acme",
            "channel_id": channel,
            "channel_name": "practice",
            "user_id": user,
            "user_name": user_name,
            "command": "/coach",
            "text": text,
            "api_app_id": "A0COACH",
            "response_url": f"{self.response_url}?for={next(self._ids)}",
            "trigger_id": f"trigger.{next(self._ids)}",
        }
        return self.post(urlencode(form), "application/x-www-form-urlencoded")

    def event_body(self, event: dict[str, Any], *, event_id: str | None = None) -> str:
        """An Events API callback around `event`."""
        return json.dumps(
            {
                "token": "legacy-verification-token",
                "team_id": self.team_id,
                "api_app_id": "A0COACH",
                "event": event,
                "type": "event_callback",
                "event_id": event_id or f"Ev{uuid.uuid4().hex[:12].upper()}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": self.team_id, "user_id": "UBOT", "is_bot": True}],
            }
        )

    def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry: int | None = None,
    ) -> httpx.Response:
        headers = {}
        if retry is not None:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        body = self.event_body(event, event_id=event_id)
        return self.post(body, "application/json", headers=headers)

    def new_ts(self) -> str:
        """A fresh message timestamp, as Slack gives each message."""
        return f"1700000001.{next(self._ids):06d}"

    def reply(
        self,
        text: str,
        *,
        channel: str,
        thread_ts: str,
        user: str = "U1",
        ts: str | None = None,
        **more: Any,
    ) -> httpx.Response:
        """A message in a thread (message.channels / message.im)."""
        ts = ts or self.new_ts()
        event = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "thread_ts": thread_ts,
            "event_ts": ts,
            "channel_type": "im" if channel.startswith("D") else "channel",
        } | more
        return self.event(event)

    def interaction(self, payload: dict[str, Any]) -> httpx.Response:
        """An interactive payload: the JSON in the form field `payload`."""
        return self.post(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        )

    def click(
        self, action: dict[str, Any], *, user: str = "U1", channel: str = "C1", thread_ts: str = ""
    ) -> httpx.Response:
        """A button pressed on a message in a thread (block_actions)."""
        ts = f"1700000002.{next(self._ids):06d}"
        return self.interaction(
            {
                "type": "block_actions",
                "user": {"id": user, "username": "ada", "name": "ada", "team_id": self.team_id},
                "api_app_id": "A0COACH",
                "token": "legacy-verification-token",
                "container": {
                    "type": "message",
                    "message_ts": ts,
                    "channel_id": channel,
                    "is_ephemeral": False,
                    "thread_ts": thread_ts,
                },
                "trigger_id": f"trigger.{next(self._ids)}",
                "team": {"id": self.team_id, "domain": "acme"},
                "channel": {"id": channel, "name": "practice"},
                "message": {"type": "message", "ts": ts, "thread_ts": thread_ts, "text": ""},
                "response_url": f"{self.response_url}?for={next(self._ids)}",
                "actions": [
                    {
                        "action_id": action["action_id"],
                        "block_id": action.get("block_id", "b1"),
                        "text": action.get("text", {"type": "plain_text", "text": "x"}),
                        "value": action.get("value", ""),
                        "type": "button",
                        "action_ts": ts,
                    }
                ],
            }
        )

    def submit_view(
        self, view: dict[str, Any], values: dict[str, Any], *, user: str = "U1"
    ) -> httpx.Response:
        """The modal `view` submitted with `values` ({block_id: {action_id: {...}}})."""
        return self.interaction(
            {
                "type": "view_submission",
                "team": {"id": self.team_id, "domain": "acme"},
                "user": {"id": user, "username": "ada", "name": "ada", "team_id": self.team_id},
                "api_app_id": "A0COACH",
                "token": "legacy-verification-token",
                "trigger_id": f"trigger.{next(self._ids)}",
                "view": {
                    **view,
                    "id": "V0VIEW",
                    "team_id": self.team_id,
                    "state": {"values": values},
                    "hash": "1700000000.abc",
                    "private_metadata": view.get("private_metadata", ""),
                },
                "response_urls": [],
            }
        )
