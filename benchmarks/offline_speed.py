"""How fast is the offline grader on a ~2,000-word answer? Prints median/p95 ms and peak memory.

Run: .venv/bin/python benchmarks/offline_speed.py [--runs N] [--words W]

The answer is stitched from the shipped questions' model answers under six phase headings, so
it reads like a long, strong answer. Every run starts cold (the sentence-analysis cache is cleared),
so the figures are what one new upload costs on one core. Three timings are printed: splitting
the answer into its six phases, the six phase grades alone (the offline grader's own work), and
the whole `grade_answer` pipeline (split, six grades, mistake review, report). Target: median
under 20 ms for the phase grades.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import tracemalloc

from coach.config import Settings
from coach.content import PHASE_IDS, Content, load_content
from coach.grading.offline import OfflineGrader, clear_caches
from coach.grading.port import PhaseGradingRequest
from coach.grading.splitter import split_into_phases
from coach.grading.upload import grade_answer

TARGET_MEDIAN_MS = 20.0


def build_answer(content: Content, words: int) -> str:
    """One answer in six headed phases, each filled with shipped model answers to ~words/6."""
    questions = list(content.questions.values())
    per_phase = words // len(PHASE_IDS)
    parts: list[str] = []
    for number, phase in enumerate(PHASE_IDS, start=1):
        parts.append(f"## {number}. {content.phase(phase).title}\n")
        sentences = [
            sentence
            for question in questions
            for sentence in re.split(r"(?<=[.!?])\s+", question.model_answers[phase].strip())
        ]
        count = 0
        for sentence in sentences:
            if count >= per_phase:
                break
            parts.append(sentence)
            count += len(sentence.split())
        parts.append("")
    return "\n".join(parts)


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    parser.add_argument("--words", type=int, default=2000, help="answer length (default 2000)")
    args = parser.parse_args(argv)

    content = load_content(Settings(llm_base_url=None, llm_api_key=None))
    grader = OfflineGrader(content)
    text = build_answer(content, args.words)
    sections = grader.split(text).sections

    def grade_phases() -> None:
        for phase in PHASE_IDS:
            grader.grade_phase(
                PhaseGradingRequest(phase=phase, text=sections.get(phase, ""), full_text=text)
            )

    def grade_whole() -> None:
        grade_answer(text, content=content, grader=grader)

    print(f"answer: {len(text.split())} words, {len(text):,} characters; {args.runs} cold runs")
    results: dict[str, list[float]] = {}

    def split() -> None:
        split_into_phases(text)

    runs = (
        ("split into phases", split),
        ("phase grades (6)", grade_phases),
        ("grade_answer (all)", grade_whole),
    )
    for name, run in runs:
        clear_caches()
        run()  # warm imports and compiled regexes, not the text caches
        timings = []
        for _ in range(args.runs):
            clear_caches()
            start = time.perf_counter()
            run()
            timings.append((time.perf_counter() - start) * 1000)
        results[name] = timings

    clear_caches()
    tracemalloc.start()
    grade_whole()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for name, timings in results.items():
        print(
            f"{name:20} median {statistics.median(timings):6.2f} ms   "
            f"p95 {_percentile(timings, 95):6.2f} ms   max {max(timings):6.2f} ms"
        )
    print(f"peak memory (tracemalloc, one grade_answer): {peak / 1024:,.0f} KiB")
    median = statistics.median(results["phase grades (6)"])
    verdict = "meets" if median < TARGET_MEDIAN_MS else "MISSES"
    print(f"phase grades median {median:.2f} ms {verdict} the {TARGET_MEDIAN_MS:.0f} ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
