"""The floor under service_overhead.py's targets: what FastAPI, uvicorn and the openai client
add on this machine before coach does any work of its own. Prints p50/p95/p99.

Run: .venv/bin/python benchmarks/stack_floor.py [--sessions 200] [--llm-delay-ms 200]
         [--phases 3] [--think-ms 3000]

A bare FastAPI app, served by uvicorn in its own process on 127.0.0.1 as `coach serve` serves
coach (same keep-alive, same request threads), does what an advance does on the wire and
nothing else. Its main route, sync like coach's, posts a grade prompt with the openai client
and, on a second thread at the same time, an interviewer-voice prompt, then returns both
replies as JSON. The prompts are coach's own, rendered once at start-up from the same
question and model answers the service benchmark sends, so the bytes on the wire match an
advance's. No database, no grading, no session. The LLM double and the candidates are
service_overhead.py's (same process layout, same think time, same connections), so that
row is directly comparable with its "advance" row: the difference between the two is what
coach itself costs per advance.

Two more rows put that floor in context. "No LLM call" sleeps as long as the double would and
answers: what the candidates, uvicorn and FastAPI cost alone. "Async route" sends the same
two calls with openai's AsyncOpenAI from an async route, on the event loop, no threads: what
serving the advance async could save at most.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Response

from coach.api.app import GC_THRESHOLDS
from coach.config import Settings
from coach.content import PHASE_IDS, load_content
from coach.grading.llm import grade_messages, grade_schema
from coach.grading.port import PhaseGradingRequest
from coach.llm import _json_bytes, _strict_schema  # as LLMClient builds its requests
from coach.llm_voice import LINE_SCHEMA, VOICE_MAX_TOKENS, voice_messages

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_process import ServerProcess
from service_overhead import (
    QUESTION_ID,
    TARGET_P50_MS,
    TARGET_P99_MS,
    CandidateConnection,
    DoubleProcess,
    RunResult,
    _header,
    _row,
    cpu_seconds,
    run_async,
)

FLOOR_LLM_URL = "FLOOR_LLM_URL"  # the env var that tells the app where the double listens
FLOOR_PHASES = "FLOOR_PHASES"
FLOOR_DELAY_S = "FLOOR_DELAY_S"  # what the no-LLM route sleeps: the double's delay


def floor_bodies(phases: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per phase, the (grade, voice) request bodies an advance of that phase sends."""
    settings = Settings()
    content = load_content(settings)
    question = content.question(QUESTION_ID)
    bodies = []
    for index, phase in enumerate(PHASE_IDS[:phases]):
        said = "\n\n".join(question.model_answers[p] for p in PHASE_IDS[: index + 1])
        request = PhaseGradingRequest(
            phase=phase, text=question.model_answers[phase], full_text=said, question=question
        )
        grade = grade_messages(
            content,
            request,
            detail=settings.llm_prompt_detail,
            context_chars=settings.llm_context_chars,
        )
        upcoming = content.phases[index + 1]
        voice = voice_messages(
            content,
            kind="opening",
            question=question,
            phase=upcoming.id,
            draft=f"Phase {upcoming.order} of {len(PHASE_IDS)}: {upcoming.title}. "
            f"{upcoming.opening_question}",
            candidate_text=said,
        )
        bodies.append(
            (
                _chat_body(grade, grade_schema(content), "phase_grade", settings.llm_max_tokens),
                _chat_body(voice, LINE_SCHEMA, "line", VOICE_MAX_TOKENS),
            )
        )
    return bodies


def _chat_body(
    messages: list[dict[str, str]], schema: dict[str, Any], name: str, max_tokens: int
) -> dict[str, Any]:
    """The body coach's LLMClient posts in json_schema mode (LLMClient._request)."""
    return {
        "model": "double-model",
        "messages": messages,
        "temperature": Settings.model_fields["llm_temperature"].default,
        "max_tokens": max_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": _strict_schema(schema), "strict": True},
        },
    }


def create_floor_app() -> FastAPI:
    """The bare app uvicorn serves (`--factory`): one route, two openai calls, no coach work."""
    import openai

    from coach.llm import _CONNECTION_LIMITS  # the same connection pool as coach's client

    settings = Settings(llm_base_url=os.environ[FLOOR_LLM_URL])

    def openai_client(kind: Any, pool: Any) -> Any:
        """A blocking or an async client, set up as coach's LLMClient sets its own."""
        return kind(
            base_url=os.environ[FLOOR_LLM_URL],
            api_key="floor",
            timeout=openai.Timeout(60.0, connect=settings.llm_connect_timeout),
            max_retries=0,
            http_client=pool(limits=_CONNECTION_LIMITS),
        )

    client = openai_client(openai.OpenAI, openai.DefaultHttpxClient)
    async_client = openai_client(openai.AsyncOpenAI, openai.DefaultAsyncHttpxClient)
    bodies = floor_bodies(int(os.environ[FLOOR_PHASES]))
    delay_s = float(os.environ[FLOOR_DELAY_S])
    threads = settings.resolved_request_threads  # 200 with an LLM, as coach sets them
    voice_threads = ThreadPoolExecutor(max_workers=threads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        gc.collect()  # and the collector tuned as coach's start-up tunes it
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        yield
        voice_threads.shutdown(cancel_futures=True)

    app = FastAPI(lifespan=lifespan)

    def post(body: dict[str, Any]) -> bytes:
        # as coach's LLMClient posts it: the body serialised on each call, the reply as bytes
        return client.post("/chat/completions", content=_json_bytes(body), cast_to=bytes)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/floor/{phase}")
    def advance(phase: int) -> Response:
        grade_body, voice_body = bodies[phase]
        voice = voice_threads.submit(post, voice_body)
        grade = json.loads(post(grade_body))
        line = json.loads(voice.result())
        payload = {"grade": grade["choices"][0]["message"]["content"]}
        payload["opening"] = line["choices"][0]["message"]["content"]
        return Response(json.dumps(payload), media_type="application/json")

    async def post_async(body: dict[str, Any]) -> bytes:
        return await async_client.post(
            "/chat/completions", content=_json_bytes(body), cast_to=bytes
        )

    @app.post("/floor-sleep/{phase}")
    async def advance_sleep(phase: int) -> Response:
        await asyncio.sleep(delay_s)
        return Response(json.dumps({"phase": phase}), media_type="application/json")

    @app.post("/floor-async/{phase}")
    async def advance_async(phase: int) -> Response:
        grade_body, voice_body = bodies[phase]
        voice = asyncio.ensure_future(post_async(voice_body))
        grade = json.loads(await post_async(grade_body))
        line = json.loads(await voice)
        payload = {"grade": grade["choices"][0]["message"]["content"]}
        payload["opening"] = line["choices"][0]["message"]["content"]
        return Response(json.dumps(payload), media_type="application/json")

    return app


class FloorServer(ServerProcess):
    """uvicorn serving create_floor_app, started as the service benchmark starts coach."""

    app_options = (
        "--app-dir",
        str(Path(__file__).resolve().parent),
        "stack_floor:create_floor_app",
    )


async def drive_floor(
    url: str, sessions: int, phases: int, think_s: float, route: str = "floor"
) -> RunResult:
    """Every candidate sends one 'advance' per phase, pausing as the service benchmark does."""
    result = RunResult()

    async def candidate(n: int) -> None:
        rng = random.Random(n)
        client = CandidateConnection(url)
        try:
            for phase in range(phases):
                if think_s:
                    await asyncio.sleep(rng.uniform(0, 2 * think_s))
                started = time.perf_counter()
                status, _ = await client.post(f"/{route}/{phase}", {})
                if status != 200:
                    result.errors[f"HTTP {status}"] += 1
                    continue
                result.times["advance"].append((time.perf_counter() - started) * 1000)
        finally:
            await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(candidate(n) for n in range(sessions)))
    result.turn_seconds = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (200)")
    parser.add_argument("--llm-delay-ms", type=float, default=200.0, help="LLM delay (200)")
    parser.add_argument("--phases", type=int, default=3, help="advances per session (3)")
    parser.add_argument("--think-ms", type=float, default=3000.0, help="mean pause (3000)")
    args = parser.parse_args(argv)
    if not 1 <= args.phases <= len(PHASE_IDS) - 1:
        parser.error(f"phases go from 1 to {len(PHASE_IDS) - 1}")
    delay_ms = args.llm_delay_ms
    print(
        f"stack floor: {args.sessions} sessions x {args.phases} advances (two openai calls at "
        f"once, coach's prompts), think time {args.think_ms:g} ms; LLM delay {delay_ms:g} ms"
    )
    with (
        tempfile.TemporaryDirectory(prefix="coach-floor-") as tmp,
        DoubleProcess(delay_ms / 1000) as double,
        FloorServer(
            {
                FLOOR_LLM_URL: double.base_url,
                FLOOR_PHASES: str(args.phases),
                FLOOR_DELAY_S: str(delay_ms / 1000),
            },
            log_dir=Path(tmp),
        ) as server,
    ):
        rows = []
        for route, label in (
            ("floor-sleep", "no LLM call, a 200 ms sleep" if delay_ms == 200 else "a sleep"),
            ("floor", "2 LLM calls, sync route"),
            ("floor-async", "2 LLM calls, async route"),
        ):
            run_async(drive_floor(server.url, 4, args.phases, 0, route))  # warm-up, not counted
            double.counts()
            before = cpu_seconds(server.process.pid if server.process else 0)
            result = run_async(
                drive_floor(server.url, args.sessions, args.phases, args.think_ms / 1000, route)
            )
            spent = cpu_seconds(server.process.pid if server.process else 0) - before
            rows.append((label, result, spent, double.counts()))
    print(_header("added latency (ms)"))
    for label, result, spent, counts in rows:
        added = [t - delay_ms for t in result.times["advance"]]
        print(_row(label, added))
        if added:
            print(f"  server CPU per request: {spent / len(added) * 1000:.1f} ms")
        print(f"  LLM calls: {dict(counts)}; errors: {dict(result.errors) or 'none'}")
    print(
        f"\nthe service benchmark's targets are p50 < {TARGET_P50_MS:g} ms and p99 < "
        f"{TARGET_P99_MS:g} ms; the rows above are what the stack takes of that before "
        "coach does any work"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
