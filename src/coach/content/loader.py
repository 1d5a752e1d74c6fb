"""Find the content folders, parse every file and validate it, failing with file + field."""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import yaml
from pydantic import BaseModel, ValidationError

from coach.config import Settings
from coach.content.models import (
    PHASE_IDS,
    Mistake,
    MistakeCatalogue,
    MistakeId,
    Phase,
    PhaseId,
    PhaseRubric,
    Question,
    QuizBank,
    QuizQuestion,
    Vocabulary,
    VocabularyTerm,
)
from coach.errors import ContentError, UnknownQuestionError, shown_id

ModelT = TypeVar("ModelT", bound=BaseModel)

PROMPT_TEMPLATES = ("interviewer_turn", "grade_phase", "pushback", "final_report", "split_answer")


def default_content_root() -> Path:
    """The shipped data: inside the wheel (coach/_data) or, from a checkout, the repo root."""
    packaged = Path(str(resources.files("coach"))) / "_data"
    if (packaged / "rubrics").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "rubrics").is_dir():
        return checkout
    raise ContentError(
        "coach's content folders (rubrics/, questions/, prompts/) were not found next to the "
        f"package ({packaged}) or in a checkout ({checkout}). Reinstall coach, or set "
        "COACH_CONTENT_DIR to a folder that holds them."
    )


def _describe_errors(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "missing":  # its input is the enclosing mapping: nothing to show
            parts.append(f"field '{where}': {err['msg']}")
            continue
        got = err.get("input")
        if isinstance(got, dict):
            shown = f"a mapping of {len(got)} key(s)"
        elif isinstance(got, list):
            shown = f"a list of {len(got)} item(s)"
        else:
            shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
        parts.append(f"field '{where}': {err['msg']} (got {shown})")
    return f"{path}: " + "; ".join(parts)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ContentError(f"{path}: file is missing; coach needs it to run.") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ContentError(f"{path}: not valid YAML: {exc}") from exc


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Parse one YAML file into `model`, naming the file and field on any mismatch."""
    data = _read_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContentError(_describe_errors(path, exc)) from exc


@dataclass(frozen=True)
class Content:
    """Everything coach knows, validated: look-ups by id, questions canonical-first."""

    root: Path
    phases: tuple[Phase, ...]
    mistakes: dict[MistakeId, Mistake]
    vocabulary: tuple[VocabularyTerm, ...]
    quiz: tuple[QuizQuestion, ...]
    questions: dict[str, Question]
    prompts: jinja2.Environment = field(repr=False)
    _aliases: dict[str, str] = field(default_factory=dict, repr=False)

    def phase(self, phase_id: PhaseId) -> Phase:
        return self.phases[PHASE_IDS.index(phase_id)]

    def question(self, question_id: str) -> Question:
        key = self._aliases.get(question_id.strip().lower(), question_id.strip().lower())
        try:
            return self.questions[key]
        except KeyError:
            known = ", ".join(self.questions)
            raise UnknownQuestionError(
                f"No question with id {shown_id(question_id)!r}. Known ids: {known}."
            ) from None

    def question_named(self, text: str) -> Question | None:
        """The question someone names in their own words: an id, an alias or the title
        ("Design a URL shortener", "my answer for the twitter question"), when exactly one
        question fits; None when none or several do."""
        words = _name_words(text)
        if not words:
            return None
        with suppress(UnknownQuestionError):
            return self.question("-".join(words))
        fits = {
            question.id
            for question in self.questions.values()
            for name in (question.id, *question.aliases, question.title)
            if (named := _name_words(name)) and _contains_run(words, named)
        }
        return self.questions[fits.pop()] if len(fits) == 1 else None

    def render(self, template: str, **context: Any) -> str:
        """Render prompts/<template>.j2; a missing variable is an error, never blank text."""
        try:
            return self.prompts.get_template(f"{template}.j2").render(**context)
        except jinja2.UndefinedError as exc:
            raise ContentError(f"prompts/{template}.j2: {exc.message}") from exc


_NAME_FILLER = frozenset({"design", "a", "an", "the"})


def _name_words(text: str) -> list[str]:
    """'Design Twitter (home timeline)' -> ['twitter']: words that name a question."""
    text = re.sub(r"\([^)]*\)", " ", text.lower())
    return [w for w in re.findall(r"[a-z0-9]+", text) if w not in _NAME_FILLER]


def _contains_run(words: list[str], run: list[str]) -> bool:
    return any(words[i : i + len(run)] == run for i in range(len(words) - len(run) + 1))


def _load_questions(folders: list[Path]) -> tuple[dict[str, Question], dict[str, str]]:
    found: dict[str, tuple[Question, Path]] = {}
    aliases: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            raise ContentError(f"{folder}: question folder does not exist.")
        for path in sorted(folder.glob("*.y*ml")):
            question = load_model(path, Question)
            if question.id in found:
                first = found[question.id][1]
                raise ContentError(f"{path}: question id {question.id!r} is also in {first}.")
            found[question.id] = (question, path)
            for alias in question.aliases:
                aliases[alias] = question.id
    if not found:
        raise ContentError(f"no question files (*.yaml) found in {', '.join(map(str, folders))}.")
    ordered = sorted(
        found.values(), key=lambda qp: (not qp[0].canonical, qp[0].rank, qp[0].title.lower())
    )
    return {q.id: q for q, _ in ordered}, aliases


def _prompt_environment(folder: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # prompts are plain text for an LLM, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # loaded once at start; checking the files' mtimes per prompt costs
    )
    for name in PROMPT_TEMPLATES:
        try:
            env.get_template(f"{name}.j2")
        except jinja2.TemplateNotFound as exc:
            raise ContentError(f"{folder / (name + '.j2')}: prompt template is missing.") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise ContentError(f"{folder / (name + '.j2')}:{exc.lineno}: {exc.message}") from exc
    return env


def load_content(settings: Settings | None = None) -> Content:
    """Load and validate every content file; raise ContentError naming the first bad one."""
    settings = settings or Settings()
    root = settings.content_dir or default_content_root()
    rubric_dir = root / "rubrics"
    phases = load_model(rubric_dir / "phases.yaml", PhaseRubric).phases
    mistakes = load_model(rubric_dir / "mistakes.yaml", MistakeCatalogue).mistakes
    vocabulary = load_model(rubric_dir / "vocabulary.yaml", Vocabulary).terms
    quiz = load_model(rubric_dir / "quiz.yaml", QuizBank).questions
    folders = [root / "questions"]
    if settings.extra_questions_dir:
        folders.append(settings.extra_questions_dir)
    questions, aliases = _load_questions(folders)
    return Content(
        root=root,
        phases=tuple(sorted(phases, key=lambda p: p.order)),
        mistakes={m.id: m for m in mistakes},
        vocabulary=tuple(vocabulary),
        quiz=tuple(quiz),
        questions=questions,
        prompts=_prompt_environment(root / "prompts"),
        _aliases=aliases,
    )
