"""`coach slack ...`: the Slack bot's commands that run outside a Slack request."""

from __future__ import annotations

import typer

from coach.config import Settings
from coach.errors import CoachError

slack_app = typer.Typer(
    help="The Slack bot at /slack/events (COACH_SLACK_BOT_TOKEN, COACH_SLACK_SIGNING_SECRET).",
    no_args_is_help=True,
)


@slack_app.command("weekly-summary")
def weekly_summary(
    channel: str = typer.Option(
        ..., "--channel", help="Channel id to post in, e.g. C0123ABC (the bot must be in it)."
    ),
    team: str | None = typer.Option(
        None, "--team", help="Workspace id (T...); default: the bot token's workspace."
    ),
) -> None:
    """Post the last seven days' practice per member and the team's weakest phase.

    Run it once a week, e.g. from cron: `0 9 * * MON coach slack weekly-summary --channel C0123`.
    """
    from slack_sdk.errors import SlackApiError  # here, so `coach --help` stays quick

    from coach.content.loader import load_content
    from coach.slack.bot import web_client
    from coach.slack.summary import post_weekly_summary
    from coach.store import Store

    settings = Settings()
    if settings.slack_bot_token is None:
        typer.echo("error: set COACH_SLACK_BOT_TOKEN (the bot's xoxb- token) first.", err=True)
        raise typer.Exit(1)
    client = web_client(settings)
    try:
        team_id = team or str(client.auth_test()["team_id"])
        with Store.from_settings(settings) as store:
            post_weekly_summary(
                store, client, load_content(settings), team_id=team_id, channel=channel
            )
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else exc
        typer.echo(f"error: Slack refused the call ({error}).", err=True)
        raise typer.Exit(1) from None
    except CoachError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Posted the weekly summary for workspace {team_id} in {channel}.")
