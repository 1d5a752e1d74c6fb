"""What does the API add to a request, beyond the LLM's own time? Prints p50/p95/p99 and turns/s.

Run: .venv/bin/python benchmarks/service_overhead.py [--sessions 200] [--llm-delay-ms 200]
         [--phases 3] [--think-ms 3000] [--offline-think-ms 0] [--workers 1]
         [--backends sqlite,postgresql] [--modes llm,offline] [--instances 1,2]
         [--redis-url redis://127.0.0.1:6379/0] [--quick]

Setup. The real server runs as `coach serve` does (uvicorn, in its own process,
tests/server_process.py) on 127.0.0.1, with its LLM pointed at an OpenAI-protocol double
(LeanLLMDouble below: the wire format of tests/llm_double.py served from a bare asyncio
protocol, so that its own cost stays small), which runs in a third process and answers every
chat completion a fixed delay after the request arrived (reading the prompt is part of a
model's time, as with a real one) with a valid reply: a phase grade whose criteria quote the
candidate's real text, or the interviewer's draft line back unchanged. One asyncio process
plays `--sessions` candidates at once, each with its own keep-alive connection: every
candidate creates an interview (POST /v1/interviews: one LLM call, the interviewer's
opening), and once all are created each one answers and advances through `--phases` phases
(POST .../answers: no LLM call; POST .../advance: two LLM calls made at the same time, the
grade and the next phase's opening), pausing `--think-ms` on average (0 to 2x, at random)
before each request (`--offline-think-ms` on the offline runs). A few warm-up interviews run
first and are not counted. Beside the latencies the run prints the CPU time per request of
the server (what bounds its throughput) and of the benchmark's own processes, which share the
machine's cores with it (Linux /proc).

Method. For each LLM-backed request, added latency = response time seen by the client minus
the LLM delay it waited for (the fixed delay x the LLM round trips it waits for one after
the other: create 1, advance 1, as its two calls overlap). Were an advance's calls made one
after the other, its added latency would show a whole extra delay. The number of calls per
request is fixed by the API (create 1, advance 2) and checked twice: every advance must
return an LLM grade (not the offline fallback), and the double's count of calls must equal
the expected total. The figure is an upper bound on the server's own overhead: it also holds
the openai client's work in the server, the double's own time beyond its sleep, the loopback
network, and the client's event loop, all sharing the machine's cores with the server.
`answer` requests (no LLM) are shown too: their whole response time is overhead. turns/s
counts answers and advances over the wall time of the turn phase, with its ceiling (what a
zero-cost service would reach given the LLM delay and the think time) beside it.

Two loads, two questions. With a think time (3 s by default for the LLM runs; a real
candidate pauses far longer, to read and to type) 200 open interviews offer the server a load
it can carry, and the figures show what it adds to each request: the latency targets are
judged on this. With --think-ms 0 every candidate sends its next request the moment the last
one returns: a closed loop that offers the server as much work as 200 sessions can (ten times
its capacity here), so the figures show its capacity and the queueing past it; the latency
verdict then says so instead of judging the queue against a per-request target.

The offline path runs the same interviews on a server with no LLM configured, closed-loop by
default (--offline-think-ms 0); its turns/s is the service's own throughput on this machine,
and the throughput target is judged on it.

PostgreSQL runs on a fresh database (created, migrated, dropped at the end) on the server
named by --postgres-url; if that server does not answer, the run says so and skips it.
--workers N (PostgreSQL only) runs uvicorn with N worker processes behind one port.

Scale-out (issue 8). --instances 1,2 (PostgreSQL only) runs the same load once per count
against that many separate `coach serve` instances, each on its own port, all on one
PostgreSQL database and one Redis (--redis-url, shared rate limits and breaker, the job queue),
as the README's Scale-out section deploys them. The candidates are dealt out round-robin (the
load balancer's part), and a last table prints turns/s and p50/p99 per count with the
scaling factor against one instance. On a 2-core machine the instances, the LLM double and
the client all share the two cores, so the factor shows what a second instance buys there;
on separate machines each instance brings its own cores.
Targets (issue 4): added latency p50 < 5 ms and p99 < 25 ms at 200 concurrent sessions on a
2-core machine, and 500+ offline turns/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from coach.config import Settings
from coach.content import PHASE_IDS, load_content
from coach.store import Store
from coach.store.database import normalize_url, redact

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from llm_double import Reply, approx_tokens
from pg_database import fresh_postgres_database
from server_process import ServerProcess

TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0
TARGET_OFFLINE_TURNS_PER_S = 500.0
WARMUP_SESSIONS = 4
QUESTION_ID = "twitter"
LLM_CALLS = {"create": 1, "answer": 0, "advance": 2}
# LLM round trips a request waits for, one after the other: an advance's two calls (the grade
# and the next phase's opening) run at the same time, so it waits for one.
LLM_WAITS = {"create": 1, "answer": 0, "advance": 1}
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
T = TypeVar("T")
REQUEST_TIMEOUT_S = 120.0  # a request still unanswered after this counts as an error


# --- the LLM double, in its own process ---------------------------------------------------


def usage_of(body: dict[str, Any], completion: str) -> dict[str, Any]:
    """Token counts as the test double reports them, without its cached-prefix arithmetic (a
    Python loop over ~30k characters per request, which would make the double the bottleneck)."""
    prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
    prompt_tokens, completion_tokens = max(1, prompt // 4), approx_tokens(completion)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, uvicorn's own event loop (installed with it), else on asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class LeanLLMDouble(asyncio.Protocol):
    """One connection to the benchmark's LLM double: POST /v1/chat/completions, keep-alive.

    The same OpenAI wire protocol as tests/llm_double.py (a chat.completion JSON body over
    HTTP/1.1), served straight from an asyncio protocol instead of FastAPI and uvicorn.
    Hand-written on purpose: the double shares the machine's two cores with the server it
    measures, and a framework's per-request cost (about a millisecond here) would be counted
    as the server's overhead. It reads only what the openai client sends: a request line,
    headers with Content-Length, and a JSON body.
    """

    def __init__(self, respond: Callable[[dict[str, Any]], Reply], served: list[int]) -> None:
        self._respond = respond
        self._served = served
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._answering: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self._buffer) < head_end + 4 + length:
                return  # the rest of the body is still on its way
            body = self._buffer[head_end + 4 : head_end + 4 + length]
            self._buffer = self._buffer[head_end + 4 + length :]
            loop = asyncio.get_running_loop()
            task = loop.create_task(self._answer(head[0], body, arrived=loop.time()))
            self._answering.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._answering.discard)

    async def _answer(self, request_line: str, body: bytes, *, arrived: float) -> None:
        if not request_line.startswith("POST /v1/chat/completions "):
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        request = json.loads(body)
        reply = self._respond(request)
        if reply.delay:  # counted from the request's arrival: a model's time includes reading it
            await asyncio.sleep(reply.delay - (asyncio.get_running_loop().time() - arrived))
        self._served[0] += 1
        self._send(
            200,
            {
                "id": f"chatcmpl-{self._served[0]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": "double-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": usage_of(request, reply.content),
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        data = json.dumps(payload).encode()
        reason = "OK" if status == 200 else "Not Found"
        self._transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n".encode()
            + data
        )


_CRITERIA = re.compile(r'Grade phase "\w+" \(.*?\)\. The criteria to judge are: ([\w, ]+)\.')
_SECTION = re.compile(r'<candidate_answer phase="\w+">\n(.*?)</candidate_answer>', re.S)
_DRAFT = re.compile(r"<draft>\n(.*?)\n</draft>", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _quotes(section: str) -> list[str]:
    """Verbatim sentences of the candidate's text, each short enough to quote."""
    sentences = [s.strip() for line in section.splitlines() for s in _SENTENCE_END.split(line)]
    return [s[:150] for s in sentences if len(s) >= 20]


def make_responder(delay: float, counts: Counter[str]) -> Callable[[dict[str, Any]], Reply]:
    """Answer what a good LLM would, after `delay` seconds: a grade, or the voice's line."""

    def respond(body: dict[str, Any]) -> Reply:
        prompt = str(body["messages"][-1]["content"])
        if draft := _DRAFT.search(prompt):  # the interviewer voice: say the draft as it is
            counts["voice"] += 1
            return Reply.json({"line": draft.group(1)}, delay=delay)
        counts["grade"] += 1
        ids = _CRITERIA.search(prompt)
        section = _SECTION.search(prompt)
        quotes = _quotes(section.group(1)) if section else []
        criteria = [
            {"id": cid, "met": bool(quotes), "quote": quotes[i % len(quotes)] if quotes else ""}
            for i, cid in enumerate(ids.group(1).split(", ") if ids else [])
        ]
        grade = {
            "criteria": criteria,
            "score": 4,
            "mistakes": [],
            "feedback": "Clear and concrete; every point is tied to the numbers.",
            "next_step": "Say what fails first as the load grows tenfold.",
        }
        return Reply.json(grade, delay=delay)

    return respond


def serve_llm_double(conn: Connection, delay: float) -> None:
    """Run the double until told to stop; 'counts' returns (and resets) its call counts."""
    counts: Counter[str] = Counter()
    respond = make_responder(delay, counts)
    served = [0]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: LeanLLMDouble(respond, served), "127.0.0.1", 0, backlog=1024
        )
        conn.send(server.sockets[0].getsockname()[1])
        while True:  # the pipe is read in a thread, so the loop keeps serving meanwhile
            message = await asyncio.to_thread(conn.recv)
            if message == "stop":
                break
            if message == "counts":
                conn.send(dict(counts))
                counts.clear()
        server.close()

    run_async(serve())


class DoubleProcess:
    """The LLM double in a child process, so it shares no interpreter lock with the client."""

    def __init__(self, delay: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=serve_llm_double, args=(child, delay), daemon=True)
        self.base_url = ""

    def __enter__(self) -> DoubleProcess:
        self._process.start()
        if not self._conn.poll(30):
            raise RuntimeError("the LLM double did not start within 30 s")
        self.base_url = f"http://127.0.0.1:{self._conn.recv()}/v1"
        return self

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    def counts(self) -> dict[str, int]:
        self._conn.send("counts")
        return self._conn.recv()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._process.join(10)


# --- the candidates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """What every run does: how many candidates, what they say, how long they pause."""

    sessions: int
    answers: list[str]
    think_s: float


@dataclass
class RunResult:
    """Response times (ms) per endpoint, and what the run did."""

    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in LLM_CALLS})
    turns: int = 0
    turn_seconds: float = 0.0
    fallbacks: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    machine_busy: float | None = None  # share of all cores busy during the run (/proc/stat)

    @property
    def requests(self) -> int:
        return sum(len(t) for t in self.times.values())

    def cpu_line(self) -> str:
        """CPU time per request of the server (what bounds its throughput, whatever the load)
        and of the benchmark's own processes, which share the machine's cores with it."""
        if not self.cpu_seconds.get("server") or not self.requests:
            return "  CPU per request: not measured (no /proc)"
        parts = [
            f"{who} {seconds / self.requests * 1000:.1f} ms"
            for who, seconds in self.cpu_seconds.items()
            if seconds
        ]
        busy = ""
        if self.machine_busy is not None:
            cores = os.cpu_count() or 1
            busy = (
                f"; the machine's {cores} cores were {self.machine_busy:.0%} busy "
                "(database and Redis included)"
            )
        return f"  CPU per request: {', '.join(parts)}{busy}"


def machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat; None elsewhere."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


class CandidateConnection:
    """One candidate's keep-alive HTTP/1.1 connection to the server: JSON in, JSON out.

    Hand-written on purpose, as the double is: the client shares the machine's cores with
    the server, and its time per request counts in every latency printed. httpx spent about
    1.5 ms of CPU per request here; this spends 0.1 to 0.4 ms.
    It reads what uvicorn sends for these routes: a status line, headers, a Content-Length
    body.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
            + data
        )
        # The server closes a connection idle for COACH_KEEP_ALIVE_SECONDS: open a new one,
        # as a browser does, also when the close crossed this request on the wire.
        reused = self._reader is not None and not self._reader.at_eof()
        if not reused:
            await self._connect()
        try:
            return await self._exchange(request)
        except asyncio.IncompleteReadError as exc:
            if not reused or exc.partial:
                raise
        await self._connect()
        return await self._exchange(request)

    async def _connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(request)
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = None
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise ConnectionError(f"a response without Content-Length: {head[0]}")
        return int(head[0].split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


async def _timed(
    client: CandidateConnection, result: RunResult, kind: str, path: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    started = time.perf_counter()
    try:
        status, data = await asyncio.wait_for(client.post(path, body), REQUEST_TIMEOUT_S)
    except (OSError, asyncio.IncompleteReadError) as exc:  # TimeoutError is an OSError
        result.errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    elapsed = (time.perf_counter() - started) * 1000
    if status >= 400:
        result.errors[f"{kind}: HTTP {status}"] += 1
        return None
    result.times[kind].append(elapsed)
    return json.loads(data)  # type: ignore[no-any-return]


async def _candidate(
    url: str,
    load: Load,
    result: RunResult,
    *,
    all_created: asyncio.Barrier,
    rng: random.Random,
) -> None:
    """Create the interview, wait for everyone else's, then answer and advance, pausing
    before each request (so with a think time, the creates do not arrive all at once either).
    Each candidate has its own connection, as 200 people's browsers would."""

    async def think() -> None:
        if load.think_s:
            await asyncio.sleep(rng.uniform(0, 2 * load.think_s))

    client = CandidateConnection(url)
    try:
        await think()
        created = await _timed(
            client, result, "create", "/v1/interviews", {"question_id": QUESTION_ID}
        )
        await all_created.wait()
        if created is None:
            return
        path = f"/v1/interviews/{created['id']}"
        for answer in load.answers:
            await think()
            if await _timed(client, result, "answer", f"{path}/answers", {"text": answer}) is None:
                return
            await think()
            advanced = await _timed(client, result, "advance", f"{path}/advance", {})
            if advanced is None:
                return
            result.turns += 2
            if reason := (advanced.get("grade") or {}).get("fallback_reason"):
                result.fallbacks[reason[:100]] += 1
    finally:
        await client.close()


async def drive(urls: list[str], load: Load) -> RunResult:
    """Every candidate creates an interview; once all exist, they all answer and advance.

    With several instances, candidate n talks to instance n mod N, as a load balancer would.
    """
    result = RunResult()
    all_created = asyncio.Barrier(load.sessions + 1)
    tasks = [
        asyncio.create_task(
            _candidate(
                urls[n % len(urls)],
                load,
                result,
                all_created=all_created,
                rng=random.Random(n),
            )
        )
        for n in range(load.sessions)
    ]
    await all_created.wait()
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    result.turn_seconds = time.perf_counter() - started
    return result


# --- databases -------------------------------------------------------------------------------


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'bench.db'}"


def postgres_reachable(admin_url: str) -> str | None:
    """None when the server answers; otherwise why not."""
    engine = create_engine(
        normalize_url(admin_url), poolclass=NullPool, connect_args={"connect_timeout": 2}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return str(exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


@dataclass(frozen=True)
class LLMCalls:
    """The LLM calls the server recorded (its llm_calls table): how long, and what failed."""

    latencies_ms: list[float]
    failures: Counter[str]


def recorded_llm_calls(url: str, *, skip: int) -> LLMCalls:
    engine = create_engine(url, poolclass=NullPool)
    query = text("SELECT latency_ms, outcome, purpose, error FROM llm_calls ORDER BY id")
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()[skip:]
    finally:
        engine.dispose()
    failures = Counter(
        f"{purpose} {outcome}: {(error or '')[:100]}"
        for _, outcome, purpose, error in rows
        if outcome != "ok"
    )
    return LLMCalls(latencies_ms=[float(row[0]) for row in rows], failures=failures)


# --- one run ---------------------------------------------------------------------------------


def run_server(
    url: str,
    load: Load,
    *,
    llm_url: str | None,
    workers: int,
    log_dir: Path,
    after_warmup: Callable[[], object],
    double_pid: int,
    instances: int = 1,
    redis_url: str | None = None,
) -> RunResult:
    """Start the server(s) on the database at `url` and drive them (warm-up first, not counted).

    `instances` separate servers (each its own port) share the database and, when given,
    `redis_url` under a prefix of their own.
    """
    with Store(url) as store:
        store.upgrade()
    env = {
        "COACH_DATABASE_URL": url,
        "COACH_DATA_DIR": str(log_dir / "data"),
        "COACH_RATE_LIMIT": "1000000/minute",
        "WEB_CONCURRENCY": str(workers),  # uvicorn's --workers, from the environment
    }
    if redis_url:
        env |= {"COACH_REDIS_URL": redis_url, "COACH_REDIS_PREFIX": f"coach-bench-{os.getpid()}"}
    if llm_url:
        env |= {
            "COACH_LLM_BASE_URL": llm_url,
            "COACH_LLM_API_KEY": "benchmark",
            "COACH_LLM_MODEL": "double-model",
            "COACH_LLM_READ_TIMEOUT": "60",
        }
    warmup = Load(sessions=WARMUP_SESSIONS * instances, answers=load.answers, think_s=0)
    with ExitStack() as running:
        servers = [
            running.enter_context(ServerProcess(env, log_dir=log_dir)) for _ in range(instances)
        ]
        urls = [server.url for server in servers]
        run_async(drive(urls, warmup))
        after_warmup()
        # The client's own full garbage collections (its heap is large: 200 clients) would
        # stall every candidate at once and be counted as the server's latency.
        gc.collect()
        gc.freeze()
        server_pids = [server.process.pid for server in servers if server.process]
        before_servers = sum(cpu_seconds(pid) for pid in server_pids)
        before_double = cpu_seconds(double_pid)
        client_before = time.process_time()
        machine_before = machine_jiffies()
        result = run_async(drive(urls, load))
        machine_after = machine_jiffies()
        if machine_before and machine_after and machine_after[1] > machine_before[1]:
            result.machine_busy = (machine_after[0] - machine_before[0]) / (
                machine_after[1] - machine_before[1]
            )
        result.cpu_seconds = {
            # all instances together: the server side's cost per request
            "server": sum(cpu_seconds(pid) for pid in server_pids) - before_servers,
            "LLM double": cpu_seconds(double_pid) - before_double,
            "client": time.process_time() - client_before,
        }
        if not llm_url:
            del result.cpu_seconds["LLM double"]
        if redis_url:
            clear_redis(redis_url, env["COACH_REDIS_PREFIX"])
        return result


def redis_reachable(redis_url: str) -> str | None:
    """None when Redis answers; otherwise why not."""
    from redis import Redis

    try:
        Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def clear_redis(redis_url: str, prefix: str) -> None:
    """Drop the run's keys (rate-limit windows, breaker), so runs leave Redis as they found it."""
    from redis import Redis

    redis = Redis.from_url(redis_url)
    keys = [*redis.scan_iter(f"{prefix}:*"), *redis.scan_iter(f"*{prefix}*")]
    if keys:
        redis.delete(*set(keys))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far; 0 where /proc is not."""
    total = 0.0
    if not pid:
        return total
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself, or a worker
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _row(label: str, samples: list[float]) -> str:
    if not samples:
        return f"  {label:<30} (no samples)"
    p50, p95, p99 = (_percentile(samples, p) for p in (50, 95, 99))
    return f"  {label:<30} {len(samples):>6}  {p50:>8.1f} {p95:>8.1f} {p99:>8.1f}"


def _header(what: str) -> str:
    return f"  {what:<30} {'n':>6}  {'p50':>8} {'p95':>8} {'p99':>8}"


def report_llm_run(
    title: str, result: RunResult, load: Load, *, delay_ms: float, counts: dict[str, int]
) -> tuple[float, float]:
    """Print one LLM run; returns (p50, p99) of the added latency of LLM-backed requests."""
    added = {
        kind: [t - LLM_WAITS[kind] * delay_ms for t in times]
        for kind, times in result.times.items()
    }
    backed = added["create"] + added["advance"]
    turns_per_s = result.turns / result.turn_seconds if result.turn_seconds else 0.0
    print(f"\n{title}, LLM double answering in {delay_ms:g} ms")
    print(_header("added latency (ms)"))
    print(_row("create (1 LLM call)", added["create"]))
    print(_row("answer (no LLM call)", added["answer"]))
    print(_row("advance (2 LLM calls at once)", added["advance"]))
    print(_row("all LLM-backed requests", backed))
    # Per answer/advance pair: one LLM wait and 2 pauses (each think_s on average).
    ceiling = load.sessions * 2 / (delay_ms / 1000 + 2 * load.think_s)
    print(f"  turns/s: {turns_per_s:.0f} (ceiling with a zero-cost service: {ceiling:.0f})")
    print(result.cpu_line())
    expected = {
        "voice": len(result.times["create"]) + len(result.times["advance"]),
        "grade": len(result.times["advance"]),
    }
    seen = {k: counts.get(k, 0) for k in expected}
    fallbacks = sum(result.fallbacks.values())
    status = "as expected" if seen == expected and not fallbacks else "NOT AS EXPECTED"
    print(f"  LLM calls: {seen} for {expected} expected, {fallbacks} fallbacks: {status}")
    for reason, n in result.fallbacks.most_common(3):
        print(f"    {n} x fallback: {reason}")
    if result.errors:
        print(f"  errors: {dict(result.errors)}")
    return _percentile(backed, 50), _percentile(backed, 99)


def report_offline_run(title: str, result: RunResult, load: Load) -> float:
    turns_per_s = result.turns / result.turn_seconds if result.turn_seconds else 0.0
    print(f"\n{title}, offline grader (no LLM)")
    print(_header("response time (ms)"))
    for kind in LLM_CALLS:
        print(_row(kind, result.times[kind]))
    ceiling = f" (ceiling: {load.sessions / load.think_s:.0f})" if load.think_s else ""
    print(f"  turns/s: {turns_per_s:.0f}{ceiling} ({result.turns} answers and advances)")
    print(result.cpu_line())
    if result.errors:
        print(f"  errors: {dict(result.errors)}")
    return turns_per_s


@dataclass(frozen=True)
class ScaleRow:
    """One scale-out run: turns/s and the latency figures, for the summary table."""

    instances: int
    mode: str
    turns_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_ms: float

    @classmethod
    def of(cls, instances: int, mode: str, result: RunResult, *, delay_ms: float) -> ScaleRow:
        if mode == "llm":  # added latency of the LLM-backed requests, as in the LLM table
            samples = [
                t - LLM_WAITS[kind] * delay_ms
                for kind in ("create", "advance")
                for t in result.times[kind]
            ]
        else:  # the whole response time of every request
            samples = [t for times in result.times.values() for t in times]
        server = result.cpu_seconds.get("server", 0.0)
        return cls(
            instances=instances,
            mode=mode,
            turns_per_s=result.turns / result.turn_seconds if result.turn_seconds else 0.0,
            p50_ms=_percentile(samples, 50) if samples else 0.0,
            p99_ms=_percentile(samples, 99) if samples else 0.0,
            server_cpu_ms=server / result.requests * 1000 if result.requests else 0.0,
        )


def report_scaling(rows: list[ScaleRow]) -> None:
    """The scale-out table: each instance count beside one instance's figures."""
    print("\nscale-out on PostgreSQL (turns/s; p50/p99 in ms: added latency of LLM-backed")
    print("requests with the LLM double, whole response time offline)")
    print(
        f"  {'mode':<8} {'instances':>9} {'turns/s':>8} {'x one':>6} {'p50':>8} {'p99':>8}"
        f" {'server CPU/req':>15}"
    )
    for mode in ("llm", "offline"):
        ours = [row for row in rows if row.mode == mode]
        base = next((row.turns_per_s for row in ours if row.instances == 1), 0.0)
        for row in ours:
            factor = f"{row.turns_per_s / base:.2f}" if base else "-"
            print(
                f"  {mode:<8} {row.instances:>9} {row.turns_per_s:>8.0f} {factor:>6}"
                f" {row.p50_ms:>8.1f} {row.p99_ms:>8.1f} {row.server_cpu_ms:>12.1f} ms"
            )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200, help="concurrent interviews (200)")
    parser.add_argument("--llm-delay-ms", type=float, default=200.0, help="LLM delay (200)")
    parser.add_argument(
        "--phases", type=int, default=3, help="phases each interview answers and advances (3)"
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=3000.0,
        help="mean pause before each request in the LLM runs (3000; 0: a closed loop)",
    )
    parser.add_argument(
        "--offline-think-ms",
        type=float,
        default=0.0,
        help="the same in the offline runs (0: a closed loop, the throughput target's load)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers on PostgreSQL; SQLite runs 1"
    )
    parser.add_argument(
        "--instances",
        default="1",
        help="separate instances on PostgreSQL + Redis, one run per count, e.g. 1,2 (1)",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="Redis the instances share (default: redis://127.0.0.1:6379/0 with --instances "
        "above 1, else none)",
    )
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="sqlite,postgresql (both by default)"
    )
    parser.add_argument(
        "--modes", default="llm,offline", help="llm,offline: with the LLM double, and without"
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="a PostgreSQL server to create the benchmark's database on",
    )
    parser.add_argument("--quick", action="store_true", help="a small smoke run: 20 sessions")
    args = parser.parse_args(argv)
    if args.quick:
        args.sessions, args.phases = min(args.sessions, 20), min(args.phases, 2)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if set(args.backends) - {"sqlite", "postgresql"} or set(args.modes) - {"llm", "offline"}:
        parser.error("backends are sqlite and postgresql; modes are llm and offline")
    if not 1 <= args.phases <= len(PHASE_IDS) - 1:
        parser.error(f"phases go from 1 to {len(PHASE_IDS) - 1}")
    if args.sessions < 1 or args.workers < 1:
        parser.error("--sessions and --workers are at least 1")
    try:
        args.instances = sorted({int(n) for n in args.instances.split(",") if n.strip()})
    except ValueError:
        parser.error("--instances takes counts separated by commas, e.g. 1,2")
    if not args.instances or args.instances[0] < 1:
        parser.error("--instances counts are at least 1")
    if args.redis_url is None and args.instances != [1]:
        args.redis_url = DEFAULT_REDIS_URL
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    question = load_content(Settings()).question(QUESTION_ID)
    answers = [question.model_answers[phase] for phase in PHASE_IDS[: args.phases]]
    loads = {
        "llm": Load(sessions=args.sessions, answers=answers, think_s=args.think_ms / 1000),
        "offline": Load(
            sessions=args.sessions, answers=answers, think_s=args.offline_think_ms / 1000
        ),
    }
    delay_ms = args.llm_delay_ms
    print(
        f"service overhead: {args.sessions} concurrent interviews, each create + {args.phases} x "
        f"(answer, advance), think time {args.think_ms:g} ms with the LLM and "
        f"{args.offline_think_ms:g} ms offline; LLM delay {delay_ms:g} ms; uvicorn on 127.0.0.1"
    )

    verdicts: list[str] = []
    scaling: list[ScaleRow] = []
    if args.redis_url and (why := redis_reachable(args.redis_url)):
        print(f"\nRedis at {args.redis_url} does not answer ({why}): instances share none")
        args.redis_url = None
    with (
        tempfile.TemporaryDirectory(prefix="coach-bench-") as tmp,
        DoubleProcess(delay_ms / 1000) as double,
    ):
        for backend in args.backends:
            if backend == "postgresql" and (why := postgres_reachable(args.postgres_url)):
                print(f"\npostgresql: skipped, no server at {redact(args.postgres_url)} ({why})")
                continue
            workers = args.workers if backend == "postgresql" else 1
            for instances in args.instances if backend == "postgresql" else [1]:
                redis_url = args.redis_url if backend == "postgresql" else None
                title = f"{backend}, " + (
                    f"{instances} instance{'s' if instances > 1 else ''}"
                    + (" + Redis" if redis_url else "")
                    if args.instances != [1]
                    else f"{workers} worker{'s' if workers > 1 else ''}"
                )
                for mode in args.modes:
                    load = loads[mode]
                    folder = Path(tmp) / f"{backend}-{instances}-{mode}"
                    folder.mkdir()
                    make_db = (
                        sqlite_database(folder)
                        if backend == "sqlite"
                        else fresh_postgres_database(args.postgres_url, prefix="coach_bench")
                    )
                    warmup: dict[str, int] = {}
                    with make_db as url:
                        result = run_server(
                            url,
                            load,
                            llm_url=double.base_url if mode == "llm" else None,
                            workers=workers,
                            log_dir=folder,
                            after_warmup=lambda warmup=warmup: warmup.update(double.counts()),
                            double_pid=double.pid,
                            instances=instances,
                            redis_url=redis_url,
                        )
                        calls = recorded_llm_calls(url, skip=sum(warmup.values()))
                    counts = double.counts()
                    if backend == "postgresql" and args.instances != [1]:
                        scaling.append(ScaleRow.of(instances, mode, result, delay_ms=delay_ms))
                    if mode == "offline":
                        rate = report_offline_run(title, result, load)
                        ok = rate >= TARGET_OFFLINE_TURNS_PER_S
                        verdicts.append(
                            f"{title}: offline turns/s {rate:.0f} "
                            f"(target {TARGET_OFFLINE_TURNS_PER_S:.0f}+): "
                            + (_verdict(ok) if not load.think_s else "n/a, set by the think time")
                        )
                        continue
                    p50, p99 = report_llm_run(title, result, load, delay_ms=delay_ms, counts=counts)
                    if latencies := calls.latencies_ms:
                        print(
                            "  LLM call time as the server measured it (ms): "
                            f"p50 {_percentile(latencies, 50):.1f}, "
                            f"p99 {_percentile(latencies, 99):.1f} "
                            f"(the double sleeps {delay_ms:g})"
                        )
                    for failure, n in calls.failures.most_common(3):
                        print(f"    {n} x failed LLM call: {failure}")
                    verdicts.append(
                        f"{title}: added latency p50 {p50:.1f} ms (target < {TARGET_P50_MS:g}): "
                        f"{_verdict(p50 < TARGET_P50_MS)}; p99 {p99:.1f} ms "
                        f"(target < {TARGET_P99_MS:g}): {_verdict(p99 < TARGET_P99_MS)}"
                        if load.think_s
                        else f"{title}: added latency p50 {p50:.1f} ms, p99 {p99:.1f} ms: n/a, "
                        "a closed loop (no think time) measures the queue past the server's "
                        "capacity, not what it adds per request; see turns/s"
                    )
    if scaling:
        report_scaling(scaling)
    print("\ntargets:")
    for line in verdicts:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
