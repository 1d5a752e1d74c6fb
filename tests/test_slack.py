"""The Slack bot end to end: the real server in its own process, Slack played over HTTP.

`SlackSender` sends what Slack sends (slash commands, Events API callbacks, button presses,
modal submissions), signed as Slack signs them; the bot's Web API calls go to
`SlackAPIDouble`, which records them, so each test asserts on the messages and blocks posted.
Grading goes to the OpenAI-protocol double (tests/llm_script.py answers like a model).

One server per database backend serves the whole module; each test works in its own
workspace (team id), so tests never see each other's members or interviews.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from alembic import command
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api_testing import server_env
from coach.api.app import create_app
from coach.cli import app as cli_app
from coach.config import Settings
from coach.content import Content
from coach.engine import answer_from_facts
from coach.slack import blocks
from coach.slack.coach import command_word
from coach.store import Store
from coach.store.migrate import alembic_config, head_revision
from conftest import empty_database
from llm_double import LLMDouble
from llm_script import ScriptedLLM
from server_process import ServerProcess
from slack_api_double import Call, SlackAPIDouble, SlackSender

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "test-signing-secret"
TOKEN = "xoxb-test-bot-token"
PUBLIC_URL = "https://coach.example.com"

ANSWERS = {
    "requirements": "Users post short tweets and read a home timeline of the accounts they "
    "follow. Out of scope: search and ads. Timeline reads under 200 ms at p99.",
    "estimation": "200M DAU x 5 posts = 1B posts/day, about 11,600 writes/s; reads are 100x.",
    "api": "POST /v1/tweets {text} returns the tweet id; GET /v1/timeline?cursor= pages it.",
    "data_model": "tweets(id, author_id, text, created_at) sharded by author_id; follows(a, b).",
    "architecture": "Writes go to the tweet service and a fan-out worker that pushes ids into "
    "each follower's timeline cache in Redis; reads hit the cache.",
    "deep_dive": "Fan-out on write for most users; celebrities with millions of followers are "
    "merged in at read time instead.",
}
PUSHBACK_REPLY = "Celebrity tweets are pulled and merged at read time, then cached."
WRITTEN_ANSWER = """# Requirements
Users shorten a long URL and get redirected fast. 100M new URLs a month; reads dominate.

# Estimation
100M writes a month is about 40 writes/s; 100:1 reads means 4,000 reads/s.

# API
POST /v1/urls {long_url} returns the short code; GET /{code} answers 301.

# Data model
urls(code primary key, long_url, created_at) in a key-value store.

# Architecture
Stateless app servers behind a load balancer; a cache in front of the key-value store.

# Deep dive
Codes come from a counter encoded in base62, handed out in ranges so servers never collide.
"""


# --- the world: one server per backend, Slack and the LLM as doubles ---------------------------


@pytest.fixture(scope="module")
def slack_api() -> Iterator[SlackAPIDouble]:
    with SlackAPIDouble(token=TOKEN) as double:
        yield double


@dataclass
class Bot:
    server: ServerProcess
    database_url: str
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def bot(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    llm_double_server: LLMDouble,
    slack_api: SlackAPIDouble,
) -> Iterator[Bot]:
    """The real server with the Slack bot on, pointed at both doubles."""
    tmp = tmp_path_factory.mktemp(f"slack-{request.param}")
    url = empty_database(request, request.param, tmp)
    with Store(url) as store:
        store.upgrade()
    env = server_env(url, tmp, **bot_settings(llm_double_server, slack_api))
    with ServerProcess(env, log_dir=tmp) as server:
        yield Bot(server=server, database_url=url, tmp=tmp)


def bot_settings(llm: LLMDouble, slack_api: SlackAPIDouble) -> dict[str, str]:
    return {
        "llm_base_url": llm.base_url,
        "llm_model": "double-model",
        "llm_json_mode": "json_object",
        "llm_read_timeout": "8",
        "llm_breaker_cooldown": "0",  # a failing test must not leave the next one offline
        "slack_signing_secret": SECRET,
        "slack_bot_token": TOKEN,
        "slack_api_url": slack_api.api_url,
        "public_url": PUBLIC_URL,
    }


@pytest.fixture()
def slack(slack_api: SlackAPIDouble) -> SlackAPIDouble:
    """The Web API double with nothing recorded, and this test's members."""
    slack_api.reset()
    slack_api.add_user("U1", "Ada Lovelace")
    slack_api.add_user("U2", "Grace Hopper")
    return slack_api


@pytest.fixture()
def team() -> str:
    return "T" + uuid.uuid4().hex[:10].upper()


@pytest.fixture()
def sender(
    bot: Bot, slack: SlackAPIDouble, team: str, scripted: ScriptedLLM
) -> Iterator[SlackSender]:
    """Slack's side, in a workspace of this test's own; grading by the scripted LLM."""
    client = SlackSender(bot.url, secret=SECRET, response_url=slack.response_url, team_id=team)
    yield client
    client.close()


@pytest.fixture()
def api(bot: Bot) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bot.url, timeout=30) as client:
        yield client


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Thread:
    channel: str
    ts: str
    user: str


def start(
    sender: SlackSender,
    slack: SlackAPIDouble,
    text: str = "start twitter",
    *,
    user: str = "U1",
    channel: str = "C1",
) -> Thread:
    """`/coach start ...`; waits for the thread's parent and the interviewer's opening."""
    response = sender.command(text, user=user, channel=channel)
    assert response.status_code == 200, response.text
    parent = slack.wait_for(
        lambda: next(
            (
                m
                for m in slack.messages(channel=channel)
                if "thread_ts" not in m.args and f"<@{user}> is practising" in m.text()
            ),
            None,
        ),
        what="the interview's parent message",
    )
    slack.wait_for_messages(1, channel=channel, thread_ts=parent.ts)
    return Thread(channel=channel, ts=parent.ts, user=user)


def in_thread(slack: SlackAPIDouble, thread: Thread) -> list[Call]:
    return slack.messages(channel=thread.channel, thread_ts=thread.ts)


def answer(sender: SlackSender, slack: SlackAPIDouble, thread: Thread, text: str) -> None:
    """A reply in the thread; waits until the bot has taken it (its check-mark reaction)."""
    ts = sender.new_ts()
    response = sender.reply(
        text, channel=thread.channel, thread_ts=thread.ts, user=thread.user, ts=ts
    )
    assert response.status_code == 200, response.text
    slack.wait_for(
        lambda: [c for c in slack.calls_to("reactions.add") if c.args.get("timestamp") == ts],
        what=f"the reaction on {text[:30]!r}",
    )


def grades(slack: SlackAPIDouble, thread: Thread) -> list[Call]:
    """The feedback messages in the thread (one per graded phase)."""
    return [m for m in in_thread(slack, thread) if "*Next step*" in m.text()]


def wait_for_grades(slack: SlackAPIDouble, thread: Thread, count: int) -> list[Call]:
    return slack.wait_for(
        lambda: (found := grades(slack, thread)) and len(found) >= count and found,
        what=f"{count} grade message(s)",
    )


def reports(slack: SlackAPIDouble, thread: Thread) -> list[Call]:
    return [m for m in in_thread(slack, thread) if "Interview report" in m.text()]


def button(message: Call, action_id: str) -> dict[str, Any]:
    """The button with `action_id` on a posted message, as Slack would send it back."""
    for block in message.args.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button on: {message.text()[:200]}")


def last_button(slack: SlackAPIDouble, thread: Thread, action_id: str) -> dict[str, Any]:
    with_buttons = [m for m in in_thread(slack, thread) if action_id in json.dumps(m.args)]
    return button(with_buttons[-1], action_id)


def candidate_of(bot: Bot, team: str, user: str) -> str:
    """The candidate name a member's practice is stored under."""
    with Store(bot.database_url) as store:
        member = store.slack_member(team, user)
    assert member is not None
    return member.candidate


def interview_of(api: httpx.Client, candidate: str) -> dict[str, Any]:
    """The candidate's one interview, as the API (and the web pages) list it."""
    listed = api.get("/v1/interviews", params={"candidate": candidate})
    assert listed.status_code == 200, listed.text
    (interview,) = listed.json()
    return api.get(f"/v1/interviews/{interview['id']}").json()


def settle() -> None:
    """Give work that should not happen (a second grade, a second post) time to show up."""
    time.sleep(0.6)


# --- a whole interview in a thread -----------------------------------------------------------


def test_a_whole_interview_in_a_thread_from_start_to_report(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, api: httpx.Client, content: Content
) -> None:
    thread = start(sender, slack, "start twitter")
    question = content.question("twitter")
    parent = slack.messages(channel="C1")[0]
    assert "Design Twitter" in parent.text()
    assert "coach_pick" not in json.dumps(parent.args), "a named question needs no picker"
    opening = in_thread(slack, thread)[0]
    assert question.prompt.split(".")[0] in opening.text()
    assert "Phase 1 of 6: Clarify requirements" in opening.text()

    # phases 1-5: answer, then `next` as a word (odd phases) or the button (even phases)
    for n, phase in enumerate(["requirements", "estimation", "api", "data_model", "architecture"]):
        answer(sender, slack, thread, ANSWERS[phase])
        if n % 2 == 0:
            sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
        else:
            sender.click(last_button(slack, thread, blocks.NEXT_ACTION), user="U1", channel="C1")
        grade = wait_for_grades(slack, thread, n + 1)[-1]
        title = content.phase(phase).title
        assert f"{n + 1}. {title}: 4/4" in grade.text()
        assert "Graded by LLM (double-model)" in grade.text()
        assert "> " + ANSWERS[phase][:40] in grade.text(), "the evidence, quoted"
        assert "*Next step*: Say what you would measure." in grade.text()
        following = content.phases[n + 1]
        slack.wait_for(
            lambda following=following: any(
                f"Phase {following.order} of 6: {following.title}" in m.text()
                for m in in_thread(slack, thread)
            ),
            what=f"the {following.id} opening",
        )

    # the deep dive: the first answer draws a pushback, in the thread
    before = len(in_thread(slack, thread))
    answer(sender, slack, thread, ANSWERS["deep_dive"])
    pushback = slack.wait_for(
        lambda: [m for m in in_thread(slack, thread)[before:] if "*Next step*" not in m.text()],
        what="the pushback",
    )[0]
    assert pushback.args["text"] in {p.prompt for p in question.pushbacks}
    answer(sender, slack, thread, PUSHBACK_REPLY)

    sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    wait_for_grades(slack, thread, 6)
    report = slack.wait_for(lambda: reports(slack, thread), what="the report")[0]
    candidate = candidate_of(bot, sender.team_id, "U1")
    assert candidate.startswith("Ada Lovelace")  # the display name, made unique if taken
    interview = interview_of(api, candidate)  # as the web's progress page lists it
    assert interview["status"] == "finished"
    link = f"{PUBLIC_URL}/interviews/{interview['id']}/report"
    assert link in report.text()
    assert button(report, blocks.LINK_ACTION)["url"] == link
    assert f"Overall {interview['report']['overall']}/100" in report.text()
    assert "Graded by the LLM (double-model)" in report.text()

    # `finish` on a finished interview points at the report; nothing is graded or posted twice
    sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user="U1")
    slack.wait_for(
        lambda: [c for c in slack.calls_to("chat.postEphemeral") if link in c.text()],
        what="the note with the report's link",
    )
    settle()
    assert len(grades(slack, thread)) == 6 and len(reports(slack, thread)) == 1
    answers = [t["text"] for t in interview["turns"] if t["role"] == "candidate"]
    assert answers == [*ANSWERS.values(), PUSHBACK_REPLY], "every reply stored once, in order"
    web_report = api.get(f"/interviews/{interview['id']}/report")
    assert web_report.status_code == 200


def test_start_without_a_question_picks_one_and_offers_a_picker(
    sender: SlackSender, slack: SlackAPIDouble, content: Content
) -> None:
    thread = start(sender, slack, "start")
    parent = slack.messages(channel="C1")[0]
    (picked,) = [q for q in content.questions.values() if f": {q.title}" in parent.args["text"]]
    offered = [
        element["value"]
        for block in parent.args["blocks"]
        for element in block.get("elements", [])
        if element.get("action_id") == blocks.PICK_ACTION
    ]
    canonical = [q.id for q in content.questions.values() if q.canonical and q.id != picked.id]
    assert offered == canonical[: blocks.PICKER_SIZE]

    # pressing a picker button starts that question in a new thread
    # (a button the picker offers, so never the question the random start picked)
    button = content.question(offered[0])
    pick = {"action_id": blocks.PICK_ACTION, "value": button.id}
    assert sender.click(pick, user="U1", channel="C1", thread_ts="").status_code == 200
    second = slack.wait_for(
        lambda: [
            m
            for m in slack.messages(channel="C1")
            if "thread_ts" not in m.args and m.args["text"].endswith(button.title)
        ],
        what="the picked question's thread",
    )[0]
    assert second.ts != thread.ts
    slack.wait_for_messages(1, channel="C1", thread_ts=second.ts)


# --- buttons, members, commands ----------------------------------------------------------------


def test_a_clarifying_question_is_answered_from_the_facts_in_phase_1_only(
    sender: SlackSender, slack: SlackAPIDouble, content: Content
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, "? How many daily active users are there?")
    expected = answer_from_facts(content.question("twitter"), "How many daily active users?")
    slack.wait_for(
        lambda: [m for m in in_thread(slack, thread) if m.args["text"] == expected],
        what="the interviewer's reply",
    )
    sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    wait_for_grades(slack, thread, 1)
    sender.reply("? and the read/write ratio?", channel=thread.channel, thread_ts=thread.ts)
    note = slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the note")[0]
    assert "Clarifying questions belong in the requirements phase" in note.args["text"]
    assert note.args["user"] == "U1" and note.args["thread_ts"] == thread.ts


def test_next_pressed_twice_grades_once_and_only_the_candidate_can_press_it(
    sender: SlackSender, slack: SlackAPIDouble
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    next_button = last_button(slack, thread, blocks.NEXT_ACTION)

    assert sender.click(next_button, user="U2", channel="C1").status_code == 200
    note = slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="a note to U2")[0]
    assert note.args["user"] == "U2" and "<@U1>'s interview" in note.args["text"]

    for _ in range(2):
        assert sender.click(next_button, user="U1", channel="C1").status_code == 200
    wait_for_grades(slack, thread, 1)
    slack.wait_for(
        lambda: [c for c in slack.calls_to("chat.postEphemeral") if "already graded" in c.text()],
        what="the already-graded note",
    )
    settle()
    assert len(grades(slack, thread)) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", "/coach start [question]"),
        ("", "/coach grade"),
        ("dance", "I don't know `dance`"),
        ("strat twitter", "I don't know `strat`. Did you mean `/coach start`?"),
        ("start no-such-question", "No question with id 'no-such-question'"),
    ],
)
def test_help_and_mistyped_commands_answer_at_once_and_only_to_the_sender(
    sender: SlackSender, slack: SlackAPIDouble, text: str, expected: str
) -> None:
    response = sender.command(text)
    assert response.status_code == 200
    assert expected in response.text  # plain text, or JSON with blocks: both are ephemeral
    settle()
    assert slack.messages() == []


def test_start_where_the_bot_is_not_a_member_says_to_invite_it(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, team: str
) -> None:
    slack.fail("chat.postMessage", "not_in_channel")
    assert sender.command("start twitter", channel="CPRIVATE").status_code == 200
    note = slack.wait_for(lambda: slack.calls_to("response_url"), what="the note")[0]
    assert note.args["response_type"] == "ephemeral"
    assert "/invite @coach" in note.args["text"]
    settle()
    assert len(slack.calls_to("chat.postMessage")) == 1  # the refused post, nothing else
    with httpx.Client(base_url=bot.url) as api:
        candidate = candidate_of(bot, team, "U1")
        assert api.get("/v1/interviews", params={"candidate": candidate}).json() == []


def candidate_turns(api: httpx.Client, bot: Bot, team: str, user: str = "U1") -> list[str]:
    interview = interview_of(api, candidate_of(bot, team, user))
    return [t["text"] for t in interview["turns"] if t["role"] == "candidate"]


def test_a_reply_sent_while_the_opening_is_still_coming_is_kept(
    bot: Bot,
    sender: SlackSender,
    slack: SlackAPIDouble,
    scripted: ScriptedLLM,
    api: httpx.Client,
    team: str,
) -> None:
    scripted.voice_delay = 2.0  # the interviewer's opening waits on a slow LLM
    assert sender.command("start twitter", user="U1", channel="C1").status_code == 200
    parent = slack.wait_for(
        lambda: next(
            (m for m in slack.messages(channel="C1") if "is practising" in m.text()), None
        ),
        what="the interview's parent message",
    )
    assert slack.messages(channel="C1", thread_ts=parent.ts) == [], "the opening is still due"
    thread = Thread(channel="C1", ts=parent.ts, user="U1")
    answer(sender, slack, thread, ANSWERS["requirements"])  # waits for its check mark
    assert candidate_turns(api, bot, team) == [ANSWERS["requirements"]]


def test_what_slack_escapes_is_stored_as_the_member_typed_it(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, api: httpx.Client, team: str
) -> None:
    thread = start(sender, slack)
    sent = "100M/month -&gt; 40 writes/s &amp; reads &lt;&lt; 1 ms, ask <@U2|grace> or <!here>; see <https://bit.ly/x|bit.ly/x>"
    answer(sender, slack, thread, sent)
    assert candidate_turns(api, bot, team) == [
        "100M/month -> 40 writes/s & reads << 1 ms, ask @grace or @here; see bit.ly/x"
    ]


def test_next_typed_twice_while_grading_grades_one_phase(
    bot: Bot,
    sender: SlackSender,
    slack: SlackAPIDouble,
    scripted: ScriptedLLM,
    api: httpx.Client,
    team: str,
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    scripted.grade_delay = 1.5
    for _ in range(2):
        sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    wait_for_grades(slack, thread, 1)
    slack.wait_for(
        lambda: [c for c in slack.calls_to("chat.postEphemeral") if "already graded" in c.text()],
        what="the already-graded note",
    )
    settle()
    assert len(grades(slack, thread)) == 1
    assert interview_of(api, candidate_of(bot, team, "U1"))["phase"] == "estimation"


def test_a_finished_interview_posts_its_report_once_and_points_at_it_after(
    sender: SlackSender, slack: SlackAPIDouble
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user="U1")
    slack.wait_for(lambda: reports(slack, thread), what="the report")
    for word in ("finish", "next", "One more thought on caching."):
        sender.reply(word, channel=thread.channel, thread_ts=thread.ts, user="U1")
    notes = slack.wait_for(
        lambda: (
            (found := [c for c in slack.calls_to("chat.postEphemeral")])
            and len(found) >= 3
            and found
        ),
        what="three notes",
    )
    texts = sorted(note.text() for note in notes)
    assert all("This interview is finished" in text for text in texts), texts
    assert all(f"{PUBLIC_URL}/interviews/" in text for text in texts), texts
    assert any("so that reply was not recorded" in text for text in texts)
    assert any("its report is above in this thread" in text for text in texts)
    settle()
    assert len(reports(slack, thread)) == 1


def test_an_answer_typed_beside_the_interview_in_a_dm_is_pointed_to_its_thread(
    sender: SlackSender, slack: SlackAPIDouble
) -> None:
    thread = start(sender, slack, channel="D0ADA")
    event = {
        "type": "message",
        "channel": "D0ADA",
        "channel_type": "im",
        "user": "U1",
        "text": ANSWERS["requirements"],
        "ts": sender.new_ts(),
    }
    assert sender.event(event).status_code == 200
    pointer = slack.wait_for(
        lambda: [m for m in in_thread(slack, thread) if "reply here to answer" in m.text()],
        what="the pointer to the thread",
    )[0]
    assert "that message was not recorded" in pointer.text()
    assert not [m for m in slack.messages(channel="D0ADA") if "/coach start [question]" in m.text()]


# --- whole answers: the modal and files in a DM ------------------------------------------------


def test_grade_opens_a_modal_and_the_report_comes_back_in_a_dm(
    sender: SlackSender, slack: SlackAPIDouble, api: httpx.Client
) -> None:
    response = sender.command("grade", user="U2")
    assert response.status_code == 200 and response.text == ""
    opened = slack.wait_for(lambda: slack.calls_to("views.open"), what="views.open")[0]
    view = opened.args["view"]
    assert opened.args["trigger_id"].startswith("trigger.")
    assert view["callback_id"] == blocks.GRADE_VIEW
    assert view["type"] == "modal"

    empty = {blocks.ANSWER_BLOCK: {blocks.ANSWER_INPUT: {"type": "plain_text_input", "value": " "}}}
    refused = sender.submit_view(view, empty, user="U2")
    assert refused.status_code == 200
    assert refused.json()["response_action"] == "errors"
    assert "empty" in refused.json()["errors"][blocks.ANSWER_BLOCK]

    values = {
        blocks.QUESTION_BLOCK: {
            blocks.QUESTION_INPUT: {
                "type": "static_select",
                "selected_option": {
                    "value": "url-shortener",
                    "text": {"type": "plain_text", "text": "x"},
                },
            }
        },
        blocks.ANSWER_BLOCK: {
            blocks.ANSWER_INPUT: {"type": "plain_text_input", "value": WRITTEN_ANSWER}
        },
    }
    accepted = sender.submit_view(view, values, user="U2")
    assert accepted.status_code == 200 and accepted.text == "", "an empty 200 closes the modal"

    dm = slack.wait_for(lambda: slack.calls_to("conversations.open"), what="the DM")[0]
    assert dm.args["users"] == "U2"
    report = slack.wait_for(
        lambda: [
            m
            for m in slack.messages(channel=dm.response["channel"]["id"])
            if "Answer report" in m.text()
        ],
        what="the report in the DM",
    )[0]
    assert f"{PUBLIC_URL}/gradings/" in report.text()
    grading_id = button(report, blocks.LINK_ACTION)["url"].rsplit("/", 1)[-1]
    stored = api.get(f"/v1/gradings/{grading_id}").json()
    assert stored["status"] == "done"
    assert stored["question_id"] == "url-shortener"
    assert f"Overall {stored['report']['overall']}/100" in report.text()
    # Graded in well under a second: the "Grading your answer" message was left as it was.
    assert slack.calls_to("chat.update") == []


def open_grade_modal(sender: SlackSender, slack: SlackAPIDouble) -> dict[str, Any]:
    """`/coach grade` from U2: the modal Slack was asked to open."""
    assert sender.command("grade", user="U2").status_code == 200
    opened = slack.wait_for(lambda: slack.calls_to("views.open"), what="views.open")[0]
    view: dict[str, Any] = opened.args["view"]
    return view


def paste_and_wait_for_the_report(
    sender: SlackSender, slack: SlackAPIDouble, view: dict[str, Any]
) -> str:
    """Submit WRITTEN_ANSWER in the grade modal; the DM's channel once the report is there."""
    values = {
        blocks.ANSWER_BLOCK: {
            blocks.ANSWER_INPUT: {"type": "plain_text_input", "value": WRITTEN_ANSWER}
        }
    }
    assert sender.submit_view(view, values, user="U2").status_code == 200
    dm = slack.wait_for(lambda: slack.calls_to("conversations.open"), what="the DM")[0]
    channel: str = dm.response["channel"]["id"]
    slack.wait_for(
        lambda: [m for m in slack.messages(channel=channel) if "Answer report" in m.text()],
        what="the report in the DM",
    )
    return channel


def element_of(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b["element"] for b in view["blocks"] if b.get("block_id") == block_id)


def test_text_after_grade_fills_in_the_modal(sender: SlackSender, slack: SlackAPIDouble) -> None:
    pasted_text = WRITTEN_ANSWER.replace(">", "&gt;")  # as Slack sends it
    for text in ("grade Design a URL shortener", "grade " + pasted_text):
        assert sender.command(text, user="U2").status_code == 200
    named, pasted = slack.wait_for(
        lambda: (opened := slack.calls_to("views.open")) and len(opened) == 2 and opened,
        what="two modals",
    )
    select = element_of(named.args["view"], blocks.QUESTION_BLOCK)
    assert select["initial_option"]["value"] == "url-shortener"
    answer_box = element_of(pasted.args["view"], blocks.ANSWER_BLOCK)
    assert answer_box["initial_value"] == WRITTEN_ANSWER.strip()[: blocks.MODAL_ANSWER_LIMIT]


def test_start_takes_a_question_by_its_title(sender: SlackSender, slack: SlackAPIDouble) -> None:
    thread = start(sender, slack, "start Design a URL shortener")
    parent = next(m for m in slack.messages(channel=thread.channel) if m.ts == thread.ts)
    assert parent.args["text"].endswith(": Design a URL shortener")


def test_a_slow_grading_rewrites_its_status_message_with_the_step_under_way(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM
) -> None:
    scripted.grade_delay = 0.5  # six phase grades: about three seconds in all
    view = open_grade_modal(sender, slack)
    channel = paste_and_wait_for_the_report(sender, slack, view)
    status = next(m for m in slack.messages(channel=channel) if "Grading your answer" in m.text())
    rewrites = [c for c in slack.calls_to("chat.update") if c.args["ts"] == status.ts]
    steps = [c.args["text"] for c in rewrites[:-1]]
    assert steps, "the message said which step was under way"
    step = re.compile(
        r"Grading your answer \([\d,]+ words\): (Grading phase [1-6] of 6: .+|Looking for "
        r"common mistakes|Writing the report) \(step [1-8] of 8\)\u2026$"
    )
    assert all(step.match(text) for text in steps), steps
    assert any("Grading phase" in text for text in steps), steps
    assert len(set(steps)) == len(steps), "each rewrite says something new"
    final = rewrites[-1].args["text"]
    assert re.match(r"Graded your answer \([\d,]+ words\); the report is below\.$", final)
    gaps = [b.at - a.at for a, b in itertools.pairwise(rewrites[:-1])]
    assert all(gap >= 0.9 for gap in gaps), "no more than about one rewrite a second"


def test_a_refused_status_message_does_not_stop_the_grading(
    sender: SlackSender, slack: SlackAPIDouble
) -> None:
    view = open_grade_modal(sender, slack)
    slack.fail("chat.postMessage", "ratelimited")  # the "Grading your answer" message

    paste_and_wait_for_the_report(sender, slack, view)  # all the same
    assert slack.calls_to("chat.update") == []


def test_a_file_shared_in_a_dm_is_fetched_with_the_bot_token_and_graded(
    sender: SlackSender, slack: SlackAPIDouble, api: httpx.Client
) -> None:
    shared = slack.add_file("answer.md", WRITTEN_ANSWER.encode())
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel": "D0ADA",
        "channel_type": "im",
        "user": "U1",
        "text": "Here is my answer for the URL shortener question, thanks!",
        "ts": sender.new_ts(),
        "files": [shared],
    }
    assert sender.event(event).status_code == 200
    report = slack.wait_for(
        lambda: [
            m
            for m in slack.messages()
            if "Answer report: Design a URL shortener (answer.md)" in m.text()
        ],
        what="the file's report",
    )[0]
    assert report.args["channel"] == "D1"  # conversations.open with U1
    assert slack.file_fetches == [f"Bearer {TOKEN}"]
    grading_id = button(report, blocks.LINK_ACTION)["url"].rsplit("/", 1)[-1]
    graded = api.get(f"/v1/gradings/{grading_id}").json()
    assert (graded["filename"], graded["question_id"]) == ("answer.md", "url-shortener")

    # a file elsewhere than Slack's file host is never fetched with the token
    elsewhere = {**shared, "url_private": "https://files.example.net/x.md"}
    elsewhere.pop("url_private_download")
    event = {**event, "ts": sender.new_ts(), "files": [elsewhere], "text": ""}
    assert sender.event(event).status_code == 200
    refused = slack.wait_for(
        lambda: [m for m in slack.messages() if "I could not grade answer.md" in m.text()],
        what="the refusal",
    )[0]
    assert "not on Slack's file host" in refused.text()
    assert slack.file_fetches == [f"Bearer {TOKEN}"]


# --- the team: leaderboard and weekly summary ----------------------------------------------------


def test_leaderboard_and_weekly_summary_per_member_with_the_team_weakest_phase(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, team: str
) -> None:
    ada = start(sender, slack, user="U1", channel="C7")
    answer(sender, slack, ada, ANSWERS["requirements"])
    sender.reply("finish", channel=ada.channel, thread_ts=ada.ts, user="U1")
    grace = start(sender, slack, user="U2", channel="C7")
    sender.reply("finish", channel=grace.channel, thread_ts=grace.ts, user="U2")
    for thread in (ada, grace):
        slack.wait_for(lambda thread=thread: reports(slack, thread), what="a report")

    assert sender.command("leaderboard", channel="C7").status_code == 200
    board = slack.wait_for(lambda: slack.calls_to("response_url"), what="the leaderboard")[0]
    assert board.args["response_type"] == "in_channel"
    lines = [line for line in board.text().splitlines() if "practice" in line]
    assert lines[0].startswith("1. *Ada Lovelace*: 1 practice, average *")
    assert lines[1].startswith("2. *Grace Hopper*: 1 practice, average *")
    assert "*Team weakest phase*" in board.text()

    assert sender.command("summary", channel="C7").status_code == 200
    summary = slack.wait_for(
        lambda: [c for c in slack.calls_to("response_url") if "Weekly" in c.text()],
        what="the summary",
    )[0]
    assert "2 practices by 2 members" in summary.text()

    # the same summary, posted by the weekly job (`coach slack weekly-summary`)
    env = {
        "COACH_DATABASE_URL": bot.database_url,
        "COACH_SLACK_BOT_TOKEN": TOKEN,
        "COACH_SLACK_API_URL": slack.api_url,
        "COACH_DATA_DIR": str(bot.tmp / "data"),
    }
    result = CliRunner().invoke(
        cli_app, ["slack", "weekly-summary", "--channel", "CWEEK", "--team", team], env=env
    )
    assert result.exit_code == 0, result.output
    (posted,) = slack.messages(channel="CWEEK")
    assert "2 practices by 2 members" in posted.text()
    assert "Ada Lovelace" in posted.text() and "Grace Hopper" in posted.text()


def test_the_leaderboard_tells_members_with_the_same_name_apart(
    sender: SlackSender, slack: SlackAPIDouble
) -> None:
    slack.add_user("U4", "Ada Lovelace")
    for user in ("U1", "U4"):
        thread = start(sender, slack, user=user, channel="C8")
        sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user=user)
        slack.wait_for(lambda thread=thread: reports(slack, thread), what="a report")
    assert sender.command("leaderboard", channel="C8").status_code == 200
    board = slack.wait_for(lambda: slack.calls_to("response_url"), what="the leaderboard")[0]
    names = re.findall(r"^\d+\. \*(.+?)\*:", board.text(), re.MULTILINE)
    assert sorted(names) == ["Ada Lovelace (U1)", "Ada Lovelace (U4)"]


def test_members_with_the_same_display_name_get_their_own_candidates(bot: Bot, team: str) -> None:
    with Store(bot.database_url) as store:
        first = store.link_slack_member(team, "U10", display_name="Sam", names=["Sam", "Sam (U10)"])
        second = store.link_slack_member(
            team, "U11", display_name="Sam", names=["Sam", "Sam (U11)"]
        )
        again = store.link_slack_member(team, "U10", display_name="Samuel", names=["Samuel"])
    assert (first.candidate, second.candidate, again.candidate) == ("Sam", "Sam (U11)", "Sam")


def test_a_database_made_before_the_slack_bot_upgrades_and_keeps_its_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Store(url) as store:
        config = alembic_config(url)
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        assert store.revision() == "0001"
        _, secret = store.create_token("made-before-slack")
        store.upgrade()
        assert store.revision() == head_revision()
        assert store.token_id_for(secret) is not None
        assert store.slack_thread(interview_id="none") is None


def test_a_delivery_is_claimed_by_exactly_one_of_many_concurrent_claims(bot: Bot) -> None:
    key = f"event:Ev{uuid.uuid4().hex}"
    with Store(bot.database_url) as store, ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: store.claim_slack_delivery(key), range(8)))
        assert claims.count(True) == 1
        assert store.claim_slack_delivery(key) is False


# --- Slack's rules: signatures, retries, the 3-second ack, LLM failure ---------------------


@pytest.mark.parametrize(
    "tamper",
    ["no signature", "no timestamp", "wrong secret", "body changed", "stale", "from the future"],
)
def test_requests_without_a_valid_signature_are_refused_before_anything_happens(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, team: str, tamper: str
) -> None:
    body = sender.event_body(
        {
            "type": "message",
            "channel": "D9",
            "channel_type": "im",
            "user": "U1",
            "text": "hi",
            "ts": sender.new_ts(),
        }
    )
    headers = sender.headers(body)
    if tamper == "no signature":
        del headers["X-Slack-Signature"]
    elif tamper == "no timestamp":
        del headers["X-Slack-Request-Timestamp"]
    elif tamper == "wrong secret":
        headers = SlackSender(bot.url, secret="not-the-secret", response_url="").headers(body)
    elif tamper == "body changed":
        body = body.replace('"hi"', '"hello"')
    else:
        skew = -6 * 60 if tamper == "stale" else 6 * 60  # Slack's window is five minutes
        headers = sender.headers(body, timestamp=int(time.time()) + skew)
    response = sender.post(body, "application/json", headers=headers, signed=False)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_slack_signature"
    assert "COACH_SLACK_SIGNING_SECRET" in response.json()["message"]
    settle()
    assert slack.messages() == []
    with Store(bot.database_url) as store:
        assert store.slack_member(team, "U1") is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{bad", "application/json"), ("payload=%7Bbad", "application/x-www-form-urlencoded")],
    ids=["json", "form payload"],
)
def test_a_body_that_does_not_parse_is_refused_with_a_4xx_signed_or_not(
    bot: Bot, sender: SlackSender, slack: SlackAPIDouble, body: str, content_type: str
) -> None:
    logged = len(bot.server.log_path.read_text())
    unsigned = sender.post(body, content_type, signed=False)
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "invalid_slack_signature"
    signed = sender.post(body, content_type)
    assert signed.status_code == 400
    assert signed.json()["code"] == "invalid_body"
    assert "nothing was done" in signed.json()["message"]
    assert "Traceback" not in bot.server.log_path.read_text()[logged:]


def test_url_verification_answers_the_challenge_only_when_signed(sender: SlackSender) -> None:
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "c-123"})
    answered = sender.post(body, "application/json")
    assert answered.status_code == 200 and answered.json()["challenge"] == "c-123"
    assert sender.post(body, "application/json", signed=False).status_code == 401


def test_a_retried_event_is_handled_once_even_by_another_process(
    bot: Bot,
    sender: SlackSender,
    slack: SlackAPIDouble,
    api: httpx.Client,
    llm_double_server: LLMDouble,
    tmp_path: Path,
) -> None:
    thread = start(sender, slack)
    reply = {
        "type": "message",
        "channel": thread.channel,
        "channel_type": "channel",
        "user": "U1",
        "text": ANSWERS["requirements"],
        "ts": sender.new_ts(),
        "thread_ts": thread.ts,
    }
    next_word = {**reply, "text": "next", "ts": sender.new_ts()}
    env = server_env(bot.database_url, tmp_path, **bot_settings(llm_double_server, slack))
    with ServerProcess(env, log_dir=tmp_path) as other:
        elsewhere = SlackSender(other.url, secret=SECRET, response_url="", team_id=sender.team_id)
        for event, event_id in ((reply, "EvANSWER1"), (next_word, "EvNEXT1")):
            assert sender.event(event, event_id=event_id).status_code == 200
            assert sender.event(event, event_id=event_id, retry=1).status_code == 200
            assert elsewhere.event(event, event_id=event_id, retry=2).status_code == 200
            if event is reply:
                slack.wait_for(lambda: slack.calls_to("reactions.add"), what="the reaction")
        wait_for_grades(slack, thread, 1)
        settle()
        elsewhere.close()
    assert len(grades(slack, thread)) == 1
    assert len(slack.calls_to("reactions.add")) == 1
    interview = interview_of(api, candidate_of(bot, sender.team_id, "U1"))
    assert interview["phase"] == "estimation"
    assert [t["text"] for t in interview["turns"] if t["role"] == "candidate"] == [
        ANSWERS["requirements"]
    ]


def test_the_ack_comes_within_3_seconds_and_a_slow_grade_is_posted_after_it(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    scripted.grade_delay = 4.0
    began = time.monotonic()
    response = sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    acked = time.monotonic() - began
    assert response.status_code == 200
    assert acked < 3.0, f"acknowledged after {acked:.2f} s"
    assert grades(slack, thread) == []
    grade = wait_for_grades(slack, thread, 1)[0]
    assert grade.at - began >= 3.5, "the grade came from the slow LLM, after the ack"
    assert "Graded by LLM (double-model)" in grade.text()

    # a slash command is acknowledged at once too, while that LLM is still slow
    began = time.monotonic()
    assert sender.command("grade", user="U1").status_code == 200
    assert time.monotonic() - began < 3.0


def test_a_slow_next_shows_the_phase_being_graded_until_the_grade_comes(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM, content: Content
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    scripted.grade_delay = 2.5

    began = time.monotonic()
    sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")

    grade = wait_for_grades(slack, thread, 1)[0]
    title = content.phase("requirements").title
    notices = [m for m in in_thread(slack, thread) if "Grading phase" in m.text()]
    assert [m.text() for m in notices] == [
        f":hourglass_flowing_sand: Grading phase 1 of 6: {title}\u2026"
    ]
    notice = notices[0]
    assert 0.9 <= notice.at - began < 2.5, "shown after a second of grading, before the grade"
    deleted = [c for c in slack.calls_to("chat.delete") if c.args["ts"] == notice.ts]
    assert len(deleted) == 1 and notice.at < deleted[0].at <= grade.at, "gone before the grade"


def test_a_quick_next_shows_no_progress_notice(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    wait_for_grades(slack, thread, 1)
    time.sleep(1.2)  # past the notice's delay: a notice would have been posted by now
    assert not [m for m in in_thread(slack, thread) if "Grading phase" in m.text()]
    assert slack.calls_to("chat.delete") == []


def test_finish_with_a_slow_llm_rewrites_its_message_with_the_step_under_way(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    scripted.grade_delay = 0.5  # six phase grades: about three seconds in all

    sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user="U1")

    slack.wait_for(lambda: reports(slack, thread), what="the report")
    status = next(m for m in in_thread(slack, thread) if m.text().startswith("Finishing:"))
    rewrites = [c.args["text"] for c in slack.calls_to("chat.update") if c.args["ts"] == status.ts]
    assert rewrites[-1] == "Finished: the report is below."
    steps = rewrites[:-1]
    assert steps and all(
        re.match(
            r"Finishing: (Grading phase [1-6] of 6: .+|Looking for common mistakes|Writing the "
            r"report) \(step [1-7] of 7\)\u2026$",
            text,
        )
        for text in steps
    ), steps
    assert any("Grading phase" in text for text in steps), steps

    # `finish` again on the finished interview: a note, no new status message or report
    sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user="U1")
    slack.wait_for(lambda: slack.calls_to("chat.postEphemeral"), what="the note")
    assert len([m for m in in_thread(slack, thread) if m.text().startswith("Finishing:")]) == 1
    assert len(reports(slack, thread)) == 1


def test_when_the_llm_fails_the_feedback_is_offline_graded_and_says_so(
    sender: SlackSender, slack: SlackAPIDouble, scripted: ScriptedLLM
) -> None:
    thread = start(sender, slack)
    answer(sender, slack, thread, ANSWERS["requirements"])
    scripted.grade_status = 500
    sender.reply("next", channel=thread.channel, thread_ts=thread.ts, user="U1")
    grade = wait_for_grades(slack, thread, 1)[0]
    assert ":warning: Graded by the offline grader (" in grade.text()
    assert "the LLM grade was not used" in grade.text()
    assert "(offline grader)" in grade.args["text"]

    sender.reply("finish", channel=thread.channel, thread_ts=thread.ts, user="U1")
    report = slack.wait_for(lambda: reports(slack, thread), what="the report")[0]
    assert "*Offline grader* graded 6 of 6 phases" in report.text()


# --- configuration --------------------------------------------------------------------------


def test_without_the_slack_settings_the_route_says_which_to_set(tmp_path: Path) -> None:
    settings = Settings(llm_base_url=None, llm_api_key=None, data_dir=tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        response = client.post("/slack/events", content=b"{}")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "slack_not_configured"
    assert "COACH_SLACK_SIGNING_SECRET" in body["message"]
    assert "COACH_SLACK_BOT_TOKEN" in body["message"]


def test_the_manifest_points_every_slack_feature_at_the_one_route() -> None:
    manifest = yaml.safe_load((REPO_ROOT / "slack" / "manifest.yaml").read_text())
    settings = manifest["settings"]
    (command,) = manifest["features"]["slash_commands"]
    urls = {
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert {u.rsplit("/", 2)[-2:] == ["slack", "events"] for u in urls} == {True}
    assert command["command"] == "/coach"
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "message.channels",
        "message.groups",
        "message.im",
    }
    needed = {
        "commands",
        "chat:write",
        "channels:history",
        "groups:history",
        "im:history",
        "im:write",
        "files:read",
        "users:read",
        "reactions:write",
    }
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == needed
    assert manifest["settings"]["socket_mode_enabled"] is False


@pytest.mark.parametrize(
    ("typed", "read_as"),
    [
        ("Next!", "next"),
        ("next please", "next"),
        ("Next, please!", "next"),
        ("finish now", "finish"),
        ("next, I would add a write-through cache", "next, i would add a write-through cache"),
    ],
)
def test_a_polite_command_is_still_the_command_and_a_sentence_is_an_answer(
    typed: str, read_as: str
) -> None:
    assert command_word(typed) == read_as
