"""Check that a quote really occurs in the candidate's text, so no grade rests on invented words.

Matching forgives what an LLM (or a copy-paste) changes without changing meaning: case,
runs of whitespace and line breaks, curly versus straight quotes and dashes, markdown
emphasis markers, and a trailing ellipsis or punctuation. It never forgives different words.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Characters that are folded to a plain equivalent before comparing.
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u00d7": "x",
        "\u2039": "<",
    }
)
_IGNORED = set("*_`")  # markdown emphasis and code markers: present in text, dropped in quotes
_TRIM = " \t\r\n.,;:!?\"'()[]-…"
MIN_QUOTE_CHARS = 8  # shorter "quotes", or a single word, prove nothing


@lru_cache(maxsize=64)
def _normalise(text: str) -> tuple[str, tuple[int, ...]]:
    """Folded, lower-cased text with single spaces, plus each character's index in `text`.

    Cached: one grade checks a dozen quotes against the same phase and whole-answer texts.
    """
    out: list[str] = []
    index: list[int] = []
    pending_space = False
    for i, ch in enumerate(text.translate(_FOLD)):
        if ch in _IGNORED:
            continue
        if ch.isspace():
            pending_space = bool(out)
            continue
        if pending_space:
            out.append(" ")
            index.append(i)
            pending_space = False
        out.append(ch.lower())
        index.append(i)
    return "".join(out), tuple(index)


def clean_quote(quote: str) -> str:
    """The quote without surrounding quote marks, ellipses or punctuation."""
    quote = quote.strip()
    quote = re.sub(r"^(\.\.\.|…)\s*|\s*(\.\.\.|…)$", "", quote)
    return quote.strip(_TRIM)


def locate_quote(quote: str, text: str) -> tuple[int, int] | None:
    """Where `quote` occurs in `text` (ignoring case and spacing), as [start, end), or None.

    Single words and quotes shorter than MIN_QUOTE_CHARS never match: they can be found in
    almost any answer and would let an invented claim pass as evidence.
    """
    needle, _ = _normalise(clean_quote(quote))
    if len(needle) < MIN_QUOTE_CHARS or " " not in needle:
        return None
    haystack, index = _normalise(text)
    at = haystack.find(needle)
    if at < 0:
        return None
    return index[at], index[at + len(needle) - 1] + 1


def find_quote(quote: str, text: str) -> str | None:
    """The span of `text` that `quote` matches (ignoring case and spacing), or None."""
    where = locate_quote(quote, text)
    return None if where is None else text[where[0] : where[1]]


def find_quote_in(quote: str, texts: list[str] | tuple[str, ...]) -> str | None:
    """The first span any of `texts` gives for `quote` (e.g. the phase's text, then the whole)."""
    for text in texts:
        if text and (span := find_quote(quote, text)) is not None:
            return span
    return None


_FENCE_TAGS = r"candidate_answer|whole_answer|draft"
_FENCE_RE = re.compile(rf"<(\s*/?\s*)({_FENCE_TAGS})", re.IGNORECASE)


def neutralise_fences(text: str) -> str:
    """Stop candidate text from closing (or opening) the tags that fence it in a prompt.

    `<` before one of our fence tag names becomes a look-alike `‹`, so the text still reads
    the same to a person but can no longer end the untrusted-data block early.
    """
    return _FENCE_RE.sub(r"‹\1\2", text)


# A report on "the candidate" in the third person is written for the grader: in an answer
# people say what they do ("I'd assume 200M DAU"), not that the candidate did it. Shared with
# the offline grader's own sentence test.
CANDIDATE_REPORT = (
    r"\b(the|this) candidate\b[^.\n]{0,12}?\b(asked|asks|stated|states|covered|covers|"
    r"mentioned|mentions|clarified|clarifies|identified|identifies|addressed|addresses|"
    r"discussed|discusses|demonstrated|demonstrates|considered|defined|listed|explained|"
    r"described|estimated|assumed|proposed|handled|answered|showed|shows|deserves|"
    r"(has|have) (covered|met|stated|addressed|shown|demonstrated|asked|clarified|hit)|"
    r"should (get|receive|be given|score|pass))\b"
)

# Text addressed to whoever grades the answer rather than to the interviewer: a request for a
# score, an order to ignore the rubric, a fake system/assistant turn or a fake JSON grade (or
# fake phase scores).
_INJECTION_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(rubric|instructions?|rules|criteria|"
    r"prompt|guidelines|scoring)\b",
    r"\b(note|message|instructions?|hint)\s+(to|for)\s+(the\s+)?(grader|evaluator|reviewer|"
    r"assessor|marker|scorer|ai|llm|model|assistant|system)\b",
    r"\b(dear|attention|hey|hi)\s+(grader|evaluator|reviewer|assessor|ai|llm|model|assistant)\b",
    r"\b(grader|evaluator|reviewer|assessor|scorer|ai model|language model|llm)s?\b[^.\n]{0,60}"
    r"\b(should|must|will|please|are instructed|is instructed)\b",
    r"\b(award|give|assign|grant|mark|score|rate)\b[^.\n]{0,40}\b(full|maximum|max|top|perfect|"
    r"highest)\s+(marks?|scores?|points?|grades?|credit)\b",
    r"\b(award|give|assign|grant|score|rate)\b[^.\n]{0,30}\b(4\s*/\s*4|4 out of 4|100\s*/\s*100|"
    r"100 out of 100|10\s*/\s*10)",
    r"^\s*(\[|<|\*\*)?\s*(system|assistant|developer)\s*(\]|>|\*\*)?\s*:",
    r"<\s*/?\s*(system|assistant|instructions?|im_start|im_end)\s*>",
    r"\{\s*\"(score|met|criteria|grade|overall|phase_scores)\"\s*:",
    r"\{\s*\"(requirements|estimation|api|data_model|architecture|deep_dive)\"\s*:\s*[0-4]\s*[,}]",
    r"\byou are (now )?(a|an|the) (grader|evaluator|ai|assistant)\b",
    r"\b(all|every) criteri(a|on) (are|is) met\b",
    CANDIDATE_REPORT,
]
# For each pattern above, in order: the words every match of it contains, as groups that must
# each have one member in the text. A substring test is far cheaper than a regex search, and
# an honest answer lacks the words of several patterns, which then never run on it (on a
# 3,800-character transcript: 0.25 to 0.16 ms, at every LLM-graded phase).
_INJECTION_CUES: list[tuple[tuple[str, ...], ...]] = [
    (("ignore", "disregard", "forget", "override"),),
    (("note", "message", "instruction", "hint"), ("to", "for")),
    (
        ("dear", "attention", "hey", "hi"),
        ("grader", "evaluator", "reviewer", "assessor", "ai", "llm", "model", "assistant"),
    ),
    (
        (
            "grader",
            "evaluator",
            "reviewer",
            "assessor",
            "scorer",
            "ai model",
            "language model",
            "llm",
        ),
        ("should", "must", "will", "please", "instructed"),
    ),
    (
        ("award", "give", "assign", "grant", "mark", "score", "rate"),
        ("full", "max", "top", "perfect", "highest"),
        ("mark", "score", "point", "grade", "credit"),
    ),
    (("award", "give", "assign", "grant", "score", "rate"), ("/", "out of")),
    (("system", "assistant", "developer"), (":",)),
    (("<",), (">",), ("system", "assistant", "instruction", "im_start", "im_end")),
    (("{",), ('"',), ("score", "met", "criteria", "grade", "overall", "phase_scores")),
    (
        ("{",),
        ('"',),
        ("requirements", "estimation", "api", "data_model", "architecture", "deep_dive"),
    ),
    (("you are ",), ("grader", "evaluator", "ai", "assistant")),
    (("all", "every"), ("criteri",), (" met",)),
    (
        ("the candidate", "this candidate"),
        (
            "ask",
            "state",
            "cover",
            "mention",
            "clarif",
            "identif",
            "address",
            "discuss",
            "demonstrat",
            "consider",
            "define",
            "listed",
            "explain",
            "describ",
            "estimat",
            "assum",
            "propos",
            "handl",
            "answer",
            "show",
            "deserve",
            "met",
            "hit",
            "should",
        ),
    ),
]
_INJECTION_RE = re.compile(
    "|".join(f"(?:{p})" for p in _INJECTION_PATTERNS), re.IGNORECASE | re.MULTILINE
)
# The same patterns (all lower case), one by one over lower-cased text: about four times
# faster than the IGNORECASE alternation in Python's re, and this runs on the whole transcript
# at every LLM-graded phase.
assert all(p == p.lower() for p in _INJECTION_PATTERNS), "patterns must be lower case"
# A leading \b is checked by hand after the match: with it, re cannot skip ahead to the
# possible first letters and tries every position.
_INJECTION_LOWER_RES = [
    (re.compile(p.removeprefix(r"\b"), re.MULTILINE), p.startswith(r"\b"), cues)
    for p, cues in zip(_INJECTION_PATTERNS, _INJECTION_CUES, strict=True)
]


def _word_starts_at(text: str, index: int) -> bool:
    return index == 0 or not (text[index - 1].isalnum() or text[index - 1] == "_")


def _matches(pattern: re.Pattern[str], text: str, *, at_word: bool) -> list[tuple[int, int]]:
    """Spans of `pattern` in `text`; with `at_word`, only those starting a word (a match
    that does not is skipped by one character, so a real one inside it is still found)."""
    spans: list[tuple[int, int]] = []
    position = 0
    while (match := pattern.search(text, position)) is not None:
        start, end = match.span()
        if at_word and not _word_starts_at(text, start):
            position = start + 1
            continue
        spans.append((start, end))
        position = max(end, start + 1)
    return spans


_COMMENT_RE = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")


def injected_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each passage of `text` that speaks to the grader instead of answering.

    A passage is the sentence or line around a match, or the whole HTML comment when the
    match sits in one, so quotes taken from it can be recognised and discarded.
    """
    return list(_injected_spans(text))


@lru_cache(maxsize=64)
def _injected_spans(text: str) -> tuple[tuple[int, int], ...]:
    """Cached: an LLM grade checks the phase's text and the transcript, and `not_evidence`
    asks again for the text its quotes come from."""
    spans: list[tuple[int, int]] = []
    comments = [c.span() for c in _COMMENT_RE.finditer(text)]
    lowered = text.lower()
    # A few characters change length when lower-cased (e.g. "İ"); then offsets would shift.
    if len(lowered) == len(text):
        found = [
            span
            for pattern, at_word, cues in _INJECTION_LOWER_RES
            if all(any(cue in lowered for cue in group) for group in cues)
            for span in _matches(pattern, lowered, at_word=at_word)
        ]
    else:
        found = [m.span() for m in _INJECTION_RE.finditer(text)]
    for start, end in sorted(found):
        comment = next(((a, b) for a, b in comments if a <= start < b), None)
        if comment:
            start, end = comment
        else:
            before = [m.end() for m in _SENTENCE_END.finditer(text, 0, start)]
            start = before[-1] if before else 0
            after = _SENTENCE_END.search(text, end)
            end = after.start() if after else len(text)
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and (start, end) not in spans:
            spans.append((start, end))
    return tuple(spans)


def injected_passages(text: str) -> list[str]:
    """The verbatim passages of `text` found by `injected_spans`."""
    return [text[a:b] for a, b in injected_spans(text)]


def overlaps(span: tuple[int, int], regions: list[tuple[int, int]]) -> bool:
    """Does [start, end) share any character with one of `regions`?"""
    return any(span[0] < b and a < span[1] for a, b in regions)


# --- quantities ---------------------------------------------------------------------------
# Some criteria are about numbers (the scale, request rates, sizes). A quote is evidence for
# one of them only when it states a quantity: asking "how many users?" puts no number on the
# table. A quantity is a number that counts or measures something ("200M DAU", "10k", "35K
# QPS", "50 GB", "3x", "99.9%"), or a number word with a magnitude ("a million users",
# "hundreds of millions", "ten thousand", "a few hundred"). A magnitude alone ("millions of
# users") is an order of magnitude at best, like "lots of users". Numbers that only label
# something are not quantities: glued to a name ("v1", "p99", "S3", "H3"), a step or option
# number ("phase 2", "option 1") or a year after a preposition ("by 2030").

_NUMBER_WORDS = (
    r"a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
    r"thirty|forty|fifty|sixty|seventy|eighty|ninety|a few|few|several|a couple of|"
    r"couple of|half a|tens of|hundreds of|a hundred|one hundred"
)
_QUANTITY_RE = re.compile(
    r"(?<![a-z_\d.,])\d[\d,.]*"
    rf"|\b(?:{_NUMBER_WORDS})\s+(?:hundreds?|thousands?|millions?|billions?|trillions?)\b",
    re.IGNORECASE,
)
_LABEL_BEFORE = re.compile(
    r"(?:\b(?:phase|step|part|option|version|section|chapter|fig(?:ure)?|level|tier|layer|"
    r"round|stage|question|item|no|number|rule|case|point)\.?\s*|#\s*)$",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?:19|20)\d\d")
_YEAR_BEFORE = re.compile(
    r"\b(?:in|by|since|until|till|before|after|from|circa|of|for)\s+$", re.IGNORECASE
)
# What follows a count that happens to look like a year ("for 2000 users", "by 2000 QPS").
_COUNTED_AFTER = re.compile(
    r"\s*(?:%|/|[kmb]\b|x\b|[kmgtp]i?b\b|dau\b|mau\b|qps\b|rps\b|tps\b|[a-z]+s\b)",
    re.IGNORECASE,
)


def quantity_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of every quantity stated in `text` (see above for what counts)."""
    spans: list[tuple[int, int]] = []
    for match in _QUANTITY_RE.finditer(text):
        start, end = match.span()
        raw = match.group(0).rstrip(",.")
        end = start + len(raw)
        if raw[:1].isdigit():
            before = text[max(0, start - 12) : start]
            if _LABEL_BEFORE.search(before):
                continue
            if (
                _YEAR.fullmatch(raw)
                and _YEAR_BEFORE.search(before)
                and not _COUNTED_AFTER.match(text, end)
            ):
                continue
        spans.append((start, end))
    return spans


@lru_cache(maxsize=8192)
def states_quantity(text: str) -> bool:
    """True when `text` states a quantity: a number or a number word with a magnitude.

    "how many users will there be?" does not; "about 200M daily users", "a million users"
    and "10k writes/s" do.
    """
    return bool(quantity_spans(text))
