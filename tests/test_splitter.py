"""The upload splitter: every heading style, prose, transcripts, prefaces, and no lost text."""

from __future__ import annotations

import pytest

from coach.content.models import PHASE_IDS, PhaseId
from coach.grading.splitter import split_into_phases

# One short, recognisable body per phase. Each sample answer below wraps these in a different
# heading style, so a test can check that every body lands in its phase and nowhere else.
BODIES: dict[PhaseId, str] = {
    "requirements": "Users post short notes and follow friends; search is out of scope.",
    "estimation": "About 10M daily users posting twice a day gives roughly 230 writes per second.",
    "api": "POST /v1/notes takes the text and returns the new note id.",
    "data_model": "notes(note_id primary key, author_id, body, created_at) lives in Postgres.",
    "architecture": "Start with one app server and one database, then put a cache in front.",
    "deep_dive": "A famous author makes one shard hot; splitting their notes costs a fan-in read.",
}


def _stacked(*headings: str) -> str:
    """Each heading on its own line with its body underneath."""
    return "\n\n".join(f"{h}\n{BODIES[p]}" for h, p in zip(headings, PHASE_IDS, strict=True))


def _inline(*labels: str) -> str:
    """Each label followed by its body on the same line."""
    return "\n\n".join(f"{lab} {BODIES[p]}" for lab, p in zip(labels, PHASE_IDS, strict=True))


HEADING_STYLES: dict[str, str] = {
    "markdown ##": _stacked(
        "## Requirements",
        "## Back-of-the-envelope",
        "## API",
        "## Data model",
        "## High-level architecture",
        "## Deep dive: hot authors",
    ),
    "markdown # with title": "# Notes app\n\n"
    + _stacked(
        "# Scope", "# Estimates", "# Endpoints", "# Schema", "# Architecture", "# Trade-offs"
    ),
    "markdown ### numbered": _stacked(
        "### 1. Clarify",
        "### 2. Capacity",
        "### 3. Interface",
        "### 4. Storage",
        "### 5. Components",
        "### 6. Bottlenecks",
    ),
    "numbered 1.": _stacked(
        "1. Requirements",
        "2. Estimation",
        "3. API",
        "4. Data model",
        "5. Architecture",
        "6. Deep dive",
    ),
    "numbered 1)": _stacked(
        "1) Functional and non-functional requirements",
        "2) Scale estimates",
        "3) RPCs",
        "4) Tables",
        "5) Design",
        "6) Failure modes",
    ),
    "Step N -": _stacked(
        "Step 1 - Requirements",
        "Step 2 - Numbers",
        "Step 3 - API",
        "Step 4 - Database",
        "Step 5 - High-level design",
        "Step 6 - Deep dive",
    ),
    "Phase N —": _stacked(
        "# Phase 1 — What are we building?",
        "# Phase 2 — Sizing",
        "# Phase 3 — API",
        "# Phase 4 — Data",
        "# Phase 5 — Architecture",
        "# Phase 6 — Scaling it",
    ),
    "N/": _stacked("1/ Scope", "2/ Math", "3/ API", "4/ Data", "5/ Diagram", "6/ Follow-ups"),
    "Part N:": _stacked(
        "## Part 1: Scope",
        "## Part 2: Sizing",
        "## Part 3: API",
        "## Part 4: Data model",
        "## Part 5: Architecture",
        "## Part 6: Deep dive",
    ),
    "Part A —": _stacked(
        "## Part A — Requirements",
        "## Part B — Estimation",
        "## Part C — API",
        "## Part D — Schema",
        "## Part E — Architecture",
        "## Part F — Tradeoffs",
    ),
    "**Bold** lines": _stacked(
        "**Requirements**",
        "**Estimation**",
        "**API**",
        "**Data model**",
        "**Architecture**",
        "**Deep dive**",
    ),
    "**Bold.** inline": _inline(
        "**Requirements.**",
        "**Scale.**",
        "**APIs.**",
        "**Data.**",
        "**Architecture.**",
        "**Deep dive.**",
    ),
    "ALL-CAPS lines": _stacked(
        "REQUIREMENTS", "ESTIMATES", "API", "DATA MODEL", "ARCHITECTURE", "DEEP DIVE"
    ),
    "CAPS: inline": _inline("SCOPE:", "NUMBERS:", "API:", "DATA:", "DESIGN:", "DEEP DIVE:"),
    "Label: lines": _stacked(
        "Requirements:", "Estimation:", "Interface:", "Storage:", "Architecture:", "Scaling:"
    ),
    "[bracket]": _stacked(
        "[Requirements]",
        "[Estimation]",
        "[API]",
        "[Data model]",
        "[Architecture]",
        "[Deep dive: hot authors]",
    ),
    "descriptive": _stacked(
        "## What it needs to do",
        "## Back of the envelope",
        "## How clients talk to it (endpoints)",
        "## Storage layout",
        "## The components",
        "## Scaling it",
    ),
    "setext underlines": "Notes app\n=========\n\n"
    + _stacked(
        "Requirements\n------------",
        "Estimation\n----------",
        "API\n---",
        "Data model\n----------",
        "Architecture\n------------",
        "Deep dive\n---------",
    ),
    "bare lowercase": _stacked("scope", "numbers", "api", "data", "design", "deep dive"),
    "numbers when words are vague": _stacked(
        "1) Kickoff",
        "2) Sizing",
        "3) Surface",
        "4) What we keep",
        "5) Boxes",
        "6) Going deeper",
    ),
}


def _assert_each_body_in_its_phase(sections: dict[PhaseId, str]) -> None:
    for phase, body in BODIES.items():
        assert body in sections.get(phase, ""), f"{phase} is missing its text: {sections}"
        for other, text in sections.items():
            if other != phase:
                assert body not in text, f"{phase}'s text also landed in {other}"


@pytest.mark.parametrize("answer", HEADING_STYLES.values(), ids=HEADING_STYLES.keys())
def test_each_heading_style_splits_into_the_six_phases(answer: str) -> None:
    result = split_into_phases(answer)
    assert result.method == "headings"
    _assert_each_body_in_its_phase(result.sections)


PROSE = "\n\n".join(
    [
        "Before designing anything I want to pin down the requirements. Functional: users post "
        "notes and follow people. Non-functional: the feed must be highly available. Search is "
        "out of scope.",
        "Some numbers. With 10M DAU posting twice a day that is 20M writes a day, about 230 per "
        "second on average and maybe 700 at peak. At 1 KB each that is 20 GB per day.",
        "The API is small. POST /v1/notes returns the note id, and GET /v1/feed?cursor=... "
        "returns a page of notes plus the next cursor for pagination.",
        "For storage, a notes table keyed by note_id with an index on author_id, and a follows "
        "table. Postgres fits because every query is by key.",
        "The architecture starts simple: one app server and one database. Reads dominate, so a "
        "cache goes in front, and a queue with workers builds feeds off the request path.",
        "The hard part is the celebrity case: pushing one note to millions of feeds. The "
        "alternative is to pull their notes at read time, which costs latency instead of writes; "
        "I would push for most authors and pull for the few huge ones.",
    ]
)
PROSE_PHASES: list[PhaseId] = list(PHASE_IDS)

TRANSCRIPT = """Interviewer: Design a notes app where people follow each other.

Candidate: Before I start, a few questions. Do we need search? Is the feed ranked? I'll assume \
chronological and that search is out of scope.

Interviewer: Fine. Assume 10 million daily active users.

Candidate: Then 20M posts a day is about 230 writes per second, maybe 700 at peak, and about \
20 GB per day of storage.

Interviewer: What does the API look like?

Candidate: POST /v1/notes returns the id; GET /v1/feed takes a cursor for pagination.

Interviewer: And how would you store it?

Candidate: A notes table with note_id as the primary key and an index on author_id, in Postgres.

Interviewer: Walk me through the architecture.

Candidate: Load balancer, stateless app servers, a Redis cache for feeds, and a queue with \
workers that fan out new notes.

Interviewer: What happens when someone with 50 million followers posts?

Candidate: Pushing to every feed would take minutes, so for those authors I'd switch to pull at \
read time. That trades read latency for write cost, and only for a few accounts.
"""
TRANSCRIPT_EXPECTED: dict[str, PhaseId] = {
    "search is out of scope": "requirements",
    "230 writes per second": "estimation",
    "GET /v1/feed takes a cursor": "api",
    "note_id as the primary key": "data_model",
    "Load balancer, stateless app servers": "architecture",
    "switch to pull at read time": "deep_dive",
}


def test_prose_without_headings_is_split_by_content_in_order() -> None:
    result = split_into_phases(PROSE)
    assert result.method == "content"
    for paragraph, phase in zip(PROSE.split("\n\n"), PROSE_PHASES, strict=True):
        assert paragraph in result.sections.get(phase, ""), f"paragraph not in {phase}"


def test_transcript_is_split_by_exchanges() -> None:
    result = split_into_phases(TRANSCRIPT)
    assert result.method == "content"
    for fragment, phase in TRANSCRIPT_EXPECTED.items():
        assert fragment in result.sections.get(phase, ""), f"{fragment!r} not in {phase}"


def test_bullet_dump_without_headings_still_places_bullets() -> None:
    dump = "\n".join(
        [
            "- 10M DAU, ~230 writes per second, 20 GB per day",
            "- POST /v1/notes, GET /v1/feed with a cursor",
            "- notes table: note_id primary key, author_id index",
            "- app servers behind a load balancer, Redis cache, queue + workers",
        ]
    )
    result = split_into_phases(dump)
    assert result.method == "content"
    assert "230 writes" in result.sections["estimation"]
    assert "GET /v1/feed" in result.sections["api"]
    assert "note_id primary key" in result.sections["data_model"]
    assert "load balancer" in result.sections["architecture"]


@pytest.mark.parametrize(
    ("preface", "kept_in"),
    [
        (
            "I think system design is about judgment and communication, and I'll keep that in "
            "mind throughout.",
            None,
        ),
        (
            "Let me clarify the requirements first: users post notes, and search is out of "
            "scope. I'll assume the feed must be highly available.",
            "requirements",
        ),
    ],
    ids=["generic preface dropped", "requirements preface kept"],
)
def test_preface_goes_to_requirements_only_when_it_is_about_requirements(
    preface: str, kept_in: PhaseId | None
) -> None:
    answer = preface + "\n\n" + HEADING_STYLES["markdown ##"]
    result = split_into_phases(answer)
    assert result.method == "headings"
    _assert_each_body_in_its_phase({p: t.replace(preface, "") for p, t in result.sections.items()})
    holders = [p for p, t in result.sections.items() if preface in t]
    assert holders == ([kept_in] if kept_in else [])


def test_two_headings_for_one_phase_are_joined_in_order() -> None:
    answer = _stacked(
        "## Requirements", "## Estimation", "## API", "## Data model", "## Design", "## Deep dive"
    )
    answer += "\n\n## API, continued\nGET /v1/feed returns a page of notes."
    result = split_into_phases(answer)
    api = result.sections["api"]
    assert api.index(BODIES["api"]) < api.index("GET /v1/feed returns a page")


def test_headings_with_nothing_under_them_give_empty_phases() -> None:
    answer = "\n\n".join(
        [
            f"## Requirements\n{BODIES['requirements']}",
            "## Estimation",
            "## API",
            f"## Data model\n{BODIES['data_model']}",
            f"## Architecture\n{BODIES['architecture']}",
            "## Deep dive",
        ]
    )
    result = split_into_phases(answer)
    assert result.method == "headings"
    for phase in ("estimation", "api", "deep_dive"):
        assert not result.sections.get(phase, "").strip()
    for phase in ("requirements", "data_model", "architecture"):
        assert BODIES[phase] in result.sections[phase]


def test_a_heading_in_another_style_still_opens_its_phase() -> None:
    answer = _stacked(
        "## Requirements", "## Estimation", "## API", "## Data model", "## Architecture", "x"
    ).replace("\n\nx\n", "\n\n**Deep dive**\n")
    result = split_into_phases(answer)
    _assert_each_body_in_its_phase(result.sections)


def test_lists_code_and_comments_inside_a_section_are_not_headings() -> None:
    answer = "\n".join(
        [
            "## Requirements",
            BODIES["requirements"],
            "## Architecture",
            "1. **Gateways** hold the client sockets.",
            "2. **Workers** deliver queued notes.",
            "```",
            "# retry loop, not a heading",
            "```",
            "<!--",
            "## Deep dive",
            "-->",
            "## Deep dive",
            BODIES["deep_dive"],
        ]
    )
    result = split_into_phases(answer)
    arch = result.sections["architecture"]
    assert "**Gateways** hold" in arch
    assert "# retry loop, not a heading" in arch
    assert "<!--\n## Deep dive\n-->" in arch
    assert result.sections["deep_dive"] == BODIES["deep_dive"]


NO_LOSS_CASES: dict[str, tuple[str, set[str]]] = {
    **{
        name: (text, {line for line in text.splitlines() if line not in BODIES.values()})
        for name, text in HEADING_STYLES.items()
        if not name.endswith("inline")
    },
    "prose": (PROSE, set()),
    "transcript": (TRANSCRIPT, set()),
    "unnamed sections": (
        "## Requirements\nUsers post notes.\n\n## Odds and ends\nA cache holds hot feeds.\n"
        "Some API calls: POST /v1/notes.\n\n## Deep dive\nShards get hot.",
        {"## Requirements", "## Odds and ends", "## Deep dive"},
    ),
}


@pytest.mark.parametrize(
    ("text", "heading_lines"), NO_LOSS_CASES.values(), ids=NO_LOSS_CASES.keys()
)
def test_no_text_is_lost(text: str, heading_lines: set[str]) -> None:
    placed = "\n".join(split_into_phases(text).sections.values())
    for line in text.splitlines():
        if line.strip() and line not in heading_lines:
            assert line.strip() in placed, f"lost: {line!r}"


def test_inline_labels_keep_the_text_after_the_label() -> None:
    text = HEADING_STYLES["CAPS: inline"]
    placed = "\n".join(split_into_phases(text).sections.values())
    for body in BODIES.values():
        assert body in placed


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_empty_text_gives_no_sections(text: str) -> None:
    assert split_into_phases(text).sections == {}


def test_same_input_same_split() -> None:
    first = split_into_phases(TRANSCRIPT)
    assert all(split_into_phases(TRANSCRIPT) == first for _ in range(3))
