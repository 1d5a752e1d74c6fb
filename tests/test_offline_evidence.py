"""What a grade quotes and what it asks for next, as a candidate reads them.

- A criterion about numbers (the scale, rates, sizes: rubrics/grading.yaml) is only met by a
  sentence that states a quantity; asking "how many users?" is a clarifying question, not a
  number on the table.
- The next step is never a criterion the grade marks as met: an unmet criterion's tip, or
  with every criterion met, a step beyond them.

The snippets are written for these tests; the sweeps run over the shipped model answers and,
when it is there, the labelled dev set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from coach.content import PHASE_IDS, Content
from coach.content.models import Phase, PhaseId
from coach.engine import InterviewEngine
from coach.errors import ContentError
from coach.evidence import states_quantity
from coach.grading.feedback import restates_criterion
from coach.grading.llm import LLMGrader
from coach.grading.models import PhaseGrade
from coach.grading.offline import OfflineGrader
from coach.grading.port import PhaseGradingRequest
from coach.grading.rules import GradingRules, load_rules
from coach.grading.upload import grade_answer
from llm_double import LLMDouble, Reply, grader_on

SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


@pytest.fixture(scope="module")
def grader(content: Content) -> OfflineGrader:
    return OfflineGrader(content)


@pytest.fixture(scope="module")
def rules(content: Content) -> GradingRules:
    return load_rules(content)


def grade(grader: OfflineGrader, phase: PhaseId, text: str, full: str | None = None) -> PhaseGrade:
    return grader.grade_phase(PhaseGradingRequest(phase=phase, text=text, full_text=full or text))


def criterion(grade: PhaseGrade, criterion_id: str) -> Any:
    return next(c for c in grade.criteria if c.id == criterion_id)


# --- a question about the number is not the number ------------------------------------------

SCALE_QUESTIONS = [
    "How many users will there be?",
    "how many users?",
    "What scale should I assume?",
    "Roughly how much traffic are we expecting, and how many DAU?",
    "Which scale are we designing for: a startup or a global product?",
    "How many people use it per day, and is the scale going to grow?",
]


@pytest.mark.parametrize("text", SCALE_QUESTIONS)
def test_asking_for_the_scale_puts_no_number_on_it(grader: OfflineGrader, text: str) -> None:
    graded = grade(grader, "requirements", text)

    scale = criterion(graded, "scale")
    assert not scale.met and scale.evidence is None
    assert criterion(graded, "clarifying_questions").met  # it is a good question, though
    assert all(text not in (c.evidence or "") for c in graded.criteria if c.id == "scale")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("We should plan for about 200M daily users.", "200M"),
        ("Assume a million users, each posting twice a day.", "a million"),
        ("I'll assume ten million payments a day.", "ten million"),
        ("Say 50,000 hosts, each sending 2,000 series.", "50,000"),
        ("How many users? I'll assume 300M DAU unless you tell me otherwise.", "300M"),
        ("How many users - let's say 300M?", "300M"),
        ("We expect about two hundred million daily users.", "two hundred million"),
    ],
)
def test_stating_the_scale_meets_it_and_quotes_the_number(
    grader: OfflineGrader, text: str, number: str
) -> None:
    scale = criterion(grade(grader, "requirements", text), "scale")

    assert scale.met
    assert number in scale.evidence


def test_a_vague_crowd_is_not_a_number(grader: OfflineGrader) -> None:
    for text in ("There will be lots of users.", "Billions of users will love it."):
        assert not criterion(grade(grader, "requirements", text), "scale").met


def test_a_question_in_the_requirements_does_not_count_once_the_number_comes_later(
    grader: OfflineGrader,
) -> None:
    """The scale may be met elsewhere in the answer, but the quote is the stated number."""
    section = "How many users will there be? Users post and read a timeline."
    full = section + "\n\nWith 200M DAU x 5 reads/day = 1B reads/day, about 12K reads/s."
    scale = criterion(grade(grader, "requirements", section, full), "scale")

    assert scale.met
    assert "200M DAU" in scale.evidence and "?" not in scale.evidence


def test_a_long_sentence_is_quoted_around_its_number(grader: OfflineGrader) -> None:
    text = (
        "Before anything else I want to be explicit about who this is for, because the product "
        "team, the growth team and the people on call all think about it differently, and we "
        "should plan for roughly 40 million daily active users across every region we serve."
    )
    scale = criterion(grade(grader, "requirements", text), "scale")

    assert len(text) > 200
    assert scale.met and "40 million" in scale.evidence


def test_the_interview_clarifying_question_alone_gets_no_scale_evidence(
    content: Content, grader: OfflineGrader
) -> None:
    """The reviewer's case: "how many users?" in phase 1 of a practice interview."""
    engine = InterviewEngine(content, grader)
    session = engine.start("twitter")
    engine.clarify(session, "how many users?")
    engine.answer(
        session,
        "Users post tweets and read a home timeline. Out of scope: ads, DMs. Timeline p99 "
        "under 200 ms; availability over consistency; never lose a tweet.",
    )
    graded = engine.advance(session).grade
    assert graded is not None

    scale = criterion(graded, "scale")
    assert not scale.met and scale.evidence is None
    assert_next_step_is_not_met(content.phase("requirements"), graded)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how many users will there be?", False),
        ("What scale should I assume?", False),
        ("about 200M daily users", True),
        ("a million users", True),
        ("10k writes/s", True),
        ("a few hundred QPS", True),
        ("hundreds of millions of users", True),
        ("lots of users", False),
        ("millions of users", False),
        ("POST /v1/payments", False),
        ("p99 latency and S3 buckets", False),
        ("phase 2 covers it", False),
        ("by 2030", False),
        ("What is our DAU target for 2025?", False),
        ("plan for 2000 users", True),
    ],
)
def test_what_counts_as_a_quantity(text: str, expected: bool) -> None:
    assert states_quantity(text) is expected


# --- the next step is never something already met -------------------------------------------


def assert_next_step_is_not_met(phase: Phase, graded: PhaseGrade) -> None:
    met = {c.id for c in graded.criteria if c.met}
    for done in phase.criteria:
        if done.id in met:
            assert not restates_criterion(graded.next_step, done), (
                f"{phase.id}: next step {graded.next_step!r} asks for {done.id!r}, marked met"
            )
            assert done.tip is None or done.tip not in graded.next_step
    unmet = [c for c in phase.criteria if c.id not in met]
    if unmet:
        assert any(c.tip and c.tip in graded.next_step for c in unmet), graded.next_step


def test_a_phase_with_every_criterion_met_gets_a_step_beyond_them(
    grader: OfflineGrader, rules: GradingRules
) -> None:
    text = (
        "Do pastes expire, and can they be private? I'll assume optional expiry and unlisted "
        "links. Out of scope: editing and search. Users can create a paste and read it by its "
        "link. Reads must be fast, p99 under 100 ms, and available even when writes fail; an "
        "acknowledged paste must never be lost. Assume 10M daily active users."
    )
    graded = grade(grader, "requirements", text)

    assert all(c.met for c in graded.criteria)
    assert graded.next_step == rules.beyond_criteria["requirements"]
    assert "number on the scale" not in graded.next_step.lower()


def test_the_steps_beyond_the_criteria_restate_none_of_them(
    content: Content, rules: GradingRules
) -> None:
    for phase in content.phases:
        step = rules.beyond_criteria[phase.id]
        assert not any(restates_criterion(step, c) for c in phase.criteria), phase.id
        assert not any(prompt in step for prompt in phase.prompts_to_hit), phase.id


@pytest.mark.parametrize("phase_id", PHASE_IDS)
def test_model_answers_never_get_a_met_criterion_as_next_step(
    content: Content, grader: OfflineGrader, phase_id: PhaseId
) -> None:
    phase = content.phase(phase_id)
    for question in content.questions.values():
        full = "\n\n".join(question.model_answers[p] for p in PHASE_IDS)
        graded = grade(grader, phase_id, question.model_answers[phase_id], full)
        assert_next_step_is_not_met(phase, graded)
        assert_quantity_evidence(grader.rules, graded)
        # and with the phase's text only, as a one-phase answer
        alone = grade(grader, phase_id, question.model_answers[phase_id])
        assert_next_step_is_not_met(phase, alone)
        assert_quantity_evidence(grader.rules, alone)


def assert_quantity_evidence(rules: GradingRules, graded: PhaseGrade) -> None:
    for result in graded.criteria:
        if result.met and rules.needs_quantity(graded.phase, result.id):
            assert result.evidence and states_quantity(result.evidence), (
                f"{graded.phase}.{result.id}: {result.evidence!r} states no quantity"
            )


def _eval_answers() -> list[tuple[str, str]]:
    labels = SHARED_EVAL / "labels.json"
    if not labels.is_file():
        return []
    files = [item["file"] for item in json.loads(labels.read_text(encoding="utf-8"))]
    return [(name, (SHARED_EVAL / name).read_text(encoding="utf-8")) for name in files]


@pytest.mark.skipif(not _eval_answers(), reason=f"no labelled dev set at {SHARED_EVAL}")
def test_dev_set_answers_never_get_a_met_criterion_as_next_step(
    content: Content, grader: OfflineGrader
) -> None:
    for name, text in _eval_answers():
        report = grade_answer(text, content=content, grader=grader, question_id=None)
        for graded in report.phases:
            assert_next_step_is_not_met(content.phase(graded.phase), graded), name
            assert_quantity_evidence(grader.rules, graded)


# --- the LLM grader keeps the same rule -----------------------------------------------------

REQUIREMENTS = (
    "How many users will there be? I'll assume 200M daily users. Users post and read a "
    "timeline; out of scope: search and ads. Timeline reads p99 under 200 ms, availability "
    "over consistency, and a posted tweet is never lost."
)
QUOTES = {
    "clarifying_questions": "How many users will there be?",
    "scope": "out of scope: search and ads",
    "non_functional": "Timeline reads p99 under 200 ms",
    "scale": "I'll assume 200M daily users",
}


def llm_grader(content: Content, llm: LLMDouble) -> LLMGrader:
    return grader_on(llm, content)


def llm_reply(met: dict[str, str], next_step: str) -> dict[str, Any]:
    return {
        "criteria": [{"id": cid, "met": True, "quote": quote} for cid, quote in met.items()],
        "score": 4,
        "mistakes": [],
        "feedback": "Clear scope and targets.",
        "next_step": next_step,
    }


def test_an_llm_next_step_asking_for_a_met_criterion_is_replaced(
    content: Content, llm: LLMDouble, rules: GradingRules
) -> None:
    llm.script(Reply.json(llm_reply(QUOTES, "Put a number on the scale (daily users, growth).")))
    request = PhaseGradingRequest(phase="requirements", text=REQUIREMENTS, full_text=REQUIREMENTS)

    graded = llm_grader(content, llm).grade_phase(request)

    assert graded.source == "llm" and all(c.met for c in graded.criteria)
    assert graded.next_step == rules.beyond_criteria["requirements"]
    assert any("'scale'" in c and "marks met" in c for c in graded.corrections)


def test_an_llm_next_step_about_something_else_is_kept(content: Content, llm: LLMDouble) -> None:
    step = "Say which assumption, if the interviewer changed it, would change the design most."
    llm.script(Reply.json(llm_reply(QUOTES, step)))
    request = PhaseGradingRequest(phase="requirements", text=REQUIREMENTS, full_text=REQUIREMENTS)

    graded = llm_grader(content, llm).grade_phase(request)

    assert graded.next_step == step and graded.corrections == []


def test_a_missing_llm_next_step_follows_the_llms_verified_criteria(
    content: Content, llm: LLMDouble
) -> None:
    """The offline grader would mark other criteria met; the step follows this grade's."""
    quotes = {k: v for k, v in QUOTES.items() if k != "non_functional"}
    llm.script(Reply.json(llm_reply(quotes, "")))
    request = PhaseGradingRequest(phase="requirements", text=REQUIREMENTS, full_text=REQUIREMENTS)

    graded = llm_grader(content, llm).grade_phase(request)

    phase = content.phase("requirements")
    assert not criterion(graded, "non_functional").met
    assert graded.next_step == next(c.tip for c in phase.criteria if c.id == "non_functional")
    assert_next_step_is_not_met(phase, graded)


# --- the rules file -------------------------------------------------------------------------


def test_rules_name_only_criteria_that_exist(content: Content, tmp_path: Path) -> None:
    rules_file = tmp_path / "rubrics" / "grading.yaml"
    rules_file.parent.mkdir()
    original = (content.root / "rubrics" / "grading.yaml").read_text(encoding="utf-8")
    rules_file.write_text(original.replace("[scale]", "[scale, headcount]"), encoding="utf-8")
    copy = type(content)(**{**content.__dict__, "root": tmp_path})

    with pytest.raises(ContentError, match="headcount"):
        load_rules(copy)


def test_a_content_folder_without_the_rules_file_gets_the_shipped_rules(
    content: Content, tmp_path: Path
) -> None:
    # A COACH_CONTENT_DIR made before rubrics/grading.yaml existed still starts and grades.
    (tmp_path / "rubrics").mkdir()
    copy = type(content)(**{**content.__dict__, "root": tmp_path})
    rules = load_rules(copy)
    assert rules == load_rules(content)
    assert rules.needs_quantity("requirements", "scale")
