"""Whole-answer grading: POST text or a file, get the report now or poll a job."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from coach.api.deps import Budget, Owner, Service
from coach.api.errors import APIError
from coach.api.schemas import GradingProgress, GradingRequest, GradingStatus, error_responses
from coach.grading.models import Report
from coach.render import report_markdown
from coach.store import GradingRecord
from coach.text_input import UPLOAD_TOO_LARGE_HINT, clean_text, upload_text, upload_too_large

router = APIRouter(
    prefix="/v1/gradings",
    tags=["gradings"],
    responses=error_responses(401, 404, 413, 422, 429, 503),
)

UPLOAD_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": GradingRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "question_id": {"type": "string"},
                        "wait": {"type": "boolean"},
                    },
                    "required": ["file"],
                }
            },
        },
    }
}


def status_of(record: GradingRecord) -> GradingStatus:
    report = Report.model_validate_json(record.report_json) if record.report_json else None
    return GradingStatus(
        grading_id=record.id,
        status=record.status,  # type: ignore[arg-type]
        filename=record.filename,
        question_id=record.question_id,
        interview_id=record.interview_id,
        attempts=record.attempts,
        error=record.error,
        created_at=record.created_at,
        updated_at=record.updated_at,
        report=report,
        progress=(
            GradingProgress(
                done=record.steps_done, total=record.steps_total, step=record.step or ""
            )
            if record.steps_total
            else None
        ),
        poll=f"/v1/gradings/{record.id}",
    )


def accepted(record: GradingRecord) -> JSONResponse:
    """202 for work taken on as a job: its status, and where to poll it."""
    status = status_of(record)
    return JSONResponse(
        status.model_dump(mode="json"), status_code=202, headers={"Location": status.poll}
    )


_FORM_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_FORM_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def _form_flag(value: object, name: str) -> bool | None:
    """A multipart field read as a boolean; anything but the usual spellings is refused."""
    if value is None:
        return None
    flag = _FORM_BOOLEANS.get(str(value).strip().lower())
    if flag is None:
        raise APIError(
            422,
            "validation_error",
            f"{name}: {str(value)[:40]!r} is not a boolean; send true or false.",
            field=name,
        )
    return flag


def _first_problem(exc: ValidationError) -> APIError:
    first = exc.errors()[0]
    if first["type"] in ("json_invalid", "model_type"):  # no JSON object at all: as elsewhere
        error = str((first.get("ctx") or {}).get("error", ""))
        if first["type"] == "model_type":
            what = "is not a JSON object"
        elif "hex escape" in error:  # pydantic's words for a lone surrogate such as \ud800
            what = f"holds a broken \\u escape, such as an unpaired UTF-16 surrogate ({error})"
        else:
            what = f"is not valid JSON ({error})"
        return APIError(
            422,
            "invalid_body",
            f'The request body {what}; send a JSON object such as {{"text": "..."}} with '
            "Content-Type: application/json, or a multipart/form-data upload with a 'file' field.",
        )
    field = ".".join(str(p) for p in first["loc"]) or None
    message = f"{field}: {first['msg']}" if field else str(first["msg"])
    return APIError(422, "validation_error", message, field=field)


async def read_request(request: Request, max_bytes: int) -> GradingRequest:
    """A JSON body or a multipart upload, as one GradingRequest with clean text.

    Either way the answer may be `max_bytes` long in UTF-8 (COACH_MAX_UPLOAD_BYTES).
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise APIError(
                422,
                "validation_error",
                "Attach the answer as the form field 'file'.",
                field="file",
            )
        data = await upload.read()
        name = upload.filename or "upload"
        text = upload_text(data, what=f"file {name!r}", max_bytes=max_bytes)
        wait = _form_flag(form.get("wait"), "wait")
        try:
            question_id = form.get("question_id")
            return GradingRequest(
                text=text,
                filename=name[:255],
                question_id=str(question_id) if question_id else None,
                wait=wait,
            )
        except ValidationError as exc:
            raise _first_problem(exc) from exc
    if kind not in ("application/json", ""):
        raise APIError(
            415,
            "unsupported_media_type",
            "Send JSON {\"text\": ...} or a multipart/form-data upload with a 'file' field.",
        )
    try:
        body = GradingRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _first_problem(exc) from exc
    size = len(body.text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise upload_too_large("answer", size, max_bytes, field="text")
    text = clean_text(body.text, max_chars=max_bytes, too_large_hint=UPLOAD_TOO_LARGE_HINT)
    return body.model_copy(update={"text": text})


@router.post(
    "",
    openapi_extra=UPLOAD_DOC,
    responses={202: {"model": GradingStatus, "description": "Accepted as a job; poll it."}},
)
async def create_grading(request: Request, service: Service, budget: Budget) -> Response:
    """Grade a whole written answer phase by phase.

    Returns the report (200) for answers up to COACH_SYNC_GRADING_MAX_CHARS, or 202 with a job
    to poll at /v1/gradings/{id} for longer ones (or when `wait` is false). The answer is
    stored before grading starts, so nothing is lost if grading fails: retry the job.
    """
    settings = service.settings
    body = await read_request(request, settings.max_upload_bytes)
    outcome = await anyio.to_thread.run_sync(
        lambda: service.submit_grading(
            body.text,
            owner=budget.owner,
            spend=budget.spend,
            filename=body.filename,
            question_id=body.question_id,
            wait=body.wait,
        )
    )
    if outcome.report is None:
        return accepted(outcome.record)
    for grade in outcome.report.phases:
        request.app.state.metrics.observe_grade(grade)
    payload = outcome.report.model_dump(mode="json") | {
        "grading_id": outcome.record.id,
        "status": outcome.record.status,
    }
    return JSONResponse(payload, headers={"Location": f"/v1/gradings/{outcome.record.id}"})


@router.get("/{grading_id}")
def get_grading(grading_id: str, service: Service, owner: Owner) -> GradingStatus:
    """A grading job's status, and its report once done."""
    return status_of(service.get_grading(grading_id, owner=owner))


@router.post("/{grading_id}/retry", status_code=202)
def retry_grading(grading_id: str, service: Service, budget: Budget) -> GradingStatus:
    """Grade a failed job again from its stored text."""
    return status_of(service.retry_grading(grading_id, owner=budget.owner, spend=budget.spend))


@router.get("/{grading_id}/report.md", response_class=PlainTextResponse)
def grading_report_md(grading_id: str, service: Service, owner: Owner) -> PlainTextResponse:
    record = service.get_grading(grading_id, owner=owner)
    if not record.report_json:
        raise APIError(
            409, "not_graded_yet", f"Grading {grading_id} is {record.status}; poll it until done."
        )
    report = Report.model_validate_json(record.report_json)
    return PlainTextResponse(
        report_markdown(report, service.content), media_type="text/markdown; charset=utf-8"
    )
