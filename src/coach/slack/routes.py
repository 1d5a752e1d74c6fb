"""POST /slack/events: every Slack request (events, slash commands, buttons, modals) lands here.

One route on the same FastAPI app as the API and the web pages. Without both Slack settings
the route still exists and says which ones to set.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt import App
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.signature import SignatureVerifier

from coach.api.errors import error_body
from coach.service import CoachService
from coach.slack.bot import build_bolt_app

NOT_CONFIGURED = (
    "The Slack bot is off on this server. Set COACH_SLACK_SIGNING_SECRET and "
    "COACH_SLACK_BOT_TOKEN (from the Slack app created with slack/manifest.yaml) and restart."
)

BAD_SIGNATURE = (
    "The request's Slack signature is missing, wrong or more than 5 minutes old. If Slack sent "
    "it, set COACH_SLACK_SIGNING_SECRET to the app's Signing Secret (Basic Information) and "
    "check this server's clock."
)


BAD_BODY = (
    "The request is signed, but its body is neither the JSON nor the form data Slack sends; "
    "nothing was done."
)


class ThreadedSlackRequestHandler(SlackRequestHandler):
    """bolt's FastAPI adapter, with the (blocking) dispatch moved off the event loop.

    Bolt's sync `App.dispatch` verifies the signature, waits for the listener's `ack()` and
    may call auth.test once; run on the event loop, that would stall every other request.
    The signature is checked here first too: bolt parses the body before it verifies, so an
    unsigned, unparsable body used to be a 500 instead of a 401.
    """

    def __init__(self, app: App, signing_secret: str) -> None:
        super().__init__(app)
        self.verifier = SignatureVerifier(signing_secret)

    async def handle(
        self, req: Request, addition_context_properties: dict[str, Any] | None = None
    ) -> Response:
        body = await req.body()
        if not self.verifier.is_valid_request(body, dict(req.headers)):
            return JSONResponse(error_body("invalid_slack_signature", BAD_SIGNATURE), 401)
        try:
            bolt_request = to_bolt_request(req, body, addition_context_properties)
        except ValueError:  # JSON (or a form's `payload`) that does not parse
            return JSONResponse(error_body("invalid_body", BAD_BODY), 400)
        bolt_response = await anyio.to_thread.run_sync(self.app.dispatch, bolt_request)
        if bolt_response.status == 401:  # bolt's bare {"error": "invalid request"}
            return JSONResponse(error_body("invalid_slack_signature", BAD_SIGNATURE), 401)
        return to_starlette_response(bolt_response)


def slack_router(service: CoachService, *, bolt_app: App | None = None) -> APIRouter:
    """The /slack/events route: the bot when configured, otherwise a 404 naming the settings."""
    router = APIRouter(tags=["slack"], include_in_schema=False)
    if bolt_app is None and not service.settings.slack_enabled:

        @router.post("/slack/events")
        def slack_not_configured() -> JSONResponse:
            return JSONResponse(error_body("slack_not_configured", NOT_CONFIGURED), status_code=404)

        return router

    secret = service.settings.slack_signing_secret
    app = bolt_app or build_bolt_app(service)
    handler = ThreadedSlackRequestHandler(app, secret.get_secret_value() if secret else "")

    @router.post("/slack/events")
    async def slack_events(request: Request) -> Response:
        """Slack's Events API, slash commands and interactivity (bolt checks the signature)."""
        return await handler.handle(request)

    return router
