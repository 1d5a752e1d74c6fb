"""The interview state machine: the only place interview logic lives.

Every front door (CLI, API, web page, Slack) loads a `Session`, calls one `InterviewEngine`
method and saves the session again. The engine does no I/O of its own besides the grader and
the interviewer voice, and a session is plain data that round-trips through JSON, so a
session saved mid-interview resumes on any engine instance.

Example::

    engine = InterviewEngine(content, OfflineGrader(content))
    session = engine.start("twitter")
    engine.clarify(session, "How many daily users?")
    engine.answer(session, "Users post tweets and read a home timeline ...")
    result = engine.advance(session)        # grades requirements, asks the estimation opening
    ...
    report = engine.finish(session)

Each method either applies its whole change (and bumps `session.version`) or raises and
leaves the session exactly as it was: candidate text goes through `clean_text` first, and
the work is done on a copy that replaces the session's fields only when everything worked.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.config import Settings
from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId, Pushback, Question
from coach.errors import InterviewStateError
from coach.grading.models import PhaseGrade, PhaseTime, Report
from coach.grading.port import (
    AnswerReviewRequest,
    Grader,
    PhaseGradingRequest,
    Progress,
    PushbackExchange,
)
from coach.grading.report import build_report, even_score
from coach.grading.scoring import in_sentence
from coach.grading.upload import MISTAKES_STEP, announce, grading_step
from coach.text_input import clean_text
from coach.voice import InterviewerVoice, StaticVoice, VoiceKind

Role = Literal["interviewer", "candidate"]
TurnKind = Literal[
    "opening",
    "answer",
    "clarify",
    "clarify_reply",
    "feedback",
    "pushback",
    "pushback_reply",
    "closing",
]
Status = Literal["active", "finished"]

# What the candidate says in these turns is graded; clarifying questions count as requirements.
CANDIDATE_KINDS: frozenset[str] = frozenset({"answer", "clarify", "pushback_reply"})
# A second pushback is only asked when the candidate's words clearly invite it.
MAX_PUSHBACKS = 2
MAX_CANDIDATE_NAME = 120
DEFAULT_MAX_ANSWER_CHARS: int = Settings.model_fields["max_answer_chars"].default

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- session data -------------------------------------------------------------------------


class SessionModel(BaseModel):
    """Unknown keys in a saved session are a sign of a corrupt file, so refuse them."""

    model_config = ConfigDict(extra="forbid")


class Turn(SessionModel):
    role: Role
    kind: TurnKind
    phase: PhaseId
    text: str
    at: datetime
    pushback_id: str | None = Field(
        default=None, description="On a pushback turn: which of the question's pushbacks."
    )


class PhaseState(SessionModel):
    phase: PhaseId
    started_at: datetime | None = None
    ended_at: datetime | None = None
    grade: PhaseGrade | None = None


class Session(SessionModel):
    """One mock interview, from the opening line to the report."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    question_id: str
    candidate: str | None = None
    created_at: datetime
    status: Status = "active"
    phase_index: int = Field(default=0, ge=0, le=len(PHASE_IDS) - 1)
    turns: list[Turn] = Field(default_factory=list)
    phases: list[PhaseState] = Field(
        default_factory=lambda: [PhaseState(phase=p) for p in PHASE_IDS]
    )
    pushbacks_asked: list[str] = Field(default_factory=list)
    report: Report | None = None
    version: int = Field(default=0, ge=0, description="Bumped on every change.")

    @property
    def phase(self) -> PhaseId:
        """The phase the interview is in (the last one once finished)."""
        return PHASE_IDS[self.phase_index]

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    def candidate_text(self, phase: PhaseId | None = None) -> str:
        """Everything the candidate said (in one phase, or in all of them), in order."""
        return "\n\n".join(
            t.text
            for t in self.turns
            if t.role == "candidate"
            and t.kind in CANDIDATE_KINDS
            and (phase is None or t.phase == phase)
        )

    def awaiting_pushback_reply(self) -> bool:
        return bool(self.turns) and self.turns[-1].kind == "pushback"


class AdvanceResult(BaseModel):
    """What `advance` did: moved on, asked a pushback instead, or finished the interview."""

    outcome: Literal["advanced", "pushback", "finished"]
    phase: PhaseId = Field(description="The phase the interview is in now.")
    grade: PhaseGrade | None = Field(default=None, description="Grade of the phase just left.")
    turns: list[Turn] = Field(default_factory=list, description="The interviewer's new turns.")
    report: Report | None = None


# --- the engine ---------------------------------------------------------------------------


class InterviewEngine:
    """Runs interviews over validated content with any `Grader` and `InterviewerVoice`."""

    def __init__(
        self,
        content: Content,
        grader: Grader,
        *,
        voice: InterviewerVoice | None = None,
        clock: Clock = utc_now,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        voice_executor: Executor | None = None,
    ) -> None:
        """`voice_executor`, when given, lets `advance` word the next phase's opening while the
        phase is graded: the two LLM calls overlap, so an advance waits on the LLM once
        instead of twice. Without it (the CLI, an offline voice) the voice speaks in turn."""
        self.content = content
        self.grader = grader
        self.voice: InterviewerVoice = voice or StaticVoice()
        self.clock = clock
        self.max_answer_chars = max_answer_chars
        self.voice_executor = voice_executor

    # -- public API ------------------------------------------------------------------------

    def start(self, question_id: str, candidate: str | None = None) -> Session:
        """A new session: the interviewer states the problem and opens requirements."""
        question = self.content.question(question_id)
        name = None
        if candidate is not None and candidate.strip():
            name = clean_text(
                candidate, max_chars=MAX_CANDIDATE_NAME, what="candidate name", field="candidate"
            ).strip()
        now = self.clock()
        session = Session(question_id=question.id, candidate=name, created_at=now)
        session.phases[0].started_at = now
        first = self.content.phases[0]
        draft = f"{question.prompt}\n\n{self._phase_intro(first.id)} {first.opening_question}"
        self._interviewer(
            session, "opening", first.id, self._speak("opening", question, session, draft)
        )
        session.version = 1
        return session

    def answer(self, session: Session, text: str) -> list[Turn]:
        """Record the candidate's answer; return the interviewer's reply turns (often none)."""
        text = clean_text(text, max_chars=self.max_answer_chars, what="answer")
        work = self._editable(session)
        question = self._question(work)
        kind: TurnKind = "pushback_reply" if work.awaiting_pushback_reply() else "answer"
        self._candidate(work, kind, work.phase, text)
        replies: list[Turn] = []
        if work.phase == "deep_dive" and kind == "answer":
            pushback = self._pushback_after_answer(work, question)
            if pushback is not None:
                replies.append(self._ask_pushback(work, question, pushback))
        self._commit(session, work)
        return replies

    def check_can_clarify(self, session: Session) -> None:
        """Clarifying questions are for phase 1 (and not once the interview is over)."""
        if session.finished:
            self._editable(session)  # says it is finished, as every change refuses
        if session.phase != "requirements":
            now = in_sentence(self.content.phase(session.phase).title)
            raise InterviewStateError(
                "Clarifying questions belong in the requirements phase, and this interview is "
                f"in {now}. State an assumption in your answer instead."
            )

    def clarify(self, session: Session, text: str) -> Turn:
        """Answer a clarifying question from the question's facts only; never invent one."""
        text = clean_text(text, max_chars=self.max_answer_chars, what="clarifying question")
        self.check_can_clarify(session)
        work = self._editable(session)
        question = self._question(work)
        self._candidate(work, "clarify", "requirements", text)
        reply = self._interviewer(
            work, "clarify_reply", "requirements", answer_from_facts(question, text)
        )
        self._commit(session, work)
        return reply

    def advance(self, session: Session, *, progress: Progress | None = None) -> AdvanceResult:
        """Grade the current phase and open the next; past the deep dive, finish.

        `progress`, when given, hears of each step as it starts: the phase's grading and,
        after the last phase, the mistake review and the report (as `finish` tells them).
        A pushback asked here grades nothing, so it tells nothing.
        """
        work = self._editable(session)
        question = self._question(work)
        if work.phase == "deep_dive" and not work.pushbacks_asked and work.candidate_text().strip():
            pushback = choose_pushback(question, work)
            turn = self._ask_pushback(work, question, pushback)
            self._commit(session, work)
            return AdvanceResult(outcome="pushback", phase="deep_dive", turns=[turn])

        leaving = work.phase
        now = self.clock()
        state = work.phases[work.phase_index]
        state.ended_at = now
        last_phase = work.phase_index == len(PHASE_IDS) - 1
        # The next phase's opening depends only on that phase and on what the candidate said,
        # never on the grade, so it is worded while the phase is graded.
        opening = None if last_phase else self._start_opening(question, work)
        # After the last phase `_finish` reviews the mistakes (every phase is graded by then).
        steps = [grading_step(self.content, leaving), *([MISTAKES_STEP] if last_phase else [])]
        announce(progress, steps, 0)
        grade = self._grade(work, question, leaving)
        state.grade = grade
        turns = [self._interviewer(work, "feedback", leaving, self._feedback_line(grade, state))]

        if opening is None:
            report, closing = self._finish(work, question, now, _one_step_on(progress))
            turns.append(closing)
            self._commit(session, work)
            return AdvanceResult(
                outcome="finished", phase=leaving, grade=grade, turns=turns, report=report
            )

        work.phase_index += 1
        work.phases[work.phase_index].started_at = now
        turns.append(self._interviewer(work, "opening", work.phase, opening.result()))
        self._commit(session, work)
        return AdvanceResult(outcome="advanced", phase=work.phase, grade=grade, turns=turns)

    def finish(self, session: Session, *, progress: Progress | None = None) -> Report:
        """End now: grade every phase not yet graded, review the whole interview, report.

        `progress`, when given, hears of each step as it starts (each is an LLM call).
        """
        work = self._editable(session)
        question = self._question(work)
        now = self.clock()
        report, _ = self._finish(work, question, now, progress)
        self._commit(session, work)
        return report

    def report(self, session: Session) -> Report:
        """The finished interview's report."""
        if session.report is None:
            raise InterviewStateError(
                "This interview is still in progress, so it has no report yet. Finish it first."
            )
        return session.report

    def time_per_phase(self, session: Session) -> list[PhaseTime]:
        """Budget and time used so far for each phase (the current one counts up to now)."""
        now = self.clock()
        times = []
        for state in session.phases:
            end = state.ended_at or (now if state.started_at else None)
            used = (end - state.started_at).total_seconds() if state.started_at and end else 0.0
            budget = self.content.phase(state.phase).time_budget_minutes * 60
            times.append(
                PhaseTime(phase=state.phase, budget_seconds=budget, used_seconds=max(0.0, used))
            )
        return times

    # -- internals -------------------------------------------------------------------------

    def _editable(self, session: Session) -> Session:
        if session.finished:
            raise InterviewStateError(
                f"Interview {session.id} is finished; start a new one to practise again."
            )
        # The engine edits a copy, so a failure halfway (an LLM error, say) leaves the session
        # as it was. It only appends to the lists and sets fields of the session and of its
        # phase states; turns and grades are never changed once made, so the copy shares them.
        # Copying the whole session deeply was the costliest step of an answer.
        return session.model_copy(
            update={
                "turns": list(session.turns),
                "phases": [state.model_copy() for state in session.phases],
                "pushbacks_asked": list(session.pushbacks_asked),
            }
        )

    @staticmethod
    def _commit(session: Session, work: Session) -> None:
        """Everything worked: the edited copy becomes the session, one version later."""
        work.version = session.version + 1
        for name in Session.model_fields:
            setattr(session, name, getattr(work, name))

    def _question(self, session: Session) -> Question:
        return self.content.question(session.question_id)

    def _phase_intro(self, phase: PhaseId) -> str:
        spec = self.content.phase(phase)
        return f"Phase {spec.order} of {len(PHASE_IDS)}: {spec.title}."

    def _speak(self, kind: VoiceKind, question: Question, session: Session, draft: str) -> str:
        return self.voice.speak(
            kind=kind,
            question=question,
            phase=session.phase,
            draft=draft,
            candidate_text=session.candidate_text(),
        )

    def _start_opening(self, question: Question, session: Session) -> Future[str]:
        """The next phase's opening line, worded on `voice_executor` when there is one."""
        nxt = self.content.phases[session.phase_index + 1]
        draft = f"{self._phase_intro(nxt.id)} {nxt.opening_question}"
        said = session.candidate_text()  # read here: the session changes while the voice runs

        def speak() -> str:
            return self.voice.speak(
                kind="opening", question=question, phase=nxt.id, draft=draft, candidate_text=said
            )

        if self.voice_executor is None:
            done: Future[str] = Future()
            done.set_result(speak())
            return done
        # A copy of this thread's context, so the voice's call sees the same LLM hooks
        # (its purpose keeps it out of a feedback token stream).
        return self.voice_executor.submit(contextvars.copy_context().run, speak)

    def _interviewer(
        self,
        session: Session,
        kind: TurnKind,
        phase: PhaseId,
        text: str,
        pushback_id: str | None = None,
    ) -> Turn:
        """Add an interviewer turn to the transcript and return it."""
        turn = Turn(
            role="interviewer",
            kind=kind,
            phase=phase,
            text=text,
            at=self.clock(),
            pushback_id=pushback_id,
        )
        session.turns.append(turn)
        return turn

    def _candidate(self, session: Session, kind: TurnKind, phase: PhaseId, text: str) -> Turn:
        turn = Turn(role="candidate", kind=kind, phase=phase, text=text, at=self.clock())
        session.turns.append(turn)
        return turn

    def _pushback_after_answer(self, session: Session, question: Question) -> Pushback | None:
        """First deep-dive answer: always push back. Later ones: only on a clear new hook."""
        asked = session.pushbacks_asked
        if not asked:
            return choose_pushback(question, session)
        if len(asked) >= MAX_PUSHBACKS:
            return None
        latest = session.turns[-1].text
        hooks = [
            (_trigger_hits(p, latest), -i, p)
            for i, p in enumerate(question.pushbacks)
            if p.id not in asked
        ]
        hits, _, best = max(hooks, key=lambda row: row[:2], default=(0, 0, None))
        return best if hits else None

    def _ask_pushback(self, session: Session, question: Question, pushback: Pushback) -> Turn:
        text = self._speak("pushback", question, session, pushback.prompt)
        session.pushbacks_asked.append(pushback.id)
        return self._interviewer(session, "pushback", "deep_dive", text, pushback_id=pushback.id)

    def _exchanges(self, session: Session) -> tuple[PushbackExchange, ...]:
        exchanges: list[PushbackExchange] = []
        prompt: str | None = None
        reply: list[str] = []
        for turn in session.turns:
            if turn.kind == "pushback":
                if prompt is not None:
                    exchanges.append(PushbackExchange(prompt=prompt, reply="\n\n".join(reply)))
                prompt, reply = turn.text, []
            elif prompt is not None and turn.role == "candidate" and turn.kind in CANDIDATE_KINDS:
                reply.append(turn.text)
        if prompt is not None:
            exchanges.append(PushbackExchange(prompt=prompt, reply="\n\n".join(reply)))
        return tuple(exchanges)

    def _grade(self, session: Session, question: Question, phase: PhaseId) -> PhaseGrade:
        return self.grader.grade_phase(
            PhaseGradingRequest(
                phase=phase,
                text=session.candidate_text(phase),
                full_text=session.candidate_text(),
                question=question,
                pushbacks=self._exchanges(session) if phase == "deep_dive" else (),
            )
        )

    def _finish(
        self,
        session: Session,
        question: Question,
        now: datetime,
        progress: Progress | None = None,
    ) -> tuple[Report, Turn]:
        current = session.phases[session.phase_index]
        if current.started_at is not None and current.ended_at is None:
            current.ended_at = now
        ungraded = [state for state in session.phases if state.grade is None]
        steps = [*(grading_step(self.content, s.phase) for s in ungraded), MISTAKES_STEP]

        def reached(done: int) -> None:  # as grade_answer reports an upload's steps
            announce(progress, steps, done)

        for done, state in enumerate(ungraded):
            reached(done)
            state.grade = self._grade(session, question, state.phase)
        reached(len(ungraded))
        grades = [s.grade for s in session.phases if s.grade is not None]
        sections = {p: session.candidate_text(p) for p in PHASE_IDS}
        mistakes = self.grader.find_mistakes(
            AnswerReviewRequest(
                full_text=session.candidate_text(),
                sections=sections,
                phase_grades=tuple(grades),
                question=question,
                pushbacks=self._exchanges(session),
            )
        )
        report = build_report(
            content=self.content,
            question_id=question.id,
            phase_grades=grades,
            mistakes=mistakes,
            time_per_phase=self.time_per_phase(session),
            split_method="interview",
        )
        session.report = report
        session.status = "finished"
        reached(len(steps))  # the report, and the interviewer's closing line (a voice call)
        line = self._speak("report", question, session, self._closing(report))
        return report, self._interviewer(session, "closing", session.phase, line)

    def _closing(self, report: Report) -> str:
        strongest = self.content.phase(report.strongest_phase).title
        weakest = self.content.phase(report.weakest_phase).title
        signal = report.hire_signal.replace("_", " ")
        if (score := even_score(report)) is not None:
            phases = f"Every phase scored {score}/4, so none stands out from the others."
        else:
            phases = f"Your strongest phase was {strongest}; the one to work on is {weakest}."
        return (
            f"That's the interview. Overall {report.overall}/100, which reads as {signal}. "
            f"{phases} The full report has the evidence for every score."
        )

    def _feedback_line(self, grade: PhaseGrade, state: PhaseState) -> str:
        title = self.content.phase(grade.phase).title
        line = f"{title}: {grade.score}/4. {grade.feedback} Next step: {grade.next_step}"
        # Text aimed at the grader is set aside, and the candidate hears so now; the other
        # mistakes are the feedback's own business (an LLM's feedback already discusses them).
        for mistake in grade.mistakes:
            if mistake.id == "prompt_injection":
                seen = f' ("{mistake.evidence}")' if mistake.evidence else ""
                line += f" {mistake.title}{seen}: {mistake.fix}"
        if state.started_at and state.ended_at:
            used = (state.ended_at - state.started_at).total_seconds()
            budget = self.content.phase(grade.phase).time_budget_minutes * 60
            if used > budget:
                line += (
                    f" (You took {_minutes(used)} of a {_minutes(budget)} budget; "
                    "that's fine here, but watch it in a real interview.)"
                )
        return line


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


def _one_step_on(progress: Progress | None) -> Progress | None:
    """`progress` for steps that follow one already told: counts grow by that step."""
    if progress is None:
        return None
    return lambda done, total, step: progress(done + 1, total + 1, step)


# --- clarifying questions and pushbacks (pure functions, easy to test) -------------------


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    # Keywords are word starts ("durab" matches durability), so a keyword never matches
    # inside another word ("ads" does not match "loads").
    return re.compile(r"(?<![a-z0-9])" + re.escape(keyword.lower()), re.IGNORECASE)


def matching_facts(question: Question, asked: str) -> list[int]:
    """Indexes of the facts whose keywords occur in the clarifying question, best first."""
    hits = []
    for index, fact in enumerate(question.facts):
        count = sum(1 for kw in fact.keywords if _keyword_pattern(kw).search(asked))
        if count:
            hits.append((-count, index))
    return [index for _, index in sorted(hits)]


UNSPECIFIED_REPLY = (
    "That isn't specified for this problem, so I can't give you a figure. State an assumption "
    "out loud, say why it's reasonable, and carry on; you can revisit it later."
)


def answer_from_facts(question: Question, asked: str) -> str:
    """The interviewer's reply to a clarifying question: matching facts, verbatim, or a
    plain statement that it is unspecified. Only the question's own facts are ever used."""
    found = matching_facts(question, asked)
    if not found:
        return UNSPECIFIED_REPLY
    return " ".join(question.facts[i].answer for i in sorted(found))


def _trigger_hits(pushback: Pushback, text: str) -> int:
    """How many of the pushback's trigger regexes occur in `text` (each counts once)."""
    return sum(1 for t in pushback.triggers if text and re.search(t, text, re.IGNORECASE))


def choose_pushback(
    question: Question, session: Session, *, asked: tuple[str, ...] | list[str] = ()
) -> Pushback:
    """The pushback the candidate's own words invite most: deep-dive text first, then the
    architecture, then everything else. With no match, the question's first unasked one."""
    candidates = [p for p in question.pushbacks if p.id not in asked]
    if not candidates:
        raise InterviewStateError("Every pushback for this question has already been asked.")
    deep = session.candidate_text("deep_dive")
    arch = session.candidate_text("architecture")
    rest = "\n\n".join(
        session.candidate_text(p) for p in PHASE_IDS if p not in ("deep_dive", "architecture")
    )
    # max() keeps the first of equal rows, so ties (and no match at all) go to content order.
    return max(
        candidates,
        key=lambda p: (_trigger_hits(p, deep), _trigger_hits(p, arch), _trigger_hits(p, rest)),
    )
