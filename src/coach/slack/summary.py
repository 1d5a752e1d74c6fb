"""The team's numbers: the leaderboard and the weekly summary, computed from stored practice.

Example::

    stats = team_stats(store.slack_practice("T123", since=now - timedelta(days=7)))
    client.chat_postMessage(channel="C1", blocks=weekly_summary_blocks(stats, content, ...))
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk import WebClient

from coach.content.loader import Content
from coach.content.models import PHASE_IDS, PhaseId
from coach.slack.blocks import Block, context, escape, header, section
from coach.store import SlackPractice, Store

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class MemberStats:
    """One member's practice: how many, how many scored (finished), and their mean score."""

    user_id: str
    name: str
    practices: int
    scored: int
    average: float | None


@dataclass(frozen=True)
class TeamStats:
    members: list[MemberStats]
    phase_averages: dict[PhaseId, float]

    @property
    def practices(self) -> int:
        return sum(m.practices for m in self.members)

    @property
    def weakest_phase(self) -> PhaseId | None:
        """The phase the team scores lowest on (ties go to the earlier phase)."""
        if not self.phase_averages:
            return None
        return min(self.phase_averages, key=lambda p: (self.phase_averages[p], PHASE_IDS.index(p)))


def _count(n: int, noun: str) -> str:
    """'1 practice', '3 practices'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def team_stats(practice: list[SlackPractice]) -> TeamStats:
    """Per-member counts and means, and each phase's mean over every graded phase."""
    by_member: dict[str, list[SlackPractice]] = defaultdict(list)
    phase_scores: dict[PhaseId, list[int]] = defaultdict(list)
    for item in practice:
        by_member[item.user_id].append(item)
        for phase, score in item.phase_scores.items():
            phase_scores[phase].append(score)
    members = []
    for user_id, items in by_member.items():
        scores = [i.overall for i in items if i.overall is not None]
        members.append(
            MemberStats(
                user_id=user_id,
                name=items[-1].display_name,
                practices=len(items),
                scored=len(scores),
                average=sum(scores) / len(scores) if scores else None,
            )
        )
    taken = Counter(m.name for m in members)  # two "Ada"s must be told apart on the board
    members = [
        replace(m, name=f"{m.name} ({m.user_id})") if taken[m.name] > 1 else m for m in members
    ]
    averages = {p: sum(s) / len(s) for p, s in phase_scores.items() if s}
    return TeamStats(members=members, phase_averages=averages)


def _member_line(rank: int, m: MemberStats) -> str:
    count = _count(m.practices, "practice")
    score = (
        f"average *{m.average:.0f}*/100 over {m.scored}"
        if m.average is not None
        else "no score yet"
    )
    return f"{rank}. *{escape(m.name)}*: {count}, {score}"


def _weakest_line(stats: TeamStats, content: Content) -> str:
    weakest = stats.weakest_phase
    if weakest is None:
        return "No phase graded yet, so no weakest phase."
    phase = content.phase(weakest)
    return (
        f"*Team weakest phase*: {phase.title} (average {stats.phase_averages[weakest]:.1f}/4). "
        f"Next time, hit its prompts: {escape(phase.prompts_to_hit[0])}"
    )


def leaderboard_blocks(stats: TeamStats, content: Content) -> list[Block]:
    """Members by average score (then practice count); everyone who practised is listed."""
    if not stats.members:
        return [
            header("Leaderboard"),
            section("Nobody has practised yet. Be the first: `/coach start`."),
        ]
    ranked = sorted(
        stats.members,
        key=lambda m: (m.average is None, -(m.average or 0), -m.practices, m.name.lower()),
    )
    lines = [_member_line(i, m) for i, m in enumerate(ranked[:25], start=1)]
    return [
        header("Leaderboard"),
        section("\n".join(lines)),
        context(_weakest_line(stats, content)),
    ]


def weekly_summary_blocks(
    stats: TeamStats, content: Content, *, since: datetime, until: datetime
) -> list[Block]:
    """This week's practice per member (most active first) and the team's weakest phase."""
    span = f"{since:%b %-d} to {until:%b %-d}"
    if not stats.members:
        return [
            header("Weekly practice summary"),
            section(f"No practice from {span}. A mock interview takes 45 minutes: `/coach start`."),
        ]
    ranked = sorted(stats.members, key=lambda m: (-m.practices, -(m.average or 0), m.name.lower()))
    members = len(stats.members)
    return [
        header("Weekly practice summary"),
        section(
            f"{_count(stats.practices, 'practice')} by {members} "
            f"member{'s' if members != 1 else ''}, {span}."
        ),
        section("\n".join(_member_line(i, m) for i, m in enumerate(ranked[:25], start=1))),
        section(_weakest_line(stats, content)),
    ]


def post_weekly_summary(
    store: Store,
    client: WebClient,
    content: Content,
    *,
    team_id: str,
    channel: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Post the last seven days' summary for one workspace; returns Slack's answer."""
    until = now or datetime.now(UTC)
    since = until - WEEK
    stats = team_stats(store.slack_practice(team_id, since=since))
    blocks = weekly_summary_blocks(stats, content, since=since, until=until)
    text = f"Weekly practice summary: {_count(stats.practices, 'practice')}."
    response = client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    return dict(response.data) if isinstance(response.data, dict) else {}
