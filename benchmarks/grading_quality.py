"""How well do the graders agree with human labels, and what does the LLM one cost?

    python benchmarks/grading_quality.py [FOLDER]

FOLDER holds labels.json and the answers it names (default: ../shared/eval next to the
repository). The offline grader is always measured. When an LLM is configured
(COACH_LLM_BASE_URL or COACH_LLM_API_KEY), the LLM grader is measured too, grading every
answer twice to show run-to-run disagreement, with its token use and an estimated cost per
graded interview at COACH_BENCH_PRICE_IN / COACH_BENCH_PRICE_OUT US dollars per million
prompt / completion tokens (defaults 0.15 and 0.60).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from coach.config import Settings
from coach.content import load_content
from coach.errors import CoachError
from coach.evaluation import EvaluationResult, evaluate_folder, render_table
from coach.grading.factory import make_grader
from coach.grading.offline import OfflineGrader

DEFAULT_FOLDER = Path(__file__).resolve().parents[1].parent / "shared" / "eval"
DEFAULT_PRICE_IN = 0.15  # USD per 1M prompt tokens
DEFAULT_PRICE_OUT = 0.60  # USD per 1M completion tokens
LLM_RUNS = 2  # two runs per answer are enough to see whether grades wobble


def _price(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        print(f"warning: {name}={raw!r} is not a number; using {default}", file=sys.stderr)
        return default


def _progress(done: int, total: int, name: str) -> None:
    print(f"\r  graded {done}/{total}: {name:<40}", end="", file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def _cost_lines(result: EvaluationResult) -> list[str]:
    usage = result.usage
    if usage is None:
        return ["No token usage reported (every grade came from the offline fallback?)."]
    price_in = _price("COACH_BENCH_PRICE_IN", DEFAULT_PRICE_IN)
    price_out = _price("COACH_BENCH_PRICE_OUT", DEFAULT_PRICE_OUT)
    graded = max(1, result.answers * result.runs)
    prompt, completion = usage.prompt_tokens / graded, usage.completion_tokens / graded
    cost = (prompt * price_in + completion * price_out) / 1_000_000
    latency = usage.latency_ms / max(1, usage.calls)
    return [
        f"Per graded interview: {prompt:,.0f} prompt tokens "
        f"({usage.cached_tokens / graded:,.0f} cached), {completion:,.0f} completion tokens, "
        f"{usage.calls / graded:.1f} calls, {latency:,.0f} ms per call on average",
        f"Estimated cost per graded interview: ${cost:.5f} "
        f"(at ${price_in}/M prompt, ${price_out}/M completion; cached tokens at full price)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_FOLDER)
    args = parser.parse_args(argv)
    if not (args.folder / "labels.json").is_file():
        print(f"{args.folder}: no labels.json here; pass a labelled folder.", file=sys.stderr)
        return 2

    settings = Settings()
    try:
        content = load_content(settings)
        started = time.perf_counter()
        offline = evaluate_folder(args.folder, content=content, grader=OfflineGrader(content))
        seconds = time.perf_counter() - started
        print("== Offline grader ==")
        print(render_table(offline))
        print(f"Time: {seconds:.2f} s for {offline.answers} answers")

        if not settings.llm_enabled:
            print(
                "\nThe LLM grader was skipped: no LLM is configured "
                "(set COACH_LLM_BASE_URL or COACH_LLM_API_KEY to measure it)."
            )
            return 0
        print(f"\n== LLM grader ({settings.llm_model}, {LLM_RUNS} runs per answer) ==")
        started = time.perf_counter()
        llm = evaluate_folder(
            args.folder,
            content=content,
            grader=make_grader(settings, content),
            runs=LLM_RUNS,
            progress=_progress,
        )
        seconds = time.perf_counter() - started
        print(render_table(llm))
        for line in _cost_lines(llm):
            print(line)
        print(f"Time: {seconds:.1f} s for {llm.answers * llm.runs} gradings")
    except CoachError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
