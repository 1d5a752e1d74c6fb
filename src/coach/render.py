"""Reports and grades as Markdown (exports, Slack) or plain text (the terminal).

Every grade says which grader produced it. An offline grade is never shown as an LLM one,
and when the LLM's grade was replaced by the offline grader the reason is printed with it.
"""

from __future__ import annotations

import re

from coach.content.loader import Content
from coach.content.models import PhaseId
from coach.grading.models import (
    CriterionResult,
    HireSignal,
    MistakeFinding,
    PhaseGrade,
    PhaseTime,
    Report,
)
from coach.grading.report import MISTAKE_PENALTY, PHASE_WEIGHTS, even_score

HIRE_LABELS: dict[HireSignal, str] = {
    "strong_hire": "Strong hire",
    "hire": "Hire",
    "lean_hire": "Lean hire",
    "lean_no_hire": "Lean no hire",
    "no_hire": "No hire",
}
SPLIT_LABELS = {
    "headings": "split into phases by its headings",
    "content": "split into phases by what each part talks about",
    "llm": "split into phases by the LLM",
    "interview": "taken phase by phase from a live mock interview",
}


def source_label(grade: PhaseGrade) -> str:
    """Who graded this phase, in words: 'LLM (model)' or 'offline grader (...)'."""
    if grade.source == "llm":
        return f"LLM ({grade.model})" if grade.model else "LLM"
    label = f"offline grader ({grade.model})" if grade.model else "offline grader"
    if grade.fallback_reason:
        label += f"; the LLM grade was not used: {_one_line(grade.fallback_reason)}"
    return label


def duration(seconds: float) -> str:
    """12:05 style, minutes and seconds."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


_EMPHASIS = re.compile(r"\*\*|__|`|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")


def plain_quote(text: str) -> str:
    """A quote from the candidate's Markdown without its markup: the words, as they read.

    A quote cut from a longer sentence may hold half of a `**bold**` pair, which would
    show as stray asterisks (or bold the rest of an exported report)."""
    text = _EMPHASIS.sub("", text)
    return re.sub(r"^\s*(?:[-*+>]|#+|\d+[.)])\s+", "", " ".join(text.split()))


def _quote(text: str) -> str:
    return "\u201c" + plain_quote(text) + "\u201d"


def _title(content: Content, phase: PhaseId) -> str:
    return content.phase(phase).title


def _question_title(content: Content, report: Report) -> str | None:
    if not report.question_id:
        return None
    question = content.questions.get(report.question_id)
    return question.title if question else report.question_id


def _sources_summary(report: Report) -> str:
    llm = [g for g in report.phases if g.source == "llm"]
    offline = [g for g in report.phases if g.source == "offline"]
    fallbacks = [g for g in offline if g.fallback_reason]
    if not llm:
        text = "every phase by the offline grader (rules, no LLM)"
        if fallbacks:
            text += f"; {len(fallbacks)} of them after the LLM grade could not be used"
        return text
    if not offline:
        models = sorted({g.model or "LLM" for g in llm})
        return f"every phase by the LLM ({', '.join(models)})"
    return f"{len(llm)} phase(s) by the LLM and {len(offline)} by the offline grader" + (
        f" ({len(fallbacks)} after an LLM failure)" if fallbacks else ""
    )


def _time_row(content: Content, t: PhaseTime) -> tuple[str, str, str, str]:
    flag = "over budget" if t.over_budget else "within budget"
    if t.used_seconds == 0:
        flag = "not reached"
    return _title(content, t.phase), duration(t.used_seconds), duration(t.budget_seconds), flag


# --- Markdown -----------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def _md_criteria(criteria: list[CriterionResult]) -> list[str]:
    lines: list[str] = []
    met = [c for c in criteria if c.met]
    missed = [c for c in criteria if not c.met]
    if met:
        lines.append("**Met**")
        lines.append("")
        for c in met:
            quote = f": {_quote(c.evidence)}" if c.evidence else ""
            note = f" ({_one_line(c.note)})" if c.note else ""
            lines.append(f"- {c.title}{quote}{note}")
        lines.append("")
    if missed:
        lines.append("**Missed**")
        lines.append("")
        for c in missed:
            note = f": {_one_line(c.note)}" if c.note else ""
            lines.append(f"- {c.title}{note}")
        lines.append("")
    return lines


def _md_phase(grade: PhaseGrade, content: Content, heading: str = "###") -> list[str]:
    phase = content.phase(grade.phase)
    lines = [
        f"{heading} {phase.order}. {phase.title}: {grade.score}/4",
        "",
        f"*Graded by: {source_label(grade)}*",
        "",
        _one_line(grade.feedback),
        "",
        *_md_criteria(grade.criteria),
    ]
    if grade.corrections:
        lines += ["**Grader notes**", ""]
        lines += [f"- {_one_line(c)}" for c in grade.corrections]
        lines.append("")
    lines += [f"**Next step:** {_one_line(grade.next_step)}", ""]
    return lines


def _md_mistake(m: MistakeFinding, content: Content) -> list[str]:
    where = f" ({_title(content, m.phase)})" if m.phase else ""
    lines = [f"- **{m.title}**{where}"]
    if m.note:
        lines.append(f"  - {_one_line(m.note)}")
    if m.evidence:
        lines.append(f"  - Seen in: {_quote(m.evidence)}")
    lines.append(f"  - Fix: {_one_line(m.fix)}")
    return lines


def overall_explained(content: Content) -> str:
    """How the overall score is made, from the weights and the penalty the code uses."""
    heavier = [f"\u201c{content.phase(p).title}\u201d" for p, w in PHASE_WEIGHTS.items() if w > 1]
    weight = max(PHASE_WEIGHTS.values())
    return (
        f"The overall is the mean of the phase scores on 0-100, with {' and '.join(heavier)} "
        f"counting {weight:g} times; each mistake that costs points takes {MISTAKE_PENALTY} off."
    )


def report_markdown(report: Report, content: Content) -> str:
    """The whole report as Markdown: scores, evidence, mistakes, time, and who graded what."""
    title = _question_title(content, report)
    lines = [f"# Interview report{': ' + title if title else ''}", ""]
    lines += [
        f"**Overall: {report.overall}/100 ({HIRE_LABELS[report.hire_signal]})**",
        "",
        overall_explained(content),
        "",
    ]
    if (score := even_score(report)) is not None:
        lines.append(f"- Every phase scored {score}/4")
    else:
        lines += [
            f"- Strongest phase: {_title(content, report.strongest_phase)}",
            f"- Weakest phase: {_title(content, report.weakest_phase)}",
        ]
    lines += [
        f"- Graded: {_sources_summary(report)}",
    ]
    if report.split_method:
        lines.append(f"- Answer {SPLIT_LABELS.get(report.split_method, report.split_method)}")
    lines += ["", "| Phase | Score | Graded by |", "|---|---|---|"]
    for g in report.phases:
        lines.append(f"| {_title(content, g.phase)} | {g.score}/4 | {_md_cell(source_label(g))} |")
    lines += ["", "## Phases", ""]
    for g in report.phases:
        lines += _md_phase(g, content)
    lines += ["## Mistakes", ""]
    if report.mistakes:
        for m in report.mistakes:
            lines += _md_mistake(m, content)
    else:
        lines.append("None of the common mistakes were found.")
    lines.append("")
    if report.time_per_phase:
        lines += ["## Time per phase", "", "| Phase | Used | Budget | |", "|---|---|---|---|"]
        for t in report.time_per_phase:
            lines.append("| " + " | ".join(_time_row(content, t)) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --- plain text ---------------------------------------------------------------------------


def _wrap_items(prefix: str, items: list[str]) -> list[str]:
    return [f"{prefix}{item}" for item in items]


def grade_text(grade: PhaseGrade, content: Content) -> str:
    """One phase's grade for the terminal: score, who graded it, evidence, next step."""
    phase = content.phase(grade.phase)
    lines = [
        f"{phase.title}: {grade.score}/4   [graded by {source_label(grade)}]",
        f"  {_one_line(grade.feedback)}",
    ]
    met = [c for c in grade.criteria if c.met]
    missed = [c for c in grade.criteria if not c.met]
    if met:
        lines.append("  Met:")
        lines += _wrap_items(
            "    + ",
            [
                f"{c.title}{': ' + _quote(c.evidence) if c.evidence else ''}"
                f"{' (' + _one_line(c.note) + ')' if c.note else ''}"
                for c in met
            ],
        )
    if missed:
        lines.append("  Missed:")
        lines += _wrap_items("    - ", [c.title for c in missed])
    lines += _wrap_items("  Note: ", [_one_line(c) for c in grade.corrections])
    lines += _wrap_items(
        "  Mistake: ",
        [
            f"{m.title}{': ' + _quote(m.evidence) if m.evidence else ''}. {_one_line(m.fix)}"
            for m in grade.mistakes
        ],
    )
    lines.append(f"  Next step: {_one_line(grade.next_step)}")
    return "\n".join(lines)


def report_text(report: Report, content: Content) -> str:
    """The whole report for the terminal."""
    title = _question_title(content, report)
    rule = "=" * 72
    lines = [
        rule,
        f"Interview report{': ' + title if title else ''}",
        f"Overall {report.overall}/100, {HIRE_LABELS[report.hire_signal]}",
        f"Every phase scored {score}/4"
        if (score := even_score(report)) is not None
        else f"Strongest: {_title(content, report.strongest_phase)}   "
        f"Weakest: {_title(content, report.weakest_phase)}",
        f"Graded: {_sources_summary(report)}",
        rule,
    ]
    for g in report.phases:
        lines += ["", grade_text(g, content)]
    lines += ["", "Mistakes:"]
    if report.mistakes:
        for m in report.mistakes:
            where = f" ({_title(content, m.phase)})" if m.phase else ""
            lines.append(f"  * {m.title}{where}")
            if m.note:
                lines.append(f"      {_one_line(m.note)}")
            if m.evidence:
                lines.append(f"      seen in: {_quote(m.evidence)}")
            lines.append(f"      fix: {_one_line(m.fix)}")
    else:
        lines.append("  none of the common mistakes were found")
    if report.time_per_phase:
        lines += ["", "Time per phase (used / budget):"]
        width = max(len(_title(content, t.phase)) for t in report.time_per_phase)
        for t in report.time_per_phase:
            name, used, budget, flag = _time_row(content, t)
            lines.append(f"  {name:<{width}}  {used:>6} / {budget:>6}  {flag}")
    return "\n".join(lines) + "\n"
