"""Measure how closely a grader agrees with human labels, next to a length-only baseline.

A folder holds `labels.json` (a list of label objects, see `Label`) and the answer files it
names. `evaluate_folder` grades every answer through the same path as an upload
(`grade_answer`) and compares the grades with the labels:

- Spearman correlation of the overall 0-100 scores;
- quadratic weighted kappa (QWK) and mean absolute error per phase;
- precision, recall and F1 per mistake id, and their macro F1.

The same figures are computed for a **length-only baseline**, so the gain over "longer is
better" is visible: answers are ranked by word count and, for the overall score and each
phase, the k-th shortest answer gets the k-th lowest labelled value (the label distribution
laid onto the length order); each mistake id is predicted for the n shortest answers, where
n is how many answers carry it in the labels. The baseline is generous (it knows the label
distribution) and still only knows length. The Spearman correlation between word count and
the grader's overall score is reported too: a grader that tracks length closely is
probably measuring length.

Each answer is graded against its bank question when one matches the label's question title
or the file name's slug (`url_3.md` -> `url`), so an LLM grader sees the reference answer.

With `runs >= 2` every answer is graded `runs` times and the report says how many answers
got a different grade on a later run (an LLM grader at temperature 0 should still be
checked). Token usage and grade sources (LLM, offline, fallbacks) are totalled from the
phase grades.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

from coach.content.loader import Content
from coach.content.models import MISTAKE_IDS, PHASE_IDS, MistakeId, PhaseId
from coach.errors import ContentError, InputError, UnknownQuestionError
from coach.grading.models import Report
from coach.grading.port import Grader
from coach.grading.upload import grade_answer
from coach.text_input import clean_text

LABELS_FILE = "labels.json"

# Targets a grader should reach on a labelled set before we trust its scores.
TARGET_SPEARMAN = 0.80
TARGET_QWK = 0.70
TARGET_MISTAKE_F1 = 0.80
MIN_POSITIVES_FOR_TARGET = 3  # fewer labelled cases make one id's F1 too noisy to judge

Progress = Callable[[int, int, str], None]

# --- labels.json -------------------------------------------------------------------------------


class Label(BaseModel):
    """One labelled answer, as written by a careful human grader."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Annotated[str, Field(min_length=1, description="Answer path, relative to the folder.")]
    question: Annotated[str, Field(min_length=1)]
    phase_scores: dict[PhaseId, Annotated[int, Field(ge=0, le=4)]]
    overall_0_100: Annotated[int, Field(ge=0, le=100)]
    mistakes: list[MistakeId]
    notes: Annotated[str, Field(min_length=1)]

    @field_validator("phase_scores")
    @classmethod
    def _six_phases(cls, scores: dict[str, int]) -> dict[str, int]:
        missing = [p for p in PHASE_IDS if p not in scores]
        if missing:
            raise ValueError(f"needs a score for every phase; missing {missing}")
        return scores

    @field_validator("mistakes")
    @classmethod
    def _unique(cls, mistakes: list[str]) -> list[str]:
        repeated = sorted({m for m in mistakes if mistakes.count(m) > 1})
        if repeated:
            raise ValueError(f"each mistake id may appear once; repeated {repeated}")
        return mistakes


class LabelSet(RootModel[list[Label]]):
    @field_validator("root")
    @classmethod
    def _distinct_files(cls, labels: list[Label]) -> list[Label]:
        seen: set[str] = set()
        for label in labels:
            if label.file in seen:
                raise ValueError(f"file {label.file!r} is labelled twice")
            seen.add(label.file)
        if not labels:
            raise ValueError("the list of labels is empty")
        return labels


def _describe(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"field '{where}': {err['msg']}")
    return f"{path}: " + "; ".join(parts)


def load_labels(folder: Path) -> list[Label]:
    """Read and validate <folder>/labels.json, naming the file and field on any problem."""
    path = folder / LABELS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ContentError(
            f"{path}: not found. An evaluation folder needs {LABELS_FILE} next to the answers."
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ContentError(f"{path}: not valid JSON: {exc}") from exc
    try:
        labels = LabelSet.model_validate(data).root
    except ValidationError as exc:
        raise ContentError(_describe(path, exc)) from exc
    for index, label in enumerate(labels):
        if not (folder / label.file).is_file():
            raise ContentError(
                f"{path}: field '{index}.file': {label.file!r} does not exist in {folder}."
            )
    return labels


# --- metrics ---------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho, or None when it is undefined (fewer than 3 items, or a constant side)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return _finite(spearmanr(a, b).statistic)


def quadratic_kappa(gold: Sequence[int], predicted: Sequence[int]) -> float | None:
    """Quadratic weighted kappa on the 0-4 scale; identical lists agree perfectly (1.0)."""
    from sklearn.metrics import cohen_kappa_score

    if not gold:
        return None
    if list(gold) == list(predicted):
        return 1.0
    return _finite(cohen_kappa_score(gold, predicted, weights="quadratic", labels=[0, 1, 2, 3, 4]))


def mean_absolute_error(gold: Sequence[float], predicted: Sequence[float]) -> float | None:
    if not gold:
        return None
    return round(sum(abs(g - p) for g, p in zip(gold, predicted, strict=True)) / len(gold), 4)


@dataclass(frozen=True)
class MistakeAgreement:
    precision: float
    recall: float
    f1: float
    positives: int  # answers labelled with the mistake
    predicted: int  # answers the grader tagged with it


def mistake_agreement(gold: Sequence[bool], predicted: Sequence[bool]) -> MistakeAgreement:
    """Precision, recall and F1 for one mistake id; 0/0 counts as 0, never as an error."""
    tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g and p)
    positives, tagged = sum(gold), sum(predicted)
    precision = tp / tagged if tagged else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return MistakeAgreement(round(precision, 4), round(recall, 4), round(f1, 4), positives, tagged)


@dataclass(frozen=True)
class Agreement:
    """How one set of predictions agrees with the labels."""

    spearman: float | None
    overall_mae: float | None
    qwk: dict[PhaseId, float | None]
    phase_mae: dict[PhaseId, float | None]
    mistakes: dict[MistakeId, MistakeAgreement]

    @property
    def macro_f1(self) -> float | None:
        """Mean F1 over the ids that were labelled or predicted at least once."""
        seen = [m.f1 for m in self.mistakes.values() if m.positives or m.predicted]
        return round(sum(seen) / len(seen), 4) if seen else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["macro_f1"] = self.macro_f1
        return data


@dataclass(frozen=True)
class _Prediction:
    overall: int
    phases: dict[PhaseId, int]
    mistakes: frozenset[str]


def _agreement(labels: Sequence[Label], predictions: Sequence[_Prediction]) -> Agreement:
    return Agreement(
        spearman=spearman([lab.overall_0_100 for lab in labels], [p.overall for p in predictions]),
        overall_mae=mean_absolute_error(
            [lab.overall_0_100 for lab in labels], [p.overall for p in predictions]
        ),
        qwk={
            phase: quadratic_kappa(
                [lab.phase_scores[phase] for lab in labels], [p.phases[phase] for p in predictions]
            )
            for phase in PHASE_IDS
        },
        phase_mae={
            phase: mean_absolute_error(
                [lab.phase_scores[phase] for lab in labels], [p.phases[phase] for p in predictions]
            )
            for phase in PHASE_IDS
        },
        mistakes={
            m: mistake_agreement(
                [m in lab.mistakes for lab in labels], [m in p.mistakes for p in predictions]
            )
            for m in MISTAKE_IDS
        },
    )


def word_count(text: str) -> int:
    """Whitespace-split words, as the dev set's own validator counts them."""
    return len(text.split())


def length_baseline(labels: Sequence[Label], words: Sequence[int]) -> list[_Prediction]:
    """Predictions from length alone: the label distribution laid onto the word-count order."""
    order = sorted(range(len(labels)), key=lambda i: (words[i], labels[i].file))
    rank = {index: position for position, index in enumerate(order)}
    overall = sorted(lab.overall_0_100 for lab in labels)
    phases = {p: sorted(lab.phase_scores[p] for lab in labels) for p in PHASE_IDS}
    counts = Counter(m for lab in labels for m in lab.mistakes)
    return [
        _Prediction(
            overall=overall[rank[i]],
            phases={p: phases[p][rank[i]] for p in PHASE_IDS},
            mistakes=frozenset(m for m in MISTAKE_IDS if rank[i] < counts.get(m, 0)),
        )
        for i in range(len(labels))
    ]


# --- the evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTotals:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    latency_ms: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class AnswerResult:
    """One answer: its label next to the grade (first run)."""

    file: str
    words: int
    label_overall: int
    overall: int
    label_phases: dict[PhaseId, int]
    phases: dict[PhaseId, int]
    label_mistakes: list[str]
    mistakes: list[str]
    sources: list[str]
    runs_disagree: bool = False


@dataclass(frozen=True)
class EvaluationResult:
    """Everything `coach eval` prints; `to_dict()` is its JSON form."""

    folder: str
    answers: int
    runs: int
    grader: Agreement
    baseline: Agreement
    length_spearman: float | None  # word count vs the grader's overall score
    label_length_spearman: float | None  # word count vs the labelled overall score
    disagreements: int  # answers whose grade changed between runs (0 with runs=1)
    sources: dict[str, int]  # phase grades per source ("llm", "offline")
    fallbacks: int  # phase grades where an LLM grade was replaced by the offline grader
    fallback_reasons: dict[str, int]
    usage: TokenTotals | None  # None when no grade reported LLM usage
    items: list[AnswerResult] = field(default_factory=list)

    def targets(self) -> dict[str, bool]:
        """Which of the quality targets the grader meets (an unknown figure does not)."""
        checks = {"spearman": (self.grader.spearman or -1) >= TARGET_SPEARMAN}
        for phase, kappa in self.grader.qwk.items():
            checks[f"qwk_{phase}"] = (kappa if kappa is not None else -1) >= TARGET_QWK
        checks["mistake_macro_f1"] = (self.grader.macro_f1 or 0) >= TARGET_MISTAKE_F1
        for mistake, agreement in self.grader.mistakes.items():
            if agreement.positives >= MIN_POSITIVES_FOR_TARGET:
                checks[f"f1_{mistake}"] = agreement.f1 >= TARGET_MISTAKE_F1
        checks["beats_length_baseline"] = (self.grader.spearman or -1) > (
            self.baseline.spearman or -1
        )
        return checks

    @property
    def meets_targets(self) -> bool:
        return all(self.targets().values())

    def to_dict(self) -> dict[str, Any]:
        usage = None
        if self.usage is not None:
            usage = asdict(self.usage) | {"total_tokens": self.usage.total_tokens}
        return {
            "folder": self.folder,
            "answers": self.answers,
            "runs": self.runs,
            "grader": self.grader.to_dict(),
            "baseline": self.baseline.to_dict(),
            "length_spearman": self.length_spearman,
            "label_length_spearman": self.label_length_spearman,
            "disagreements": self.disagreements,
            "sources": self.sources,
            "fallbacks": self.fallbacks,
            "fallback_reasons": self.fallback_reasons,
            "usage": usage,
            "targets": {
                "spearman": TARGET_SPEARMAN,
                "qwk": TARGET_QWK,
                "mistake_f1": TARGET_MISTAKE_F1,
                "met": self.targets(),
                "all_met": self.meets_targets,
            },
            "items": [asdict(item) for item in self.items],
        }


_SLUG_RE = re.compile(r"^(?P<slug>[a-z0-9-]+?)(?:[_-]\d+)?$")


def _question_id(content: Content, label: Label) -> str | None:
    """The bank question an answer is for: by title, else by the file name's slug."""
    wanted = label.question.strip().lower()
    for question in content.questions.values():
        if question.title.lower() == wanted:
            return question.id
    match = _SLUG_RE.match(Path(label.file).stem.lower())
    if match:
        try:
            return content.question(match["slug"]).id
        except UnknownQuestionError:
            return None
    return None


def _read_answer(folder: Path, label: Label) -> str:
    path = folder / label.file
    try:
        raw = path.read_text(encoding="utf-8")
        return clean_text(raw, max_chars=max(1, len(raw)), what=f"answer {label.file}")
    except (UnicodeDecodeError, InputError) as exc:
        raise ContentError(f"{path}: cannot be graded: {exc}") from exc


def _prediction(report: Report) -> _Prediction:
    return _Prediction(
        overall=report.overall,
        phases={g.phase: g.score for g in report.phases},
        mistakes=frozenset(m.id for m in report.mistakes),
    )


def evaluate_folder(
    folder: Path,
    *,
    content: Content,
    grader: Grader,
    runs: int = 1,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Grade every labelled answer in `folder` and compare the grades with the labels."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    folder = Path(folder)
    labels = load_labels(folder)
    total = len(labels) * runs
    done = 0
    predictions: list[_Prediction] = []
    items: list[AnswerResult] = []
    words: list[int] = []
    sources: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    usage = Counter[str]()
    saw_usage = False
    disagreements = 0
    for label in labels:
        text = _read_answer(folder, label)
        question_id = _question_id(content, label)
        reports = []
        for _ in range(runs):
            report = grade_answer(text, content=content, grader=grader, question_id=question_id)
            reports.append(report)
            for grade in report.phases:
                sources[grade.source] += 1
                if grade.fallback_reason:
                    reasons[grade.fallback_reason.split(":")[0][:80]] += 1
                if grade.usage is not None:
                    saw_usage = True
                    usage["prompt_tokens"] += grade.usage.prompt_tokens
                    usage["cached_tokens"] += grade.usage.cached_tokens
                    usage["completion_tokens"] += grade.usage.completion_tokens
                    usage["calls"] += 1
                    usage["latency_ms"] += grade.usage.latency_ms
            done += 1
            if progress is not None:
                progress(done, total, label.file)
        first = _prediction(reports[0])
        differs = any(_prediction(r) != first for r in reports[1:])
        disagreements += differs
        predictions.append(first)
        words.append(word_count(text))
        items.append(
            AnswerResult(
                file=label.file,
                words=words[-1],
                label_overall=label.overall_0_100,
                overall=first.overall,
                label_phases=dict(label.phase_scores),
                phases=first.phases,
                label_mistakes=list(label.mistakes),
                mistakes=sorted(first.mistakes, key=MISTAKE_IDS.index),
                sources=list(reports[0].sources),
                runs_disagree=differs,
            )
        )
    return EvaluationResult(
        folder=str(folder),
        answers=len(labels),
        runs=runs,
        grader=_agreement(labels, predictions),
        baseline=_agreement(labels, length_baseline(labels, words)),
        length_spearman=spearman(words, [p.overall for p in predictions]),
        label_length_spearman=spearman(words, [lab.overall_0_100 for lab in labels]),
        disagreements=disagreements,
        sources=dict(sorted(sources.items())),
        fallbacks=sum(reasons.values()),
        fallback_reasons=dict(reasons.most_common()),
        usage=TokenTotals(
            prompt_tokens=usage["prompt_tokens"],
            cached_tokens=usage["cached_tokens"],
            completion_tokens=usage["completion_tokens"],
            calls=usage["calls"],
            latency_ms=round(usage["latency_ms"], 1),
        )
        if saw_usage
        else None,
        items=items,
    )


# --- the table -------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _check(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "ok" if value >= target else "MISSED"


def render_table(result: EvaluationResult, baseline: bool = True) -> str:
    """A plain-text report: grader next to the length-only baseline, with the targets."""
    g, b = result.grader, result.baseline
    head = ["metric", "grader"] + (["length-only"] if baseline else []) + ["target", "status"]
    rows: list[list[str]] = []

    def row(name: str, ours: float | None, theirs: float | None, target: float | None) -> None:
        cells = [name, _fmt(ours)] + ([_fmt(theirs)] if baseline else [])
        if target is None:
            cells += ["", ""]
        else:
            cells += [f">= {target:.2f}", _check(ours, target)]
        rows.append(cells)

    row("Spearman, overall score", g.spearman, b.spearman, TARGET_SPEARMAN)
    rows.append(
        ["Mean abs. error, overall", _fmt(g.overall_mae, 1)]
        + ([_fmt(b.overall_mae, 1)] if baseline else [])
        + ["", ""]
    )
    for phase in PHASE_IDS:
        row(f"QWK {phase}", g.qwk[phase], b.qwk[phase], TARGET_QWK)
    for phase in PHASE_IDS:
        row(f"MAE {phase}", g.phase_mae[phase], b.phase_mae[phase], None)
    row("Mistake F1, macro", g.macro_f1, b.macro_f1, TARGET_MISTAKE_F1)

    mistake_head = ["mistake", "labelled", "tagged", "P", "R", "F1"]
    mistake_head += ["length-only F1"] if baseline else []
    mistake_head += ["target", "status"]
    mistake_rows = []
    for mistake in MISTAKE_IDS:
        ours, theirs = g.mistakes[mistake], b.mistakes[mistake]
        target = ours.positives >= MIN_POSITIVES_FOR_TARGET
        cells = [
            mistake,
            str(ours.positives),
            str(ours.predicted),
            _fmt(ours.precision),
            _fmt(ours.recall),
            _fmt(ours.f1),
        ]
        cells += [_fmt(theirs.f1)] if baseline else []
        cells += (
            [f">= {TARGET_MISTAKE_F1:.2f}", _check(ours.f1, TARGET_MISTAKE_F1)]
            if target
            else ["(too few)", ""]
        )
        mistake_rows.append(cells)

    lines = [
        f"Grader agreement with {result.answers} labelled answers in {result.folder}"
        + (f" ({result.runs} runs each)" if result.runs > 1 else ""),
        "",
        _grid(head, rows),
        "",
        _grid(mistake_head, mistake_rows),
        "",
        f"Spearman(word count, grader overall): {_fmt(result.length_spearman)}; "
        f"in the labels: {_fmt(result.label_length_spearman)}",
        "  (a grader well above the labels here is probably rewarding length)",
    ]
    if result.runs > 1:
        lines.append(
            f"Run-to-run disagreement: {result.disagreements} of {result.answers} answers graded "
            f"differently across {result.runs} runs"
        )
    sources = ", ".join(f"{name} {count}" for name, count in result.sources.items())
    lines.append(f"Phase grades by source: {sources or 'none'}; fallbacks: {result.fallbacks}")
    for reason, count in result.fallback_reasons.items():
        lines.append(f"  fallback x{count}: {reason}")
    if result.usage is not None:
        u = result.usage
        per = max(1, result.answers * result.runs)
        lines.append(
            f"LLM tokens: {u.prompt_tokens:,} prompt ({u.cached_tokens:,} cached), "
            f"{u.completion_tokens:,} completion over {u.calls:,} calls; "
            f"{u.total_tokens / per:,.0f} tokens per graded answer"
        )
    verdict = "all targets met" if result.meets_targets else "some targets missed"
    missed = [name for name, ok in result.targets().items() if not ok]
    lines.append(f"Verdict: {verdict}" + (f" ({', '.join(missed)})" if missed else ""))
    return "\n".join(lines)


def _grid(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [
            c.rjust(w) if c[:1].isdigit() or c == "n/a" else c.ljust(w)
            for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule, *(line(r) for r in rows)])
