"""What the bot does for each Slack interaction: one `CoachService` call, then Block Kit posts.

The listeners in `bot.py` acknowledge Slack first and call one method here afterwards, in
bolt's listener threads, so slow grading never holds up the 3-second acknowledgement. Every
interview runs in a thread whose parent message the bot posted; replies there are answers.

Example::

    coach = SlackCoach(service, WebClient(token="xoxb-...", base_url=settings.slack_api_url))
    coach.start(team_id="T1", channel_id="C1", user_id="U1", question_id=None, respond=print)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from coach.content.models import PhaseId, Question
from coach.engine import Session, Turn
from coach.errors import CoachError, InterviewConflictError, InterviewStateError
from coach.grading.models import Report
from coach.grading.port import Progress
from coach.service import CoachService
from coach.slack import blocks
from coach.slack.blocks import Block
from coach.slack.files import answer_text, download, file_url
from coach.slack.summary import WEEK, leaderboard_blocks, team_stats, weekly_summary_blocks
from coach.store import SlackMember, SlackThreadInfo

log = logging.getLogger(__name__)

NEXT_WORDS = frozenset({"next", "next phase", "/next"})
FINISH_WORDS = frozenset({"finish", "/finish", "end interview"})
# Errors posting where the bot cannot see or write: the member should invite it first.
NOT_HERE_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
ANSWER_TAKEN = "white_check_mark"  # the reaction on each stored answer
START_WAIT_SECONDS = 120  # a reply waits at most this long for its interview's opening
INVITE_HINT = (
    "I can't post in this conversation. Invite me first (`/invite @coach`), or send "
    "`/coach start` in a DM with me."
)

Respond = Callable[[str], Any]


_POLITE = frozenset({"please", "pls", "thanks", "thank you", "now", "phase"})


def command_word(text: str) -> str:
    """'Next!', ' `next` ', 'NEXT.' and 'next please' all read as the word `next`; a longer
    message that starts with it ('next, I would add a cache') is an answer."""
    word = " ".join(text.strip().strip("`*_!.").lower().split())
    head, _, rest = word.partition(" ")
    head = head.rstrip(",")
    if head in ("next", "finish") and rest.strip(" ,!.") in _POLITE:
        return head
    return word


class _StatusMessage:
    """A posted message the bot rewrites as work goes on ("Grading phase 3 of 6 ...").

    Offline, a whole answer is graded in a blink, and Slack allows about one chat.update per
    second per channel: steps are shown at most once per `every` seconds, the first only
    after `every` seconds of work. `done` replaces a shown step (a message never rewritten
    still says the right thing); `failed` always rewrites. A failed rewrite is logged and
    the work goes on: the message is only for show.
    """

    def __init__(self, client: WebClient, channel: str, posted: Any, *, every: float = 1.0):
        self._client, self._channel = client, channel
        self._ts = str(posted.get("ts") or "")
        self._every = every
        self._shown: float | None = None  # when a step was last shown
        self._started = time.monotonic()

    def step(self, text: str) -> None:
        now = time.monotonic()
        if now - (self._shown if self._shown is not None else self._started) >= self._every:
            self._shown = now
            self._rewrite(text)

    def progress(self, doing: str) -> Progress:
        """A grading progress callback that shows '<doing>: <step> (step n of m)…'."""

        def show(done: int, total: int, step: str) -> None:
            self.step(f"{doing}: {step} (step {min(done + 1, total)} of {total})\u2026")

        return show

    def done(self, text: str) -> None:
        if self._shown is not None:
            self._rewrite(text)

    def failed(self, text: str) -> None:
        self._rewrite(text)

    def _rewrite(self, text: str) -> None:
        if not self._ts:
            return
        try:
            self._client.chat_update(channel=self._channel, ts=self._ts, text=text)
        except SlackApiError as exc:
            log.warning("could not update the status message in %s: %s", self._channel, exc)


class _PassingNotice:
    """A thread message that says which step is under way, shown only while work is slow.

    Grading a phase with an LLM is one call that may take a minute on a local model, and
    the thread would stay silent meanwhile. A notice appears once the work has taken
    `after` seconds (offline grading never shows one) and is deleted when the work ends,
    so a thread keeps only the interview. It shows the latest step told to `progress`;
    work that tells no step (a pushback) shows none. Slack errors are logged and ignored.
    """

    def __init__(
        self, client: WebClient, channel: str, thread_ts: str, *, after: float = 1.0
    ) -> None:
        self._client, self._channel, self._thread_ts = client, channel, thread_ts
        self._lock = threading.Lock()  # the timer thread posts, the worker closes
        self._step: str | None = None
        self._shown: str | None = None
        self._ts: str | None = None
        self._shown_at = 0.0
        self._over = False
        self._timer = threading.Timer(after, self._show)
        self._timer.daemon = True
        self._timer.start()

    def progress(self, done: int, total: int, step: str) -> None:
        counted = f" (step {min(done + 1, total)} of {total})" if total > 1 else ""
        with self._lock:
            self._step = f":hourglass_flowing_sand: {step}{counted}\u2026"
        # Past `after`, a new step shows at once, but Slack allows about one rewrite a second.
        if not self._timer.is_alive() and time.monotonic() - self._shown_at >= 1.0:
            self._show()

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._over = True
            if self._ts is None:
                return
            try:
                self._client.chat_delete(channel=self._channel, ts=self._ts)
            except SlackApiError as exc:
                log.warning("could not delete the progress notice in %s: %s", self._channel, exc)

    def _show(self) -> None:
        with self._lock:
            if self._over or self._step is None or self._step == self._shown:
                return
            try:
                if self._ts is None:
                    posted = self._client.chat_postMessage(
                        channel=self._channel, thread_ts=self._thread_ts, text=self._step
                    )
                    self._ts = str(posted.get("ts") or "") or None
                else:
                    self._client.chat_update(channel=self._channel, ts=self._ts, text=self._step)
            except SlackApiError as exc:
                log.warning("could not show the progress notice in %s: %s", self._channel, exc)
            self._shown, self._shown_at = self._step, time.monotonic()


class SlackCoach:
    """The Slack front door's behaviour over one service and one Web API client."""

    def __init__(self, service: CoachService, client: WebClient) -> None:
        self.service = service
        self.client = client
        self.content = service.content
        self.store = service.store
        self.public_url = service.settings.public_url.rstrip("/")
        self._turn_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        # Threads whose interview is being created (the opening may wait on the LLM), so a
        # reply that comes first waits for it instead of finding no interview and being lost.
        self._starting: dict[tuple[str, str], threading.Event] = {}

    # -- members ---------------------------------------------------------------------------

    def member(self, team_id: str, user_id: str, *, user_name: str | None = None) -> SlackMember:
        """The member's candidate: their Slack display name, made unique if another has it."""
        found = self.store.slack_member(team_id, user_id)
        if found is not None:
            return found
        display = self._display_name(user_id) or user_name or user_id
        return self.store.link_slack_member(
            team_id,
            user_id,
            display_name=display,
            names=[display, f"{display} ({user_id})", f"slack:{team_id}:{user_id}"],
        )

    def _display_name(self, user_id: str) -> str | None:
        try:
            user = self.client.users_info(user=user_id)["user"]
        except (SlackApiError, KeyError, TypeError):
            log.warning("users.info failed for %s; using their id as the name", user_id)
            return None
        profile = user.get("profile") or {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
        )
        return (str(name).strip() or None) if name else None

    # -- interviews ------------------------------------------------------------------------

    def start(
        self,
        *,
        team_id: str,
        channel_id: str,
        user_id: str,
        question_id: str | None,
        respond: Respond,
        user_name: str | None = None,
    ) -> SlackThreadInfo | None:
        """Open an interview in a new thread: a header message, then the interviewer."""
        questions = list(self.content.questions.values())
        question = self.content.question(question_id) if question_id else random.choice(questions)
        picker: list[Question] = []
        if question_id is None:
            picker = [q for q in questions if q.canonical and q.id != question.id]
            picker = picker[: blocks.PICKER_SIZE]
        member = self.member(team_id, user_id, user_name=user_name)
        try:
            parent = self.client.chat_postMessage(
                channel=channel_id,
                text=f"{member.display_name} is practising: {question.title}",
                blocks=blocks.interview_header(question, user_id, picker=picker),
            )
        except SlackApiError as exc:
            error = exc.response.get("error")
            respond(INVITE_HINT if error in NOT_HERE_ERRORS else f"Slack refused the post: {error}")
            return None
        key = (channel_id, str(parent["ts"]))
        created = self._starting[key] = threading.Event()
        try:
            try:
                session = self.service.create_interview(
                    question.id, candidate=member.candidate, owner=None
                )
            except CoachError as exc:
                respond(f"I could not start the interview: {exc}")
                return None
            thread = SlackThreadInfo(
                team_id=team_id,
                channel_id=channel_id,
                thread_ts=key[1],
                user_id=user_id,
                interview_id=session.id,
            )
            self.store.add_slack_thread(thread)
        finally:
            created.set()
            self._starting.pop(key, None)
        self._post_turns(thread, session, session.turns)
        return thread

    def thread_at(self, channel_id: str, thread_ts: str) -> SlackThreadInfo | None:
        """The interview running in this thread; if it is still being created in this
        process (its opening may take an LLM call), wait for it rather than drop the reply."""
        thread = self.store.slack_thread(channel_id=channel_id, thread_ts=thread_ts)
        if thread is None and (starting := self._starting.get((channel_id, thread_ts))):
            starting.wait(START_WAIT_SECONDS)
            thread = self.store.slack_thread(channel_id=channel_id, thread_ts=thread_ts)
        return thread

    def interview_in_dm(self, channel_id: str, user_id: str) -> SlackThreadInfo | None:
        """The member's interview still running in this DM, if any."""
        return self.store.open_slack_thread(channel_id=channel_id, user_id=user_id)

    def reply(
        self, thread: SlackThreadInfo, *, user_id: str, text: str, ts: str | None = None
    ) -> None:
        """A reply in an interview thread: an answer, `? a clarifying question`, or a command.

        A stored answer gets a check-mark reaction, so the candidate sees it was taken.
        """
        if user_id != thread.user_id:
            return  # teammates may comment in the thread; only the candidate is interviewed
        text = blocks.plain_from_slack(text)
        word = command_word(text)
        if word in NEXT_WORDS:
            # The phase it was typed in, read now: a second `next` typed while the first is
            # grading then finds that phase graded instead of grading the next one, empty.
            with self._telling(thread, user_id):
                now = self.service.get_interview(thread.interview_id, owner=None)
                self.next_phase(thread, user_id=user_id, expected_phase=now.phase)
            return
        if word in FINISH_WORDS:
            self.finish(thread, user_id=user_id)
            return
        with self._turn(thread), self._telling(thread, user_id):
            if self._finished(thread, user_id, "so that reply was not recorded"):
                return
            if text.lstrip().startswith("?"):
                session, turn = self.service.clarify(
                    thread.interview_id, text.lstrip()[1:], owner=None
                )
                replies = [turn]
            else:
                session, replies = self.service.answer(thread.interview_id, text, owner=None)
            if ts:
                self._react(thread.channel_id, ts)
            self._post_turns(thread, session, replies)

    def next_phase(
        self, thread: SlackThreadInfo, *, user_id: str, expected_phase: PhaseId | None
    ) -> None:
        """Grade the phase and post the feedback, then the next opening (or a pushback)."""
        if not self._is_candidate(thread, user_id):
            return
        with self._turn(thread), self._telling(thread, user_id):
            notice = _PassingNotice(self.client, thread.channel_id, thread.thread_ts)
            try:
                session, result = self.service.advance(
                    thread.interview_id,
                    owner=None,
                    expected_phase=expected_phase,
                    progress=notice.progress,
                )
            except InterviewConflictError:
                if expected_phase is None:
                    raise
                self._tell(thread, user_id, "That phase was already graded; see above.")
                return
            except InterviewStateError:
                if not self._finished(thread, user_id, "so there is no phase left to grade"):
                    raise
                return
            finally:
                notice.close()
            if result.grade is not None:
                self._post(
                    thread,
                    text=blocks.grade_text(result.grade, self.content),
                    blocks=blocks.grade_blocks(result.grade, self.content),
                )
            self._post_turns(thread, session, result.turns)
            if result.report is not None:
                self._post_report(thread, session, result.report)

    def finish(self, thread: SlackThreadInfo, *, user_id: str) -> None:
        """Grade what is left and post the report with the link to the web report."""
        if not self._is_candidate(thread, user_id):
            return
        with self._turn(thread), self._telling(thread, user_id):
            if self._finished(thread, user_id, "and its report is above in this thread"):
                return  # posting the report again for each press filled the thread with copies
            status = self._status(
                thread.channel_id,
                "Finishing: grading the phases left, then the report.",
                thread_ts=thread.thread_ts,
            )
            try:
                session, report = self.service.finish(
                    thread.interview_id,
                    owner=None,
                    progress=status.progress("Finishing"),
                )
            except CoachError:
                status.failed("Finishing failed; your answers are kept. Send `finish` again.")
                raise
            status.done("Finished: the report is below.")
            self._post_report(thread, session, report)

    def _finished(self, thread: SlackThreadInfo, user_id: str, consequence: str) -> bool:
        """If the interview is over, tell the member so (with what that means for what they
        just did, and the web report's link) and return True."""
        if not self.service.get_interview(thread.interview_id, owner=None).finished:
            return False
        self._tell(
            thread,
            user_id,
            f"This interview is finished, {consequence}. The full report: "
            f"{self._report_link(thread.interview_id)}. Start another with `/coach start`.",
        )
        return True

    def _report_link(self, interview_id: str) -> str:
        return f"{self.public_url}/interviews/{interview_id}/report"

    def _post_report(self, thread: SlackThreadInfo, session: Session, report: Report) -> None:
        closing = next((t.text for t in reversed(session.turns) if t.kind == "closing"), None)
        question = self.content.questions.get(session.question_id)
        self._post(
            thread,
            text=blocks.report_text(report, self.content),
            blocks=blocks.report_blocks(
                report,
                self.content,
                link=self._report_link(session.id),
                title=f"Interview report: {question.title if question else session.question_id}",
                closing=closing,
            ),
        )

    def _post_turns(self, thread: SlackThreadInfo, session: Session, turns: list[Turn]) -> None:
        """The interviewer's new lines; feedback and closing lines go out as Block Kit instead."""
        for turn in turns:
            if turn.role != "interviewer" or turn.kind in ("feedback", "closing"):
                continue
            if turn.kind == "clarify_reply":
                self._post(
                    thread, text=turn.text, blocks=[blocks.section(blocks.escape(turn.text))]
                )
                continue
            self._post(
                thread,
                text=turn.text,
                blocks=blocks.interviewer_turn(
                    turn,
                    self.content,
                    interview_id=session.id,
                    phase=turn.phase,
                    opening=turn.kind == "opening",
                ),
            )

    def _is_candidate(self, thread: SlackThreadInfo, user_id: str) -> bool:
        if user_id == thread.user_id:
            return True
        self._tell(
            thread,
            user_id,
            f"This is <@{thread.user_id}>'s interview; start your own with `/coach start`.",
        )
        return False

    # -- whole-answer grading --------------------------------------------------------------

    def grade_text(
        self,
        *,
        team_id: str,
        user_id: str,
        text: str,
        question_id: str | None = None,
        filename: str | None = None,
    ) -> None:
        """Grade a whole answer and DM the report (the answer is stored before grading)."""
        self.member(team_id, user_id)
        dm = self._dm(user_id)
        count = len(text.split())
        words = f"{count:,} word{'' if count == 1 else 's'}"
        status = self._status(dm, f"Grading your answer ({words}); the report follows here.")
        try:
            outcome = self.service.submit_grading(
                text,
                owner=None,
                filename=filename,
                question_id=question_id,
                wait=True,
                progress=status.progress(f"Grading your answer ({words})"),
            )
            self.store.add_slack_grading(outcome.record.id, team_id=team_id, user_id=user_id)
        except CoachError as exc:
            status.failed(f"Grading your answer ({words}) failed; the reason is below.")
            self.client.chat_postMessage(channel=dm, text=f"I could not grade it: {exc}")
            return
        status.done(f"Graded your answer ({words}); the report is below.")
        report = outcome.report
        assert report is not None  # wait=True grades in this call
        question = self.content.questions.get(question_id or "")
        name = ": " + question.title if question else ""
        name += f" ({filename})" if filename else ""
        self.client.chat_postMessage(
            channel=dm,
            text=blocks.report_text(report, self.content),
            blocks=blocks.report_blocks(
                report,
                self.content,
                link=f"{self.public_url}/gradings/{outcome.record.id}",
                title=f"Answer report{name}",
            ),
        )

    def grade_file(
        self, *, team_id: str, user_id: str, file: dict[str, Any], note: str = ""
    ) -> None:
        """A file shared in a DM: fetch it with the bot token, grade it, DM the report."""
        name = str(file.get("name") or file.get("title") or "answer")
        try:
            url = file_url(file)
            if url is None:
                url = file_url(self.client.files_info(file=file["id"])["file"])
            if url is None:
                raise CoachError("Slack did not say where the file is; send it again.")
            settings = self.service.settings
            token = self.client.token or ""
            data = download(
                url,
                token=token,
                api_url=settings.slack_api_url,
                max_bytes=settings.max_upload_bytes,
            )
            text = answer_text(data, name=name, max_bytes=settings.max_upload_bytes)
            named = self.content.question_named(blocks.plain_from_slack(note))
            question_id = named.id if named else None
            self.grade_text(
                team_id=team_id, user_id=user_id, text=text, question_id=question_id, filename=name
            )
        except CoachError as exc:
            self.client.chat_postMessage(
                channel=self._dm(user_id), text=f"I could not grade {name}: {exc}"
            )

    def _dm(self, user_id: str) -> str:
        return str(self.client.conversations_open(users=user_id)["channel"]["id"])

    # -- the team --------------------------------------------------------------------------

    def leaderboard(self, team_id: str) -> list[Block]:
        return leaderboard_blocks(team_stats(self.store.slack_practice(team_id)), self.content)

    def weekly_summary(self, team_id: str) -> list[Block]:
        until = datetime.now(UTC)
        since = until - WEEK
        stats = team_stats(self.store.slack_practice(team_id, since=since))
        return weekly_summary_blocks(stats, self.content, since=since, until=until)

    # -- posting ---------------------------------------------------------------------------

    def _post(self, thread: SlackThreadInfo, *, text: str, blocks: list[Block]) -> None:
        self.client.chat_postMessage(
            channel=thread.channel_id, thread_ts=thread.thread_ts, text=text, blocks=blocks
        )

    def _status(self, channel: str, text: str, *, thread_ts: str | None = None) -> _StatusMessage:
        """Post the message that will say how the work goes; if Slack refuses it, work anyway."""
        try:
            posted: Any = self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text
            )
        except SlackApiError as exc:
            log.warning("could not post the status message in %s: %s", channel, exc)
            posted = {}
        return _StatusMessage(self.client, channel, posted)

    def _tell(self, thread: SlackThreadInfo, user_id: str, text: str) -> None:
        """A note only `user_id` sees, in the interview's thread."""
        try:
            self.client.chat_postEphemeral(
                channel=thread.channel_id, user=user_id, thread_ts=thread.thread_ts, text=text
            )
        except SlackApiError:
            log.exception("could not tell %s: %s", user_id, text)

    def _react(self, channel_id: str, ts: str) -> None:
        try:
            self.client.reactions_add(channel=channel_id, timestamp=ts, name=ANSWER_TAKEN)
        except SlackApiError:
            log.warning("could not react to %s in %s", ts, channel_id)

    @contextmanager
    def _turn(self, thread: SlackThreadInfo) -> Iterator[None]:
        """One thing at a time per interview in this process, so `next` typed right after an
        answer grades that answer, and an answer sent during grading lands after it."""
        with self._locks_lock:
            lock = self._turn_locks.setdefault(thread.interview_id, threading.Lock())
        with lock:
            yield

    @contextmanager
    def _telling(self, thread: SlackThreadInfo, user_id: str) -> Iterator[None]:
        """Turn a CoachError (an empty answer, a finished interview) into a note to the member."""
        try:
            yield
        except CoachError as exc:
            self._tell(thread, user_id, str(exc))
