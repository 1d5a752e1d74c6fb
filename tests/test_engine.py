"""The interview state machine, with the real content, the offline grader and a fake clock."""

from __future__ import annotations

import itertools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coach.content import PHASE_IDS, Content
from coach.content.models import PhaseId, Question
from coach.engine import UNSPECIFIED_REPLY, InterviewEngine, Session
from coach.errors import (
    BinaryInputError,
    EmptyInputError,
    InputTooLargeError,
    InterviewStateError,
    LLMUnavailableError,
    UnknownQuestionError,
)
from coach.grading.models import MistakeFinding, PhaseGrade
from coach.grading.offline import OfflineGrader
from coach.grading.port import (
    AnswerReviewRequest,
    PhaseGradingRequest,
    PushbackExchange,
    SplitResult,
)
from coach.voice import VoiceKind

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

# A decent answer per phase for the twitter question, used to walk whole interviews.
TWITTER: dict[PhaseId, str] = {
    "requirements": "Functional: post tweets, follow users and read the home timeline. Out of "
    "scope: search and DMs. Timeline p99 under 200 ms; availability over consistency because a "
    "slightly stale timeline is fine.",
    "estimation": "200M DAU and 100M tweets a day is about 1,200 writes per second; 2B timeline "
    "loads a day is about 23,000 reads per second, so reads dominate and we cache timelines.",
    "api": "POST /tweets {text} returns tweet_id. GET /timeline?cursor=... returns a page of "
    "tweets. POST /follow/{user_id}.",
    "data_model": "tweets(tweet_id, user_id, text, created_at) keyed by tweet_id; "
    "follows(follower_id, followee_id) keyed by follower_id.",
    "architecture": "Start simple: one app server and one Postgres. Reads break first, so add a "
    "cache and read replicas, then a fan-out worker fed by a queue.",
    "deep_dive": "The hardest part is fan-out on write: we precompute each follower's timeline "
    "at write time, which makes reads cheap but writes expensive.",
}


class FakeClock:
    """Time stands still until the test moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@dataclass
class RecordingGrader:
    """The offline grader, keeping every request it was given."""

    inner: OfflineGrader
    requests: list[PhaseGradingRequest] = field(default_factory=list)
    reviews: list[AnswerReviewRequest] = field(default_factory=list)

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade:
        self.requests.append(request)
        return self.inner.grade_phase(request)

    def find_mistakes(self, request: AnswerReviewRequest) -> list[MistakeFinding]:
        self.reviews.append(request)
        return self.inner.find_mistakes(request)

    def split(self, text: str) -> SplitResult:
        return self.inner.split(text)

    def request_for(self, phase: PhaseId) -> PhaseGradingRequest:
        return next(r for r in self.requests if r.phase == phase)


class BrokenGrader:
    """A grader whose every call fails, as an LLM grader with no fallback would."""

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade:
        raise LLMUnavailableError("the endpoint is down")

    def find_mistakes(self, request: AnswerReviewRequest) -> list[MistakeFinding]:
        raise LLMUnavailableError("the endpoint is down")

    def split(self, text: str) -> SplitResult:
        raise LLMUnavailableError("the endpoint is down")


class ShoutingVoice:
    """A voice that visibly rewrites every line it is given, and records the calls."""

    def __init__(self) -> None:
        self.kinds: list[VoiceKind] = []

    def speak(
        self,
        *,
        kind: VoiceKind,
        question: Question,
        phase: PhaseId,
        draft: str,
        candidate_text: str,
    ) -> str:
        self.kinds.append(kind)
        return "VOICE: " + draft


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def grader(content: Content) -> RecordingGrader:
    return RecordingGrader(OfflineGrader(content))


@pytest.fixture()
def engine(content: Content, grader: RecordingGrader, clock: FakeClock) -> InterviewEngine:
    return InterviewEngine(content, grader, clock=clock, max_answer_chars=2_000)


def walk_to(engine: InterviewEngine, session: Session, phase: PhaseId) -> None:
    """Answer each phase with the twitter text and advance until `phase` is current."""
    while session.phase != phase:
        engine.answer(session, TWITTER[session.phase])
        engine.advance(session)


# --- the happy path ---------------------------------------------------------------------------


def test_interview_walks_all_six_phases_and_records_time(
    engine: InterviewEngine, clock: FakeClock, content: Content
) -> None:
    minutes = {
        "requirements": 4,
        "estimation": 5,
        "api": 3,
        "data_model": 6,
        "architecture": 12,
        "deep_dive": 9,
    }
    session = engine.start("twitter", candidate="Ana")
    assert session.turns[0].kind == "opening"
    assert content.question("twitter").prompt in session.turns[0].text
    assert content.phase("requirements").opening_question in session.turns[0].text

    seen_phases = []
    while not session.finished:
        seen_phases.append(session.phase)
        phase = session.phase
        engine.answer(session, TWITTER[phase])
        if phase == "deep_dive":
            engine.answer(
                session,
                "Good point: for accounts with millions of followers I'd "
                "switch to fan-out on read and merge at read time.",
            )
        clock.tick(minutes[phase])
        result = engine.advance(session)
        assert result.grade is not None and result.grade.phase == phase
        assert result.turns[0].kind == "feedback"
        assert f"{result.grade.score}/4" in result.turns[0].text
        assert result.grade.next_step in result.turns[0].text
        if phase != "deep_dive":
            assert result.outcome == "advanced"
            assert result.turns[-1].kind == "opening"
            assert content.phase(result.phase).opening_question in result.turns[-1].text

    assert seen_phases == list(PHASE_IDS)
    assert result.outcome == "finished" and result.report is not None
    report = engine.report(session)
    assert report == result.report
    assert report.split_method == "interview"
    assert [g.phase for g in report.phases] == list(PHASE_IDS)
    times = {t.phase: t for t in report.time_per_phase}
    for phase in PHASE_IDS:
        assert times[phase].used_seconds == minutes[phase] * 60
        assert times[phase].budget_seconds == content.phase(phase).time_budget_minutes * 60
    assert times["estimation"].over_budget  # 5 minutes against a 3-minute budget
    assert session.turns[-1].kind == "closing"
    assert f"{report.overall}/100" in session.turns[-1].text


def test_transcript_keeps_every_turn_in_order(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    engine.clarify(session, "How many daily active users?")
    engine.answer(session, TWITTER["requirements"])
    for _ in range(5):
        engine.advance(session)
    engine.answer(session, TWITTER["deep_dive"])
    engine.answer(session, "Fair: the biggest accounts switch to fan-out on read.")
    engine.advance(session)
    transcript = [(t.role, t.kind, t.phase) for t in session.turns]
    assert transcript == [
        ("interviewer", "opening", "requirements"),
        ("candidate", "clarify", "requirements"),
        ("interviewer", "clarify_reply", "requirements"),
        ("candidate", "answer", "requirements"),
        *[
            turn
            for left, entered in itertools.pairwise(PHASE_IDS)
            for turn in [("interviewer", "feedback", left), ("interviewer", "opening", entered)]
        ],
        ("candidate", "answer", "deep_dive"),
        ("interviewer", "pushback", "deep_dive"),
        ("candidate", "pushback_reply", "deep_dive"),
        ("interviewer", "feedback", "deep_dive"),
        ("interviewer", "closing", "deep_dive"),
    ]
    assert [t.at for t in session.turns] == sorted(t.at for t in session.turns)


def test_version_goes_up_once_per_change(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    assert session.version == 1
    engine.clarify(session, "How many daily active users?")
    engine.answer(session, TWITTER["requirements"])
    engine.advance(session)
    assert session.version == 4
    engine.finish(session)
    assert session.version == 5


def test_finishing_early_grades_every_phase_and_leaves_unreached_ones_at_zero(
    engine: InterviewEngine, clock: FakeClock
) -> None:
    session = engine.start("twitter")
    engine.answer(session, TWITTER["requirements"])
    clock.tick(2)
    report = engine.finish(session)
    assert session.finished
    assert [g.phase for g in report.phases] == list(PHASE_IDS)
    scores = {g.phase: g.score for g in report.phases}
    assert scores["requirements"] >= 2
    assert scores["api"] == scores["data_model"] == scores["deep_dive"] == 0
    used = {t.phase: t.used_seconds for t in report.time_per_phase}
    assert used == {
        "requirements": 120.0,
        "estimation": 0.0,
        "api": 0.0,
        "data_model": 0.0,
        "architecture": 0.0,
        "deep_dive": 0.0,
    }


def test_start_with_an_alias_or_unknown_question(engine: InterviewEngine, content: Content) -> None:
    for question in content.questions.values():
        for alias in question.aliases:
            assert engine.start(alias).question_id == question.id
    with pytest.raises(UnknownQuestionError, match="Known ids"):
        engine.start("design-a-toaster")


# --- clarifying questions ---------------------------------------------------------------------


def test_clarify_answers_from_the_matching_fact(engine: InterviewEngine, content: Content) -> None:
    facts = content.question("twitter").facts
    session = engine.start("twitter")
    reply = engine.clarify(session, "How many daily active users are there?")
    assert reply.kind == "clarify_reply" and reply.role == "interviewer"
    scale = next(f for f in facts if f.topic == "scale")
    assert reply.text == scale.answer


def test_clarify_can_answer_several_facts_at_once(
    engine: InterviewEngine, content: Content
) -> None:
    facts = {f.topic: f.answer for f in content.question("twitter").facts}
    session = engine.start("twitter")
    reply = engine.clarify(session, "What latency do we need, and how skewed are follower counts?")
    assert facts["latency, availability and consistency"] in reply.text
    assert facts["follower distribution"] in reply.text
    assert facts["scale"] not in reply.text


@pytest.mark.parametrize(
    ("question_id", "asked"),
    [
        ("twitter", "Do we need to support emoji reactions?"),
        ("url-shortener", "Which programming language should the team use?"),
        ("chat", "Should the app have themes?"),
        ("ride-hailing", "Is there a loyalty programme?"),
        ("image-sharing", "What colour is the logo?"),
    ],
)
def test_clarify_about_something_unspecified_invents_nothing(
    engine: InterviewEngine, question_id: str, asked: str
) -> None:
    session = engine.start(question_id)
    reply = engine.clarify(session, asked)
    assert reply.text == UNSPECIFIED_REPLY
    assert "assumption" in reply.text
    assert not re.search(r"\d", reply.text)


def test_every_canonical_fact_is_reachable_by_its_keywords(
    engine: InterviewEngine, content: Content
) -> None:
    for question in content.questions.values():
        if not question.canonical:
            continue
        fact_text = " ".join(f.answer for f in question.facts)
        session = engine.start(question.id)
        for fact in question.facts:
            reply = engine.clarify(session, f"Quick question about {fact.keywords[0]}?")
            assert fact.answer in reply.text, (question.id, fact.topic)
            # Nothing in a reply comes from anywhere but the question's own facts.
            assert set(re.findall(r"\d+", reply.text)) <= set(re.findall(r"\d+", fact_text))


def test_clarify_is_graded_as_requirements_content(
    engine: InterviewEngine, grader: RecordingGrader
) -> None:
    session = engine.start("twitter")
    engine.clarify(session, "Is search in scope, or only the home timeline?")
    engine.advance(session)
    request = grader.request_for("requirements")
    assert "Is search in scope" in request.text
    assert session.phases[0].grade is not None and session.phases[0].grade.score >= 1


def test_clarify_outside_requirements_is_refused(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    engine.answer(session, TWITTER["requirements"])
    engine.advance(session)
    before = session.model_dump_json()
    with pytest.raises(InterviewStateError, match="requirements"):
        engine.clarify(session, "How many users are there?")
    assert session.model_dump_json() == before


# --- the deep dive ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question_id", "deep_dive", "expected"),
    [
        ("twitter", TWITTER["deep_dive"], "celebrity-fanout"),
        ("twitter", "The risk is one viral tweet: every read hits the same cache node, a hot key.",
         "hot-tweet"),
        ("url-shortener", "Codes come from a counter encoded in base62, so they are unique.",
         "code-collision"),
        ("chat", "Each phone holds a websocket to a gateway; I'd keep connections sticky.",
         "reconnect-storm"),
        ("ride-hailing", "Drivers are indexed by geohash cell so nearby lookups stay cheap.",
         "hotspot"),
    ],
)  # fmt: skip
def test_pushback_follows_the_candidates_own_words(
    engine: InterviewEngine, question_id: str, deep_dive: str, expected: str
) -> None:
    session = engine.start(question_id)
    for _ in range(5):
        engine.advance(session)
    assert session.phase == "deep_dive"
    replies = engine.answer(session, deep_dive)
    assert [t.kind for t in replies] == ["pushback"]
    assert replies[0].pushback_id == expected
    assert session.pushbacks_asked == [expected]


def test_pushback_falls_back_to_architecture_words_then_the_first_one(
    engine: InterviewEngine, content: Content
) -> None:
    session = engine.start("twitter")
    for _ in range(4):
        engine.advance(session)
    engine.answer(session, "Users in every region; if a data center fails we fail over.")
    engine.advance(session)
    replies = engine.answer(session, "The hard part is the part I find hard.")
    assert replies[0].pushback_id == "region-failure"

    session = engine.start("twitter")
    for _ in range(5):
        engine.advance(session)
    replies = engine.answer(session, "The hard part is the part I find hard.")
    assert replies[0].pushback_id == content.question("twitter").pushbacks[0].id


def test_pushback_reply_is_recorded_and_sent_to_the_grader(
    engine: InterviewEngine, grader: RecordingGrader
) -> None:
    session = engine.start("twitter")
    walk_to(engine, session, "deep_dive")
    pushback = engine.answer(session, TWITTER["deep_dive"])[0]
    reply = "Fair point: for accounts with millions of followers I'd pull at read time instead."
    assert engine.answer(session, reply) == []
    assert session.turns[-1].kind == "pushback_reply"
    result = engine.advance(session)
    assert result.outcome == "finished"
    request = grader.request_for("deep_dive")
    assert request.pushbacks == (PushbackExchange(prompt=pushback.text, reply=reply),)
    assert reply in request.text
    assert grader.reviews[-1].pushbacks == request.pushbacks


def test_leaving_the_deep_dive_without_a_pushback_asks_one_first(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    walk_to(engine, session, "deep_dive")
    result = engine.advance(session)  # nothing said in the deep dive yet
    assert result.outcome == "pushback"
    assert result.grade is None and session.phase == "deep_dive" and not session.finished
    assert [t.kind for t in result.turns] == ["pushback"]
    engine.answer(session, "I'd handle that by merging celebrity tweets at read time.")
    assert session.turns[-1].kind == "pushback_reply"
    assert engine.advance(session).outcome == "finished"
    assert len(session.pushbacks_asked) == 1


def test_no_pushback_for_a_candidate_who_said_nothing(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    outcomes = [engine.advance(session).outcome for _ in range(6)]
    assert outcomes == ["advanced"] * 5 + ["finished"]
    assert session.pushbacks_asked == []
    assert engine.report(session).overall == 0


def test_the_same_pushback_is_never_asked_twice(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    walk_to(engine, session, "deep_dive")
    engine.answer(session, TWITTER["deep_dive"])
    engine.answer(session, "I'd move the biggest accounts to fan-out on read.")
    # Words that invite the same celebrity pushback again, and a new hook (the cache).
    second = engine.answer(
        session,
        "Fan-out on write stays for everyone else; the timeline cache holds the hot tweets.",
    )
    assert [t.pushback_id for t in second] == ["hot-tweet"]
    engine.answer(session, "Replicate the hot key across nodes.")
    third = engine.answer(session, "And the cache absorbs a viral tweet, fan-out or not.")
    assert third == []  # at most two pushbacks, each one different
    assert session.pushbacks_asked == ["celebrity-fanout", "hot-tweet"]


# --- bad input and bad states -----------------------------------------------------------------

BAD_TEXT = [
    pytest.param("", EmptyInputError, id="empty"),
    pytest.param("   \n\t  ", EmptyInputError, id="whitespace"),
    pytest.param("x" * 2_001, InputTooLargeError, id="oversized"),
    pytest.param("abc\x00def", BinaryInputError, id="nul-bytes"),
    pytest.param("\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f" * 3, BinaryInputError,
                 id="control-chars"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "error"), BAD_TEXT)
@pytest.mark.parametrize("action", ["answer", "clarify"])
def test_bad_input_leaves_the_session_byte_identical(
    engine: InterviewEngine, action: str, text: str, error: type[Exception]
) -> None:
    session = engine.start("twitter")
    engine.answer(session, "Some first thoughts about scope.")
    before = session.model_dump_json()
    with pytest.raises(error):
        getattr(engine, action)(session, text)
    assert session.model_dump_json() == before


def test_bad_input_in_a_pushback_reply_keeps_the_pushback_open(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    walk_to(engine, session, "deep_dive")
    engine.answer(session, TWITTER["deep_dive"])
    before = session.model_dump_json()
    with pytest.raises(EmptyInputError):
        engine.answer(session, "  ")
    assert session.model_dump_json() == before
    engine.answer(session, "A real reply.")
    assert session.turns[-1].kind == "pushback_reply"


def test_a_failing_grader_leaves_the_session_unchanged(content: Content, clock: FakeClock) -> None:
    engine = InterviewEngine(content, BrokenGrader(), clock=clock)
    session = engine.start("twitter")
    engine.answer(session, TWITTER["requirements"])
    before = session.model_dump_json()
    clock.tick(3)
    for action in (engine.advance, engine.finish):
        with pytest.raises(LLMUnavailableError):
            action(session)
        assert session.model_dump_json() == before


def test_finishing_reports_each_phase_left_to_grade_then_the_review(
    engine: InterviewEngine, content: Content, grader: RecordingGrader
) -> None:
    session = engine.start("twitter")
    engine.answer(session, TWITTER["requirements"])
    engine.advance(session)  # requirements has its grade: it is not graded again
    engine.answer(session, TWITTER["estimation"])
    heard: list[tuple[int, int, str, tuple[int, int]]] = []

    def progress(done: int, total: int, step: str) -> None:
        heard.append((done, total, step, (len(grader.requests), len(grader.reviews))))

    engine.finish(session, progress=progress)

    left = [p for p in PHASE_IDS if p != "requirements"]
    titles = [
        f"Grading phase {PHASE_IDS.index(p) + 1} of 6: {content.phase(p).title}" for p in left
    ]
    assert [step for _, _, step, _ in heard] == [
        *titles,
        "Looking for common mistakes",
        "Writing the report",
    ]
    assert [(done, total) for done, total, _, _ in heard] == [(n, 6) for n in range(7)]
    # Each step is announced as its work starts: (phase grades made, reviews made) so far.
    assert [made for *_, made in heard] == [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (6, 1)]


def test_advancing_reports_the_grading_then_after_the_last_phase_the_review(
    engine: InterviewEngine, content: Content, grader: RecordingGrader
) -> None:
    session = engine.start("twitter")
    heard: list[tuple[int, int, str, tuple[int, int]]] = []

    def progress(done: int, total: int, step: str) -> None:
        heard.append((done, total, step, (len(grader.requests), len(grader.reviews))))

    engine.answer(session, TWITTER["requirements"])
    engine.advance(session, progress=progress)
    requirements = f"Grading phase 1 of 6: {content.phase('requirements').title}"
    assert heard == [(0, 1, requirements, (0, 0))]

    walk_to(engine, session, "deep_dive")
    assert engine.answer(session, TWITTER["deep_dive"])[0].kind == "pushback"
    engine.answer(session, "Fan-out on read for celebrities keeps writes bounded.")
    heard.clear()
    graded = len(grader.requests)
    assert engine.advance(session, progress=progress).outcome == "finished"
    deep_dive = f"Grading phase 6 of 6: {content.phase('deep_dive').title}"
    assert heard == [
        (0, 2, deep_dive, (graded, 0)),
        (1, 2, "Looking for common mistakes", (graded + 1, 0)),
        (2, 2, "Writing the report", (graded + 1, 1)),
    ]


def test_actions_after_finish_are_refused(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    engine.answer(session, TWITTER["requirements"])
    report = engine.finish(session)
    before = session.model_dump_json()
    for action, args in [
        (engine.answer, ("More text.",)),
        (engine.clarify, ("How many users?",)),
        (engine.advance, ()),
        (engine.finish, ()),
    ]:
        with pytest.raises(InterviewStateError, match="finished"):
            action(session, *args)
    assert session.model_dump_json() == before
    assert engine.report(session) == report


def test_report_before_finish_is_refused(engine: InterviewEngine) -> None:
    session = engine.start("twitter")
    with pytest.raises(InterviewStateError, match="Finish it first"):
        engine.report(session)


# --- voice, serialisation, resume -------------------------------------------------------------


def test_voice_speaks_openings_pushbacks_and_closing_but_never_facts(
    content: Content, clock: FakeClock
) -> None:
    voice = ShoutingVoice()
    engine = InterviewEngine(content, OfflineGrader(content), voice=voice, clock=clock)
    session = engine.start("twitter")
    assert session.turns[0].text.startswith("VOICE: ")
    fact = engine.clarify(session, "How many daily active users?")
    assert not fact.text.startswith("VOICE")
    walk_to(engine, session, "deep_dive")
    engine.answer(session, TWITTER["deep_dive"])
    engine.finish(session)
    spoken = {t.kind for t in session.turns if t.text.startswith("VOICE: ")}
    assert spoken == {"opening", "pushback", "closing"}
    assert voice.kinds.count("pushback") == 1 and voice.kinds[-1] == "report"


class WaitingGrader(OfflineGrader):
    """Grades only once the voice has begun the next opening (or gives up after 10 s)."""

    def __init__(self, content: Content, voice_started: threading.Event) -> None:
        super().__init__(content)
        self.voice_started = voice_started
        self.saw_voice_first: list[bool] = []

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade:
        self.saw_voice_first.append(self.voice_started.wait(timeout=10))
        return super().grade_phase(request)


class SignallingVoice(ShoutingVoice):
    def __init__(self, started: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.candidate_texts: list[str] = []

    def speak(self, **kwargs: Any) -> str:
        self.started.set()
        self.candidate_texts.append(kwargs["candidate_text"])
        return super().speak(**kwargs)


def test_advance_words_the_next_opening_while_the_phase_is_graded(
    content: Content, clock: FakeClock
) -> None:
    """With an executor the voice's LLM call runs during the grade's: one wait, not two."""
    started = threading.Event()
    voice, grader = SignallingVoice(started), WaitingGrader(content, started)
    with ThreadPoolExecutor(max_workers=2) as pool:
        engine = InterviewEngine(content, grader, voice=voice, clock=clock, voice_executor=pool)
        session = engine.start("twitter")
        started.clear()  # the first opening was spoken at start
        engine.answer(session, TWITTER["requirements"])
        result = engine.advance(session)
    assert grader.saw_voice_first == [True], "the grader ran while the voice was speaking"
    assert [t.kind for t in result.turns] == ["feedback", "opening"]
    assert result.turns[1].text.startswith("VOICE: Phase 2 of 6")
    assert result.turns[1].phase == session.phase == "estimation"
    assert voice.candidate_texts[-1] == TWITTER["requirements"]
    assert session.phases[0].grade is not None and session.version == 3


def test_session_json_round_trip_is_exact(engine: InterviewEngine) -> None:
    session = engine.start("twitter", candidate="Ana")
    walk_to(engine, session, "deep_dive")
    engine.answer(session, TWITTER["deep_dive"])
    data = session.model_dump(mode="json")
    assert Session.model_validate(data) == session
    assert Session.model_validate(data).model_dump(mode="json") == data
    assert Session.model_validate_json(session.model_dump_json()) == session


def test_resuming_from_json_on_a_new_engine_gives_the_same_report(content: Content) -> None:
    first_clock = FakeClock()
    first = InterviewEngine(content, OfflineGrader(content), clock=first_clock)
    session = first.start("twitter")
    first.clarify(session, "How many daily active users?")
    for phase in ("requirements", "estimation", "api"):
        first.answer(session, TWITTER[phase])
        first_clock.tick(4)
        first.advance(session)
    saved = session.model_dump_json()

    def finish(engine: InterviewEngine, clock: FakeClock, s: Session) -> dict:
        for phase in ("data_model", "architecture", "deep_dive"):
            engine.answer(s, TWITTER[phase])
            clock.tick(4)
            if phase == "deep_dive":
                engine.answer(s, "I'd switch the biggest accounts to fan-out on read.")
            engine.advance(s)
        return engine.report(s).model_dump(mode="json")

    second_clock = FakeClock(first_clock.now)
    resumed = Session.model_validate_json(saved)
    second = InterviewEngine(content, OfflineGrader(content), clock=second_clock)
    assert finish(second, second_clock, resumed) == finish(first, first_clock, session)
    assert resumed.model_dump_json() == session.model_dump_json()
