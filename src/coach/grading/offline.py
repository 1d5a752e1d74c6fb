"""The offline grader: deterministic rubric rules over the candidate's own sentences.

It needs no network and gives the same grade for the same text every time. Each rubric
criterion carries `cues` (regexes in rubrics/phases.yaml); a criterion is met when its cues
match in the candidate's sentences, and every met criterion quotes the sentence that met it.
Signals are counted as distinct matches, never as repetitions, so length and padding buy
nothing. On top of the criteria it applies the scoring guide's hard rules: keyword stuffing
scores 0, text addressed to the grader is never evidence, and wrong arithmetic caps the
estimate at 1.

Reusable helpers for the other detectors (mistakes, splitter):

- `split_sentences(text)`: sentences with exact offsets, speaker, heading and hidden flags.
- `analyse(text)`: the same, cached, plus per-sentence flags (reasoning, hedging, ...) and
  `TextAnalysis.usable` (the candidate's own content: not headings, interviewer turns or
  text addressed to the grader).
- `has_reasoning`, `has_tradeoff`, `is_hedged`, `is_overclaim`, `is_injection`,
  `is_keyword_list`, or all at once with `sentence_flags`: one-sentence tests.
- `compile_cue(pattern)`: compile a rubric regex to run on `TextAnalysis.lowered`.
- `check_arithmetic(text)`: order-of-magnitude slips in stated calculations and conversions.
- `find_unitless_numbers(text)`: large derived numbers with no unit or noun.
- `quote(text, start, end)`: a short exact substring around a match, for evidence.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar, cast

from coach.content.models import Criterion, Phase, PhaseId, Question
from coach.evidence import CANDIDATE_REPORT, injected_passages, quantity_spans, states_quantity
from coach.grading.feedback import phase_feedback
from coach.grading.mistakes import echoes_rubric, injection_finding
from coach.grading.models import CriterionResult, MistakeFinding, PhaseGrade
from coach.grading.port import AnswerReviewRequest, PhaseGradingRequest, SplitResult
from coach.grading.rules import load_rules
from coach.grading.scoring import binding_cap, cap_reason, score_from_criteria

if TYPE_CHECKING:
    from coach.content.loader import Content

T = TypeVar("T")

MODEL_NAME = "offline-rules-v1"
MAX_QUOTE = 200
# The deep dive's pushback is a question: left unanswered (or answered 'ok'), the deep dive
# cannot score 4, however good the first answer was.
UNANSWERED_PUSHBACK_CAP = 3
PUSHBACK_REPLY_MIN_WORDS = 5
# A criterion met only by words from another phase: the interviewer asked for it here.
ELSEWHERE_NOTE = "Said in another phase of your answer, not this one, so it counts for less here."
# A phase with no text of its own meets nothing and scores 0, unless the rest of the answer
# covers it for real (an upload whose headings the splitter did not find): quoting another
# phase's words as this one's evidence next to a 0 would praise an answer never given.
NO_ANSWER_REASON = "This phase got no answer of its own, so nothing here can be credited."
BORROWED_REASON = (
    "No part of the answer was found for this phase, so its score comes only from what "
    "the rest of the answer says about it."
)
ELSEWHERE_REASON = (
    "Part of what this phase needs was said in another phase, which counts one level lower: "
    "say it here, where the interviewer asks for it."
)

_I = re.IGNORECASE

# --- one-sentence tests ----------------------------------------------------------------------

_REASONING = re.compile(
    r"\b(because|since(?!\s+\d)|so that|which means|that means|this means|meaning that|"
    r"therefore|thus|hence|in order to|to avoid|to keep|to make sure|to prevent|to stop|"
    r"otherwise|at the cost of|instead of|rather than|the reason|given that|as a result|"
    r"due to|that's why|which is why|in exchange|the cost is|the price is|"
    r"buys us|so\b(?! far| on\b| much| many| long)|but\b|unless|whereas|while\b|which (lets|keeps|"
    r"makes|gives|avoids|means|matters)|this (lets|keeps|makes|gives|avoids)|"
    r"(it|that|this) (lets|keeps|avoids|gives|matters|helps)|why\b|if\b|"
    r"to (avoid|keep|make|handle|absorb|serve|spread|decouple|buffer|protect|reduce|cut|"
    r"speed|let|allow|isolate|smooth|survive|scale|bound|cap|guarantee|ensure)\b|"
    r"for (durability|availability|redundancy|speed|throughput|safety|fault tolerance|"
    r"capacity|failover|resilience)\b)",
    _I,
)
_TRADEOFF = re.compile(
    r"\b(at the cost of|the cost is|costs? (us|a|an|more|extra)|downside|drawback|"
    r"trade-?offs? (is|are|here is) that|trade(s|d)? (\w+ ){1,3}for|"
    r"gives? up|we lose|we give up|in exchange|the price|buys? us|the catch|instead of|"
    r"rather than|versus|vs\.?|compared (to|with)|on the other hand|whereas|"
    r"(is|are) (simpler|cheaper|faster|slower|harder|easier|better|worse)\b[^.]*\bbut\b)",
    _I,
)
_HEDGE = re.compile(
    r"\b(it depends|depends on|depending on|maybe|might|perhaps|possibly|probably|"
    r"could|not sure|hard to say|i guess|kind of|sort of|either way|both could work|"
    r"both are valid|pros and cons)\b",
    _I,
)
_OVERCLAIM = re.compile(
    r"\b(obviously|clearly the (best|right)|the (best|right) (way|choice|option|database|"
    r"approach|tool)|always (better|works|faster|right)|is always better|never (fails?|"
    r"a problem)|no need to (think|worry|consider|check)|any amount|scales? (automatically|"
    r"infinitely)|that's how every|every (modern )?company|won't be a problem|"
    r"(there's )?no problem (there|with)|i wouldn't consider anything else|solves it|"
    r"we don't need to worry|everyone (who has benchmarked|knows)|web-scale|"
    r"the most reliable)\b",
    _I,
)
# Text aimed at whoever marks the answer: a self-assessment, a checklist for the marker, or
# ticks next to the rubric's own terms ("peak ✔, idempotency ✔"). It claims evidence instead
# of giving it, so it never counts, even where the claim happens to be true.
_TICK = "✔✓☑✅"
_CHECKLIST_TERMS = (
    r"questions|assumptions|scope|requirements|needs|non-functional|scale|qps|peak|storage|"
    r"bandwidth|estimates?|split|endpoints?|pagination|idempotency|auth|keys?|fields|types|"
    r"partition(ing)?|index(es)?|store|simple|path|paths|components?|bottlenecks?|cache|"
    r"workers|hard part|options|costs|trade-?offs?|decision|failures|failover|follow-through|"
    r"justified|covered|done|met"
)
GRADER_CHECKLIST = (
    r"\bwhoever (marks|grades|assesses|reviews|scores|reads and scores)\b|"
    r"\bself[- ]?(assessment|assessed|graded|marked)\b|"
    r"\b(for|to) (the |any )?(markers?|assessors?|graders?)\b|"
    r"\b(reviewer|marker|grader|grading|marking|rubric|assessment) checklist\b|"
    rf"\b({_CHECKLIST_TERMS})\s*[:\-–]?\s*[{_TICK}]|[{_TICK}]\s*({_CHECKLIST_TERMS})\b"
)
# A line with this many ticks is a checklist as a whole, every sentence on it.
CHECKLIST_LINE_TICKS = 2
_GRADER_CHECKLIST = re.compile(GRADER_CHECKLIST)  # runs on lowercased text
# Words one of which every GRADER_CHECKLIST match holds: most answers have none, and a
# substring test spares the regex scan over the whole text (it costs ~3 ms on 2,000 words).
_CHECKLIST_HINTS = (
    "whoever",
    "self-",
    "self ",
    "marker",
    "grader",
    "assessor",
    "checklist",
    *_TICK,
)


def is_grader_checklist(sentence: str) -> bool:
    """True for a self-assessment or checklist aimed at whoever marks the answer."""
    lowered = sentence.lower()
    return any(h in lowered for h in _CHECKLIST_HINTS) and bool(_GRADER_CHECKLIST.search(lowered))


_INJECTION = re.compile(
    r"(\bnote to (the |any )?(evaluator|grader|reviewer|assessor|marker|ai|llm|model|"
    r"automated)|\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(instructions?|rubric|"
    r"criteria|guidelines|scoring|rules|previous|prior|above)\b|\b(award|assign|give|grant|"
    r"score)\b[^.\n]{0,40}(\b\d\s*/\s*\d\b|\b4 out of 4\b|\bfull (marks|score|points)\b|"
    r"\btop (score|marks)\b|\bperfect score\b|\bmaximum (score|points)\b|\ba score of\b|"
    r"\boverall (score )?of 100\b)|\b(as an? |dear )(ai|llm|language model|grader|"
    r"evaluator)\b|\b(grader|evaluator|assessor|rubric|automated (review|grading|scoring)|"
    r"language model|llm)\b[^.\n]{0,80}\b(score|grade|marks?|points|award|assign|"
    r"criteri(a|on)|pass)\b|" + CANDIDATE_REPORT + ")",
    _I,
)
_FAKE_GRADE = re.compile(
    r"^\W*(requirements|estimation|api|data_model|architecture|deep_dive|overall(_0_100)?|"
    r"phase_scores|hire_signal|score|grade)\W*\s*[:=]\s*[\"'{]?\s*[\d\w]",
    _I,
)
_FAKE_GRADE_INLINE = re.compile(
    r"[\"'](requirements|estimation|api|data_model|architecture|deep_dive|overall(_0_100)?|"
    r"phase_scores|hire_signal)[\"']\s*:",
    _I,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'+#.-]*")
_LIST_SEP = re.compile(r"[,/+;]|\band\b|\bor\b")
_VERBISH = re.compile(
    r"\b(is|are|was|be|been|being|goes|go|use|uses|used|store|stores|send|sends|returns?|"
    r"has|have|can|will|would|should|must|need|needs|we|i|it|they|you|gets?|puts?|reads?|"
    r"writes?|keeps?|takes?|makes?|runs?|lets?|holds?|calls?|pushes|pulls|picks?|means)\b",
    _I,
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# A because-clause is a reason only if it says something: "because it is important",
# "because they matter" and "because of the bottleneck" (which one?) name nothing. The clause
# is empty when every word in it, up to the end of the clause, is one of these.
_CAUSE = re.compile(r"because( of)?|since|due to|given that|the reason( is)?( that)?")
_CLAUSE_END = re.compile(r"[.;:,!?()\n]|\s[-–—]\s")
_EMPTY_REASON_WORDS = _word_set(
    """
    it it's its they they're them this that these those there here we i you one
    is are was were be been being am do does did has have had will would can could should
    must need needs needed of the a an to for in on at by with and or as so very really
    quite just also too all much more most
    important importance matter matters mattered crucial critical key essential vital
    necessary needed required requirement good better best nice useful helpful valuable
    sense obvious obviously clear clearly standard common usual normal typical practice
    best-practice industry everyone everybody people always
    bottleneck bottlenecks problem problems issue issues concern concerns reason reasons
    thing things stuff way ways case cases
    """
)


def _is_empty_reason(lowered: str, cue_start: int, cue_end: int, sentence: tuple[int, int]) -> bool:
    """Is the reasoning cue at [cue_start, cue_end) a because-clause that names nothing, or
    inside one ("because it matters": 'it matters' is no more of a reason)?"""
    if not _CAUSE.fullmatch(lowered[cue_start:cue_end].strip()):
        clause_start = sentence[0]
        for end in _CLAUSE_END.finditer(lowered, sentence[0], cue_start):
            clause_start = end.end()
        causes = list(_CAUSE.finditer(lowered, clause_start, cue_start))
        if not causes:
            return False
        cue_start, cue_end = causes[-1].span()
    end = _CLAUSE_END.search(lowered, cue_end, sentence[1])
    clause = lowered[cue_end : end.start() if end else sentence[1]]
    if any(ch.isdigit() for ch in clause):
        return False
    words = _WORD.findall(clause)
    return all(word in _EMPTY_REASON_WORDS for word in words)


def has_reasoning(sentence: str) -> bool:
    """True when the sentence gives a reason or a consequence (because, so that, instead of...).

    An empty because-clause ("because it is important") is no reason.
    """
    lowered = sentence.lower()
    return any(
        not _is_empty_reason(lowered, m.start(), m.end(), (0, len(lowered)))
        for m in _REASONING.finditer(lowered)
    )


def has_tradeoff(sentence: str) -> bool:
    """True when the sentence weighs a choice against something (at the cost of, versus...)."""
    return bool(_TRADEOFF.search(sentence))


def is_hedged(sentence: str) -> bool:
    """True when the sentence refuses to commit (it depends, maybe, could, probably...)."""
    return bool(_HEDGE.search(sentence))


def is_overclaim(sentence: str) -> bool:
    """True for unhedged certainty ("obviously the best", "handles any amount")."""
    return bool(_OVERCLAIM.search(sentence))


def is_injection(sentence: str) -> bool:
    """True when the sentence talks to the grader or fakes a grade instead of answering."""
    return bool(
        _INJECTION.search(sentence)
        or is_grader_checklist(sentence)
        or _FAKE_GRADE.search(sentence)
        or len(_FAKE_GRADE_INLINE.findall(sentence)) >= 1
    )


# Generic architecture vocabulary: fine in a reasoned sentence, a warning sign when a line
# is nothing but these words.
_BUZZ = _word_set(
    """
    scalability scalable scale horizontal vertical availability available latency fault
    tolerance tolerant consistency consistent eventual durability durable security
    encryption observability monitoring reliability reliable resilience resilient
    elastic elasticity cloud-native microservices microservice serverless sharding
    partitioning replication caching cdn balancer balancers balancing streaming event-driven
    real-time distributed theorem nines polyglot persistence denormalization
    materialized indexes bloom consensus quorum leaderless backpressure idempotency
    pagination versioning throttling circuit breakers bulkheads backoff jitter tracing
    chaos canary autoscaling orchestration mesh webhooks hyper-personalized ai-first
    future-proof state-of-the-art best-in-class cutting-edge planet-scale zero-trust
    defense-in-depth cqrs sourcing saga hateoas restful graphql grpc websockets
    kubernetes docker kafka
    """
)


# The rubric's own vocabulary: a line that only lists these ("scope, trade-offs, hot keys,
# failover") names what the grader looks for without doing any of it.
_RUBRIC_META = _word_set(
    """
    clarifying questions assumptions scope requirements non-functional qps peak storage
    bandwidth split estimate estimates read write path paths cursor auth idempotency key keys
    primary partition secondary index access pattern patterns bottleneck bottlenecks replicas
    hot fan-out trade-off trade-offs tradeoff tradeoffs cost costs alternatives alternative
    option options decision failover retries retry monitoring start simple cache workers
    """
)
# Schema and signature lines are concrete: a field list, snake_case names, SQL types, keys.
_SCHEMA_LINE = re.compile(
    r"\w\s*\([^)]*,|\b[a-z]+_[a-z0-9_]+\b|\b(PK|FK|UUID|BIGINT|INT|INTEGER|TEXT|VARCHAR|"
    r"BYTES|BLOB|TIMESTAMP|BOOL|BOOLEAN|JSONB?|DECIMAL|STRING|FLOAT|DOUBLE)\b|\(PK\)"
)

# Upper-case words that are code, not names: SQL keywords and HTTP verbs.
_CODE_WORDS = _word_set(
    """
    SELECT FROM WHERE ORDER BY LIMIT JOIN GROUP AND OR NOT NULL PRIMARY KEY INSERT
    UPDATE DELETE GET POST PUT PATCH DESC ASC LIKE AS ON IN VALUES INDEX CREATE TABLE
    INTO SET
    """
)


def _tech_tokens(words: Sequence[str]) -> int:
    """Buzzwords anywhere, plus capitalised names after the first word (not SQL or HTTP)."""
    count = 0
    for pos, word in enumerate(words):
        if word.islower():
            count += word in _BUZZ
        else:
            name = pos and len(word) >= 2 and word not in _CODE_WORDS and not _is_acronym(word)
            count += word.lower() in _BUZZ or bool(name)
    return count


def _is_acronym(word: str) -> bool:
    """QPS, DDoS, ML, p99: units and abbreviations, not technology names."""
    letters = [ch for ch in word if ch.isalpha()]
    return len(word) <= 5 and sum(ch.isupper() for ch in letters) >= len(letters) - 1


def _meta_tokens(words: Sequence[str]) -> int:
    return sum(1 for word in words if word.lower() in _RUBRIC_META)


_NUMERIC = re.compile(r"\d|[→=≈×<>]")
_DIGIT = re.compile(r"\d")
# Lines worth tokenising: a calculation or a restatement, or a large number.
_CALC_HINT = re.compile(
    r"[=≈→×*/÷+^~]|->|\sx\s|\b(that's|that is|which is|equals|divided by)\b|"
    r"\d\s*[kmgtp]?i?b(ps|its?)?\b.*\bis\b",
    re.IGNORECASE,
)
_BIG_NUMBER = re.compile(
    r"\d{1,3}(,\d{3})+|\d{4,}|\d\s*(thousand|million|billion|trillion)", re.IGNORECASE
)
_FLOW = re.compile(r"[→=≈×]|->|=>")


def is_keyword_list(sentence: str, reasoned: bool | None = None) -> bool:
    """True for a bare run of technology names or buzzwords with nothing connecting them.

    Three shapes: a line dense with product names and no reason ("Kafka, RabbitMQ, SQS");
    a short verbless fragment of generic vocabulary ("Low latency", "CAP theorem, PACELC");
    a verbless list of short items that carries names. Dense notes with numbers, arrows or
    plain nouns ("out: search, DMs, ads"; "10B/day -> 116K QPS") are never flagged.
    """
    if _FLOW.search(sentence) or _SCHEMA_LINE.search(sentence):
        return False
    words = _WORD.findall(sentence)
    if not words:
        return False
    tech = _tech_tokens(words)
    if reasoned is None:
        reasoned = has_reasoning(sentence)
    if tech >= 4 and tech / len(words) >= 0.3 and not reasoned:
        return True
    if tech >= 6 and tech / len(words) >= 0.4:
        return True
    if _NUMERIC.search(sentence) or reasoned or _VERBISH.search(sentence):
        return False
    if len(words) <= 6 and tech >= 1 and tech / len(words) >= 0.5:
        return True
    items = len(_LIST_SEP.findall(sentence)) + 1
    named = tech + _meta_tokens(words)
    return items >= 3 and len(words) / items <= 3.0 and named >= 2


# Three or more product names in a row ("Cassandra, DynamoDB, PostgreSQL and Elasticsearch").
# A sentence that names many criteria's words but nothing concrete meets at most this many.
MAX_CRITERIA_PER_PLAIN_SENTENCE = 2
# Concrete: a number, a snake_case or dotted identifier, a path or a field list.
_CONCRETE = re.compile(r"\d|\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z]\w*\b|(^|\s)/[\w{]|\w\(|[{}=→]|->|`")


@lru_cache(maxsize=8192)
def is_concrete(sentence: str) -> bool:
    """Does the sentence pin something down (a number, an identifier, a path)? Cached: each
    criterion that could use a sentence asks again, and the scan is slow on plain prose."""
    return bool(_CONCRETE.search(sentence))


_NAME = r"[A-Z][\w.+#/-]*(?:\s[A-Z0-9][\w.+#/-]*){0,2}"
_NAME_RUN = re.compile(rf"\b{_NAME}(?:(?:,\s+|,?\s+(?:and|or)\s+){_NAME}){{2,}}")


# --- negation --------------------------------------------------------------------------------

# A negator puts what follows it, in the same clause, out of the answer: "no pagination",
# "we will NOT use a queue", "without an index", "won't worry about retries or outages".
_NEGATOR = re.compile(
    r"\b(no|not|never|without|none|nor|neither|(do|does|did|is|are|was|were|wo|ca|could|"
    r"would|should|have|has|need)n['’]?t|cannot|can not)\b(?!\s+(only|just|merely|"
    r"necessarily|always|all|too|so|more than|less than|longer|matter)\b)"
)
# What ends a negator's scope before the cue: punctuation that closes a clause, or a word
# that starts a new one ("no cache, so reads hit the database").
_SCOPE_END = re.compile(
    r"[.;:!?()\[\]—–]|\s-\s|\b(but|because|since|so|which|that|instead|rather|then|"
    r"and then|while|whereas|although|though|however|if|when|unless|until|we|i|it|they)\b"
)
# A negation that states a guarantee describes the design: "so a retry doesn't charge twice".
_GUARANTEE = re.compile(
    r"\b(so|so that|to make sure|make sure|making sure|to ensure|ensures?|ensuring|"
    r"guarantees?|such that|in case)\b(\s+[\w'’-]+){0,4}\s*$"
)
_NEGATION_REACH = 4  # words between the negator and the cue ("not going to use a" ...)


def is_negated(before: str) -> bool:
    """Is a cue negated by the text `before` it in its sentence (lowercased)?

    Scope is the cue's own clause: commas continue it only through short list items
    ("no auth, no pagination or retries"), so "If not, it reads from the database" and
    "cursor, not offset" still count as saying what the system does.
    """
    negators = list(_NEGATOR.finditer(before))
    if not negators:
        return False
    if _GUARANTEE.search(before[: negators[-1].start()]):
        return False
    between = before[negators[-1].end() :]
    if _SCOPE_END.search(between):
        return False
    *items, last = between.split(",")
    if len(last.split()) > _NEGATION_REACH:
        return False
    return all(len(item.split()) <= _NEGATION_REACH and not _VERBISH.search(item) for item in items)


# --- sentences -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    """One sentence (or bullet, or code line) with its exact place in the text."""

    start: int
    end: int
    text: str
    interviewer: bool = False
    heading: bool = False
    hidden: bool = False


_SPEAKER = re.compile(
    r"^\s*[*_]{0,2}(interviewer|int|q|question|candidate|cand|me|a|answer|you|c|i)"
    r"[*_]{0,2}\s*:[*_]{0,2}\s*",
    _I,
)
_INTERVIEWER_LABEL = re.compile(r"^(interviewer|int|q|question|i)$", _I)
_BULLET = re.compile(r"^\s*(?:[-*•+>]|\d{1,2}[.)])\s+")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_SPLIT = re.compile(r"(?<=[.!?])[\"')\]*_]*\s+(?=[\"'(\[*_`~≈<A-Z0-9-])")
_ABBREV = re.compile(r"\b(e\.g|i\.e|vs|etc|approx|mr|ms|dr|no|fig|cf|incl|est)\.$", _I)
_HEADING_MD = re.compile(r"^\s*#{1,6}\s")
_HEADING_BOLD = re.compile(r"^\s*(\*\*|__)[^*_]{1,80}(\*\*|__)\s*:?\s*$")
_HEADING_BRACKET = re.compile(r"^\s*\[[^\]]{1,60}\]\s*$")
_HEADING_STEP = re.compile(r"^\s*(step|part|phase|section)\s+[\w]+\b", _I)
_HEADING_NUM = re.compile(r"^\s*\d{1,2}\s*[.)/:]\s*\S")


def _is_heading(line: str) -> bool:
    stripped = line.strip()
    if not stripped:
        return False
    if _HEADING_MD.match(stripped) or _HEADING_BOLD.match(stripped):
        return True
    if _HEADING_BRACKET.match(stripped):
        return True
    words = stripped.split()
    # "DATA MODEL" and "2) API" are headings; "100M DAU" is a figure in capitals. (isupper:
    # every cased letter is a capital and there is one; it runs on every line, so it is cheap.)
    if len(words) <= 8 and stripped.isupper():
        numbered = _HEADING_NUM.match(stripped) or _HEADING_STEP.match(stripped)
        if numbered or _DIGIT.search(stripped) is None:
            return True
    ends_like_sentence = stripped[-1] in ".!?"
    if stripped.endswith(":") and len(words) <= 6:
        return True
    if _HEADING_STEP.match(stripped) and len(words) <= 10 and not ends_like_sentence:
        return True
    if _HEADING_NUM.match(stripped) and len(words) <= 6 and not ends_like_sentence:
        return not any(ch in stripped for ch in ",;=→")
    return (
        len(words) <= 3
        and not ends_like_sentence
        and not _BULLET.match(line)
        and not any(ch.isdigit() for ch in stripped)
        and not any(ch in stripped for ch in "(){}=→/")
    )


# Short speaker labels make a transcript only when both sides speak more than once: a lone
# "Q: per user or per key? Per key." is the candidate thinking aloud, and everything after it
# is still the candidate's answer. "Interviewer:" spelled out is never the candidate's.
MIN_TURNS_PER_SPEAKER = 2


@lru_cache(maxsize=64)
def is_transcript(text: str) -> bool:
    """At least MIN_TURNS_PER_SPEAKER labelled turns for the interviewer and the candidate.

    Decide it on the whole answer: one phase's section of a transcript may hold a single
    exchange, and its labels still mark who spoke.
    """
    asks = answers = 0
    named = False  # "Interviewer:" spelled out is a transcript even for one exchange
    for line in text.splitlines():
        speaker = _SPEAKER.match(line)
        if speaker:
            if _INTERVIEWER_LABEL.match(speaker.group(1)):
                asks += 1
                named = named or speaker.group(1).lower() == "interviewer"
            else:
                answers += 1
    if named and answers:
        return True
    return asks >= MIN_TURNS_PER_SPEAKER and answers >= MIN_TURNS_PER_SPEAKER


def split_sentences(text: str, transcript: bool | None = None) -> list[Sentence]:
    """Split into sentences, bullets and code lines, keeping exact offsets into `text`.

    Interviewer turns in a transcript, headings and hidden HTML comments are kept but
    flagged, so callers can skip them: they are not the candidate's answer. `transcript`
    says whether speaker labels mark turns (see `is_transcript`); None decides from `text`.
    """
    hidden_spans = [(m.start(), m.end()) for m in _COMMENT.finditer(text)]
    sentences: list[Sentence] = []
    lines = text.splitlines(keepends=True)
    if transcript is None:
        transcript = is_transcript(text)
    interviewer = False
    in_fence = False
    offset = 0
    for line in lines:
        line_start = offset
        offset += len(line)
        body = line.rstrip("\r\n")
        if not body.strip():
            continue
        if _FENCE.match(body):
            in_fence = not in_fence
            continue
        if in_fence:
            heading, spans = False, _code_line_spans(body)
        else:
            speaker, heading, spans = _line_layout(body)
            if speaker is not None and transcript:
                interviewer = speaker
        for a, b in spans:
            start = line_start + a
            sentences.append(
                Sentence(
                    start=start,
                    end=line_start + b,
                    text=body[a:b],
                    interviewer=interviewer,
                    heading=heading,
                    hidden=any(lo <= start < hi for lo, hi in hidden_spans),
                )
            )
    return sentences


def _code_line_spans(body: str) -> tuple[tuple[int, int], ...]:
    bullet = _BULLET.match(body)
    pos = bullet.end() if bullet else 0
    stripped = body[pos:].strip()
    if not stripped:
        return ()
    start = body.index(stripped, pos)
    return ((start, start + len(stripped)),)


@lru_cache(maxsize=8192)
def _line_layout(body: str) -> tuple[bool | None, bool, tuple[tuple[int, int], ...]]:
    """(interviewer turn? None if no speaker label, heading?, sentence spans in the line)."""
    pos = 0
    speaker = _SPEAKER.match(body)
    who: bool | None = None
    if speaker:
        who = bool(_INTERVIEWER_LABEL.match(speaker.group(1)))
        pos = speaker.end()
    heading = not speaker and _is_heading(body)
    bullet = _BULLET.match(body, pos)
    if bullet:
        pos = bullet.end()
    pieces = [body[pos:]] if heading else _split_line(body[pos:])
    spans: list[tuple[int, int]] = []
    cursor = pos
    for piece in pieces:
        start = body.index(piece, cursor) if piece else cursor
        cursor = start + len(piece)
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
    return who, heading, tuple(spans)


def _split_line(line: str) -> list[str]:
    pieces: list[str] = []
    last = 0
    for match in _SPLIT.finditer(line):
        before = line[last : match.start()]
        if _ABBREV.search(before.rstrip("\"')]*_")):
            continue
        pieces.append(line[last : match.start()])
        last = match.start()
    pieces.append(line[last:])
    return pieces


def quote(text: str, start: int, end: int, focus: tuple[int, int] | None = None) -> str:
    """An exact substring of `text` covering [start, end), cut to MAX_QUOTE around `focus`."""
    if end - start <= MAX_QUOTE:
        return text[start:end]
    f_start, f_end = focus or (start, start + 1)
    half = max(0, (MAX_QUOTE - (f_end - f_start)) // 2)
    lo = max(start, f_start - half)
    hi = min(end, lo + MAX_QUOTE)
    lo = max(start, hi - MAX_QUOTE)
    # Do not cut words in half: move inwards to the nearest space.
    if lo > start:
        space = text.find(" ", lo, hi)
        if space != -1 and space < f_start:
            lo = space + 1
    if hi < end:
        space = text.rfind(" ", lo, hi)
        if space != -1 and space >= f_end:
            hi = space
    return text[lo:hi].strip()


# --- whole-text analysis, cached -------------------------------------------------------------


@dataclass
class TextAnalysis:
    """Sentences of one text with their flags; pattern matches are computed lazily."""

    text: str
    sentences: list[Sentence]
    usable: list[bool]
    reasoning: list[bool]
    hedged: list[bool]
    keyword_list: list[bool]
    injection: list[bool]
    overclaim: list[bool]
    lowered: str = ""  # ASCII-lowercased copy, same offsets: cues run on it without IGNORECASE
    _starts: list[int] = field(default_factory=list)
    _matches: dict[tuple[int, bool], dict[int, set[str]]] = field(default_factory=dict)

    def sentence_index(self, offset: int) -> int | None:
        pos = bisect.bisect_right(self._starts, offset) - 1
        if pos < 0:
            return None
        return pos if offset < self.sentences[pos].end else None

    def matches(
        self, pattern_id: int, pattern: re.Pattern[str], negated: bool = False
    ) -> dict[int, set[str]]:
        """Sentence index -> distinct matched strings (lowercased) for one pattern.

        Matches inside a negation ("no pagination", "we won't use a cache") are left out:
        saying a thing is absent is not evidence that it is there. With `negated`, only
        those negated matches are returned (a rejection may still be a considered choice).
        """
        key = (pattern_id, negated)
        found = self._matches.get(key)
        if found is None:
            # One scan fills both: the affirmed matches and the negated ones.
            affirmed: dict[int, set[str]] = {}
            denied: dict[int, set[str]] = {}
            for match in pattern.finditer(self.lowered):
                idx = self.sentence_index(match.start())
                if idx is None or not self.usable[idx]:
                    continue
                before = self.lowered[self.sentences[idx].start : match.start()]
                bucket = denied if is_negated(before) else affirmed
                bucket.setdefault(idx, set()).add(_norm(match.group(0)))
            self._matches[(pattern_id, False)] = affirmed
            self._matches[(pattern_id, True)] = denied
            found = denied if negated else affirmed
        return found

    @property
    def content_sentences(self) -> list[int]:
        return [i for i, ok in enumerate(self.usable) if ok]


def _norm(matched: str) -> str:
    return " ".join(matched.lower().split())


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def compile_cue(pattern: str) -> re.Pattern[str]:
    """Compile a rubric cue to run on `TextAnalysis.lowered` (ASCII-lowercased text).

    Cues are case-insensitive. Lowercasing the text once and compiling without IGNORECASE
    is about twice as fast; a cue with literal capitals keeps the flag so it still matches.
    """
    literal_caps = re.search(r"(?<!\\)[A-Z]", pattern.replace("\\\\", ""))
    flags = re.MULTILINE | (re.IGNORECASE if literal_caps else 0)
    return re.compile(pattern, flags)


@dataclass(frozen=True)
class SentenceFlags:
    """What one sentence does, independent of where it sits."""

    injection: bool
    reasoning: bool
    hedged: bool
    keyword_list: bool
    overclaim: bool


@lru_cache(maxsize=8192)
def sentence_flags(sentence: str) -> SentenceFlags:
    """All one-sentence tests at once; cached, since a section repeats the full text's sentences."""
    reasoning = has_reasoning(sentence)
    return SentenceFlags(
        injection=is_injection(sentence),
        reasoning=reasoning,
        hedged=is_hedged(sentence),
        keyword_list=is_keyword_list(sentence, reasoning),
        overclaim=is_overclaim(sentence),
    )


# The same tests for a whole text at once: one scan per test instead of one call per sentence.
_WHOLE_TEXT_TESTS = (
    ("reasoning", re.compile(_REASONING.pattern)),
    ("hedged", re.compile(_HEDGE.pattern)),
    ("overclaim", re.compile(_OVERCLAIM.pattern)),
    ("injection", re.compile(_INJECTION.pattern)),
)
_FLAGS: dict[str, SentenceFlags] = {}  # sentence text -> flags, shared by a text's sections
_FLAGS_LIMIT = 50_000


def _text_flags(lowered: str, sentences: list[Sentence], starts: list[int]) -> list[SentenceFlags]:
    """Flags for every sentence; reuses `_FLAGS`, else one scan per test over the whole text."""
    hits: dict[str, set[int]] | None = None
    flags: list[SentenceFlags] = []
    for i, sentence in enumerate(sentences):
        known = _FLAGS.get(sentence.text)
        if known is None:
            if hits is None:
                hits = _whole_text_hits(lowered, sentences, starts)
            reasoning = i in hits["reasoning"]
            text = sentence.text
            known = SentenceFlags(
                injection=i in hits["injection"]
                or bool(_FAKE_GRADE.search(text) or _FAKE_GRADE_INLINE.search(text)),
                reasoning=reasoning,
                hedged=i in hits["hedged"],
                keyword_list=is_keyword_list(text, reasoning),
                overclaim=i in hits["overclaim"],
            )
            if len(_FLAGS) > _FLAGS_LIMIT:
                _FLAGS.clear()
            _FLAGS[text] = known
        flags.append(known)
    return flags


def _whole_text_hits(
    lowered: str, sentences: list[Sentence], starts: list[int]
) -> dict[str, set[int]]:
    hits: dict[str, set[int]] = {}
    for name, pattern in _WHOLE_TEXT_TESTS:
        found = hits[name] = set()
        for match in pattern.finditer(lowered):
            idx = bisect.bisect_right(starts, match.start()) - 1
            if idx >= 0 and match.start() < sentences[idx].end:
                sentence = sentences[idx]
                if name == "reasoning" and _is_empty_reason(
                    lowered, match.start(), match.end(), (sentence.start, sentence.end)
                ):
                    continue
                found.add(idx)
    return hits


@lru_cache(maxsize=64)
def analyse(text: str, transcript: bool | None = None) -> TextAnalysis:
    """Sentences of `text` with the flags the graders use; cached, so repeat calls are free.

    `transcript`: whether speaker labels mark turns, when the whole answer decides it.
    """
    sentences = split_sentences(text, transcript)
    starts = [s.start for s in sentences]
    lowered = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    flags = _text_flags(lowered, sentences, starts)
    injection = [f.injection or s.hidden for s, f in zip(sentences, flags, strict=True)]
    _flag_checklists(lowered, sentences, starts, injection)
    usable = [
        not (s.interviewer or s.heading or inj) for s, inj in zip(sentences, injection, strict=True)
    ]
    return TextAnalysis(
        text=text,
        sentences=sentences,
        usable=usable,
        reasoning=[f.reasoning for f in flags],
        hedged=[f.hedged for f in flags],
        keyword_list=[f.keyword_list for f in flags],
        injection=injection,
        overclaim=[f.overclaim for f in flags],
        lowered=lowered,
        _starts=starts,
    )


def _flag_checklists(
    lowered: str, sentences: list[Sentence], starts: list[int], injection: list[bool]
) -> None:
    """Flag sentences aimed at the marker (GRADER_CHECKLIST), and every sentence on a line
    of ticks, not only the ticked ones: "... failures ✔. Every phase meets level 4." is one
    note to the marker. Not cached with the other flags: a line's ticks span sentences."""
    if not any(hint in lowered for hint in _CHECKLIST_HINTS):
        return
    for match in _GRADER_CHECKLIST.finditer(lowered):
        idx = bisect.bisect_right(starts, match.start()) - 1
        if idx >= 0 and match.start() < sentences[idx].end:
            injection[idx] = True
    if not any(tick in lowered for tick in _TICK):
        return
    text = lowered
    for i, sentence in enumerate(sentences):
        if injection[i]:
            continue
        line_start = text.rfind("\n", 0, sentence.start) + 1
        line_end = text.find("\n", sentence.end)
        line = text[line_start : line_end if line_end != -1 else len(text)]
        if sum(line.count(tick) for tick in _TICK) >= CHECKLIST_LINE_TICKS:
            injection[i] = True


def clear_caches() -> None:
    """Forget cached analyses (benchmarks use it to time cold runs)."""
    analyse.cache_clear()
    is_transcript.cache_clear()
    sentence_flags.cache_clear()
    _FLAGS.clear()
    _line_layout.cache_clear()
    check_arithmetic.cache_clear()
    _line_items.cache_clear()
    find_unitless_numbers.cache_clear()
    states_quantity.cache_clear()
    is_concrete.cache_clear()


# --- topicality -------------------------------------------------------------------------------

_TOPIC_WORD = re.compile(r"[a-z][a-z0-9]+")
# Words of a question's title that say nothing about its subject.
_TITLE_FILLER = _word_set(
    "design a an the of and or for with like system service build app platform simple"
)
# An answer reads as written for another question when that question's topic words outnumber
# the asked one's by this much (and the asked question's name never comes up).
OFF_TOPIC_RATIO = 1.5
# ...and when it uses enough of them to be a real answer to it: a short reply to one
# practice prompt is never called off topic.
OFF_TOPIC_MIN_HITS = 6


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def _name_terms(question: Question) -> frozenset[str]:
    """The words that name the question's subject: its title and aliases, minus filler."""
    words = _TOPIC_WORD.findall(f"{question.title} {' '.join(question.aliases)}".lower())
    return frozenset(_stem(w) for w in words if w not in _TITLE_FILLER and len(w) >= 3)


def _topic_hits(lowered: str, question: Question) -> int:
    """How many of the question's topic keywords (its facts' keywords) the text uses."""
    keywords = {k.lower() for fact in question.facts for k in fact.keywords}
    return sum(1 for k in keywords if re.search(r"\b" + re.escape(k), lowered))


def other_topic(text: str, question: Question, bank: Sequence[Question]) -> Question | None:
    """The bank question this answer is really about, when it is not `question`.

    Off topic means both: the asked question's name (title words, aliases) never appears,
    and another question's topic keywords clearly outnumber the asked one's. An answer that
    only says little is not off topic; one written for another question is.
    """
    lowered = text.lower()
    words = {_stem(w) for w in _TOPIC_WORD.findall(lowered)}
    if _name_terms(question) & words:
        return None
    own = _topic_hits(lowered, question)
    others = [(_topic_hits(lowered, q), q.id, q) for q in bank if q.id != question.id]
    if not others:
        return None
    best_hits, _, best = max(others, key=lambda item: (item[0], item[1]))
    return best if best_hits >= max(OFF_TOPIC_MIN_HITS, OFF_TOPIC_RATIO * own) else None


# --- arithmetic --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"|(?P<op>[×*÷+]|\bdivided by\b|/)"
    r"|(?P<eq>≈|~=|=|→|->|⇒|\bthat's\b|\bthat is\b|\bwhich is\b|\bequals\b|\bis\b)"
    r"|(?P<lp>\()|(?P<rp>\))|(?P<caret>\^)"
    r"|(?P<word>[A-Za-z][A-Za-z']*)"
    r"|(?P<sep>[,;:.!?\n]|\s-\s)",
    _I,
)
_MAGNITUDE = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "mn": 1e6,
    "mm": 1e6,
    "million": 1e6,
    "millions": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "billions": 1e9,
    "t": 1e12,
    "trillion": 1e12,
}
_BYTES = {
    "b": 1.0,
    "byte": 1.0,
    "bytes": 1.0,
    "kb": 1e3,
    "kib": 1024.0,
    "mb": 1e6,
    "mib": 1024.0**2,
    "gb": 1e9,
    "gib": 1024.0**3,
    "tb": 1e12,
    "tib": 1024.0**4,
    "pb": 1e15,
    "eb": 1e18,
}
_BITS = {
    "bps": 1.0,
    "kbps": 1e3,
    "mbps": 1e6,
    "gbps": 1e9,
    "tbps": 1e12,
    "bit": 1.0,
    "bits": 1.0,
    "kbit": 1e3,
    "mbit": 1e6,
    "gbit": 1e9,
    "tbit": 1e12,
    "kbits": 1e3,
    "mbits": 1e6,
    "gbits": 1e9,
    "tbits": 1e12,
}
_PERIOD_SECONDS = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "hour": 3600.0,
    "hr": 3600.0,
    "h": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
    "days": 86400.0,
    "month": 2.592e6,
    "mo": 2.592e6,
    "year": 3.1536e7,
    "yr": 3.1536e7,
}
_RATE_WORDS = {"qps": 1.0, "rps": 1.0, "tps": 1.0, "daily": 86400.0, "yearly": 3.1536e7}
_FILLER = {"about", "roughly", "approximately", "around", "approx", "only", "just", "so", "nearly"}
_ZERO_WORDS = {"per", "a", "an", "each", "every"}


@dataclass
class _Qty:
    value: float
    start: int
    end: int
    dim: str | None = None  # "bytes" | "bits" | None
    unit_scale: float = 1.0  # what the byte or bit unit multiplied `value` by
    period: float | None = None  # seconds in the rate's period, e.g. 86400 for "/day"
    per_item: bool = False  # "/tweet", "per user": a rate over something that is not time
    words: list[str] = field(default_factory=list)
    factor: bool = False  # "3x": a multiplier, not a quantity


@dataclass(frozen=True)
class ArithmeticIssue:
    """A stated calculation or conversion that is off by an order of magnitude or more."""

    quote: str
    stated: float
    expected: float
    # for a claim checked against the answer's own figures elsewhere: what it was checked with
    basis: str = ""

    @property
    def ratio(self) -> float:
        low, high = sorted((abs(self.stated), abs(self.expected)))
        return high / low if low else float("inf")

    def describe(self) -> str:
        if self.basis:
            return f"'{self.quote}' {self.basis} (off by ~{self.ratio:,.0f}x)"
        return (
            f"'{self.quote}' states {_fmt(self.stated)} but the inputs give about "
            f"{_fmt(self.expected)} (off by ~{self.ratio:,.0f}x)"
        )


def _fmt(value: float) -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= size:
            return f"{value / size:,.3g}{suffix}"
    return f"{value:,.3g}"


def _tokens(line: str) -> list[tuple[str, str, int, int]]:
    out = []
    for match in _TOKEN.finditer(line):
        kind = match.lastgroup or "sep"
        out.append((kind, match.group(0), match.start(), match.end()))
    return out


def _raw_items(line: str) -> list[object]:
    """Numbers with their units folded in; other tokens kept as (kind, text, start, end)."""
    toks = _tokens(line)
    items: list[object] = []
    i = 0
    while i < len(toks):
        kind, raw, start, end = toks[i]
        if kind != "num":
            if kind == "op" and raw == "/":
                prev = toks[i - 1] if i else None
                nxt = toks[i + 1] if i + 1 < len(toks) else None
                glued = prev and prev[3] == start and nxt and nxt[2] == end
                if glued and prev[0] == "word" and nxt[0] == "word":
                    items.append(("unitsep", raw, start, end))
                    i += 1
                    continue
            items.append((kind, raw, start, end))
            i += 1
            continue
        value = float(raw.replace(",", ""))
        qty = _Qty(value=value, start=start, end=end)
        i += 1
        if line[end : end + 1] == "%":
            qty.value /= 100
        # 62^7, 3.5 x 10^12
        if i + 1 < len(toks) and toks[i][0] == "caret" and toks[i + 1][0] == "num":
            qty.value = value ** min(float(toks[i + 1][1].replace(",", "")), 30.0)
            qty.end = toks[i + 1][3]
            i += 2
        if (
            i + 3 < len(toks)
            and toks[i][1] in ("×", "x", "*")
            and toks[i + 1][1] == "10"
            and toks[i + 2][0] == "caret"
            and toks[i + 3][0] == "num"
        ):
            qty.value *= 10 ** min(float(toks[i + 3][1]), 30.0)
            qty.end = toks[i + 3][3]
            i += 4
        absorbed = 0
        while i < len(toks) and absorbed < 4:
            t_kind, t_raw, t_start, t_end = toks[i]
            low = t_raw.lower()
            if t_kind == "op" and low == "/" and i + 1 < len(toks) and toks[i + 1][0] == "word":
                nxt = toks[i + 1][1].lower()
                if t_start == (qty.end if absorbed == 0 else toks[i - 1][3]) and (
                    nxt in _PERIOD_SECONDS or not absorbed
                ):
                    if nxt in _PERIOD_SECONDS:
                        qty.period = _PERIOD_SECONDS[nxt]
                    else:
                        qty.per_item = True
                    qty.end = toks[i + 1][3]
                    i += 2
                    absorbed += 1
                    continue
            if t_kind == "unitsep" or (t_kind == "op" and low == "/" and absorbed):
                if i + 1 < len(toks) and toks[i + 1][0] == "word":
                    nxt = toks[i + 1][1].lower()
                    if nxt in _PERIOD_SECONDS:
                        qty.period = _PERIOD_SECONDS[nxt]
                    else:
                        qty.per_item = True
                    i += 2
                    absorbed += 1
                    continue
                break
            if t_kind != "word":
                break
            gap = t_start - (qty.end if absorbed == 0 else toks[i - 1][3])
            if absorbed == 0 and low in ("x", "×") and gap == 0:
                qty.factor = True
            elif absorbed == 0 and low in _MAGNITUDE and not (low == "b" and gap > 0):
                qty.value *= _MAGNITUDE[low]
                qty.words.append(low)
                qty.end = t_end
                i += 1
                # "2 MB" after "1.2K": bytes can follow a magnitude
                if i < len(toks) and toks[i][0] == "word" and toks[i][1].lower() in _BYTES:
                    qty.unit_scale = _BYTES[toks[i][1].lower()]
                    qty.value *= qty.unit_scale
                    qty.dim = "bytes"
                    qty.end = toks[i][3]
                    i += 1
                absorbed += 1
                continue
            elif low in _BYTES and absorbed <= 1:
                qty.unit_scale = _BYTES[low]
                qty.value *= qty.unit_scale
                qty.dim = "bytes"
            elif low in _BITS and absorbed <= 1:
                qty.unit_scale = _BITS[low]
                qty.value *= qty.unit_scale
                qty.dim = "bits"
                qty.period = 1.0
            elif low in _RATE_WORDS:
                qty.period = _RATE_WORDS[low]
            elif low == "per" and i + 1 < len(toks) and toks[i + 1][0] == "word":
                nxt = toks[i + 1][1].lower()
                if nxt in _PERIOD_SECONDS:
                    qty.period = _PERIOD_SECONDS[nxt]
                else:
                    qty.per_item = True
                qty.words.extend([low, nxt])
                qty.end = toks[i + 1][3]
                i += 2
                absorbed += 2
                continue
            elif low in ("a", "each", "every") and i + 1 < len(toks):
                nxt = toks[i + 1][1].lower()
                if toks[i + 1][0] == "word" and nxt in _PERIOD_SECONDS:
                    qty.period = _PERIOD_SECONDS[nxt]
                    qty.words.extend([low, nxt])
                    qty.end = toks[i + 1][3]
                    i += 2
                    absorbed += 2
                    continue
                break
            elif low in _EQ_WORDS or low in _FILLER or low in ("and", "or", "to", "of", "in"):
                break
            qty.words.append(low)
            qty.end = t_end
            i += 1
            absorbed += 1
        items.append(qty)
    return items


_EQ_WORDS = {"that's", "that", "which", "is", "equals"}


def _evaluate(items: Sequence[object]) -> tuple[float, bool, bool] | None:
    """Evaluate numbers joined by + x / and parentheses; returns (value, has_bytes, has_op)."""
    output: list[float] = []
    ops: list[str] = []
    prec = {"+": 1, "*": 2, "/": 2}
    has_bytes = False
    has_op = False
    expect_value = True

    def apply() -> bool:
        op = ops.pop()
        if len(output) < 2:
            return False
        right, left = output.pop(), output.pop()
        if op == "/" and right == 0:
            return False
        output.append(left + right if op == "+" else left * right if op == "*" else left / right)
        return True

    for item in items:
        if isinstance(item, _Qty):
            if not expect_value or item.factor:
                return None
            output.append(item.value)
            has_bytes = has_bytes or item.dim is not None
            expect_value = False
            continue
        kind, raw = item[0], item[1].lower()  # type: ignore[index]
        if kind == "op":
            if expect_value:
                return None
            op = "+" if raw == "+" else "/" if raw in ("/", "÷", "divided by") else "*"
            while ops and ops[-1] != "(" and prec[ops[-1]] >= prec[op]:
                if not apply():
                    return None
            ops.append(op)
            has_op = True
            expect_value = True
        elif kind == "lp":
            if not expect_value:
                return None
            ops.append("(")
        elif kind == "rp":
            while ops and ops[-1] != "(":
                if not apply():
                    return None
            if not ops:
                return None
            ops.pop()
        else:
            return None
    if expect_value:
        return None
    while ops:
        if ops[-1] == "(" or not apply():
            return None
    return (output[0], has_bytes, has_op) if len(output) == 1 else None


def _x_as_op(items: list[object]) -> list[object]:
    """'100M x 500': a lone x between two numbers is multiplication."""
    out: list[object] = []
    for pos, item in enumerate(items):
        if (
            isinstance(item, tuple)
            and item[0] == "word"
            and item[1].lower() == "x"
            and out
            and isinstance(out[-1], _Qty)
            and pos + 1 < len(items)
            and isinstance(items[pos + 1], _Qty | tuple)
        ):
            nxt = items[pos + 1]
            if isinstance(nxt, _Qty) or (isinstance(nxt, tuple) and nxt[0] == "lp"):
                out.append(("op", "×", item[2], item[3]))
                continue
        out.append(item)
    # "3 x" absorbed as a word of the number before: undo when a number follows
    fixed: list[object] = []
    for pos, item in enumerate(out):
        if isinstance(item, _Qty) and item.words and item.words[-1] == "x":
            nxt = out[pos + 1] if pos + 1 < len(out) else None
            if isinstance(nxt, _Qty):
                item.words.pop()
                fixed.append(item)
                fixed.append(("op", "×", item.end, item.end))
                continue
        fixed.append(item)
    return fixed


@lru_cache(maxsize=4096)
def _line_items(line: str) -> tuple[object, ...]:
    """Numbers (units folded in), operators and words of one line; shared, so never mutate."""
    return tuple(_x_as_op(_raw_items(line)))


def _seconds(qty: _Qty) -> float:
    return qty.value / (qty.period or 1.0)


def _check_line(line: str) -> list[tuple[int, int, float, float]]:
    """(start, end, stated, expected) for each slip in one line."""
    items = _line_items(line)
    issues: list[tuple[int, int, float, float]] = []
    for pos, item in enumerate(items):
        if not (isinstance(item, tuple) and item[0] == "eq"):
            continue
        eq_word = item[1].lower()
        # the stated result: the first number after the sign, past filler words
        result: _Qty | None = None
        after: object = None  # what follows the result
        for at, nxt in enumerate(items[pos + 1 : pos + 4], pos + 1):
            if isinstance(nxt, _Qty):
                result = nxt
                after = items[at + 1] if at + 1 < len(items) else None
                break
            if isinstance(nxt, tuple) and nxt[0] == "word" and nxt[1].lower() in _FILLER:
                continue
            break
        if result is None or result.factor:
            continue
        arrow = eq_word in _ARROWS
        if arrow and isinstance(after, tuple) and after[0] == "op":
            continue  # "... → 1.5M × 300 B ≈ 450 MB/s": the arrow starts the next calculation
        # the left side: numbers, operators and brackets back to a separator or a word
        left: list[object] = []
        back = pos - 1
        crossed = 0
        while back >= 0:
            prev = items[back]
            if isinstance(prev, _Qty) or (
                isinstance(prev, tuple) and prev[0] in ("op", "lp", "rp")
            ):
                left.insert(0, prev)
            elif (
                isinstance(prev, tuple)
                and prev[0] == "sep"
                and not left
                and crossed < 2
                and eq_word in ("that's", "that is", "which is")
            ):
                crossed += 1
            else:
                break
            back -= 1
        while left and isinstance(left[0], tuple) and left[0][0] in ("op", "rp"):
            left.pop(0)
        if not left:
            continue
        qtys = [q for q in left if isinstance(q, _Qty)]
        ops = {o[1] for o in left if isinstance(o, tuple) and o[0] == "op"}
        if arrow and ops and ops <= {"+", "-"}:
            # "4 ledger entries + 3 transitions → ~5K rows/s": an arrow after a sum of different
            # things reads "which leads to", not "equals"; a sum is rarely where a slip hides.
            continue
        if len(qtys) == 1 and len(left) == 1:
            issue = _check_restatement(qtys[0], result, eq_word)
        else:
            if eq_word == "is":
                continue
            issue = _check_expression(left, result)
        if issue:
            start = min(q.start for q in qtys)
            issues.append((start, result.end, issue[0], issue[1]))
    return issues


_ARROWS = frozenset({"→", "->", "⇒"})


def _check_expression(left: list[object], result: _Qty) -> tuple[float, float] | None:
    evaluated = _evaluate(left)
    if evaluated is None:
        return None
    value, has_units, has_op = evaluated
    if not has_op or value <= 0 or result.value <= 0:
        return None
    expected = value
    if (
        result.dim == "bits"
        and has_units
        and not any(isinstance(q, _Qty) and q.dim == "bits" for q in left)
    ):
        expected = value * 8
    ratio = max(expected, result.value) / min(expected, result.value)
    if ratio >= 8 and result.dim and not has_units:
        # "100 + 365 = 465 TB": the unit may belong to every term, not just the result
        bare = result.value / result.unit_scale
        ratio = min(ratio, max(expected, bare) / min(expected, bare))
    return (result.value, expected) if ratio >= 8 else None


def _check_restatement(first: _Qty, second: _Qty, eq_word: str) -> tuple[float, float] | None:
    if first.factor or first.per_item or second.per_item or first.value <= 0:
        return None
    if second.value <= 0:
        return None
    if first.dim and second.dim:
        a, b = _seconds(first) if first.period else first.value, second.value
        if (first.period is None) != (second.period is None):
            return None
        if second.period:
            b = _seconds(second)
        if first.dim == "bytes" and second.dim == "bits":
            a *= 8
        elif first.dim == "bits" and second.dim == "bytes":
            a /= 8
        ratio = max(a, b) / min(a, b)
        return (second.value, a * (second.period or 1.0)) if ratio >= 3 else None
    if eq_word == "is":
        return None
    if first.period and second.period and first.period != second.period and not first.dim:
        a, b = _seconds(first), _seconds(second)
        ratio = max(a, b) / min(a, b)
        return (second.value, a * second.period) if ratio >= 15 else None
    return None


@lru_cache(maxsize=64)
def check_arithmetic(text: str) -> tuple[ArithmeticIssue, ...]:
    """Calculations and unit conversions in `text` that are off by 8x or more.

    Reads "A x B = C", "A / (B x C) ~ D", "X/day ~ Y/s", "N MB/s is M Mbps" and the like,
    with K/M/B magnitudes and byte units; "100M writes/day ~ 1,200/s" passes, "~ 1.2/s"
    does not. Deliberately conservative: rounding and peak multipliers are not slips.
    """
    issues: list[ArithmeticIssue] = []
    slip_lines: set[int] = set()
    offset = 0
    lines = text.split("\n")
    for idx, line in enumerate(lines):
        if not _DIGIT.search(line) or not _CALC_HINT.search(line):
            offset += len(line) + 1
            continue
        # a restatement can start the next line: "= 13,824,000 MB/day.\n- That's 13.8 GB/day"
        nxt = lines[idx + 1] if idx + 1 < len(lines) else ""
        joined = line
        if re.match(r"^\s*(?:[-*•]\s*)?(that's|that is|which is)\b", nxt, _I):
            joined = line + " " + nxt
        for start, end, stated, expected in _check_line(joined):
            if start >= len(line):
                continue
            slip_lines.add(idx)
            end = min(end, len(line))
            issues.append(
                ArithmeticIssue(
                    quote=quote(text, offset + start, offset + end)
                    if end > start
                    else line.strip(),
                    stated=stated,
                    expected=expected,
                )
            )
        offset += len(line) + 1
    issues.extend(check_rate_consistency(text, frozenset(slip_lines)))
    return tuple(issues)


# --- the answer's rates checked against each other ---------------------------------------------

# Words around a rate that say how it was measured, not what is counted.
_RATE_MODIFIERS = _word_set(
    "peak avg average mean total overall sustained steady daily expected estimated about "
    "roughly around approximately approx so the at new i e ie max maximum"
)
# What any request counts as when no other noun says what it is: "write QPS" is writes.
_GENERIC_RATE_NOUNS = _word_set(
    "request requests req reqs qps rps tps op ops operation operations call calls"
)
_LONG_PERIODS = frozenset({86400.0, 2.592e6, 3.1536e7})  # per day, month, year
# A rate in a line that speaks of one user, shard or server is not the system's total.
_PER_UNIT = re.compile(
    r"\b(per|each|every|an?|one|average|avg|typical|single)\s+(?:active\s+|single\s+)?"
    r"(user|customer|client|device|driver|rider|member|account|person|merchant|seller|tenant|"
    r"player|host|server|shard|node|machine|instance|partition|broker|worker|region|pod|"
    r"replica|core|thread|connection|key|room|channel|group|process|proc|box|vm|container|"
    r"consumer|fetcher|cpu|disk|database|db)s?\b"
    r"|\b(each|every)\s+(?!(day|hour|minute|second|month|year|week)s?\b)[a-z]",
    _I,
)
# A daily total below this is one user's or one item's count, never the system's load.
MIN_DAILY_TOTAL = 10_000
# A capacity is not the load: "fine to ~20 pages/s", "Kafka can take 1M msgs/s", "up to 5K/s".
_CAPACITY_BEFORE = re.compile(
    r"\b(up to|(?:fine|good|ok|okay) (?:to|for|up to)|scales? to|can (?:do|take|handle|serve|"
    r"sustain|absorb)|handles|supports|capacity(?: of)?|limit(?: of)?|ceiling(?: of)?|"
    r"tops out at|sustains|benchmarks? at|under|below|over|above|than|budget(?: of)?|"
    r"headroom(?: for)?)\b[\s~≈<>]*$",
    _I,
)
CAPACITY_LOOKBACK = 25  # characters before a number where a capacity word applies
_PEAK = re.compile(r"\b(peak|max|maximum|spikes?|burst|busiest|worst[- ]case)\b", _I)
RATE_SLIP_RATIO = 8.0  # an average off by more than this from X/86,400 is a slip
PEAK_ALLOWANCE = 10.0  # a rate called peak may be up to this much above the average
# A claim that reads (or writes) dominate, checked against the answer's own read and write rates.
_DOMINANCE = re.compile(
    r"\b(?:(read|write)[- ](?:heavy|dominated|mostly|intensive)|(read|write)s\s+"
    r"(?:dominate|dominates|outnumber|far outnumber)|mostly (read|write)s)\b",
    _I,
)
DOMINANCE_MARGIN = 1.5  # every stated rate of the claimed side is this far below the other's


@dataclass(frozen=True)
class _Rate:
    """One stated rate of a named thing, e.g. '100M uploads/day' or 'peak writes ~ 3,500/s'."""

    noun: tuple[str, ...]
    per_second: float
    count: float  # the number as stated, before dividing by its period
    long_period: bool  # per day, month or year (not a per-second figure)
    peak: bool
    quote: str
    line: int


# Words that end the noun of a rate: "116K reads/s on the hot path", "and 200K requests/s".
_NOUN_STOP = _word_set(
    "and or but for with at of in on to from by into over across above below before after "
    "who which that it its this these those we i you they is are was were be means mean one "
    "per each every a an the than then so as if when while times time x vs"
)


def _noun_words(words: Sequence[str]) -> list[str]:
    """The words of `words` that can name what a rate counts, up to the first that cannot."""
    kept: list[str] = []
    for word in words:
        word = word.lower()
        if word in _NOUN_STOP or word in _PERIOD_SECONDS or "'" in word:
            break
        if word not in _BYTES and word not in _BITS:
            kept.append(word)
        if word.endswith("s") and word not in _GENERIC_RATE_NOUNS and len(word) > 3:
            break  # a plural ends the noun: "1K writes/s fits", "500K updates/s we'd"
    return kept


def _noun_stem(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _rate_noun(words: Sequence[str]) -> tuple[str, ...]:
    """What a rate counts, as stems: 'write requests' and 'writes' are both ('write',)."""
    kept = [w.lower() for w in words if w.lower() not in _RATE_MODIFIERS]
    kept = [w for w in kept if w not in _MAGNITUDE]
    if not kept:
        return ()
    specific = [w for w in kept if w not in _GENERIC_RATE_NOUNS]
    return tuple(_noun_stem(w) for w in specific) if specific else ("request",)


def _words_before(items: Sequence[object], pos: int) -> tuple[list[str], int | None]:
    """Up to three words just before item `pos`, past a colon, '~', '=', 'is' or filler,
    and where the first of them starts."""
    words: list[str] = []
    first: int | None = None
    back = pos - 1
    while back >= 0 and len(words) < 3:
        prev = items[back]
        if not isinstance(prev, tuple):
            break
        kind, raw = prev[0], prev[1].lower()
        if kind == "word" and raw in _NOUN_STOP:
            break
        if kind == "word" and raw not in _FILLER and raw not in _EQ_WORDS:
            words.insert(0, raw)
            first = prev[2]
        elif kind == "word" or (
            kind in ("eq", "sep") and not words and raw in (":", "≈", "=", "~=", "is")
        ):
            pass
        else:
            break
        back -= 1
    return words, first


def _line_rates(line: str, idx: int, offset: int, text: str) -> list[_Rate]:
    """The rates stated in one line; each table cell is read on its own, so a column's label
    never names the number in the next cell."""
    if not _DIGIT.search(line):
        return []
    peak_line = bool(_PEAK.search(line))
    rates: list[_Rate] = []
    cell_start = 0
    for cell in line.split("|"):
        if _DIGIT.search(cell):
            rates.extend(_cell_rates(cell, idx, offset + cell_start, text, peak_line))
        cell_start += len(cell) + 1
    return rates


def _cell_rates(cell: str, idx: int, offset: int, text: str, peak: bool) -> list[_Rate]:
    items = _line_items(cell)
    rates: list[_Rate] = []
    for pos, item in enumerate(items):
        if not isinstance(item, _Qty) or item.factor or item.per_item or item.value <= 0:
            continue
        neighbours = (
            items[pos - 1] if pos else None,
            items[pos + 1] if pos + 1 < len(items) else None,
        )
        if any(
            isinstance(n, tuple) and n[0] == "op" and n[1] in ("×", "*", "x") for n in neighbours
        ):
            continue  # a factor of a product: per user, per item
        if _CAPACITY_BEFORE.search(cell[max(0, item.start - CAPACITY_LOOKBACK) : item.start]):
            continue
        if _PER_UNIT.search(_sentence_around(cell, item.start, item.end)):
            continue
        before, before_start = _words_before(items, pos)
        period = item.period
        if period is None and before and before[-1] in _RATE_WORDS:
            period = _RATE_WORDS[before[-1]]  # "write QPS: 1,200"
        if period != 1.0 and period not in _LONG_PERIODS:
            continue
        # "writes 1,200 QPS": the generic word after the number defers to the noun before it
        noun, named = _rate_noun(_noun_words(item.words)), _rate_noun(_noun_words(before))
        if not noun or (noun == ("request",) and named):
            noun = named
        if not noun:
            continue
        start = item.start if noun != named or before_start is None else before_start
        if item.dim is not None:
            noun = (*noun, item.dim)
        rates.append(
            _Rate(
                noun=noun,
                per_second=item.value / period,
                count=item.value,
                long_period=period in _LONG_PERIODS,
                peak=peak,
                quote=quote(text, offset + start, offset + item.end),
                line=idx,
            )
        )
    return rates


_SENTENCE_END = re.compile(r"[.;!?](?=\s|$)")


def _sentence_around(cell: str, start: int, end: int) -> str:
    """The sentence of `cell` that holds [start, end): "Each trip is 2 KB." is not the
    sentence of "Riders book 2M trips per day." on the same line."""
    before = [m.end() for m in _SENTENCE_END.finditer(cell, 0, start)]
    after = _SENTENCE_END.search(cell, end)
    return cell[before[-1] if before else 0 : after.start() if after else len(cell)]


def _fits(rate: _Rate, daily: _Rate) -> bool:
    ratio = rate.per_second / daily.per_second
    high = RATE_SLIP_RATIO * (PEAK_ALLOWANCE if rate.peak else 1.0)
    return 1 / RATE_SLIP_RATIO <= ratio <= high


@lru_cache(maxsize=64)
def check_rate_consistency(
    text: str, skip_lines: frozenset[int] = frozenset()
) -> tuple[ArithmeticIssue, ...]:
    """Per-second rates that no per-day (month, year) figure of the same thing explains,
    and 'reads dominate' when every stated read rate is below every write rate.

    Only rates of the same named thing are compared ('writes' with 'write QPS', never
    'writes' with 'fan-out writes' or 'uploads'); rates per user, shard or server are left
    out, and a rate called peak may sit up to 10x above the average.
    """
    rates: list[_Rate] = []
    offset = 0
    for idx, line in enumerate(text.split("\n")):
        rates.extend(_line_rates(line, idx, offset, text))
        offset += len(line) + 1
    issues: list[ArithmeticIssue] = []
    by_noun: dict[tuple[str, ...], list[_Rate]] = {}
    for rate in rates:
        if not rate.long_period or rate.count >= MIN_DAILY_TOTAL:
            by_noun.setdefault(rate.noun, []).append(rate)
    for group in by_noun.values():
        daily = [r for r in group if r.long_period]
        for rate in group:
            if rate.long_period or not daily or rate.line in skip_lines:
                continue
            if any(issue.quote == rate.quote for issue in issues):
                continue
            if any(_fits(rate, d) for d in daily):
                continue
            basis = min(daily, key=lambda d: abs(math.log(rate.per_second / d.per_second)))
            issues.append(
                ArithmeticIssue(
                    quote=rate.quote,
                    stated=rate.per_second,
                    expected=basis.per_second,
                    basis=(
                        f"does not fit the answer's own '{basis.quote}', which is about "
                        f"{_fmt(basis.per_second)}/s on average"
                    ),
                )
            )
    issues.extend(_dominance_slips(text, by_noun))
    return tuple(issues)


def _dominance_slips(
    text: str, by_noun: dict[tuple[str, ...], list[_Rate]]
) -> list[ArithmeticIssue]:
    """'Reads dominate' against the answer's read and write rates of the same thing
    ('order reads' with 'order writes'; never 'fan-out writes' with 'reads')."""
    pairs = [
        (by_noun[noun], by_noun[(*noun[:-1], "write")])
        for noun in by_noun
        if noun[-1] == "read" and (*noun[:-1], "write") in by_noun
    ]
    if not pairs:
        return []
    reads = [r for group, _ in pairs for r in group]
    writes = [w for _, group in pairs for w in group]
    lowered = text.lower()
    issues: list[ArithmeticIssue] = []
    for match in _DOMINANCE.finditer(lowered):
        side = next(g for g in match.groups() if g)
        line_start = lowered.rfind("\n", 0, match.start()) + 1
        if is_negated(lowered[line_start : match.start()][-60:]):
            continue
        claimed, other = (reads, writes) if side == "read" else (writes, reads)
        top = max(r.per_second for r in claimed)
        least = min(r.per_second for r in other)
        if top * DOMINANCE_MARGIN > least:
            continue
        issues.append(
            ArithmeticIssue(
                quote=quote(text, match.start(), match.end()),
                stated=top,
                expected=least,
                basis=(
                    f"is contradicted by the answer's own rates: {side}s reach at most "
                    f"{_fmt(top)}/s, below every stated {'write' if side == 'read' else 'read'} "
                    f"rate ({_fmt(least)}/s or more)"
                ),
            )
        )
        break
    return issues


_BARE_END = re.compile(r"^\s*([.;!?]|$)")


@lru_cache(maxsize=64)
def find_unitless_numbers(text: str) -> tuple[str, ...]:
    """Large derived numbers that carry no unit or noun at all ("= 43,200,000,000,000.").

    Only numbers that end a sentence bare count, so "= 100,000,000, so 100M series" and
    "~116K QPS" do not.
    """
    found: list[str] = []
    for line in text.split("\n"):
        if not _BIG_NUMBER.search(line):
            continue
        items = _line_items(line)
        for pos, item in enumerate(items):
            if not isinstance(item, _Qty) or item.value < 1000 or item.dim or item.period:
                continue
            nouns = [w for w in item.words if w not in _MAGNITUDE]
            if nouns or item.factor:
                continue
            prev = items[pos - 1] if pos else None
            derived = (isinstance(prev, tuple) and prev[0] in ("eq", "sep")) or prev is None
            if prev is not None and isinstance(prev, tuple) and prev[0] == "word":
                derived = prev[1].lower() in _FILLER or prev[1].lower() in _EQ_WORDS
            if not derived:
                continue
            if _BARE_END.match(line[item.end :]) and (item.value >= 1e6 or item.words):
                found.append(line[max(0, item.start - 40) : item.end].strip())
    return tuple(found)


# --- the grader ------------------------------------------------------------------------------

# Highest score a phase can keep when the answer's own arithmetic is off by an order of
# magnitude: estimation is capped at 1 by rule; a design sized on it tops out at 3, and a
# deep dive whose decision rests on it at 2.
_SLIP_CAPS: dict[str, int] = {"estimation": 1, "architecture": 3, "deep_dive": 2}

# Scoping is about doing it first: a latency target that only shows up in the deep dive never
# framed the design, so an answer with no requirements section gets partial credit for it.
_SCOPING_PHASES = frozenset({"requirements"})


@dataclass(frozen=True)
class _CompiledCriterion:
    criterion: Criterion
    pattern_ids: tuple[int, ...]
    touch_ids: tuple[int, ...] = ()
    # rubrics/grading.yaml's quantity_evidence: only a sentence stating a quantity counts
    needs_quantity: bool = False
    # rubrics/grading.yaml's considered_rejection: "no cache, because ..." is a choice too
    rejection_counts: bool = False
    # rubrics/grading.yaml's identifier_purpose: a bare `api_key` needs its purpose said
    purpose: re.Pattern[str] | None = None
    # rubrics/grading.yaml's need_shown: a reason must show the need, not only a purpose
    need: re.Pattern[str] | None = None


@dataclass(frozen=True)
class _CriterionOutcome:
    met: bool
    sentence: int | None = None
    focus: tuple[int, int] | None = None
    touched: bool = False
    # every sentence that could stand as this criterion's evidence, best first
    candidates: tuple[int, ...] = ()


class OfflineGrader:
    """Rule-based grader implementing the `Grader` port.

    Example:
        grader = OfflineGrader(load_content())
        grade = grader.grade_phase(PhaseGradingRequest(phase="api", text=t, full_text=t))
    """

    def __init__(self, content: Content) -> None:
        self.content = content
        self.rules = load_rules(content)
        self._patterns: list[re.Pattern[str]] = []
        self._criteria: dict[PhaseId, list[_CompiledCriterion]] = {}
        # whole-answer checks that each of the six phase grades asks for (_once_per_answer)
        self._answer_checks: dict[tuple[str, str, str], object] = {}
        index: dict[str, int] = {}
        for phase in content.phases:
            compiled = []
            for criterion in phase.criteria:
                ids = tuple(self._compile(raw, index) for raw in criterion.cues.patterns)
                touch = tuple(self._compile(raw, index) for raw in criterion.cues.touch)
                quantity = self.rules.needs_quantity(phase.id, criterion.id)
                rejection = self.rules.counts_rejection(phase.id, criterion.id)
                purpose_src = self.rules.purpose_pattern(phase.id, criterion.id)
                purpose = compile_cue(purpose_src) if purpose_src else None
                need_src = self.rules.need_pattern(phase.id, criterion.id)
                need = compile_cue(need_src) if need_src else None
                compiled.append(
                    _CompiledCriterion(criterion, ids, touch, quantity, rejection, purpose, need)
                )
            self._criteria[phase.id] = compiled

    def _compile(self, raw: str, index: dict[str, int]) -> int:
        if raw not in index:
            index[raw] = len(self._patterns)
            self._patterns.append(compile_cue(raw))
        return index[raw]

    # -- port ------------------------------------------------------------------------------

    def grade_phase(self, request: PhaseGradingRequest) -> PhaseGrade:
        phase = self.content.phase(request.phase)
        transcript = is_transcript(request.full_text) if request.full_text else None
        full = analyse(request.full_text, transcript) if request.full_text else None
        own_text = self._own_text(request)
        section = analyse(own_text, transcript) if own_text.strip() else None
        own = self._evaluate(phase, section) if section else {}
        elsewhere = self._look_elsewhere(phase, own, full) if full else {}
        if section is None:
            borrowed = {cid for cid, outcome in elsewhere.items() if outcome.met}
            if self._unanswered_score(phase, borrowed) == 0:
                elsewhere = {}  # a stray mention elsewhere does not answer this phase

        results: list[CriterionResult] = []
        met_own: set[str] = set()
        met_any: set[str] = set()
        for compiled in self._criteria[phase.id]:
            crit = compiled.criterion
            hit = own.get(crit.id)
            source = section
            if not (hit and hit.met):
                hit, source = elsewhere.get(crit.id), full
            if hit and hit.met and source is not None and hit.sentence is not None:
                sentence = source.sentences[hit.sentence]
                evidence = quote(source.text, sentence.start, sentence.end, hit.focus)
                here = source is section or (crit.cues.anywhere and section is not None)
                results.append(
                    CriterionResult(
                        id=crit.id,
                        title=crit.title,
                        met=True,
                        evidence=evidence,
                        note=None if here else ELSEWHERE_NOTE,
                    )
                )
                met_any.add(crit.id)
                if here:
                    met_own.add(crit.id)
            else:
                results.append(
                    CriterionResult(
                        id=crit.id, title=crit.title, met=False, note=self._note(crit, own)
                    )
                )

        score, reasons = self._score(phase, request, section, full, met_own, met_any, own)
        feedback, next_step = phase_feedback(phase, results, reasons, self.rules)
        if reasons == [NO_ANSWER_REASON]:
            feedback = NO_ANSWER_REASON  # not a list of everything it lacks
        # The LLM grader's detector too, so a passage aimed at the grader is reported alike.
        injected = injected_passages(own_text)
        return PhaseGrade(
            phase=phase.id,
            score=score,
            criteria=results,
            mistakes=[injection_finding(self.content, phase.id, injected[0])] if injected else [],
            feedback=feedback,
            next_step=next_step,
            # The feedback says what held the score first; any further cap is noted here.
            corrections=reasons[1:],
            source="offline",
            model=MODEL_NAME,
        )

    @staticmethod
    def _own_text(request: PhaseGradingRequest) -> str:
        """The phase's own text; the deep dive includes the replies to pushbacks."""
        if request.phase != "deep_dive" or not request.pushbacks:
            return request.text
        replies = "\n\n".join(p.reply for p in request.pushbacks if p.reply.strip())
        return f"{request.text}\n\n{replies}" if request.text.strip() else replies

    def find_mistakes(self, request: AnswerReviewRequest) -> list[MistakeFinding]:
        from coach.grading.mistakes import detect_mistakes

        return detect_mistakes(self.content, request)

    def split(self, text: str) -> SplitResult:
        from coach.grading.splitter import split_into_phases

        return split_into_phases(text)

    # -- criteria --------------------------------------------------------------------------

    def _evaluate(
        self, phase: Phase, analysis: TextAnalysis, only: set[str] | None = None
    ) -> dict[str, _CriterionOutcome]:
        stuffed = _is_stuffed(analysis)
        outcomes: dict[str, _CriterionOutcome] = {}
        for compiled in self._criteria[phase.id]:
            # The criteria asked for compete for the same sentences (see _share_sentences);
            # in the whole answer only those still missing are looked for, as before.
            if only is None or compiled.criterion.id in only:
                outcomes[compiled.criterion.id] = self._criterion(compiled, analysis, stuffed)
        return self._share_sentences(phase, analysis, outcomes)

    def _look_elsewhere(
        self, phase: Phase, own: dict[str, _CriterionOutcome], full: TextAnalysis
    ) -> dict[str, _CriterionOutcome]:
        """Criteria the section lacks, looked for in the whole answer.

        `anywhere` cues always count in full, so they are always looked for. The others only
        lift the score through `any_score - 1`, so the search is skipped when even finding
        all of them could not change the score (it saves most of the time on long answers).
        """
        found = {cid for cid, outcome in own.items() if outcome.met}
        missing = [c.criterion for c in self._criteria[phase.id] if c.criterion.id not in found]
        anywhere = {c.id for c in missing if c.cues.anywhere}
        outcomes = self._evaluate(phase, full, only=anywhere) if anywhere else {}
        met_full = found | {cid for cid, outcome in outcomes.items() if outcome.met}
        rest = {c.id for c in missing if not c.cues.anywhere}
        if rest:
            best_case = score_from_criteria(phase, met_full | rest) - 1
            if best_case > score_from_criteria(phase, met_full):
                outcomes.update(self._evaluate(phase, full, only=rest))
        return outcomes

    def _criterion(
        self, compiled: _CompiledCriterion, analysis: TextAnalysis, stuffed: bool
    ) -> _CriterionOutcome:
        cues = compiled.criterion.cues
        per_sentence: dict[int, dict[int, set[str]]] = {}
        for pid in compiled.pattern_ids:
            found = analysis.matches(pid, self._patterns[pid])
            if compiled.rejection_counts:
                found = _with_reasoned_rejections(
                    found, analysis.matches(pid, self._patterns[pid], negated=True), analysis
                )
            for idx, strings in found.items():
                if analysis.keyword_list[idx] and (stuffed or not analysis.reasoning[idx]):
                    continue
                if cues.reject_hedged and analysis.hedged[idx]:
                    continue
                if compiled.needs_quantity and not states_quantity(analysis.sentences[idx].text):
                    # "How many users?" matches a scale cue but puts no number on the table.
                    continue
                if compiled.purpose is not None and not self._purpose_said(
                    compiled.purpose, self._patterns[pid], analysis, idx
                ):
                    continue
                if compiled.need is not None and not compiled.need.search(
                    analysis.lowered, analysis.sentences[idx].start, analysis.sentences[idx].end
                ):
                    # "A CDN so photos load quickly" says what a box is for, not why it is needed.
                    continue
                per_sentence.setdefault(idx, {})[pid] = strings
        if not per_sentence:
            return _CriterionOutcome(met=False, touched=self._touched(compiled, analysis))

        def ok(idx: int) -> bool:
            return not cues.needs_reasoning or analysis.reasoning[idx]

        if cues.across_sentences:
            patterns_hit = {pid for found in per_sentence.values() for pid in found}
            distinct = {s for found in per_sentence.values() for v in found.values() for s in v}
            reasoned = [idx for idx in per_sentence if ok(idx)]
            met = (
                len(patterns_hit) >= cues.min_signals
                and len(distinct) >= cues.min_distinct_matches
                and bool(reasoned)
            )
            candidates = reasoned or list(per_sentence)
        else:
            candidates = []
            distinct = set()
            for idx in sorted(per_sentence):
                near = [j for j in per_sentence if abs(j - idx) <= cues.window]
                hit = {pid for j in near for pid in per_sentence[j]}
                if len(hit) < cues.min_signals or not any(ok(j) for j in near):
                    continue
                candidates.append(idx)
                distinct |= {s for j in near for v in per_sentence[j].values() for s in v}
            met = bool(candidates) and len(distinct) >= cues.min_distinct_matches
        if not met:
            # "Touched on": every kind of signal is there, but not in the form the rubric asks
            # for (no reason, one distinct match, too far apart). A lone generic word is not.
            patterns_seen = {pid for found in per_sentence.values() for pid in found}
            touched = len(patterns_seen) >= cues.min_signals or self._touched(compiled, analysis)
            return _CriterionOutcome(met=False, touched=touched)
        ranked = sorted(candidates, key=lambda idx: (-len(per_sentence[idx]), idx))
        best = ranked[0]
        sentence = analysis.sentences[best]
        return _CriterionOutcome(
            met=True,
            sentence=best,
            focus=self._focus(compiled, analysis, sentence),
            candidates=tuple(ranked),
        )

    def _share_sentences(
        self, phase: Phase, analysis: TextAnalysis, outcomes: dict[str, _CriterionOutcome]
    ) -> dict[str, _CriterionOutcome]:
        """A sentence with nothing concrete in it meets at most a couple of criteria.

        "We start simple, then add a cache and a queue because of the bottleneck, so the
        read path scales" names four criteria's words in one breath: that is vocabulary,
        not design. A sentence with a number, an identifier or a path is concrete and may
        serve any number of criteria. Criteria with fewest candidates choose first.
        """
        used: dict[int, int] = {}
        shared = dict(outcomes)
        met = [cid for cid, outcome in outcomes.items() if outcome.met and outcome.candidates]
        met.sort(key=lambda cid: len(outcomes[cid].candidates))
        for cid in met:
            outcome = outcomes[cid]
            free = [
                idx
                for idx in outcome.candidates
                if is_concrete(analysis.sentences[idx].text)
                or used.get(idx, 0) < MAX_CRITERIA_PER_PLAIN_SENTENCE
            ]
            if not free:
                shared[cid] = _CriterionOutcome(met=False, touched=True)
                continue
            used[free[0]] = used.get(free[0], 0) + 1
            if free[0] != outcome.sentence:
                compiled = next(c for c in self._criteria[phase.id] if c.criterion.id == cid)
                sentence = analysis.sentences[free[0]]
                shared[cid] = _CriterionOutcome(
                    met=True,
                    sentence=free[0],
                    focus=self._focus(compiled, analysis, sentence),
                    candidates=outcome.candidates,
                )
        return shared

    @staticmethod
    def _purpose_said(
        purpose: re.Pattern[str], cue: re.Pattern[str], analysis: TextAnalysis, idx: int
    ) -> bool:
        """Does the sentence use the cue as a word, or say what the identifier it names does?

        "idempotency_key" in a parameter list only shows a field; "an idempotency key, so a
        retry returns the first order" or "api_key, checked at the gateway" says its purpose.
        """
        sentence = analysis.sentences[idx]
        lowered = analysis.lowered
        for match in cue.finditer(lowered, sentence.start, sentence.end):
            a, b = match.span()
            glued = lowered[a - 1 : a] == "_" or lowered[b : b + 1] == "_"
            if "_" not in match.group(0) and not glued:
                return True
        return bool(purpose.search(lowered, sentence.start, sentence.end))

    def _touched(self, compiled: _CompiledCriterion, analysis: TextAnalysis) -> bool:
        """A `touch` cue matched in a sentence that is not a bare keyword list."""
        return any(
            not analysis.keyword_list[idx]
            for pid in compiled.touch_ids
            for idx in analysis.matches(pid, self._patterns[pid])
        )

    def _focus(
        self, compiled: _CompiledCriterion, analysis: TextAnalysis, sentence: Sentence
    ) -> tuple[int, int] | None:
        """What a long sentence's quote is cut around: the first cue match (for a quantity
        criterion, the first one that states a quantity, else the first quantity), so the
        quote shows what met the criterion."""
        amounts = (
            [(sentence.start + a, sentence.start + b) for a, b in quantity_spans(sentence.text)]
            if compiled.needs_quantity
            else []
        )
        first: tuple[int, int] | None = None
        for pid in compiled.pattern_ids:
            for match in self._patterns[pid].finditer(
                analysis.lowered, sentence.start, sentence.end
            ):
                span = match.start(), match.end()
                if not compiled.needs_quantity:
                    return span
                if any(span[0] <= a and b <= span[1] for a, b in amounts):
                    return span
                first = first or span
        return amounts[0] if amounts else first

    # -- score -----------------------------------------------------------------------------

    def _score(
        self,
        phase: Phase,
        request: PhaseGradingRequest,
        section: TextAnalysis | None,
        full: TextAnalysis | None,
        met_own: set[str],
        met_any: set[str],
        own: dict[str, _CriterionOutcome],
    ) -> tuple[int, list[str]]:
        reasons: list[str] = []
        if section is None:
            score = self._unanswered_score(phase, met_any)
            if score == 0:
                return 0, [NO_ANSWER_REASON]
            capped = self._apply_caps(phase, request, section, score, reasons)
            return capped, [*reasons, BORROWED_REASON]
        own_score = score_from_criteria(phase, met_own)
        any_score = score_from_criteria(phase, met_any)
        score = max(own_score, any_score - 1) if any_score > own_score else own_score
        said_elsewhere = own_score < score < any_score
        if score == 0 and any(o.touched for o in own.values()):
            score = 1
        capped = self._apply_caps(phase, request, section, score, reasons)
        # A missing criterion that caps the phase (rubrics/phases.yaml's cap_if_unmet) is
        # named when the score sits at that cap, so "4 of 5 met, 2/4" explains itself.
        criterion = binding_cap(phase, met_own) if score == own_score else None
        if criterion is not None and capped == criterion.cap_if_unmet:
            reasons.insert(0, cap_reason(phase, criterion, met_own))
        if said_elsewhere and capped == score:  # a cap, when one applies, is what held it
            reasons.append(ELSEWHERE_REASON)
        return capped, reasons

    @staticmethod
    def _unanswered_score(phase: Phase, met_elsewhere: set[str]) -> int:
        """The score of a phase with no text of its own, from what the rest says about it.

        Real content elsewhere (2 or more) is this phase's answer when the splitter found no
        section for it; a stray mention (a lone 1) is not a phase the candidate reached.
        Scoping done late never framed the design, so requirements found only elsewhere
        count one level lower.
        """
        any_score = score_from_criteria(phase, met_elsewhere)
        if phase.id in _SCOPING_PHASES:
            return max(0, any_score - 1)
        return any_score if any_score >= 2 else 0

    def hard_caps(self, request: PhaseGradingRequest) -> tuple[int, list[str]]:
        """The highest score the scoring guide's hard rules allow this phase, and why.

        Ticked criteria cannot see stuffing, hedging or wrong arithmetic, so any grader (the
        LLM one included) caps its score here: the rules hold whoever marks the criteria.
        """
        reasons: list[str] = []
        own_text = self._own_text(request)
        transcript = is_transcript(request.full_text) if request.full_text else None
        section = analyse(own_text, transcript) if own_text.strip() else None
        phase = self.content.phase(request.phase)
        return self._apply_caps(phase, request, section, 4, reasons), reasons

    def _once_per_answer(self, check: str, text: str, scope: str, compute: Callable[[], T]) -> T:
        """A whole-answer check computed once and reused by the answer's six phase grades;
        a few dozen answers are kept, as a request grades one answer at a time."""
        key = (check, text, scope)
        if key not in self._answer_checks:
            if len(self._answer_checks) > 64:
                self._answer_checks.clear()
            self._answer_checks[key] = compute()
        return cast(T, self._answer_checks[key])

    def _echoes(self, text: str) -> bool:
        """Is the whole answer mostly the rubric's wording?"""

        def echoes() -> bool:
            full = analyse(text)
            sentences = [full.sentences[i].text for i in full.content_sentences]
            return echoes_rubric(self.content, sentences)

        return self._once_per_answer("rubric-echo", text, "", echoes)

    def _other_topic(self, text: str, question: Question) -> Question | None:
        """`other_topic` against this grader's bank."""
        bank = self.content.questions.values()
        return self._once_per_answer(
            "other-topic", text, question.id, lambda: other_topic(text, question, list(bank))
        )

    def _apply_caps(
        self,
        phase: Phase,
        request: PhaseGradingRequest,
        section: TextAnalysis | None,
        score: int,
        reasons: list[str],
    ) -> int:
        """The score after the scoring guide's hard rules; each rule that lowered it adds
        one sentence to `reasons`, the one the score ends at first."""
        found: list[str] = []
        capped = self._hard_caps(phase, request, section, score, found)
        reasons.extend(reversed(found))  # each cap only lowers, so the last one binds
        return capped

    def _hard_caps(
        self,
        phase: Phase,
        request: PhaseGradingRequest,
        section: TextAnalysis | None,
        score: int,
        reasons: list[str],
    ) -> int:
        if section is not None and _is_stuffed(section):
            reasons.append(
                "Keyword stuffing: this section lists technology names without reasoning, "
                "which scores 0 however many terms are correct."
            )
            return 0
        if section is not None:
            score = self._section_caps(section, score, reasons)
        if request.full_text and score > 0 and self._echoes(request.full_text):
            own = [section.sentences[i].text for i in section.content_sentences] if section else []
            cap = 0 if not own or echoes_rubric(self.content, own) or len(own) < 3 else 1
            if score > cap:
                score = cap
                reasons.append(
                    "Most of this answer restates the rubric's own wording (what a good answer "
                    "would do) with no number, name or path of its own, so this phase scores "
                    f"{cap}: show the design itself, not a description of one."
                )
        if request.question is not None and request.full_text and score > 0:
            other = self._other_topic(request.full_text, request.question)
            if other is not None:
                reasons.append(
                    f"This answer does not seem to be about '{request.question.title}': it "
                    f"never names its subject and reads like an answer to '{other.title}', "
                    "so it scores 0 here."
                )
                return 0
        slips = check_arithmetic(request.full_text) if request.full_text else []
        cap = _SLIP_CAPS.get(phase.id)
        if slips and cap is not None and score > cap:
            score = cap
            if phase.id == "estimation":
                reasons.append("Wrong arithmetic caps estimation at 1: " + slips[0].describe())
            else:
                reasons.append(
                    f"The design rests on a calculation that is off by ~{slips[0].ratio:,.0f}x, "
                    f"which caps this phase at {cap}."
                )
        if phase.id == "deep_dive" and score > UNANSWERED_PUSHBACK_CAP:
            unanswered = next((p for p in request.pushbacks if not _answers(p.reply)), None)
            if unanswered is not None:
                score = UNANSWERED_PUSHBACK_CAP
                challenge = " ".join(unanswered.prompt.split())
                challenge = challenge if len(challenge) <= 120 else challenge[:117] + "..."
                reasons.append(
                    f"The interviewer's pushback ('{challenge}') got no real answer, which caps "
                    f"the deep dive at {UNANSWERED_PUSHBACK_CAP}: defend the choice with a "
                    "reason, or change it and say what the change costs."
                )
        if phase.id == "estimation" and request.full_text:
            unitless = find_unitless_numbers(request.full_text)
            if len(unitless) >= 2 and score > 1:
                score = 1
                reasons.append(
                    "Numbers without units cap estimation at 1, e.g. '" + unitless[0] + "'."
                )
        return score

    @staticmethod
    def _section_caps(section: TextAnalysis, score: int, reasons: list[str]) -> int:
        """Name-dropping, hedging and unhedged overclaims cost points, whatever was named."""
        content = section.content_sentences
        runs = [i for i in content if _NAME_RUN.search(section.sentences[i].text)]
        words = sum(len(section.sentences[i].text.split()) for i in content)
        if len(runs) >= 2 and len(runs) * 200 >= words and score > 1:
            score = 1
            reasons.append(
                "Lists of product names stand in for decisions here ('"
                + _NAME_RUN.search(section.sentences[runs[0]].text).group(0)  # type: ignore[union-attr]
                + "'), which caps this phase at 1."
            )
        hedged = [i for i in content if section.hedged[i]]
        if len(hedged) >= 5 and len(hedged) >= 0.35 * len(content) and score > 2:
            score = 2
            reasons.append(
                "Most of this section hedges ('it depends', 'maybe') without committing, "
                "which caps it at 2."
            )
        claims = [i for i in content if section.overclaim[i]]
        if claims and score > 1:
            weighed = any(has_tradeoff(section.sentences[i].text) for i in content)
            score = score - 1 if weighed else 1
            claim = quote(
                section.text, section.sentences[claims[0]].start, section.sentences[claims[0]].end
            )
            why = ", costing a level," if weighed else ", with no trade-off weighed anywhere here,"
            reasons.append(
                f"Unhedged certainty about a contested claim ('{claim}'){why} holds this "
                f"phase at {score}: say what the choice costs or where it stops holding."
            )
        return score

    # -- words -----------------------------------------------------------------------------

    @staticmethod
    def _note(criterion: Criterion, own: dict[str, _CriterionOutcome]) -> str:
        outcome = own.get(criterion.id)
        if outcome and outcome.touched:
            return f"Touched on but not enough for '{criterion.title}'. {criterion.levels[4]}"
        return f"Not covered in this phase. {criterion.levels[4]}"


def _with_reasoned_rejections(
    found: dict[int, set[str]], negated: dict[int, set[str]], analysis: TextAnalysis
) -> dict[int, set[str]]:
    """`found` plus negated matches in sentences that say why ("no queue, because ...")."""
    merged = {idx: set(strings) for idx, strings in found.items()}
    for idx, strings in negated.items():
        if analysis.reasoning[idx]:
            merged.setdefault(idx, set()).update(strings)
    return merged


def _answers(reply: str) -> bool:
    """Does a reply to a pushback say something? 'ok' or 'good point' does not; a reply must
    take a few words to defend or revise a choice. (A floor on substance, never a score.)"""
    return len(_WORD.findall(reply)) >= PUSHBACK_REPLY_MIN_WORDS


def _is_stuffed(analysis: TextAnalysis) -> bool:
    """Keyword stuffing: most of the content is bare lists of names, with no reasoning."""
    content = analysis.content_sentences
    if not content:
        return False
    lists = [i for i in content if analysis.keyword_list[i]]
    reasoned = [i for i in content if analysis.reasoning[i] and not analysis.keyword_list[i]]
    # A fraction, not a count: a short section of two bare lists is as stuffed as a long one.
    return (
        len(lists) >= STUFFED_MIN_LISTS
        and len(lists) >= STUFFED_SHARE * len(content)
        and len(reasoned) <= STUFFED_SHARE_REASONED * len(content)
    )


STUFFED_MIN_LISTS = 2
STUFFED_SHARE = 0.5
# One reasoned aside ("reads dominate, so cache") among bare lists does not make it a design.
STUFFED_SHARE_REASONED = 0.25
