"""Loading content: the shipped files, broken files with clear errors, your own questions."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from coach.config import Settings
from coach.content import MISTAKE_IDS, PHASE_IDS, Content, load_content
from coach.errors import ContentError, UnknownQuestionError

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTENT_FOLDERS = ("rubrics", "questions", "prompts")
SEED_TERMS = (
    "functional",
    "dau",
    "qps",
    "hot key",
    "fan-out",
    "eventual consistency",
    "pre-aggregation",
    "sharding",
)
DEDUCTED = {"defends_first_answer", "fake_certainty", "keyword_stuffing", "prompt_injection"}


def _settings(content_dir: Path, **kw: Any) -> Settings:
    return Settings(llm_base_url=None, llm_api_key=None, content_dir=content_dir, **kw)


@pytest.fixture()
def content_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped content folders that a test may break."""
    root = tmp_path / "content"
    for folder in CONTENT_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return root


def _question_data(name: str = "twitter") -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "questions" / f"{name}.yaml").read_text(encoding="utf-8"))


def _write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


# --- The shipped content -------------------------------------------------------------------


def test_every_shipped_file_loads(content: Content) -> None:
    assert [p.id for p in content.phases] == list(PHASE_IDS)
    assert set(content.mistakes) == set(MISTAKE_IDS)
    assert {m for m, mistake in content.mistakes.items() if mistake.deducted} == DEDUCTED
    assert len(content.vocabulary) >= 16
    assert len(content.quiz) >= 24
    for name in ("grade_phase", "interviewer_turn", "pushback", "final_report", "split_answer"):
        assert content.prompts.get_template(f"{name}.j2")


def test_vocabulary_covers_the_seed_terms(content: Content) -> None:
    terms = " | ".join(t.term.lower() for t in content.vocabulary)
    for seed in SEED_TERMS:
        assert seed in terms, f"vocabulary lacks {seed!r}"


def test_quiz_ids_are_unique_and_answers_are_not_always_in_one_place(content: Content) -> None:
    ids = [q.id for q in content.quiz]
    assert len(ids) == len(set(ids))
    positions = {q.answer for q in content.quiz}
    assert len(positions) >= 3, "the correct option sits in the same place too often"


def test_question_bank_has_15_questions_with_canonical_ones_first(content: Content) -> None:
    questions = list(content.questions.values())
    assert len(questions) >= 15
    flags = [q.canonical for q in questions]
    assert flags == sorted(flags, reverse=True), "a canonical question comes after another one"
    assert content.questions["twitter"].canonical


def test_every_alias_and_id_resolves_to_its_question(content: Content) -> None:
    for question in content.questions.values():
        assert content.question(question.id) is question
        assert content.question(f"  {question.id.upper()} ") is question
        for alias in question.aliases:
            assert content.question(alias) is question


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("Design a URL shortener", "url-shortener"),
        ("Here is my answer for the rate limiter question, thanks!", "rate-limiter"),
        ("design twitter", "twitter"),
        ("home-timeline", "twitter"),
        ("my answer", None),  # names no question
        ("payments, then the chat one", None),  # names two
        ("", None),
    ],
)
def test_a_question_named_in_ones_own_words_is_found_when_only_one_fits(
    content: Content, said: str, expected: str | None
) -> None:
    found = content.question_named(said)
    assert (found.id if found else None) == expected


def test_unknown_question_lists_the_known_ids(content: Content) -> None:
    with pytest.raises(UnknownQuestionError) as err:
        content.question("design-a-toaster")
    message = str(err.value)
    assert "No question with id 'design-a-toaster'" in message
    for question_id in content.questions:
        assert question_id in message


# --- Broken files --------------------------------------------------------------------------


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.update({key: value})


def _bad_trigger(data: dict[str, Any]) -> None:
    data["pushbacks"][0]["triggers"] = ["fan(out"]


BROKEN_QUESTIONS = {
    "missing field": (_drop("title"), ["field 'title'", "Field required"]),
    "wrong type": (_set("facts", "lots"), ["field 'facts'", "Input should be a valid list"]),
    "unknown key": (_set("colour", "blue"), ["field 'colour'", "Extra inputs are not permitted"]),
    "bad choice": (_set("difficulty", "brutal"), ["field 'difficulty'", "'easy', 'medium'"]),
    "bad regex": (
        _bad_trigger,
        ["field 'pushbacks.0.triggers'", "invalid regular expression 'fan(out'"],
    ),
}


@pytest.mark.parametrize(
    ("mutate", "fragments"), BROKEN_QUESTIONS.values(), ids=BROKEN_QUESTIONS.keys()
)
def test_broken_question_names_file_and_field(
    content_copy: Path, mutate: Callable[[dict[str, Any]], None], fragments: list[str]
) -> None:
    data = _question_data()
    mutate(data)
    path = content_copy / "questions" / "twitter.yaml"
    _write_yaml(path, data)
    with pytest.raises(ContentError) as err:
        load_content(_settings(content_copy))
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert "(got dict)" not in message, "a field's own value is shown, not its parent's type"


def test_question_file_that_is_not_yaml_says_so(content_copy: Path) -> None:
    path = content_copy / "questions" / "twitter.yaml"
    path.write_text("id: twitter\ntitle: [never closed\n", encoding="utf-8")
    with pytest.raises(ContentError, match="not valid YAML") as err:
        load_content(_settings(content_copy))
    assert str(err.value).startswith(f"{path}: ")


def _rubric_breakers() -> dict[str, tuple[str, Callable[[Any], None], list[str]]]:
    def drop_last_phase(data: Any) -> None:
        data["phases"].pop()

    def answer_out_of_range(data: Any) -> None:
        data["questions"][0]["answer"] = 9

    def drop_mistake(data: Any) -> None:
        data["mistakes"] = [m for m in data["mistakes"] if m["id"] != "fake_certainty"]

    def too_few_terms(data: Any) -> None:
        data["terms"] = data["terms"][:3]

    return {
        "phases missing one": ("phases.yaml", drop_last_phase, ["phases must be exactly"]),
        "quiz answer out of range": (
            "quiz.yaml",
            answer_out_of_range,
            ["field 'questions.0'", "answer 9 is out of range"],
        ),
        "mistake missing": (
            "mistakes.yaml",
            drop_mistake,
            ["missing mistakes: ['fake_certainty']"],
        ),
        "vocabulary too short": ("vocabulary.yaml", too_few_terms, ["field 'terms'", "at least 8"]),
    }


RUBRIC_BREAKERS = _rubric_breakers()


@pytest.mark.parametrize(
    ("name", "mutate", "fragments"), RUBRIC_BREAKERS.values(), ids=RUBRIC_BREAKERS.keys()
)
def test_broken_rubric_names_file_and_problem(
    content_copy: Path, name: str, mutate: Callable[[Any], None], fragments: list[str]
) -> None:
    path = content_copy / "rubrics" / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    _write_yaml(path, data)
    with pytest.raises(ContentError) as err:
        load_content(_settings(content_copy))
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("relative", "fragment"),
    [
        ("rubrics/vocabulary.yaml", "file is missing"),
        ("prompts/pushback.j2", "prompt template is missing"),
    ],
)
def test_missing_file_is_named(content_copy: Path, relative: str, fragment: str) -> None:
    (content_copy / relative).unlink()
    with pytest.raises(ContentError) as err:
        load_content(_settings(content_copy))
    assert str(content_copy / relative) in str(err.value)
    assert fragment in str(err.value)


def test_prompt_with_a_syntax_error_names_file_and_line(content_copy: Path) -> None:
    path = content_copy / "prompts" / "split_answer.j2"
    path.write_text("Fine first line\n{% if %}\n", encoding="utf-8")
    with pytest.raises(ContentError) as err:
        load_content(_settings(content_copy))
    assert str(err.value).startswith(f"{path}:2: ")


def test_prompt_with_an_undefined_variable_raises_instead_of_rendering_blank(
    content_copy: Path,
) -> None:
    (content_copy / "prompts" / "split_answer.j2").write_text(
        "Split this for {{ candidate_name }}.\n", encoding="utf-8"
    )
    content = load_content(_settings(content_copy))
    assert content.render("split_answer", candidate_name="Ada") == "Split this for Ada.\n"
    with pytest.raises(ContentError) as err:
        content.render("split_answer")
    assert "prompts/split_answer.j2" in str(err.value)
    assert "'candidate_name' is undefined" in str(err.value)


def test_shipped_prompt_missing_its_context_raises(content: Content) -> None:
    with pytest.raises(ContentError, match=r"prompts/grade_phase\.j2: .* is undefined"):
        content.render("grade_phase")


# --- Your own questions --------------------------------------------------------------------


def _own_question(question_id: str, *, title: str, aliases: list[str]) -> dict[str, Any]:
    data = _question_data()
    data.update(id=question_id, title=title, canonical=False, aliases=aliases)
    return data


def test_extra_questions_are_added_after_the_canonical_ones(
    content: Content, tmp_path: Path
) -> None:
    extra = tmp_path / "mine"
    _write_yaml(
        extra / "pastebin.yaml",
        _own_question("pastebin", title="Design Pastebin", aliases=["paste"]),
    )
    loaded = load_content(Settings(llm_base_url=None, llm_api_key=None, extra_questions_dir=extra))
    assert set(loaded.questions) == set(content.questions) | {"pastebin"}
    assert loaded.question("paste").title == "Design Pastebin"
    flags = [q.canonical for q in loaded.questions.values()]
    assert flags == sorted(flags, reverse=True)


def test_extra_question_reusing_an_id_is_refused(tmp_path: Path) -> None:
    extra = tmp_path / "mine"
    path = extra / "my-twitter.yaml"
    _write_yaml(path, _own_question("twitter", title="My Twitter", aliases=[]))
    with pytest.raises(ContentError) as err:
        load_content(Settings(llm_base_url=None, llm_api_key=None, extra_questions_dir=extra))
    message = str(err.value)
    assert message.startswith(f"{path}: question id 'twitter' is also in ")
    assert message.rstrip(".").endswith("twitter.yaml")


def test_extra_questions_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ContentError, match="question folder does not exist") as err:
        load_content(Settings(llm_base_url=None, llm_api_key=None, extra_questions_dir=missing))
    assert str(missing) in str(err.value)


# --- Packaging -----------------------------------------------------------------------------


def test_wheel_ships_the_content_folders(tmp_path: Path) -> None:
    """A plain `pip install coach` must find rubrics, questions and prompts inside the wheel."""
    out = tmp_path / "wheel"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = out.glob("coach-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "coach/_data/rubrics/phases.yaml",
        "coach/_data/rubrics/mistakes.yaml",
        "coach/_data/questions/twitter.yaml",
        "coach/_data/prompts/grade_phase.j2",
        "coach/grading/splitter.py",
    ):
        assert required in names, f"{required} is not in {wheel.name}"
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("coach/_data/questions/")}
    assert shipped == {p.name for p in (REPO_ROOT / "questions").glob("*.yaml")}
