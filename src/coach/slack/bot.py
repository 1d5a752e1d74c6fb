"""The bolt App: Slack's requests in, one `SlackCoach` call each, after the acknowledgement.

`process_before_response=False` is right for a long-running server such as uvicorn: bolt
answers Slack as soon as a listener calls `ack()` (events are acknowledged before the
listener even starts) and the listener goes on in bolt's thread pool, so grading never
delays the 3-second acknowledgement. (True is for FaaS, where work after the response dies.)
Bolt verifies every request's signature before any listener runs.

Slack retries an event it thinks was not delivered (`X-Slack-Retry-Num`); each event id is
claimed in the database first, so a retry reaching any process is dropped.
"""

from __future__ import annotations

import difflib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from coach.config import Settings
from coach.errors import CoachError, InputError
from coach.service import CoachService
from coach.slack import blocks
from coach.slack.coach import SlackCoach
from coach.text_input import clean_text

log = logging.getLogger(__name__)

# Threads for work after the acknowledgement; most of their time is spent waiting on the LLM.
LISTENER_THREADS = 32
WEB_API_TIMEOUT = 15  # seconds per Slack Web API call
COMMAND = re.compile(r"^/coach")  # /coach, or a renamed copy such as /coach-dev


def web_client(settings: Settings) -> WebClient:
    """A Web API client with the bot token, at COACH_SLACK_API_URL, retrying rate limits."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=WEB_API_TIMEOUT)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def build_bolt_app(service: CoachService, client: WebClient | None = None) -> App:
    """The bot over `service`; needs COACH_SLACK_SIGNING_SECRET and COACH_SLACK_BOT_TOKEN."""
    settings = service.settings
    if settings.slack_signing_secret is None or settings.slack_bot_token is None:
        raise CoachError(
            "The Slack bot needs COACH_SLACK_SIGNING_SECRET and COACH_SLACK_BOT_TOKEN."
        )
    client = client or web_client(settings)
    coach = SlackCoach(service, client)
    app = App(
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        client=client,
        process_before_response=False,
        token_verification_enabled=False,  # auth.test on the first request, not at start-up
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="coach-slack"),
    )

    @app.command(COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        word, _, rest = (command.get("text") or "").strip().partition(" ")
        word = word.lower()
        team_id, user_id = command["team_id"], command["user_id"]
        if word in ("", "help"):
            ack(text=blocks.HELP, blocks=[blocks.section(blocks.HELP)])
        elif word == "start":
            question_id = None
            if rest.strip():
                named = service.content.question_named(blocks.plain_from_slack(rest))
                if named is None:
                    try:
                        service.content.question(rest)  # the standard message, with every id
                    except CoachError as exc:
                        ack(text=str(exc))
                        return
                question_id = named.id if named else rest.strip()
            ack()
            try:
                coach.start(
                    team_id=team_id,
                    channel_id=command["channel_id"],
                    user_id=user_id,
                    question_id=question_id,
                    respond=lambda text: respond(text=text, response_type="ephemeral"),
                    user_name=command.get("user_name"),
                )
            except CoachError as exc:
                respond(text=f"I could not start the interview: {exc}", response_type="ephemeral")
        elif word == "grade":
            ack()
            typed = blocks.plain_from_slack(rest).strip()
            short = len(typed.split()) <= 6  # a question's name, not an answer
            named = service.content.question_named(typed) if short else None
            view = blocks.grade_modal(
                service.content.questions.values(),
                question=named,
                answer="" if named else typed,  # a question's name, or the answer itself
            )
            client.views_open(trigger_id=command["trigger_id"], view=view)
        elif word == "leaderboard":
            ack()
            board = coach.leaderboard(team_id)
            respond(text="Leaderboard", blocks=board, response_type="in_channel")
        elif word in ("summary", "weekly"):
            ack()
            summary = coach.weekly_summary(team_id)
            respond(text="Weekly practice summary", blocks=summary, response_type="in_channel")
        else:
            known = ("start", "grade", "leaderboard", "summary", "weekly", "help")
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            meant = f" Did you mean `/coach {close[0]}`?" if close else ""
            ack(text=f"I don't know `{blocks.escape(word)}`.{meant}\n\n{blocks.HELP}")

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share"):
            return  # other bots, edits, joins: nothing to answer
        team_id = context.team_id or body.get("team_id") or ""
        user_id, channel = event.get("user", ""), event.get("channel", "")
        key = f"event:{body.get('event_id') or channel + ':' + str(event.get('ts'))}"
        thread_ts = event.get("thread_ts")
        if thread_ts and thread_ts != event.get("ts"):
            thread = coach.thread_at(channel, thread_ts)
            if thread is not None and service.store.claim_slack_delivery(key):
                coach.reply(
                    thread, user_id=user_id, text=event.get("text") or "", ts=event.get("ts")
                )
        elif event.get("channel_type") == "im" and service.store.claim_slack_delivery(key):
            files = event.get("files") or []
            for file in files:
                coach.grade_file(
                    team_id=team_id, user_id=user_id, file=file, note=event.get("text") or ""
                )
            if files:
                return
            running = coach.interview_in_dm(channel, user_id)
            if running is None:
                client.chat_postMessage(channel=channel, text=blocks.HELP)
            else:  # an answer typed beside the interview's thread instead of in it
                client.chat_postMessage(
                    channel=channel,
                    thread_ts=running.thread_ts,
                    text=f"<@{user_id}> Your interview is in this thread: reply here to "
                    "answer (that message was not recorded). To have a whole written answer "
                    "graded instead, use `/coach grade` or send me the file.",
                )

    @app.action(blocks.NEXT_ACTION)
    def on_next(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        interview_id, phase = blocks.read_step_value(action["value"])
        thread = service.store.slack_thread(interview_id=interview_id)
        if thread is not None:
            coach.next_phase(thread, user_id=body["user"]["id"], expected_phase=phase)

    @app.action(blocks.FINISH_ACTION)
    def on_finish(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        interview_id, _ = blocks.read_step_value(action["value"])
        thread = service.store.slack_thread(interview_id=interview_id)
        if thread is not None:
            coach.finish(thread, user_id=body["user"]["id"])

    @app.action(blocks.PICK_ACTION)
    def on_pick(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user = body["user"]
        coach.start(
            team_id=(body.get("team") or {}).get("id") or user.get("team_id", ""),
            channel_id=body["channel"]["id"],
            user_id=user["id"],
            question_id=action["value"],
            respond=lambda text: respond(
                text=text, response_type="ephemeral", replace_original=False
            ),
            user_name=user.get("username"),
        )

    @app.action(blocks.LINK_ACTION)
    def on_link(ack: Ack) -> None:
        ack()  # a link button opens its URL in the browser; Slack still wants an answer

    @app.view(blocks.GRADE_VIEW)
    def on_grade(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        raw = (values.get(blocks.ANSWER_BLOCK, {}).get(blocks.ANSWER_INPUT) or {}).get("value")
        picked = (values.get(blocks.QUESTION_BLOCK, {}).get(blocks.QUESTION_INPUT) or {}).get(
            "selected_option"
        )
        try:
            text = clean_text(raw or "", max_chars=settings.max_upload_bytes, what="answer")
        except InputError as exc:
            ack(response_action="errors", errors={blocks.ANSWER_BLOCK: str(exc)[:150]})
            return
        ack()
        user = body["user"]
        coach.grade_text(
            team_id=(body.get("team") or {}).get("id") or user.get("team_id", ""),
            user_id=user["id"],
            text=text,
            question_id=picked["value"] if picked else None,
        )

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed on a %s request", body.get("type"), exc_info=error)

    return app
