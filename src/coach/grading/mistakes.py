"""Spot the eight common mistakes in a whole answer with plain rules: offline, fast, repeatable.

Each detector follows the definition of its mistake in rubrics/mistakes.yaml. They look at
the candidate's own words only: in an uploaded transcript the interviewer's lines are set
aside (they may well contain an alternative the candidate never raised). Evidence is an
exact slice of the answer, so the report can show it, except for the two mistakes that are
about something missing (no requirements, no trade-offs), where it is a short observation.

Every threshold below is a module constant with the reason for its value; none is tied to
a particular question or answer.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from coach.content.loader import Content
from coach.content.models import MISTAKE_IDS, MistakeId, PhaseId
from coach.grading.models import MistakeFinding
from coach.grading.port import AnswerReviewRequest
from coach.grading.scoring import in_sentence

# --- Text structure ------------------------------------------------------------------------

# "Interviewer:", "**Candidate:**", "Me:", "Q:" at the start of a line open a transcript turn.
_SPEAKER_RE = re.compile(
    r"^[ \t>*_]*(?P<who>interviewer|int|interviewee|candidate|me|you|q|a)"
    r"(?:\s*\([^)\n]{0,30}\))?[ \t*_]*:[ \t*_]*",
    re.IGNORECASE,
)
_INTERVIEWER_LABELS = {"interviewer", "int", "q"}
# Fewer labelled turns on either side: a "Q:" in prose, not a transcript.
MIN_INTERVIEWER_TURNS = 2

_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_BULLET_RE = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)/])\s+")
_HEADING_RE = re.compile(
    r"^\s*(?:#{1,6}\s.*"  # markdown heading
    r"|\*\*[^*]{1,80}\*\*:?|__[^_]{1,80}__"  # a bold label on its own line
    r"|[A-Z][A-Z0-9 /&()'’.,-]{2,60}:?"  # ALL-CAPS label
    r"|\[[^\]]{1,60}\]"  # [bracket] label
    r"|(?i:step|part|phase)\s+\w+\s*[-–—:.].{0,60}"  # "Step 2 - Estimation"
    r"|\d{1,2}[.)/]\s*[A-Z][\w /&'-]{0,40}"  # "1) Requirements", "2/ Numbers"
    r"|[A-Z][\w /&'()-]{0,40}:)\s*$"  # "Requirements:" alone on a line
)
_FENCE_RE = re.compile(r"^\s*(?:```|~~~)")
_COMMENT_RE = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)  # hidden from a rendered page
_TABLE_ROW_RE = re.compile(r"^\s*\|.*\|\s*$")
_LEADING_LABEL_RE = re.compile(
    r"^\s*(?:\*\*[^*]{1,80}\*\*|__[^_]{1,80}__|[A-Z][A-Z /&-]{2,40}:)\s*"
)


@dataclass(frozen=True)
class Span:
    """A piece of the original text, with where it starts, so evidence is an exact quote."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of a transcript (or the whole answer when it is not one)."""

    speaker: str  # "interviewer" or "candidate"
    lines: tuple[Span, ...]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def _lines(text: str) -> list[Span]:
    spans, pos = [], 0
    for raw in text.split("\n"):
        spans.append(Span(raw, pos))
        pos += len(raw) + 1
    return spans


def split_turns(text: str) -> list[Turn]:
    """Cut a transcript into turns; anything else is one candidate turn.

    Speaker labels are dropped from the spans, so a turn's text is what was said. Lines
    before the first label (a title, a note) belong to the candidate, who wrote them.
    """
    lines = _lines(text)
    labelled = [(line, _SPEAKER_RE.match(line.text)) for line in lines]
    interviewer_lines = sum(1 for _, m in labelled if m and m["who"].lower() in _INTERVIEWER_LABELS)
    candidate_lines = sum(1 for _, m in labelled if m) - interviewer_lines
    if min(interviewer_lines, candidate_lines) < MIN_INTERVIEWER_TURNS:
        return [Turn("candidate", tuple(lines))]
    turns: list[Turn] = []
    speaker, current = "candidate", []
    for line, match in labelled:
        if match:
            if current:
                turns.append(Turn(speaker, tuple(current)))
            speaker = "interviewer" if match["who"].lower() in _INTERVIEWER_LABELS else "candidate"
            current = [Span(line.text[match.end() :], line.start + match.end())]
        else:
            current.append(line)
    if current:
        turns.append(Turn(speaker, tuple(current)))
    return turns


def _sentences(line: Span) -> list[Span]:
    out, start = [], 0
    for match in _SENTENCE_END_RE.finditer(line.text):
        piece = line.text[start : match.start()]
        if piece.strip():
            out.append(Span(piece, line.start + start))
        start = match.end()
    if line.text[start:].strip():
        out.append(Span(line.text[start:], line.start + start))
    return out


def _is_heading(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and len(stripped.split()) <= 10 and bool(_HEADING_RE.match(stripped))


# --- The answer as the detectors see it ------------------------------------------------------


class _Answer:
    """Views of one answer that several detectors share, each computed once."""

    def __init__(self, request: AnswerReviewRequest) -> None:
        self.request = request
        self.text = request.full_text
        self.content: Content | None = None  # the rubric, for the echo check

    @cached_property
    def turns(self) -> list[Turn]:
        return split_turns(self.text)

    @cached_property
    def is_transcript(self) -> bool:
        return any(t.speaker == "interviewer" for t in self.turns)

    @cached_property
    def candidate_lines(self) -> list[Span]:
        lines = [line for t in self.turns if t.speaker == "candidate" for line in t.lines]
        return [line for line in lines if line.text.strip()]

    @cached_property
    def content_lines(self) -> list[Span]:
        """The candidate's lines without headings, code, table rows or hidden comments."""
        hidden = [(m.start(), m.end()) for m in _COMMENT_RE.finditer(self.text)]
        out, in_code = [], False
        for line in self.candidate_lines:
            if _FENCE_RE.match(line.text):
                in_code = not in_code
                continue
            if in_code or _TABLE_ROW_RE.match(line.text) or _is_heading(line.text):
                continue
            if any(start <= line.start < end for start, end in hidden):
                continue
            out.append(line)
        return out

    @cached_property
    def sentences(self) -> list[Span]:
        """The candidate's sentences, plus live-interview replies to pushbacks not in the text."""
        own = [s for line in self.content_lines for s in _sentences(line)]
        for exchange in self.request.pushbacks:
            if exchange.reply and exchange.reply not in self.text:
                own.extend(s for line in _lines(exchange.reply) for s in _sentences(line))
        return own

    @cached_property
    def candidate_text(self) -> str:
        return "\n".join(line.text for line in self.candidate_lines)

    @cached_property
    def word_count(self) -> int:
        return len(self.candidate_text.split())

    def phase_of(self, quote: str, default: PhaseId | None) -> PhaseId | None:
        """The phase whose section holds the quote, else the mistake's usual phase."""
        for phase, section in self.request.sections.items():
            if quote and section and quote in section:
                return phase
        return default


@dataclass(frozen=True)
class Detection:
    """`evidence` is an exact quote from the answer; `note` says what was (not) seen."""

    evidence: str | None
    phase: PhaseId | None
    note: str | None = None


MAX_QUOTE_CHARS = 220  # long enough to show the point, short enough to read in a report


def _quote(text: str) -> str:
    """Trim a span to a readable exact quote (a prefix, cut at a word boundary)."""
    text = text.strip()
    if len(text) <= MAX_QUOTE_CHARS:
        return text
    cut = text[:MAX_QUOTE_CHARS]
    return cut[: cut.rfind(" ")] if " " in cut else cut


def _compile(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# --- skipping_requirements -------------------------------------------------------------------

SKIPPED_REQUIREMENTS_MAX_SCORE = 1  # the scoring guide: tagged exactly when requirements <= 1


def _skipping_requirements(answer: _Answer) -> Detection | None:
    grade = next((g for g in answer.request.phase_grades if g.phase == "requirements"), None)
    if grade is None or grade.score > SKIPPED_REQUIREMENTS_MAX_SCORE:
        return None
    missing = [in_sentence(c.title) for c in grade.criteria if not c.met]
    detail = f"; missing: {', '.join(missing)}" if missing else ""
    return Detection(
        None,
        "requirements",
        f"The requirements phase scored {grade.score}/4 before the design began{detail}.",
    )


# --- no_tradeoffs ----------------------------------------------------------------------------

# Sentences in which the candidate names an alternative or the price of a choice. "instead of"
# and "rather than" are left out on purpose: they mostly state a benefit ("logs pile up in
# the queue instead of being dropped"), not a weighed option.
_TRADEOFF_RE = _compile(
    r"\bat the (?:cost|expense|price) of\b",
    r"\bthe (?:cost|price|downside|drawback|catch|penalty)\b[^.;]{0,30}\b(?:is|was|being|are)\b",
    r"(?:^|[\s(;])costs?\s*:",
    r"\b(?:it|this|that|which|but) costs?\b(?! (?:are|were|is)\b)",
    r"\bcosts? (?:us|you|a|an|more|extra|another|some|little|nothing)\b",
    r"\b(?:in exchange for|at the price of|we give up|you give up|gives? up)\b",
    r"\b(?:we lose|we sacrifice)\b",
    r"\b(?:that|this|which|it) buys?\b|\bbuys? (?:us|you)\b",
    r"\bpros and cons\b|\bdownsides?\b|\bdrawbacks?\b|\bon the other hand\b",
    r"\btrades?\b(?!-)[^.;]{0,60}\bfor\b",
    r"\b(?:option|approach) ?(?:\d|[a-c]\b|one|two|three)",
    r"\b(?:one|another|a second|a third|an alternative|other) (?:option|approach|alternative)s?\b",
    r"\bthe other (?:option|approach|alternative)s?\b",
    r"\balternatives?\b|\balternatively\b",
    r"\b(?:vs\.?|versus)\b|\bcompared (?:with|to)\b|\bwhy not\b",
    r"\binstead\b(?! of)",
    r"\b(?:pick|choose|chose|take|go with|prefer|prefers|use|keep)\b[^.;]{0,40}\bover\b"
    r"(?! (?:https?|tcp|tls|udp|grpc|quic|websockets?|the (?:network|wire|internet)|time)\b)",
    r"\b(?:cheap(?:er|est)?|simple(?:r|st)?|fast(?:er|est)|slow(?:er|est)|eas(?:y|ier|iest)"
    r"|hard(?:er|est)|more complex|saf(?:e|er|est)|better|best|worse|worst)\b[^.;]{0,80}\bbut\b",
    r"\bno (?:\w+ ){0,2}\w+, but\b",
    r"\b(?:avoids|saves|removes|gives|keeps|makes|helps|buys)\b[^.;]{0,60}\bbut\b",
    r"\bbut\b[^.;]{0,40}\b(?:slower|harder|more complex|more expensive|costlier|expensive)\b",
    r"\bcould\b[^.;]{0,80}\bbut\b",
    r"\bwould (?:win|be better) (?:if|for|when)\b",
    r"\b(?:dis)?advantages?\b[^.;]{0,80}\b(?:but|however|while|whereas)\b|\bdisadvantages?\b",
    r"(?:^|[\s(;])(?:pros?|cons?)\s*:|\bthe flip side\b|\bwhereas\b",
    r"\b(?:we'?d|you'?d|it would) lose\b|\bat the expense\b|\bsacrific",
    r"\b(?:weigh|weighing|weighed)\b[^.;]{0,60}\b(?:against|with|versus)\b",
    r"\bhowever\b[^.;]{0,60}\b(?:costs?|slower|harder|more|less|lose|loses|means)\b",
    r"\bprefer\b[^.;]{0,40}\bto\b|\b(?:beats?|outweighs?)\b|\bcompromise\b",
    r"(?<!write[ -])\bwins?\b",  # "consistency wins there", but not last-write-wins
    r"\btension between\b|\bbalance (?:between|against)\b",
)
_TRADEOFF_WORD_RE = re.compile(r"\btrade[- ]?offs?\b", re.IGNORECASE)
# "Every choice involves trade-offs" is a slogan, not a trade-off about this design.
_GENERIC_TRADEOFF_RE = _compile(
    r"\b(?:every|any|all|always|rarely|in general|generally|ultimately)\b",
    r"\babout trade[- ]?offs\b|\binvolves? trade[- ]?offs\b",
)
_NOT_AN_ALTERNATIVE_RE = re.compile(r"\bthe other way (?:round|around)\b", re.IGNORECASE)
_CHOICE_RE = _compile(
    r"\b(?:we|i)(?:'ll|'d| will| would)? (?:use|pick|choose|go with|store|put|add)\b",
    r"\b(?:use|using) [A-Z]",
    r"\b(?-i:[A-Z])[\w.]{1,30} (?:for|because)\b",
)
MIN_TRADEOFF_SENTENCES = 1  # the mistake is *never* naming one, so a single one clears it


def _is_tradeoff(sentence: str) -> bool:
    if _NOT_AN_ALTERNATIVE_RE.search(sentence):
        sentence = _NOT_AN_ALTERNATIVE_RE.sub("", sentence)
    if _TRADEOFF_RE.search(sentence):
        return True
    return bool(_TRADEOFF_WORD_RE.search(sentence)) and not _GENERIC_TRADEOFF_RE.search(sentence)


def _no_tradeoffs(answer: _Answer) -> Detection | None:
    found = sum(1 for s in answer.sentences if _is_tradeoff(s.text))
    if found >= MIN_TRADEOFF_SENTENCES:
        return None
    example = next((s for s in answer.sentences if _CHOICE_RE.search(s.text)), None)
    if example is None:
        return Detection(
            None, None, "No choice in the answer names an alternative or what it gives up."
        )
    quote = _quote(example.text)
    return Detection(
        quote,
        answer.phase_of(quote, "deep_dive"),
        "Choices are stated as facts, with no alternative named and nothing said about what "
        "they give up.",
    )


# --- final_state_first -----------------------------------------------------------------------

_NOT_A_SERVICE = (
    r"the|each|every|this|that|our|their|its|and|per|any|one|which|same|new|web|micro|for"
    r"|with|own|other|calling|whole|entire|managed|cloud|separate|single"
)
_COMPONENT_RE = re.compile(
    rf"\b(?:(?!(?:{_NOT_A_SERVICE})\b)[a-z][\w-]{{2,}} service"
    r"|api gateway|gateway|load balancers?|cdn|kafka|rabbitmq|sqs|kinesis|pulsar|message queue"
    r"|redis|memcached|cassandra|mysql|postgres(?:ql)?|mongodb|dynamodb|s3|blob store"
    r"|object storage|elasticsearch|kubernetes|k8s|microservices|zookeeper|etcd|hbase|spark"
    r"|flink|hadoop|prometheus|grafana|app servers?|web servers?|application servers?)\b",
    re.IGNORECASE,
)
_FINAL_DESIGN_RE = re.compile(
    r"\bfinal (?:architecture|design|system|diagram)\b|\b(?:architecture|design) \(final\)",
    re.IGNORECASE,
)
OPENING_MIN_WORDS = 60  # the opening is the first fifth of the answer, and never under this
OPENING_SHARE = 0.2
OPENING_COMPONENTS = 6  # a full diagram: gateway, several services, queue, stores, CDN...
OPENING_COMPONENTS_IF_CALLED_FINAL = 4  # fewer parts will do when the answer says "final"


def _opening(answer: _Answer) -> list[Span]:
    """The candidate's first lines, up to a fifth of the answer (headings included)."""
    budget = max(OPENING_MIN_WORDS, int(answer.word_count * OPENING_SHARE))
    out, used = [], 0
    for line in answer.candidate_lines:
        if used >= budget:
            break
        out.append(line)
        used += len(line.text.split())
    return out


def _final_state_first(answer: _Answer) -> Detection | None:
    opening = _opening(answer)
    # Titles ("Design a Notification Service") name the system, not a part of it.
    body = [line for line in opening if not _is_heading(line.text)]
    components = {m.group(0).lower() for line in body for m in _COMPONENT_RE.finditer(line.text)}
    called_final = any(_FINAL_DESIGN_RE.search(line.text) for line in opening)
    needed = OPENING_COMPONENTS_IF_CALLED_FINAL if called_final else OPENING_COMPONENTS
    if len(components) < needed:
        return None
    # Quote from the first line naming a component through the next few such lines.
    with_parts = [line for line in body if _COMPONENT_RE.search(line.text)]
    quote = _quote(answer.text[with_parts[0].start : with_parts[:OPENING_COMPONENTS][-1].end])
    return Detection(quote, answer.phase_of(quote, "architecture"))


# --- silent_thinking -------------------------------------------------------------------------

# Words and marks that connect an item to a reason or a consequence.
_REASONING_RE = _compile(
    r"\b(?:because|since|so|so that|which|means|meaning|to avoid|in order|otherwise|therefore"
    r"|thus|why|given|unless|but|though|although|instead|rather|cost|costs|trade|enough|too"
    r"|if|when|as long as)\b",
    r"→|->|=>|;",
)
_FIELD_LINE_RE = re.compile(r"^[a-z][a-z0-9]*_[a-z0-9_]*\s*[:,]?\s*[\w()]*$|^id$")
BARE_ITEM_MAX_WORDS = 7  # "Redis for timelines" is an item; a reasoned bullet runs longer
SILENT_MIN_BARE_ITEMS = 15  # a long list, not a short summary
SILENT_MIN_BARE_SHARE = 0.3  # and a large part of what the candidate wrote


def _bare_items(answer: _Answer) -> list[Span]:
    bare = []
    for line in answer.content_lines:
        item = _BULLET_RE.sub("", line.text).strip()
        is_item = bool(_BULLET_RE.match(line.text)) or not re.search(r"[.!?]$", item)
        if not is_item or len(item.split()) > BARE_ITEM_MAX_WORDS or _REASONING_RE.search(item):
            continue
        if _FIELD_LINE_RE.match(item):  # a schema's field list is not a decision
            continue
        bare.append(line)
    return bare


def _silent_thinking(answer: _Answer) -> Detection | None:
    if _stuffed(answer):
        # Lists of names dressed as sentences: nothing connects them either.
        return _keyword_stuffing(answer)
    bare = _bare_items(answer)
    lines = answer.content_lines
    if len(bare) < SILENT_MIN_BARE_ITEMS or len(bare) < SILENT_MIN_BARE_SHARE * len(lines):
        return None
    # Quote the longest run of consecutive bare items.
    index = {line.start: i for i, line in enumerate(lines)}
    best: list[Span] = []
    run: list[Span] = []
    for line in bare:
        if run and index[line.start] != index[run[-1].start] + 1:
            run = []
        run.append(line)
        if len(run) > len(best):
            best = list(run)
    quote = _quote(answer.text[best[0].start : best[-1].end])
    return Detection(quote, answer.phase_of(quote, "architecture"))


# --- keyword_stuffing ------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z0-9.+#/-]*[A-Za-z0-9+#]|[A-Z]")
_CLAUSE_SPLIT_RE = re.compile(r"(?<=[.!?:])\s+|\*\*")
_NOT_A_TERM = {"i", "i'd", "i'll", "i'm", "i've"}
STUFFED_MIN_TERMS = 40  # distinct named technologies and buzzwords in the answer
STUFFED_MIN_TERMS_PER_100_WORDS = 8.0  # ~3x the density of a dense, reasoned answer
STUFFED_MAX_REASONS_PER_100_WORDS = 1.0  # and almost nothing that connects them
_CONNECTIVE_RE = _compile(
    r"\b(?:because|since|so that|so|which means|that means|this means|that's why"
    r"|which is why|therefore|to avoid|otherwise|thus|means|in order to|as a result"
    r"|given that|if|when|then|but|the cost|at the cost)\b"
)


# Architecture buzzwords that are usually written in lower case.
_BUZZWORD_RE = re.compile(
    r"\b(?:microservices?|serverless|event[- ]driven|event sourcing|cloud[- ]native|service mesh"
    r"|sharding|sharded|partitioning|replication|consistent hashing|load balancing|caching"
    r"|autoscal\w*|horizontal(?:ly)? scal\w*|vertical(?:ly)? scal\w*|fault[- ]toleran\w*"
    r"|high(?:ly)? availab\w*|eventual consistency|strong consistency|rate limiting"
    r"|circuit breakers?|bulkheads?|backpressure|idempotency|denormali[sz]ation"
    r"|materiali[sz]ed views?"
    r"|bloom filters?|leader election|quorum|write[- ]through|write[- ]behind|cache[- ]aside"
    r"|blue/green|canary|observability|polyglot persistence|data lake|lakehouse|feature store"
    r"|vector database|zero[- ]trust|multi[- ]region|active[- ]active|geo[- ]dns|edge computing)\b",
    re.IGNORECASE,
)


def _named_terms(lines: list[Span]) -> list[str]:
    """Capitalised names, acronyms, product names and buzzwords (not a sentence's first word)."""
    out = []
    for line in lines:
        out.extend(m.group(0).lower() for m in _BUZZWORD_RE.finditer(line.text))
        text = _LEADING_LABEL_RE.sub("", _BULLET_RE.sub("", line.text))
        for clause in _CLAUSE_SPLIT_RE.split(text):
            for i, token in enumerate(_TOKEN_RE.findall(clause)):
                if i and token[0].isupper() and token.lower() not in _NOT_A_TERM:
                    out.append(token.lower())
    return out


@dataclass(frozen=True)
class _Stuffing:
    terms: int
    terms_per_100: float
    reasons_per_100: float

    @property
    def stuffed(self) -> bool:
        return (
            self.terms >= STUFFED_MIN_TERMS
            and self.terms_per_100 >= STUFFED_MIN_TERMS_PER_100_WORDS
            and self.reasons_per_100 <= STUFFED_MAX_REASONS_PER_100_WORDS
        )


def _stuffing(answer: _Answer) -> _Stuffing:
    words = max(1, answer.word_count)
    terms = len(set(_named_terms(answer.content_lines)))
    reasons = len(_CONNECTIVE_RE.findall(answer.candidate_text))
    return _Stuffing(terms, 100 * terms / words, 100 * reasons / words)


def _stuffed(answer: _Answer) -> bool:
    return _stuffing(answer).stuffed


# --- rubric echo: the rubric's own wording with nothing concrete ----------------------------

ECHO_GRAM = 3  # word trigrams
ECHO_SENTENCE_SHARE = 0.25  # a sentence echoes when this share of its trigrams is rubric text
ECHO_ANSWER_SHARE = 0.5  # an answer (or section) echoes when this share of its sentences do
ECHO_MIN_SENTENCES = 6  # too few sentences to call an answer an echo
_ECHO_WORD_RE = re.compile(r"[a-z0-9][a-z0-9'-]*")
_ECHO_SPLIT_RE = re.compile(r"(?<=[.!?])\s+")
_RUBRIC_GRAMS: dict[int, frozenset[tuple[str, ...]]] = {}


def _grams(text: str) -> set[tuple[str, ...]]:
    words = _ECHO_WORD_RE.findall(text.lower())
    return {tuple(words[i : i + ECHO_GRAM]) for i in range(len(words) - ECHO_GRAM + 1)}


def _rubric_grams(content: Content) -> frozenset[tuple[str, ...]]:
    """Word trigrams of what the rubric says to the candidate (purposes, prompts, tips, levels)."""
    key = id(content)
    if key not in _RUBRIC_GRAMS:
        grams: set[tuple[str, ...]] = set()
        for phase in content.phases:
            texts = [phase.purpose, phase.opening_question, *phase.prompts_to_hit]
            for criterion in phase.criteria:
                texts += [criterion.title, criterion.tip, *criterion.levels.values()]
            for text in texts:
                grams |= _grams(text)
        _RUBRIC_GRAMS[key] = frozenset(grams)
    return _RUBRIC_GRAMS[key]


def rubric_echoes(content: Content, sentences: Sequence[str]) -> list[int]:
    """Indices of the sentences that restate the rubric's wording with nothing concrete in
    them (no number, identifier or path): "I derive requests per second, separately for
    reads and writes, with the arithmetic right" describes the rubric, not a design."""
    from coach.grading.offline import is_concrete

    rubric = _rubric_grams(content)
    out = []
    for i, sentence in enumerate(sentences):
        grams = _grams(sentence)
        if len(grams) < ECHO_GRAM or is_concrete(sentence):
            continue
        if len(grams & rubric) >= ECHO_SENTENCE_SHARE * len(grams):
            out.append(i)
    return out


def echoes_rubric(content: Content, sentences: Sequence[str]) -> bool:
    """Is this text mostly the rubric's own wording (see `rubric_echoes`)?"""
    counted = [s for s in sentences if len(_grams(s)) >= ECHO_GRAM]
    if len(counted) < ECHO_MIN_SENTENCES:
        return False
    return len(rubric_echoes(content, counted)) >= ECHO_ANSWER_SHARE * len(counted)


def _keyword_stuffing(answer: _Answer) -> Detection | None:
    if not _stuffed(answer):
        return _rubric_echo(answer)
    densest = max(answer.content_lines, key=lambda line: len(set(_named_terms([line]))))
    quote = _quote(densest.text)
    return Detection(quote, answer.phase_of(quote, None))


# --- fake_certainty --------------------------------------------------------------------------

_CERTAINTY_RE = _compile(
    r"\bobviously\b",
    r"\b(?:definitely|certainly|undeniably) (?:the )?(?:best|right|correct|only|fastest|way)\b",
    r"\beverybody (?:knows|uses|does)\b|\b(?:it'?s|that'?s) a (?:known )?fact\b",
    r"\bguarantee[sd]? (?:zero|no|100|perfect|infinite)\b|\bzero (?:risk|chance)\b",
    r"\b(?:is|are|it's|that's) (?:so |completely |totally )?obvious\b",
    r"\b(?:clearly|undoubtedly|unquestionably) (?:the|a) (?:best|right|correct|only)\b",
    r"\bwithout (?:a|any) doubt\b|\bno doubt\b",
    r"\b(?:that's|this is|it's) (?:just )?how (?:every|all|everyone)\b",
    r"\bevery (?:modern |big |large |serious |major |real |other )?"
    r"(?:company|companies|system|systems|team|shortener|service|app|startup)\b"
    r"[^.;]{0,30}\b(?:uses?|does|do|works?|runs?)\b",
    r"\beveryone (?:who [^.;]{0,40} )?(?:knows|uses|does it)\b",
    r"\bthe (?:industry )?standard (?:tool|choice|way|approach|solution)\b",
    r"\b(?:handle|handles|handling|absorb|absorbs|take|takes|scale to|cope with) any "
    r"(?:amount|load|volume|number|traffic|scale|spike)\b",
    r"\b(?:scales?|scalable|scaling) (?:infinitely|without (?:any )?limits?|forever)\b",
    r"\binfinite(?:ly)? scal|\bunlimited (?:scale|scalability|throughput|capacity)\b",
    r"\b(?:basically|practically|literally)? ?never (?:happens?|fails?|goes? down|breaks?)\b",
    r"\b(?:is|are|will be|will) never (?:lost|dropped|duplicated|down|a problem)\b",
    r"\bnever (?:loses?|drops?|duplicates?) (?:any |a single )?"
    r"(?:data|messages?|events?|writes?)\b",
    r"\bno need to (?:think|worry|consider|check|test|measure)\b",
    r"\b(?:don't|do not|never) (?:need|have) to worry\b",
    r"\bwouldn't (?:even )?consider anything else\b",
    r"\bthere(?:'s| is) no problem\b|\bwon't be a problem\b",
    r"\bfull stop\b",
    r"\b(?:is|are) always (?:better|best|right|the best|faster)\b",
    r"\bthe best (?:choice|option|way|approach|tool|database) for (?:any|every|all)\b",
    r"\b100 ?% (?:reliable|available|availability|uptime|accurate|safe|secure|guaranteed)\b",
)
# A claim the speaker hedges, or a requirement ("must never be lost"), is not fake certainty.
_HEDGE_RE = _compile(
    r"\b(?:i think|i believe|probably|i'm not sure|not sure|maybe|might|i'd guess|likely"
    r"|i'd (?:want to |need to )?(?:check|measure|verify|benchmark|test))\b",
    r"\b(?:must|should|has to|have to|needs? to)\b[^.;]{0,20}\bnever\b",
    r"\bnot (?:so |that |always )?obvious",
    # A stated requirement or target ("NFRs: ... never lost once acknowledged") is a goal.
    r"\b(?:non-functional|nfrs?|requirements?|goals?|targets?|slas?|slos?|acknowledged)\b",
    r"^\W*(?:durab|availab|latency|consisten|reliab|ordering|correctness)",
    r"\bonce\b[^.;]{0,60}\bnever\b|\bnever \w+ once\b",
)


def _fake_certainty(answer: _Answer) -> Detection | None:
    for sentence in answer.sentences:
        match = _CERTAINTY_RE.search(sentence.text)
        if match and not _HEDGE_RE.search(sentence.text):
            quote = _quote(sentence.text)
            return Detection(quote, answer.phase_of(quote, None))
    return None


# --- defends_first_answer --------------------------------------------------------------------

# Replies that restate the design instead of revisiting it. A strong marker is a refusal on
# its own; a weak one ("it's fine", "just add more servers") also shows up in a confident,
# reasoned reply, so it takes a pattern of them.
_STRONG_DEFENCE_RE = _compile(
    r"\bas i (?:said|mentioned)\b|\blike i said\b",
    r"\b(?:it'?s|that'?s) the same (?:process|thing|approach|path|design)\b|\bjust more of it\b",
    r"\bi don'?t think (?:it'?s|that'?s|we|this is) (?:needed|necessary|need)\b",
    r"\b(?:doesn'?t|does not|won'?t) need to change\b|\bnothing (?:needs to|has to) change\b",
    r"\bi'?d (?:stay|stick) with\b|\bwe (?:stay|stick) with\b|\bi disagree\b",
    r"\bkeep (?:it|the design|my design|the current design|this) (?:as it is|as is|unchanged)\b",
)
_WEAK_DEFENCE_RE = _compile(
    r"\b(?:it'?s|that'?s|this is) (?:still )?(?:fine|ok|okay|enough)\b",
    r"\b(?:is|are|would be|will be) (?:still )?(?:fine|ok|okay)\b",
    r"\b(?:no need|not needed|not necessary)\b",
    r"\b(?:just|simply) add (?:more|another|a bigger)\b|\bif it'?s slow,? (?:we|just) add\b",
    r"\bwon'?t (?:really )?(?:notice|matter|be a problem)\b",
    r"\b(?:will|would) still work\b|\bi'?d still\b|\bstill (?:the best|the right|works?)\b",
)
_RECONSIDER_RE = _compile(
    r"\b(?:you'?re right|good (?:point|catch)|fair (?:point|enough)|let me reconsider"
    r"|let me rethink|on second thought|actually|i was wrong|hmm|rethink|reconsider)\b",
    r"\bi'?d (?:change|switch|move|split|rework|revisit)\b|\bswitch to\b|\binstead\b(?! of)",
    r"\bthat (?:breaks|doesn'?t work|won'?t work|changes things)\b",
)
# Interviewer turns that challenge the design rather than open a new topic.
_CHALLENGE_RE = _compile(
    r"\bwhat (?:about|happens|if|would happen|does (?:that|this) do)\b",
    r"\bhow (?:long|would (?:that|this|you handle)|do(?:es)? (?:that|this|you handle))\b",
    r"\b(?:have|did) you (?:considered|consider|thought)\b|\bwould you (?:consider|change|still)\b",
    r"\bis (?:that|this|it) (?:really )?(?:ok|okay|acceptable|enough|fine|a problem)\b",
    r"\b(?:doesn'?t|won'?t|isn'?t|wouldn'?t|can'?t) (?:that|this|it)\b",
    r"\b(?:but|some designs|concern|worr(?:y|ied)|bottleneck|fail(?:s|ure)?|hot|10\s*(?:x|×))\b",
)
_DEFENCE_HEDGE_RE = re.compile(
    r"\b(?:probably|maybe|might|perhaps|i'?m not sure|depends|could be)\b", re.IGNORECASE
)
_REASON_GIVEN_RE = re.compile(r"\b(?:because|since|so|which|as long as|given that)\b", re.I)
# Weak defences only: one can be a slip or a confident, reasoned "no"; two are a pattern.
MIN_DEFENDED_TURNS = 2


@dataclass(frozen=True)
class _Reply:
    sentence: Span | None  # the defensive sentence, if the reply defends
    strong: bool = False
    reconsiders: bool = False


def _judge_reply(sentences: list[Span]) -> _Reply:
    text = " ".join(s.text for s in sentences)
    if _RECONSIDER_RE.search(text):
        return _Reply(None, reconsiders=True)  # wavering then changing course is welcome
    for strong in (True, False):
        pattern = _STRONG_DEFENCE_RE if strong else _WEAK_DEFENCE_RE
        for sentence in sentences:
            # "Probably a few seconds is fine" weighs the point; a defence is stated flatly.
            if not pattern.search(sentence.text) or _DEFENCE_HEDGE_RE.search(sentence.text):
                continue
            # "..., so ingress is fine" concludes from a reason; a brush-off gives none.
            if strong or not _REASON_GIVEN_RE.search(sentence.text):
                return _Reply(sentence, strong=strong)
    return _Reply(None)


def _replies_to_challenges(answer: _Answer) -> list[_Reply]:
    """The candidate's answers to pushbacks: live exchanges, then transcript turns."""
    replies = [
        _judge_reply([s for line in _lines(exchange.reply) for s in _sentences(line)])
        for exchange in answer.request.pushbacks
    ]
    if answer.is_transcript:
        for previous, turn in itertools.pairwise(answer.turns):
            if previous.speaker != "interviewer" or turn.speaker != "candidate":
                continue
            if _CHALLENGE_RE.search(previous.text):
                replies.append(_judge_reply([s for line in turn.lines for s in _sentences(line)]))
    return replies


def _defends_first_answer(answer: _Answer) -> Detection | None:
    replies = _replies_to_challenges(answer)
    defended = [r for r in replies if r.sentence is not None]
    reconsidered = sum(1 for r in replies if r.reconsiders)
    strong = next((r for r in defended if r.strong), None)
    if strong is None and (len(defended) < MIN_DEFENDED_TURNS or reconsidered >= len(defended)):
        return None
    hit = (strong or defended[0]).sentence
    assert hit is not None
    quote = _quote(hit.text)
    return Detection(quote, answer.phase_of(quote, "deep_dive"))


# --- prompt_injection ------------------------------------------------------------------------

_ADDRESSEE = (
    r"(?:evaluator|grader|grading (?:model|system|ai|bot)|assessor|reviewer|examiner|marker"
    r"|scorer|ai|llm|language model|assistant|automated (?:grader|system|reviewer|evaluator))"
)
_INJECTION_RE = _compile(
    rf"\b(?:note|message|instructions?|memo|hint|reminder)s? (?:to|for) (?:the |any |all )?"
    rf"{_ADDRESSEE}s?\b",
    rf"\b(?:dear|attention|attn:?|hey|hi) (?:the )?{_ADDRESSEE}\b",
    rf"\b{_ADDRESSEE}s?\s*[:,]\s*(?:please |you must |you should |kindly )?"
    r"(?:give|assign|award|score|rate|mark|ignore|disregard|treat|consider|grade)\b",
    r"\b(?:ignore|disregard|forget|override|bypass) (?:all |any )?(?:of )?(?:the |your |these )?"
    r"(?:previous |prior |earlier |above |preceding |original |system |grading |scoring )+"
    r"(?:instructions?|rubrics?|rules|guidelines|criteria|prompts?)\b",
    r"\b(?:ignore|disregard) (?:all |any )?(?:the |your )?(?:instructions?|rubrics?|prompts?"
    r"|grading criteria|scoring (?:rules|guide))\b",
    r"\b(?:give|assign|award|grant|score|rate|mark)\b[^.\n]{0,40}\b(?:full marks|full score"
    r"|full credit|perfect score|top (?:score|marks)|maximum (?:score|marks)|4\s*/\s*4"
    r"|4 out of 4|100\s*/\s*100|100 out of 100|a score of (?:4|100)|an overall (?:score )?of 100"
    r"|every phase (?:a )?4|all phases (?:a )?4|strong[_ ]hire)",
    r"\b(?:meets|satisfies|exceeds) (?:every|all|each) (?:rubric|grading|scoring) "
    r"(?:criteri(?:a|on)|requirements?)\b",
    r"\b(?:do not|don't|never) (?:deduct|penali[sz]e|mark (?:it |this )?down|lower the score)"
    r" (?:points|marks|for (?:brevity|length|style|format)|the candidate|this answer|anything)\b",
    rf"\byou are (?:now )?(?:a|an|the) (?:\w+ )?{_ADDRESSEE}\b",
    r"\"(?:overall_0_100|overall_score|phase_scores|hire_signal|final_score)\"\s*:",
    r"\"(?:requirements|estimation|data_model|deep_dive)\"\s*:\s*[0-4]\s*[,}]",
    r"\"score\"\s*:\s*(?:4|100)\s*[,}]",
    r"<\|(?:im_start|system|assistant)\|>|\[/?inst\]|\[system\]",
    r"(?:^|\n)\s*(?:system|assistant)(?: message| prompt)?\s*:[^\n]{0,200}"
    r"\b(?:score|grade|rubric|evaluat\w*|marks|instructions?|ignore)\b",
)
_COMMENT_TARGET_RE = _compile(
    rf"\b{_ADDRESSEE}s?\b",
    r"\b(?:score|scores|scoring|grade|grades|grading|rubric|marks|points|assign|award)\b",
)


def _flatten(lines: Sequence[Span]) -> tuple[str, list[int]]:
    """The lines as one string with whitespace runs made single, plus an index map.

    Searching this finds an instruction even when it is split over lines (or, given only the
    candidate's lines, over turns); the map turns a match back into offsets in the original.
    """
    out: list[str] = []
    index: list[int] = []
    for line in lines:
        match = _SPEAKER_RE.match(line.text)
        skip = match.end() if match else 0
        for offset, ch in enumerate(line.text[skip:], start=line.start + skip):
            if ch.isspace():
                if out and out[-1] != " ":
                    out.append(" ")
                    index.append(offset)
                continue
            out.append(ch)
            index.append(offset)
        if out and out[-1] != " ":
            out.append(" ")
            index.append(line.end)
    return "".join(out), index


def _injection_in(text: str, lines: Sequence[Span]) -> str | None:
    """An exact quote of the first instruction to the grader found in `lines` of `text`."""
    flat, index = _flatten(lines)
    match = _INJECTION_RE.search(flat)
    if not match:
        return None
    start, end = index[match.start()], index[max(match.start(), match.end() - 1)] + 1
    # Widen to whole lines so the quote shows the instruction, not a fragment of it.
    start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return _quote(text[start : line_end if line_end >= 0 else len(text)])


def _prompt_injection(answer: _Answer) -> Detection | None:
    replies = [p.reply for p in answer.request.pushbacks if p.reply]
    for text in [answer.text, *replies]:
        for comment in _COMMENT_RE.finditer(text):
            if _COMMENT_TARGET_RE.search(comment.group(1)):
                quote = _quote(comment.group(0))
                return Detection(quote, answer.phase_of(quote, None))
        quote = _injection_in(text, _lines(text))
        if quote is None and text is answer.text and answer.is_transcript:
            # An instruction cut in two by an interviewer line still reads as one.
            quote = _injection_in(text, answer.candidate_lines)
        if quote is not None:
            return Detection(quote, answer.phase_of(quote, None))
    return None


# --- Putting it together ---------------------------------------------------------------------

Detector = Callable[[_Answer], Detection | None]

DETECTORS: dict[MistakeId, Detector] = {
    "skipping_requirements": _skipping_requirements,
    "no_tradeoffs": _no_tradeoffs,
    "final_state_first": _final_state_first,
    "silent_thinking": _silent_thinking,
    "defends_first_answer": _defends_first_answer,
    "keyword_stuffing": _keyword_stuffing,
    "fake_certainty": _fake_certainty,
    "prompt_injection": _prompt_injection,
}
assert set(DETECTORS) == set(MISTAKE_IDS), "every mistake id needs a detector"


def _rubric_echo(answer: _Answer) -> Detection | None:
    """The rubric's vocabulary standing in for a design: keyword stuffing in sentences."""
    if answer.content is None:
        return None
    lines = [s for line in answer.content_lines for s in _ECHO_SPLIT_RE.split(line.text)]
    if not echoes_rubric(answer.content, lines):
        return None
    quote = _quote(lines[rubric_echoes(answer.content, lines)[0]])
    return Detection(
        quote,
        answer.phase_of(quote, None),
        note="Most sentences restate the rubric's wording with no number, name or path of "
        "their own.",
    )


def detect_mistakes(content: Content, request: AnswerReviewRequest) -> list[MistakeFinding]:
    """Every mistake the rules find in the answer, in catalogue order, each with evidence."""
    answer = _Answer(request)
    answer.content = content
    findings = []
    for mistake_id in MISTAKE_IDS:
        detection = DETECTORS[mistake_id](answer)
        if detection is None:
            continue
        findings.append(
            mistake_finding(
                content,
                mistake_id,
                phase=detection.phase,
                evidence=detection.evidence,
                note=detection.note,
            )
        )
    return findings


def mistake_finding(
    content: Content,
    mistake_id: MistakeId,
    *,
    phase: PhaseId | None,
    evidence: str | None = None,
    note: str | None = None,
) -> MistakeFinding:
    """The catalogue's title and fix for `mistake_id`, with what showed it in this answer."""
    mistake = content.mistakes[mistake_id]
    return MistakeFinding(
        id=mistake_id,
        title=mistake.title,
        evidence=evidence,
        note=note,
        fix=mistake.fix,
        phase=phase,
    )


def injection_finding(content: Content, phase: PhaseId, passage: str) -> MistakeFinding:
    """`prompt_injection` on a phase grade, quoting the passage aimed at the grader. Both
    graders put it there, so the candidate learns at that phase, not only in the final
    report, that the passage was set aside."""
    return mistake_finding(content, "prompt_injection", phase=phase, evidence=_quote(passage))


def is_keyword_stuffed(text: str) -> bool:
    """Is this text mostly technology names with nothing connecting them? (for score caps)"""
    request = AnswerReviewRequest(full_text=text, sections={}, phase_grades=())
    return _stuffed(_Answer(request))
