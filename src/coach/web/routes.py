"""The web app's pages: server-rendered HTML over the same CoachService as the JSON API.

Pages read through the service; the interactive parts (answering, streaming a phase's grade,
uploading) are one small script (static/coach.js) calling the JSON API under /v1, so the
browser gets exactly the validation and error messages every other client gets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

import jinja2
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from coach import __version__
from coach.api.deps import TOKEN_COOKIE, Service
from coach.api.errors import APIError, status_of
from coach.content.loader import Content
from coach.content.models import PHASE_IDS
from coach.engine import Session
from coach.errors import CoachError, InterviewStateError
from coach.grading.models import Report
from coach.render import HIRE_LABELS, duration, even_score, overall_explained, plain_quote
from coach.service import CoachService
from coach.web import charts
from coach.web.progress import progress, score_points

HERE = Path(__file__).parent
CANDIDATE_COOKIE = "coach_candidate"
YEAR = 365 * 24 * 3600
MAX_PROGRESS_INTERVIEWS = 30  # finished interviews loaded for the progress page
SHORT_TITLES = {
    "requirements": "Requirements",
    "estimation": "Estimation",
    "api": "API",
    "data_model": "Data model",
    "architecture": "Architecture",
    "deep_dive": "Deep dive",
}
ERROR_TITLES = {
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    413: "That was too large",
    422: "That input was refused",
    429: "Slow down a little",
    503: "The database is away",
}


class WebRoute(APIRoute):
    """A page route: a coach error becomes an HTML page with its message, never raw JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except CoachError as exc:
                status = exc.status if isinstance(exc, APIError) else status_of(exc)
                return render(
                    request,
                    "error.html",
                    status=status,
                    title=ERROR_TITLES.get(status, "Something went wrong"),
                    message=str(exc),
                )

        return page


router = APIRouter(route_class=WebRoute, include_in_schema=False)
router.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


# --- templates ---------------------------------------------------------------------------


def _markdown(breaks: bool) -> Callable[[str], Markup]:
    # html=False: any HTML in the text is shown as text, and link targets are checked.
    md = MarkdownIt("commonmark", {"html": False, "breaks": breaks}).enable("table")
    return lambda text: Markup(md.render(text or ""))


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %b %Y, %H:%M UTC").lstrip("0")


@functools.cache
def templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {
        "md": _markdown(breaks=False),
        "md_chat": _markdown(breaks=True),
        "clock": duration,
        "hire": lambda signal: HIRE_LABELS.get(signal, signal),
        "when": _when,
        "day": lambda value: value.astimezone(UTC).strftime("%d %b %Y").lstrip("0"),
        "quote": plain_quote,
        "isoformat": lambda value: value.astimezone(UTC).isoformat(),
    }
    return Jinja2Templates(env=env)


def page_error(request: Request, status: int, message: str) -> HTMLResponse:
    """The page a browser gets for an address no route has, or one a page cannot use."""
    title = ERROR_TITLES.get(status, "Something went wrong")
    return render(request, "error.html", status=status, title=title, message=message)


def render(request: Request, name: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    service: CoachService = request.app.state.service
    settings = service.settings
    base = {
        "version": __version__,
        "path": request.url.path,
        "token_mode": settings.auth == "token",
        "signed_in": bool(request.cookies.get(TOKEN_COOKIE)),
        "candidate": candidate_name(request),
        "grader": f"LLM ({settings.llm_model})" if settings.llm_enabled else "offline grader",
        "phase_titles": {p.id: p.title for p in service.content.phases},
        "phase_orders": {p.id: p.order for p in service.content.phases},
        "short_titles": SHORT_TITLES,
    }
    response = templates().TemplateResponse(request, name, base | context, status_code=status)
    # Every page shows live state (an interview's phase, progress): a browser going back must
    # ask again rather than show a stored copy from phases ago.
    response.headers["Cache-Control"] = "no-store"
    return response


# --- who is asking ------------------------------------------------------------------------


def page_owner(request: Request) -> str | None:
    """The signed-in token's id in token mode (else off to the sign-in page); None locally."""
    service: CoachService = request.app.state.service
    if service.settings.auth == "none":
        return None
    secret = request.cookies.get(TOKEN_COOKIE)
    token_id = service.store.token_id_for(secret) if secret else None
    if token_id is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/signin?next={quote(target)}"})
    return token_id


def same_origin(request: Request) -> None:
    """Form posts come from our own pages: refuse one another site's page made the browser send."""
    origin = request.headers.get("origin")
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")}
    if origin and urlsplit(origin).netloc not in hosts:
        raise APIError(403, "cross_site", "This form can only be sent from coach's own pages.")


def candidate_name(request: Request) -> str:
    return unquote(request.cookies.get(CANDIDATE_COOKIE, ""))


PageOwner = Annotated[str | None, Depends(page_owner)]
SameOrigin = Annotated[None, Depends(same_origin)]


# --- home and study -----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, service: Service, owner: PageOwner) -> HTMLResponse:
    """Pick a question (canonical ones first) or continue an unfinished interview."""
    candidate = candidate_name(request)
    mine = service.list_interviews(owner=owner, candidate=candidate or None)
    questions = list(service.content.questions.values())
    return render(
        request,
        "home.html",
        canonical=[q for q in questions if q.canonical],
        others=[q for q in questions if not q.canonical],
        unfinished=[s for s in mine if s.status != "finished"][:8],
        practised={s.question_id for s in mine},
        titles={q.id: q.title for q in questions},
    )


@router.post("/interviews")
def start_interview(
    request: Request,
    service: Service,
    owner: PageOwner,
    _: SameOrigin,
    question_id: Annotated[str, Form(max_length=100)],
    candidate: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    """Start a mock interview and remember the candidate's name for next time."""
    name = candidate.strip()
    session = service.create_interview(question_id, candidate=name or None, owner=owner)
    response = RedirectResponse(f"/interviews/{session.id}", status_code=303)
    if name:
        response.set_cookie(CANDIDATE_COOKIE, quote(name), max_age=YEAR, samesite="lax")
    else:
        response.delete_cookie(CANDIDATE_COOKIE)
    return response


@router.get("/study/{question_id}", response_class=HTMLResponse)
def study(
    request: Request, service: Service, owner: PageOwner, question_id: str, phase: int = 1
) -> HTMLResponse:
    """The simulator: one phase at a time, the prompts to hit and a model answer."""
    question = service.content.question(question_id)
    index = min(max(phase, 1), len(PHASE_IDS)) - 1
    spec = service.content.phases[index]
    return render(
        request,
        "study.html",
        question=question,
        phases=service.content.phases,
        spec=spec,
        index=index,
        model_answer=question.model_answers[spec.id],
    )


# --- the mock interview -------------------------------------------------------------------


def interview_context(service: CoachService, session: Session) -> dict[str, Any]:
    content = service.content
    times = service.engine.time_per_phase(session)
    current = session.phases[session.phase_index]
    return {
        "session": session,
        "question": content.question(session.question_id),
        "phases": content.phases,
        "states": session.phases,
        "times": {t.phase: t for t in times},
        "current": content.phase(session.phase),
        "started_at": current.started_at,
        "now": datetime.now(UTC),
        "grades": {s.phase: s.grade for s in session.phases if s.grade is not None},
        "awaiting_pushback": session.awaiting_pushback_reply(),
        "tips": _criterion_tips(content),
    }


@router.get("/interviews/{interview_id}", response_class=HTMLResponse)
def interview(
    request: Request, service: Service, owner: PageOwner, interview_id: str
) -> HTMLResponse:
    """The chat: transcript, phase stepper, countdown; all state comes from the server."""
    session = service.get_interview(interview_id, owner=owner)
    return render(request, "interview.html", **interview_context(service, session))


@router.get("/interviews/{interview_id}/state", response_class=HTMLResponse)
def interview_state(
    request: Request, service: Service, owner: PageOwner, interview_id: str
) -> HTMLResponse:
    """The parts of the interview page that change, for the script to swap in after a turn."""
    session = service.get_interview(interview_id, owner=owner)
    return render(request, "_interview_state.html", **interview_context(service, session))


# --- reports ------------------------------------------------------------------------------


def _criterion_tips(content: Content) -> dict[tuple[str, str], str | None]:
    return {(p.id, c.id): c.tip for p in content.phases for c in p.criteria}


def report_context(content: Content, report: Report) -> dict[str, Any]:
    sources = [g.source for g in report.phases]
    llm_models = sorted({g.model or "LLM" for g in report.phases if g.source == "llm"})
    if all(s == "offline" for s in sources):
        graded_by = "the offline grader"
    elif all(s == "llm" for s in sources):
        graded_by = f"the LLM ({', '.join(llm_models)})"
    else:
        n_llm = sources.count("llm")
        graded_by = (
            f"the LLM ({', '.join(llm_models)}) for {n_llm} phases and the offline grader "
            f"for {len(sources) - n_llm}"
        )
    question = content.questions.get(report.question_id or "")
    return {
        "report": report,
        "question": question,
        "graded_by": graded_by,
        "overall_explained": overall_explained(content),
        "even_score": even_score(report),
        "radar": charts.radar([(SHORT_TITLES[g.phase], g.score) for g in report.phases]),
        "time_meters": charts.time_meters(
            [
                (SHORT_TITLES[t.phase], t.used_seconds, t.budget_seconds)
                for t in report.time_per_phase
            ]
        ),
        "tips": _criterion_tips(content),
    }


@router.get("/interviews/{interview_id}/report", response_class=HTMLResponse)
def interview_report(
    request: Request, service: Service, owner: PageOwner, interview_id: str
) -> HTMLResponse:
    session = service.get_interview(interview_id, owner=owner)
    if session.report is None:
        raise InterviewStateError(
            "This interview is still in progress, so it has no report yet: continue it, or "
            "end it with “Finish now” to have every phase graded."
        )
    return render(
        request,
        "report.html",
        **report_context(service.content, session.report),
        export=f"/v1/interviews/{session.id}/report.md",
        interview=session,
        grading=None,
    )


@router.get("/gradings/{grading_id}", response_class=HTMLResponse)
def grading(request: Request, service: Service, owner: PageOwner, grading_id: str) -> HTMLResponse:
    """An uploaded answer's report, or its progress while it is graded."""
    record = service.get_grading(grading_id, owner=owner)
    if record.report_json is None:
        return render(request, "grading_pending.html", grading=record)
    report = Report.model_validate_json(record.report_json)
    return render(
        request,
        "report.html",
        **report_context(service.content, report),
        export=f"/v1/gradings/{record.id}/report.md",
        interview=None,
        grading=record,
    )


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request, service: Service, owner: PageOwner) -> HTMLResponse:
    """Paste or drop a whole written answer to have it graded phase by phase."""
    return render(
        request,
        "upload.html",
        questions=list(service.content.questions.values()),
        max_upload_bytes=service.settings.max_upload_bytes,
    )


# --- progress -----------------------------------------------------------------------------


@router.get("/progress", response_class=HTMLResponse)
def progress_page(request: Request, service: Service, owner: PageOwner) -> HTMLResponse:
    """Past interviews and scores over time, the weakest phase, and what to practise next."""
    content = service.content
    candidate = candidate_name(request)
    mine = service.list_interviews(owner=owner, candidate=candidate or None)
    finished = [service.get_interview(s.id, owner=owner) for s in mine if s.status == "finished"][
        :MAX_PROGRESS_INTERVIEWS
    ]
    result = progress(content, finished, {s.question_id for s in mine})
    points = score_points(content, result.finished)
    weakest = result.weakest.phase if result.weakest else None
    phase_meters = charts.score_meters(
        [
            (SHORT_TITLES[a.phase], a.average, f"{a.average:.1f}" if a.count else "–")
            for a in result.averages
        ],
        max_value=4,
        highlight=SHORT_TITLES[weakest] if weakest else None,
    )
    return render(
        request,
        "progress.html",
        interviews=mine[:50],
        titles={q.id: q.title for q in content.questions.values()},
        result=result,
        line=charts.line(points) if points else None,
        phase_meters=phase_meters if result.finished else None,
        suggestion=result.suggestion,
    )


# --- quiz ---------------------------------------------------------------------------------


@router.get("/quiz", response_class=HTMLResponse)
def quiz(
    request: Request, service: Service, owner: PageOwner, q: int = 0, score: int = 0
) -> HTMLResponse:
    """One question at a time; past the last one, the score."""
    return _quiz_page(request, service.content, q, score, choice=None)


@router.post("/quiz", response_class=HTMLResponse)
def quiz_answer(
    request: Request,
    service: Service,
    owner: PageOwner,
    _: SameOrigin,
    q: Annotated[int, Form()],
    score: Annotated[int, Form()] = 0,
    choice: Annotated[int | None, Form()] = None,
) -> HTMLResponse:
    """Check one answer: right or wrong, the right option and why."""
    return _quiz_page(request, service.content, q, score, choice=choice, answered=True)


def _quiz_page(
    request: Request,
    content: Content,
    q: int,
    score: int,
    *,
    choice: int | None,
    answered: bool = False,
) -> HTMLResponse:
    bank = content.quiz
    q = min(max(q, 0), len(bank))
    score = min(max(score, 0), q)
    if q == len(bank):
        return render(request, "quiz.html", item=None, index=q, total=len(bank), score=score)
    item = bank[q]
    missing = answered and (choice is None or not 0 <= choice < len(item.options))
    verdict = None
    if answered and not missing:
        verdict = {"chosen": choice, "correct": choice == item.answer}
        score += 1 if choice == item.answer else 0
    return render(
        request,
        "quiz.html",
        status=422 if missing else 200,
        item=item,
        index=q,
        total=len(bank),
        score=score,
        verdict=verdict,
        missing=missing,
    )


# --- sign-in (COACH_AUTH=token) -----------------------------------------------------------


def _safe_next(target: str) -> str:
    """Only a path on this site: never an address elsewhere (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, service: Service, next: str = "/") -> Response:
    if service.settings.auth == "none":
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "signin.html", next=_safe_next(next), error=None)


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    service: Service,
    _: SameOrigin,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """Keep the token in an HttpOnly cookie: the browser sends it, page script never sees it."""
    secret = token.strip()
    if not secret or service.store.token_id_for(secret) is None:
        return render(
            request,
            "signin.html",
            status=401,
            next=_safe_next(next),
            error="That token is unknown or revoked. Make one with `coach tokens create NAME` "
            "and paste the line it prints.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        secret,
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def signout(_: SameOrigin) -> RedirectResponse:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(TOKEN_COOKIE)
    return response
