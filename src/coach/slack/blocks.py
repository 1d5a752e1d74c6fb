"""Block Kit for every message the bot posts: pure functions from coach objects to JSON.

Slack's limits are kept here (3,000 characters per section, 150 per header, 75 per button)
so no message is ever refused for its size, and candidate or LLM text is escaped so it
cannot turn into a mention or a link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId, Question
from coach.engine import Turn
from coach.grading.models import PhaseGrade, Report
from coach.render import HIRE_LABELS, even_score, plain_quote, source_label

Block = dict[str, Any]

# action_ids: the bot's listeners match on these
NEXT_ACTION = "coach_next"
FINISH_ACTION = "coach_finish"
PICK_ACTION = "coach_pick"
LINK_ACTION = "coach_link"
GRADE_VIEW = "coach_grade"
ANSWER_BLOCK, ANSWER_INPUT = "answer", "answer_text"
QUESTION_BLOCK, QUESTION_INPUT = "question", "question_id"

SECTION_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_LIMIT = 75
MISTAKES_SHOWN = 5  # in a report's summary; the web report lists them all
MODAL_ANSWER_LIMIT = 3000  # the most a plain_text_input may hold
PICKER_SIZE = 5

HELP = (
    "*coach* runs mock system design interviews and grades them against a published rubric.\n"
    "• `/coach start [question]`: an interview in a new thread (a random question when none "
    "is named). Reply in the thread to answer; say `next` (or press *Next phase*) to have the "
    "phase graded; `? ...` asks a clarifying question in phase 1; `finish` ends it with a report.\n"
    "• `/coach grade`: paste a whole written answer and get the report in a DM. Longer "
    "answers: send me the file (Markdown, text or PDF) in a DM.\n"
    "• `/coach leaderboard`: practice count and average score per member.\n"
    "• `/coach summary`: this week's team summary and its weakest phase.\n"
    "• `/coach help`: this message."
)


_SLACK_MARKUP = re.compile(r"<([^<>\n]*)>")


def plain_from_slack(text: str) -> str:
    """What the member typed, from the text Slack sends: Slack escapes &, < and > and wraps
    mentions and links in <...>; left as is, "-&gt;" and "<@U123>" would be graded, stored and
    quoted back. Hand-written: slack_sdk formats text but has no reverse of it.

    <@U1> and <@U1|ada> become @U1 and @ada, <#C1|general> #general, <!here> @here, and a
    link its label (or its address when it has none)."""

    def spelled(match: re.Match[str]) -> str:
        target, _, label = match.group(1).partition("|")
        if target.startswith(("@", "#")):
            return target[0] + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target.removeprefix("mailto:")

    unwrapped = _SLACK_MARKUP.sub(spelled, text)
    return unwrapped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup; user and LLM text must not become any."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def one_line(text: str) -> str:
    return " ".join(text.split())


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, 2000)}]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, HEADER_LIMIT)}}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    element: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, BUTTON_LIMIT)},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def link_button(text: str, url: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": clip(text, BUTTON_LIMIT)},
        "url": url,
        "action_id": LINK_ACTION,
    }


def quote(text: str) -> str:
    """A quote of the candidate's words, without their Markdown (half a **pair** included)."""
    return "> " + escape(clip(plain_quote(text), 500))


def step_value(interview_id: str, phase: PhaseId) -> str:
    """A Next/Finish button's value: the interview and the phase it was shown for."""
    return json.dumps({"interview": interview_id, "phase": phase})


def read_step_value(value: str) -> tuple[str, PhaseId | None]:
    data = json.loads(value)
    phase = data.get("phase")
    return str(data["interview"]), phase if phase in PHASE_IDS else None


# --- interviews ---------------------------------------------------------------------------


def interview_header(question: Question, user_id: str, *, picker: list[Question]) -> list[Block]:
    """The thread's parent message; with a picker when the question was chosen at random."""
    blocks = [
        section(
            f"*<@{user_id}> is practising: {escape(question.title)}*\n"
            "The interviewer is in the thread. Reply there to answer; `next` grades the phase, "
            "`finish` ends the interview with a report."
        )
    ]
    if picker:
        blocks.append(context("Picked at random. Rather practise another? Pick one:"))
        blocks.append(
            {
                "type": "actions",
                "block_id": "coach_picker",
                "elements": [button(q.title, PICK_ACTION, q.id) for q in picker],
            }
        )
    return blocks


def interviewer_turn(
    turn: Turn, content: Content, *, interview_id: str, phase: PhaseId, opening: bool
) -> list[Block]:
    """An interviewer line; a phase opening says where the interview is and how to go on."""
    blocks = [section(escape(turn.text))]
    if opening:
        spec = content.phase(phase)
        budget = f"{spec.time_budget_minutes:g} min"
        blocks.append(
            context(
                f"Phase {spec.order} of {len(PHASE_IDS)}: {spec.title} ({budget}). Reply in "
                "this thread; say `next` when you're done with the phase"
                + (", or ask `? a clarifying question`." if phase == "requirements" else ".")
            )
        )
    value = step_value(interview_id, phase)
    blocks.append(
        {
            "type": "actions",
            "elements": [
                button("Next phase", NEXT_ACTION, value, style="primary"),
                button("Finish", FINISH_ACTION, value),
            ],
        }
    )
    return blocks


def graded_by(grade: PhaseGrade) -> str:
    """Who graded the phase; an offline grade is labelled so nobody takes it for the LLM's."""
    if grade.source == "offline":  # a warning only when an LLM should have graded it
        icon = ":warning:" if grade.fallback_reason else ":gear:"
        return f"{icon} Graded by the " + escape(source_label(grade))
    return ":robot_face: Graded by " + escape(source_label(grade))


def grade_text(grade: PhaseGrade, content: Content) -> str:
    """The notification text of a grade message (what Slack shows where blocks cannot go)."""
    phase = content.phase(grade.phase)
    who = "offline grader" if grade.source == "offline" else "LLM"
    return f"{phase.title}: {grade.score}/4 ({who}). Next step: {one_line(grade.next_step)}"


def grade_blocks(grade: PhaseGrade, content: Content) -> list[Block]:
    """A phase's feedback: score, who graded it, evidence quoted, what was missed, next step."""
    phase = content.phase(grade.phase)
    blocks = [
        section(f"*{phase.order}. {phase.title}: {grade.score}/4*  {score_bar(grade.score)}"),
        context(graded_by(grade)),
        section(escape(one_line(grade.feedback))),
    ]
    met = [c for c in grade.criteria if c.met and c.evidence]
    if met:
        lines = [f"*Evidence*: {escape(c.title)}\n{quote(c.evidence or '')}" for c in met[:2]]
        blocks.append(section("\n".join(lines)))
    missed = [c for c in grade.criteria if not c.met]
    if missed:
        blocks.append(section("*Missed*: " + escape("; ".join(c.title for c in missed))))
    for mistake in grade.mistakes:  # e.g. text aimed at the grader, quoted and set aside
        seen = f"\n{quote(mistake.evidence)}" if mistake.evidence else ""
        blocks.append(
            section(f"*Mistake*: {escape(mistake.title)}{seen}\n{escape(one_line(mistake.fix))}")
        )
    blocks.append(section(f"*Next step*: {escape(one_line(grade.next_step))}"))
    return blocks


def score_bar(score: int, out_of: int = 4) -> str:
    return "\u25cf" * score + "\u25cb" * (out_of - score)


# --- reports ------------------------------------------------------------------------------


def report_text(report: Report, content: Content) -> str:
    return (
        f"Report: {report.overall}/100 ({HIRE_LABELS[report.hire_signal]}). Weakest phase: "
        f"{content.phase(report.weakest_phase).title}."
    )


def report_blocks(
    report: Report, content: Content, *, link: str, title: str, closing: str | None = None
) -> list[Block]:
    """The report in brief (overall, a line per phase, who graded) and the web report's link."""
    strongest = content.phase(report.strongest_phase).title
    weakest = content.phase(report.weakest_phase).title
    score = even_score(report)
    phases = (
        f"Every phase scored {score}/4."
        if score is not None
        else f"Strongest: {strongest}. Work on: {weakest}."
    )
    blocks = [
        header(title),
        section(f"*Overall {report.overall}/100: {HIRE_LABELS[report.hire_signal]}*\n{phases}"),
    ]
    if closing:
        blocks.append(section(escape(closing)))
    lines = []
    for grade in report.phases:
        phase = content.phase(grade.phase)
        label = " (offline grader)" if grade.source == "offline" else ""
        lines.append(
            f"{phase.order}. {phase.title}: *{grade.score}/4* {score_bar(grade.score)}{label}"
        )
    blocks.append(section("\n".join(lines)))
    if report.mistakes:
        found = [
            f"\u2022 *{escape(m.title)}*"
            + (f" ({content.phase(m.phase).title})" if m.phase else "")
            + f": {escape(clip(one_line(m.fix), 200))}"
            for m in report.mistakes[:MISTAKES_SHOWN]
        ]
        more = len(report.mistakes) - MISTAKES_SHOWN
        if more > 0:
            found.append(f"\u2026and {more} more in the full report.")
        blocks.append(section("*Mistakes to fix*\n" + "\n".join(found)))
    offline = [g for g in report.phases if g.source == "offline"]
    if offline:
        reasons = sorted({one_line(g.fallback_reason) for g in offline if g.fallback_reason})
        icon = ":warning:" if reasons else ":gear:"
        note = f"{icon} *Offline grader* graded {len(offline)} of {len(report.phases)} phases"
        if reasons:
            note += f"; the LLM could not be used: {escape(clip(reasons[0], 300))}"
        blocks.append(context(note))
    else:
        models = sorted({g.model or "LLM" for g in report.phases})
        blocks.append(context(":robot_face: Graded by the LLM (" + escape(", ".join(models)) + ")"))
    blocks.append(section(f"<{link}|The full report>: every score with its evidence, and fixes."))
    blocks.append({"type": "actions", "elements": [link_button("Open the full report", link)]})
    return blocks


# --- the grading modal --------------------------------------------------------------------


def grade_modal(
    questions: Iterable[Question], *, answer: str = "", question: Question | None = None
) -> Block:
    """`/coach grade`: an optional question and the whole written answer; text typed after
    the command (`/coach grade url shortener`, or the answer itself) fills them in."""
    options = [
        {"text": {"type": "plain_text", "text": clip(q.title, 75)}, "value": q.id}
        for q in list(questions)[:100]
    ]
    select: Block = {
        "type": "static_select",
        "action_id": QUESTION_INPUT,
        "placeholder": {"type": "plain_text", "text": "Which question it answers"},
        "options": options,
    }
    chosen = next((o for o in options if question is not None and o["value"] == question.id), None)
    if chosen is not None:
        select["initial_option"] = chosen
    text_input: Block = {
        "type": "plain_text_input",
        "action_id": ANSWER_INPUT,
        "multiline": True,
        "max_length": MODAL_ANSWER_LIMIT,
        "placeholder": {
            "type": "plain_text",
            "text": "Requirements, estimation, API, data model, architecture, "
            "deep dive: headings help but are not needed.",
        },
    }
    if answer:
        text_input["initial_value"] = answer[:MODAL_ANSWER_LIMIT]
    return {
        "type": "modal",
        "callback_id": GRADE_VIEW,
        "title": {"type": "plain_text", "text": "Grade an answer"},
        "submit": {"type": "plain_text", "text": "Grade"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": QUESTION_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Question"},
                "element": select,
            },
            {
                "type": "input",
                "block_id": ANSWER_BLOCK,
                "label": {"type": "plain_text", "text": "Your whole answer"},
                "element": text_input,
            },
            context(
                "The report comes back in a DM. Longer than 3,000 characters? Send the file "
                "(Markdown, text or PDF) to me in a DM instead."
            ),
        ],
    }
