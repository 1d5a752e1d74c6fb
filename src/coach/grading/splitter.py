"""Cut a whole written answer into the six phases, by its headings or, failing that, by content.

Candidates write in every style: Markdown headings, `Step 2 -`, `3/`, bold or ALL-CAPS labels,
`[Brackets]`, bare one-word lines over bullet lists, prose, or interviewer/candidate transcripts.
The splitter finds the heading style that names the most phases, maps each heading to a phase by
its words (falling back to its number and position), and hands any text it cannot place by
heading to a cue-word classifier. Without usable headings the whole answer goes through that
classifier in document order. No text is lost: every line that is not a heading ends up in a
section, except a preface before the first heading that is not about requirements.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from coach.content.models import PHASE_IDS, PhaseId
from coach.grading.port import SplitResult

__all__ = ["split_into_phases"]

_ORDER: dict[PhaseId, int] = {p: i for i, p in enumerate(PHASE_IDS)}

# --- Words in a heading that name a phase ------------------------------------------------------
# (pattern, weight): specific words weigh 1, generic ones ("data", "design") 0.5, so that
# "API design" is api and "Data model" is data_model, while "Data" alone is still data_model.

_HEADING_WORDS: dict[PhaseId, list[tuple[str, float]]] = {
    "requirements": [
        (r"requirements?|\breqs?\b|\bnfrs?\b|\bfrs?\b", 1),
        (r"\bscop(e|ing)\b|clarif|functional|use[- ]cases?|problem statement", 1),
        (r"\bassum(e|ptions?)\b|\bgoals?\b|\bconstraints?\b|\bfeatures?\b", 0.5),
        (r"what (are we|we're|we are|it|the system|does it) (build|need|do)", 1),
        (r"needs? to do|what it does|\bwhat\b.*\bbuild", 0.5),
    ],
    "estimation": [
        (r"estimat|back[- ]of[- ](the[- ])?envelope|\bcapacity\b|\bsizing\b|\bsize\b", 1),
        (r"\bmaths?\b|arithmetic|\bnumbers\b|calculations?|\bqps\b|\bdau\b|\bthroughput\b", 1),
        (r"\bscale\b(?!\s+(it|up|out|this|the))|\btraffic\b|\bload\b|\bquantities\b", 0.5),
    ],
    "api": [
        (r"\bapis?\b|interfaces?|endpoints?|\brpcs?\b|\bgrpc\b|\brest\b|contracts?", 1),
        (r"\bprotocols?\b|\bclient[- ]server\b", 0.5),
    ],
    "data_model": [
        (r"data[- ]?models?|\bschemas?\b|\btables?\b|\bdatabases?\b|\bdb\b|entities", 1),
        (r"\bstorage\b|\bpersistence\b|\bdata layer\b|\bstores?\b", 0.5),
        (r"\bdata\b", 0.5),
    ],
    "architecture": [
        (r"architecture|high[- ]level|\bcomponents?\b|\bdiagrams?\b|\bboxes\b", 1),
        (r"\bdesign\b|\bflows?\b|\bpipeline\b|system overview|how it fits", 0.5),
        (r"\bbuilding blocks?\b|\bread path\b|\bwrite path\b|\bsketch\b", 0.5),
    ],
    "deep_dive": [
        (r"deep[- ]?dives?|trade[- ]?offs?|bottlenecks?|\bscaling\b|scale (it|up|out)", 2),
        (r"\bfailures?\b|failure modes?|\bfaults?\b|follow[- ]?ups?|hot (spots?|keys?|shards?)", 1),
        (r"edge cases?|reliability|resilien|improvements?|extensions?|open questions", 1),
        (r"\bproblems\b|\bissues\b|\bconcerns\b|\brisks?\b|\bsharding\b|\bpartitioning\b", 0.5),
        (r"consistency|concurrency|celebrit|what if|\bdeeper\b", 0.5),
    ],
}
_HEADING_RES: dict[PhaseId, list[tuple[re.Pattern[str], float]]] = {
    phase: [(re.compile(p, re.IGNORECASE), w) for p, w in pats]
    for phase, pats in _HEADING_WORDS.items()
}
# Headings that are deliberately about no single phase: titles, summaries, prefaces.
_NON_PHASE_RE = re.compile(
    r"^(summary|conclusions?|recap|preface|introduction|intro|overview|tl;?dr|notes?|other|"
    r"misc(ellaneous)?|appendix|wrap[- ]?up|final thoughts|closing|references|background|"
    r"putting it (all )?together|why this design works)\b"
    r"|^design(ing)?\b(?!\s*(overview|sketch|details?|v\d)?\s*$)",
    re.IGNORECASE,
)

# --- Cue words in body text, for placing text by content -----------------------------------
# Matched on lowercase tokens (fast: one tokenizer pass, dictionary look-ups), so a 2,000-word
# answer is classified in about a millisecond. Stems match any token starting with them.

_CUE_WORDS: dict[PhaseId, str] = {
    "requirements": """requirement requirements functional nonfunctional scope nfr nfrs features
        feature sla slo availability available priorities prioritise prioritize assumptions
        assumption assume assuming questions""",
    "estimation": """dau mau qps rps tps estimate estimates estimation peak average avg bandwidth
        throughput capacity numbers million billion thousand trillion kb mb gb tb pb bytes
        per second seconds""",
    "api": """api apis endpoint endpoints rpc rpcs grpc rest restful response responses returns
        return cursor websocket websockets header headers http https bearer interface webhook
        webhooks oauth jwt token tokens request requests""",
    "data_model": """table tables schema schemas column columns index indexes indexed field
        fields row rows entity entities record records collection collections postgres
        postgresql mysql cassandra dynamodb mongodb sql nosql bigtable hbase scylladb
        database databases db stored store stores storage bigint varchar timestamp uuid""",
    "architecture": """architecture lb balancer balancers service services cache caching redis
        memcached cdn queue queues kafka worker workers gateway gateways flow components
        component simplest microservice microservices diagram replica replicas stateless
        s3 pipeline consumer consumers producer producers naive""",
    "deep_dive": """tradeoff tradeoffs bottleneck bottlenecks celebrity celebrities fail fails
        failure failures failover failed dies shard shards sharding sharded consistent
        consistency alternative alternatively instead options option race conflict
        conflicts retry retries fanout push pull lock locks locking lease ordering
        duplicate duplicates growth downside hotspot hotspots""",
}
_CUE_STEMS: dict[str, PhaseId] = {
    "clarif": "requirements",
    "durab": "requirements",
    "estimat": "estimation",
    "paginat": "api",
    "idempoten": "api",
    "authent": "api",
    "authori": "api",
    "denormali": "data_model",
    "partition": "data_model",
    "celebrit": "deep_dive",
    "crash": "deep_dive",
    "stale": "deep_dive",
    "dedup": "deep_dive",
    "rebalanc": "deep_dive",
}
_CUE_PHRASES: dict[PhaseId, str] = {
    "requirements": """non functional | in scope | out of scope | should we support | do we need
        | users can | users should | highly available | out of | nice to have | need to do
        | needs to do | should do | must do | is it only | be able to""",
    "estimation": """per day | a day | per month | per year | back of | of the envelope
        | read heavy | write heavy | per sec""",
    "api": """request body | status code | idempotency key | rate limit""",
    "data_model": """primary key | partition key | sort key | foreign key | clustering key
        | data model | key value | wide column""",
    "architecture": """load balancer | app server | app servers | application servers
        | read path | write path | start simple | start with | object storage | high level
        | message queue""",
    "deep_dive": """deep dive | trade off | trade offs | hot key | hot keys | hot spot
        | hot spots | hot shard | hot partition | at the cost of | what if | fan out
        | buys us | gives up | thundering herd | single point | hard part | hardest part
        | tricky part | interesting part | biggest risk | harder part | what happens
        | stress that | more time | pushback | what about | would you consider | you said
        | you mentioned | how would you handle | how do you handle | how long does""",
}
_WORD_PHASE: dict[str, PhaseId] = {
    word: phase for phase, words in _CUE_WORDS.items() for word in words.split()
}
_PHRASE_PHASE: dict[tuple[str, ...], PhaseId] = {
    tuple(phrase.split()): phase
    for phase, phrases in _CUE_PHRASES.items()
    for phrase in phrases.split("|")
}
_PHRASE_STARTS = frozenset(words[0] for words in _PHRASE_PHASE)
_STEMS = tuple(_CUE_STEMS)
_UNITS = frozenset({"k", "m", "b", "bn", "kb", "mb", "gb", "tb", "pb", "byte", "bytes"})
_UNITS |= {"million", "billion", "thousand", "trillion"}
_RATE_UNITS = frozenset({"s", "sec", "second", "day", "d", "yr", "year", "month", "min", "hour"})
_SYMBOL_CUES: dict[str, PhaseId] = {
    "→": "architecture",
    "->": "architecture",
    "≈": "estimation",
    "~": "estimation",
    "×": "estimation",
    "/": "estimation",  # only before a time unit: 10K/s, 4 TB/day
}
_TIMES = frozenset({"×", "x"})
_HTTP_VERBS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_TOKEN_RE = re.compile(r"[A-Za-z0-9_]+|->|[→≈×~/]")
_NUM_UNIT_RE = re.compile(r"\d+(?:k|m|b|bn|kb|mb|gb|tb|pb|x)", re.IGNORECASE)
_OPENING_RE = re.compile(r"[^\n]{0,200}?(?:[.?!:](?=\s)|\n|$)")
_BACKWARD_WEIGHT = 0.6  # a chunk returning to an earlier phase needs clearly more cues
_CUE_CAP = 2  # one word repeated many times counts at most this often

# --- Heading shapes ----------------------------------------------------------------------------

_UNDERLINE_RE = re.compile(r"^\s{0,3}(=|-)\1{2,}\s*$")
_FENCE_RE = re.compile(r"^\s{0,3}(```|~~~)")
_MD_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_BRACKET_RE = re.compile(r"^\s{0,3}\[([^\]\n]{2,60})\](?!\()\s*:?\s*(.*)$")
_BOLD_RE = re.compile(r"^\s{0,3}(\*\*|__)(?P<label>[^*_\n]{1,70}?)\1\s*(?P<rest>.*)$")
_STEP_RE = re.compile(
    r"^(?:step|phase|part|stage|section)\s+(?P<num>\d{1,2}|[a-f]|one|two|three|four|five|six)\b"
    r"\s*(?:[-–—:.)/]+\s*|\s+)?(?P<title>.*)$",
    re.IGNORECASE,
)
_NUM_RE = re.compile(r"^\s{0,3}(?P<num>\d{1,2})(?P<mark>[.)/:])\s+(?P<title>.+)$")
_NUM_BOLD_RE = re.compile(
    r"^\*\*(?P<label>[^*\n]{1,50}?)(?P<p1>[:.]?)\*\*(?P<p2>[:.]?)\s*(?P<rest>.*)$"
)
_LABEL_RE = re.compile(r"^(?P<label>[A-Z][\w'&/()+,\- ]{0,40}?)\s*:(?:\s+(?P<rest>.*))?$")
_DOT_LABEL_RE = re.compile(r"^(?P<label>[A-Z][A-Za-z/&\- ]{1,30})\.\s+(?P<rest>\S.*)$")
_INNER_NUM_RE = re.compile(r"^(\d{1,2})\s*[.)/:\-–—]\s*(.*)$")
_THREE_LETTERS_RE = re.compile(r"[^\W\d_](?:.*?[^\W\d_]){2}")
_BULLET_RE = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)])\s+")
_SPEAKER_RE = re.compile(
    r"^\s*(?:\*\*|__)?(?P<who>interviewer|candidate|interviewee|me|you|q|a|i|c)"
    r"(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?",
    re.IGNORECASE,
)
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_END_PUNCT = tuple(".,;!?")

# Styles tried together: an ALL-CAPS line and an ALL-CAPS `LABEL:` are one style in practice.
_STYLE_SETS: tuple[frozenset[str], ...] = (
    frozenset({"md1"}),
    frozenset({"md2"}),
    frozenset({"md3"}),
    frozenset({"md4"}),
    frozenset({"md1", "md2", "md3", "md4", "md5", "md6"}),
    frozenset({"step"}),
    frozenset({"num."}),
    frozenset({"num)"}),
    frozenset({"num/"}),
    frozenset({"num:"}),
    frozenset({"bold"}),
    frozenset({"bracket"}),
    frozenset({"caps"}),
    frozenset({"caps", "capslabel"}),
    frozenset({"caps", "capslabel", "label"}),
    frozenset({"bare"}),
    frozenset({"bare", "caps"}),  # terse notes: "API" in capitals among lowercase headings
)
_INLINE_STYLES = frozenset({"label", "capslabel", "bare"})
_MIN_PHASES = 2  # a heading style must name at least this many phases to be used


@dataclass(frozen=True, slots=True)
class _Heading:
    line: int
    style: str
    title: str
    number: int | None
    rest: str  # text after an inline label, e.g. "SCOPE: upload a photo" -> "upload a photo"
    underlined: bool = False  # a Markdown "setext" heading: the next line is ==== or ----


def split_into_phases(text: str) -> SplitResult:
    """Split a whole answer into phase sections; method says whether headings were used."""
    lines = text.splitlines()
    headings = _find_headings(lines)
    if not _is_transcript(lines):
        chosen = _choose_headings(headings, lines)
        if chosen:
            return SplitResult(sections=_split_by_headings(lines, chosen), method="headings")
    return SplitResult(sections=_split_by_content(lines), method="content")


# --- Finding headings --------------------------------------------------------------------------


def _find_headings(lines: list[str]) -> list[_Heading]:
    found: list[_Heading] = []
    in_fence = in_comment = False
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_comment:
            in_comment = "-->" not in line
            continue
        if "<!--" in line:  # a hidden comment is never a heading
            in_comment = "-->" not in line.split("<!--", 1)[1]
            continue
        if in_fence or not line.strip():
            continue
        heading = _parse_heading(line, lines, i)
        if heading:
            found.append(heading)
    return found


def _parse_heading(line: str, lines: list[str], i: int) -> _Heading | None:
    stripped = line.strip()
    underline = _UNDERLINE_RE.match(lines[i + 1]) if i + 1 < len(lines) else None
    if underline and len(stripped.split()) <= 8 and not _BULLET_RE.match(line):
        title, number = _inner_title(stripped)
        level = "md1" if underline.group(1) == "=" else "md2"
        return _Heading(i, level, title, number, "", underlined=True)
    if m := _MD_RE.match(line):
        title, number = _inner_title(m.group(2))
        return _Heading(i, f"md{len(m.group(1))}", title, number, "")
    if m := _BRACKET_RE.match(line):
        if m.group(1).strip().lower() in {"x", " ", ""}:
            return None
        title, number = _inner_title(m.group(1))
        return _Heading(i, "bracket", title, number, m.group(2).strip())
    if m := _BOLD_RE.match(line):
        label, rest = m.group("label").strip(), m.group("rest").strip()
        inline = label.endswith((":", ".")) or rest[:1] in {":", "."}
        if rest and not inline:
            return None  # a bold word opening a sentence, not a label
        rest = rest.lstrip(":.").strip()
        title, number = _inner_title(label.rstrip(":.").strip())
        if len(title.split()) > 8:
            return None
        return _Heading(i, "bold", title, number, rest)
    if m := _STEP_RE.match(stripped):
        title, rest = _split_label(m.group("title"))
        if len(title.split()) > 8:
            return None  # "Step one is to ask what the product does": a sentence
        return _Heading(i, "step", title, _to_number(m.group("num")), rest)
    if m := _NUM_RE.match(line):
        return _numbered(m, i)
    if _is_caps_line(stripped):
        return _Heading(i, "caps", stripped.rstrip(":").strip(), None, "")
    if (m := _LABEL_RE.match(stripped)) and not _BULLET_RE.match(line):
        label = m.group("label").strip()
        rest = (m.group("rest") or "").strip()
        if len(label.split()) > (3 if rest else 5) or rest.startswith("//"):
            return None  # "The design starts simple: ..." is a sentence, not a label
        capitals = label.upper() == label and _THREE_LETTERS_RE.search(label) is not None
        return _Heading(i, "capslabel" if capitals else "label", label, None, rest)
    if (m := _DOT_LABEL_RE.match(stripped)) and (i == 0 or not lines[i - 1].strip()):
        label = m.group("label")  # "Estimation. Say 100M new URLs a day..." opening a paragraph
        if len(label.split()) <= 3 and _phase_words(label):
            return _Heading(i, "label", label, None, m.group("rest"))
    if _is_bare_heading(stripped, lines, i):
        return _Heading(i, "bare", stripped, None, "")
    return None


def _numbered(m: re.Match[str], i: int) -> _Heading | None:
    number, mark, title = int(m.group("num")), m.group("mark"), m.group("title").strip()
    rest = ""
    if b := _NUM_BOLD_RE.match(title):
        title, rest = b.group("label").strip(), b.group("rest").strip()
        if rest and not (b.group("p1") or b.group("p2")):
            return None  # "1. **Gateways** only terminate sockets": a list item, not a heading
    elif mark != ":" and ": " in title:
        title, rest = _split_label(title)
    if len(title.split()) > 8 or len(title) > 70 or (not rest and title.endswith(_END_PUNCT)):
        return None
    return _Heading(i, f"num{mark}", title, number, rest)


def _inner_title(text: str) -> tuple[str, int | None]:
    """Strip bold marks and a `Step 2 -` / `3.` prefix from a heading's text."""
    text = text.strip().strip("*_").strip()
    if m := _STEP_RE.match(text):
        return m.group("title").strip(), _to_number(m.group("num"))
    if m := _INNER_NUM_RE.match(text):
        return m.group(2).strip(), int(m.group(1))
    return text, None


def _split_label(text: str) -> tuple[str, str]:
    """`Deep dive: nearby search` stays whole; `Scope: users post photos, ...` splits."""
    text = text.strip()
    head, sep, tail = text.partition(": ")
    if sep and len(tail.split()) > 6:
        return head.strip(), tail.strip()
    return text, ""


def _to_number(token: str) -> int | None:
    token = token.lower()
    if token.isdigit():
        return int(token)
    if token in _NUMBER_WORDS:
        return _NUMBER_WORDS[token]
    if len(token) == 1 and "a" <= token <= "f":
        return ord(token) - ord("a") + 1
    return None


def _is_caps_line(line: str) -> bool:
    return (
        len(line) <= 80
        and line.upper() == line
        and _THREE_LETTERS_RE.search(line) is not None
        and not _BULLET_RE.match(line)
        and not line.endswith((".", ","))
    )


def _is_bare_heading(line: str, lines: list[str], i: int) -> bool:
    """A short line with no punctuation, after a blank line and right above its content."""
    if len(line) > 40 or len(line.split()) > 5 or line.endswith((*_END_PUNCT, ":")):
        return False
    if _BULLET_RE.match(line) or not line[0].isalpha():
        return False
    before_blank = i == 0 or not lines[i - 1].strip()
    after_content = i + 1 < len(lines) and bool(lines[i + 1].strip())
    return before_blank and after_content


def _is_transcript(lines: list[str]) -> bool:
    """At least two questions and two replies marked with speaker labels."""
    speakers: Counter[str] = Counter()
    for line in lines:
        if m := _SPEAKER_RE.match(line):
            who = m.group("who").lower()
            speakers["asks" if who in {"interviewer", "q", "i", "you"} else "answers"] += 1
    return speakers["asks"] >= 2 and speakers["answers"] >= 2


# --- Mapping headings to phases ----------------------------------------------------------------


@lru_cache(maxsize=4096)
def _phase_words(title: str) -> tuple[PhaseId, ...] | None:
    """Phases a heading's words name (ties all listed), () for none, None for "not a phase".

    None marks headings that are about no single phase on purpose: "Summary", a title.
    """
    clean = re.sub(r"[*_`#\[\]]", "", title).strip()
    scores: dict[PhaseId, float] = {}
    for phase, patterns in _HEADING_RES.items():
        score = sum(w for rx, w in patterns if rx.search(clean))
        if score:
            scores[phase] = score
    if _NON_PHASE_RE.search(clean) and max(scores.values(), default=0) < 2:
        return None
    best = max(scores.values(), default=0)
    return tuple(p for p in PHASE_IDS if best and scores.get(p) == best)


def _assign_phases(headings: list[_Heading]) -> list[PhaseId | None]:
    """Each heading's phase: by its words, else its number (with the doc's offset), else order."""
    words = [_phase_words(h.title) for h in headings]
    offsets = Counter(
        _ORDER[w[0]] + 1 - h.number
        for h, w in zip(headings, words, strict=True)
        if h.number is not None and w and len(w) == 1
    )
    offset = offsets.most_common(1)[0][0] if offsets else 0
    phases: list[PhaseId | None] = []
    for h, w in zip(headings, words, strict=True):
        if w is None:
            phases.append(None)
        elif len(w) == 1:
            phases.append(w[0])
        elif h.number is not None and 1 <= h.number + offset <= len(PHASE_IDS):
            indexed = PHASE_IDS[h.number + offset - 1]
            phases.append(indexed if not w or indexed in w else w[0])
        else:
            phases.append(None)  # ambiguous (decided by order below) or unnamed
    # Ambiguous headings (two phases tie): take the first candidate not before the previous one.
    last = -1
    for idx, w in enumerate(words):
        if phases[idx] is None and w and len(w) > 1:
            later = [p for p in w if _ORDER[p] >= last]
            phases[idx] = (later or w)[0]
        if (phase := phases[idx]) is not None:
            last = _ORDER[phase]
    return phases


def _choose_headings(
    headings: list[_Heading], lines: list[str]
) -> list[tuple[_Heading, PhaseId | None]]:
    """The heading style that names the most phases; [] when none names enough."""
    best: tuple[tuple[int, int, int, int], list[tuple[_Heading, PhaseId | None]]] | None = None
    for rank, styles in enumerate(_STYLE_SETS):
        chosen = [h for h in headings if h.style in styles]
        if len(chosen) < _MIN_PHASES:
            continue
        phases = _assign_phases(chosen)
        named = len({w[0] for h in chosen if (w := _phase_words(h.title)) and len(w) == 1})
        distinct = len({p for p in phases if p})
        if named < _MIN_PHASES:
            continue
        key = (named, distinct, -len(chosen), -rank)
        if best is None or key > best[0]:
            best = (key, list(zip(chosen, phases, strict=True)))
    if best is None:
        return []
    pairs = _add_stray_headings(best[1], headings)
    # A long unheaded opening means the headings are incidental labels, not the structure.
    first_mapped = next(h.line for h, p in pairs if p)
    before = sum(len(ln.split()) for ln in lines[:first_mapped])
    total = sum(len(ln.split()) for ln in lines) or 1
    if best[0][0] < 4 and before / total > 0.4:
        return []
    return pairs


def _add_stray_headings(
    pairs: list[tuple[_Heading, PhaseId | None]], headings: list[_Heading]
) -> list[tuple[_Heading, PhaseId | None]]:
    """Also use a heading of another style that names a phase the main style never names.

    Writers mix styles ("## API" ... "**Deep dive**"); inline labels never count, since
    "Storage:" inside an estimate is a sub-point, not a section.
    """
    named = {p for _, p in pairs if p}
    used = {h.line for h, _ in pairs}
    start = pairs[0][0].line
    extra = [
        (h, w[0])
        for h in headings
        if h.line > start
        and h.line not in used
        and h.style not in _INLINE_STYLES
        and not h.rest
        and (w := _phase_words(h.title))
        and len(w) == 1
        and w[0] not in named
    ]
    if not extra:
        return pairs
    return sorted([*pairs, *extra], key=lambda hp: hp[0].line)


# --- Splitting ---------------------------------------------------------------------------------


def _split_by_headings(
    lines: list[str], pairs: list[tuple[_Heading, PhaseId | None]]
) -> dict[PhaseId, str]:
    parts: dict[PhaseId, list[str]] = {}
    first = pairs[0][0].line
    preface = "\n".join(lines[:first]).strip()
    current: PhaseId | None = None
    for n, (heading, phase) in enumerate(pairs):
        end = pairs[n + 1][0].line if n + 1 < len(pairs) else len(lines)
        start = heading.line + (2 if heading.underlined else 1)
        body = "\n".join(([heading.rest] if heading.rest else []) + lines[start:end])
        if phase is not None:
            current = phase
            _add(parts, phase, body)
        elif current is None:
            preface = f"{preface}\n\n{body}".strip()  # an unnamed section before any phase
        else:
            for chunk_phase, chunk in _classify_chunks(_chunks(body.splitlines()), current):
                _add(parts, chunk_phase, chunk)
    if preface and _clearly_requirements(preface):
        parts.setdefault("requirements", []).insert(0, preface)
    return _join(parts)


def _split_by_content(lines: list[str]) -> dict[PhaseId, str]:
    chunks = _turns(lines) if _is_transcript(lines) else _chunks(lines)
    parts: dict[PhaseId, list[str]] = {}
    for phase, chunk in _classify_chunks(chunks, None):
        _add(parts, phase, chunk)
    return _join(parts)


def _chunks(lines: list[str]) -> list[str]:
    """Paragraphs; a paragraph of bullets or labelled lines is cut at each bullet or label."""
    chunks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            chunks.extend(_cut_list(para))
            para.clear()

    for line in lines:
        if line.strip():
            para.append(line)
        else:
            flush()
    flush()
    return chunks


def _cut_list(para: list[str]) -> list[str]:
    starts = [
        i
        for i, line in enumerate(para)
        if (_BULLET_RE.match(line) and not line[:1].isspace())
        or _LABEL_RE.match(line.strip())
        or _is_caps_line(line.strip())
    ]
    if len(starts) < 2:
        return ["\n".join(para)]
    if starts[0] != 0:
        starts.insert(0, 0)
    return ["\n".join(para[a:b]) for a, b in zip(starts, [*starts[1:], len(para)], strict=True)]


def _turns(lines: list[str]) -> list[str]:
    """Transcript exchanges: an interviewer turn together with the replies that follow it."""
    exchanges: list[list[str]] = []
    for line in lines:
        m = _SPEAKER_RE.match(line)
        asks = m is not None and m.group("who").lower() in {"interviewer", "q", "i", "you"}
        if asks or not exchanges:
            exchanges.append([])
        exchanges[-1].append(line)
    return ["\n".join(e).strip() for e in exchanges if "\n".join(e).strip()]


@lru_cache(maxsize=8192)
def _token_cue(word: str) -> tuple[PhaseId, str] | str | None:
    """What one token says on its own: a cue, a marker needing the next token, or nothing."""
    tok = word.lower()
    if phase := _WORD_PHASE.get(tok):
        return phase, tok
    if tok.startswith(_STEMS):
        return next(p for stem, p in _CUE_STEMS.items() if tok.startswith(stem)), tok[:6]
    if tok.isdigit():
        return "number"  # a cue only before a unit: "4 TB", "3 × 10"
    if tok in _SYMBOL_CUES:
        return (_SYMBOL_CUES[tok], tok) if tok != "/" else "slash"
    if tok.endswith("_id"):
        return "data_model", tok
    if tok[0].isdigit() and _NUM_UNIT_RE.fullmatch(tok):
        return "estimation", "number"
    if word in _HTTP_VERBS:
        return "verb"
    if word[0].islower() and not word.islower() and word.isalpha():
        return "api", "call"  # getFeed, logEvent: an RPC name
    return None


def _cue_scores(text: str) -> dict[PhaseId, int]:
    """How many cue words of each phase the text holds (each distinct cue at most twice)."""
    raw = _TOKEN_RE.findall(text)
    toks = [t.lower() for t in raw]
    toks += ["", ""]  # so toks[i + 1] and toks[i + 2] always exist
    seen: dict[tuple[PhaseId, str], int] = {}
    for i, word in enumerate(raw):
        cue = _token_cue(word)
        if cue is not None:
            if isinstance(cue, str):
                nxt = toks[i + 1]
                if cue == "number" and (nxt in _UNITS or nxt in _TIMES):
                    cue = ("estimation", "number")
                elif cue == "slash" and nxt in _RATE_UNITS:
                    cue = ("estimation", "rate")
                elif cue == "verb" and nxt == "/":
                    cue = ("api", word)
            if isinstance(cue, tuple):
                seen[cue] = seen.get(cue, 0) + 1
        tok = toks[i]
        if tok in _PHRASE_STARTS:
            nxt = toks[i + 1]
            phrase = _PHRASE_PHASE.get((tok, nxt)) or _PHRASE_PHASE.get((tok, nxt, toks[i + 2]))
            if phrase:
                key = (phrase, f"{tok} {nxt}")
                seen[key] = seen.get(key, 0) + 1
    scores: dict[PhaseId, int] = {}
    for (phase, _), count in seen.items():
        scores[phase] = scores.get(phase, 0) + min(count, _CUE_CAP)
    return scores


def _chunk_scores(chunk: str) -> dict[PhaseId, int]:
    """Cue scores with the opening counted three times: it usually names the topic.

    The opening is the first sentence, or in a transcript the interviewer's whole question.
    """
    scores = _cue_scores(chunk)
    if _SPEAKER_RE.match(chunk):
        opening = chunk.split("\n", 1)[0]
    elif m := _OPENING_RE.match(chunk):
        opening = m.group(0)
    else:
        opening = ""
    extra = scores if opening == chunk else _cue_scores(opening) if opening else {}
    return {p: scores.get(p, 0) + 2 * extra.get(p, 0) for p in scores.keys() | extra.keys()}


def _pick(scores: dict[PhaseId, int], previous: PhaseId | None) -> PhaseId | None:
    """The best-cued phase. Answers mostly move forward, so going back costs a discount."""
    if not scores:
        return previous
    weighted = {
        p: v * (_BACKWARD_WEIGHT if previous and _ORDER[p] < _ORDER[previous] else 1.0)
        for p, v in scores.items()
    }
    best = max(weighted.values())
    tied = [p for p in PHASE_IDS if weighted.get(p) == best]
    if previous in tied:
        return previous
    if previous is not None:
        later = [p for p in tied if _ORDER[p] >= _ORDER[previous]]
        return (later or tied)[0]
    return tied[0]


def _classify_chunks(chunks: list[str], previous: PhaseId | None) -> list[tuple[PhaseId, str]]:
    """Each chunk to the phase it cues most; ties and cue-less chunks follow the one before."""
    placed: list[tuple[PhaseId | None, str]] = []
    for chunk in chunks:
        previous = _pick(_chunk_scores(chunk), previous)
        placed.append((previous, chunk))
    # Cue-less chunks at the very start join the first chunk that has a phase.
    first = next((p for p, _ in placed if p), "requirements")
    return [(p or first, c) for p, c in placed]


def _clearly_requirements(text: str) -> bool:
    scores = _cue_scores(text)
    req = scores.get("requirements", 0)
    return req >= 2 and all(req > v for p, v in scores.items() if p != "requirements")


def _add(parts: dict[PhaseId, list[str]], phase: PhaseId, body: str) -> None:
    body = body.strip("\n")
    if body.strip():
        parts.setdefault(phase, []).append(body)


def _join(parts: dict[PhaseId, list[str]]) -> dict[PhaseId, str]:
    return {p: "\n\n".join(parts[p]) for p in PHASE_IDS if p in parts}
