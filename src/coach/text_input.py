"""One gate for candidate text, so every front door rejects the same bad input the same way."""

from __future__ import annotations

import codecs
import io
import logging
import re

from coach.errors import BinaryInputError, EmptyInputError, InputTooLargeError, InvalidTextError

_ALLOWED_CONTROL = {"\n", "\r", "\t", "\f"}
# JSON may carry "\ud800" alone: a string Python holds but UTF-8 cannot encode, so the
# answer could be neither stored nor sent to an LLM.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A character someone can see: not whitespace (Unicode's, NBSP and ideographic space too),
# not a control character, not an invisible format character (zero-width space and joiners,
# the BOM, the soft hyphen, bidi marks). An answer without one is empty, however long.
_VISIBLE = re.compile(
    "[^\\s\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


# Text editors on Windows save "Unicode" as UTF-16 with a byte-order mark; its NUL bytes would
# otherwise make it look binary. UTF-32's marks come first: UTF-32-LE's starts with UTF-16-LE's.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# pypdf logs what it repairs in a broken PDF ("EOF marker not found") on the root logger's
# stderr; coach says what went wrong itself, in one line.
logging.getLogger("pypdf").setLevel(logging.ERROR)

UPLOAD_TOO_LARGE_HINT = "Trim it (the limit is COACH_MAX_UPLOAD_BYTES, a server setting)."


def upload_too_large(
    what: str, size: int, max_bytes: int, *, field: str = "file", whole: bool = True
) -> InputTooLargeError:
    """The error for a whole answer over the upload limit. `whole` is False when `size` counts
    only what was read before stopping at the limit, so the true size is unknown."""
    shown = f"{size:,}" if whole else f"over {max_bytes:,}"
    return InputTooLargeError(
        f"The {what} is {shown} bytes; the limit is {max_bytes:,} bytes. {UPLOAD_TOO_LARGE_HINT}",
        field=field,
    )


def decode_upload(
    data: bytes, *, max_bytes: int, what: str = "upload", field: str = "file", whole: bool = True
) -> str:
    """Turn uploaded bytes into text, refusing binary files and oversized ones.

    `whole` is False when `data` was read only up to just past the limit."""
    if len(data) > max_bytes:
        raise upload_too_large(what, len(data), max_bytes, field=field, whole=whole)
    encoding = next((name for mark, name in _BYTE_ORDER_MARKS if data.startswith(mark)), None)
    if encoding is None and b"\x00" in data:
        raise BinaryInputError(
            f"The {what} looks like a binary file (it contains NUL bytes). "
            "Upload a Markdown or plain-text answer (text saved as UTF-16 without a byte-order "
            "mark reads like this too: save it as UTF-8).",
            field=field,
        )
    try:
        text = data.decode(encoding or "utf-8-sig").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        if encoding is not None:
            raise BinaryInputError(
                f"The {what} starts like {encoding.upper()} text but is not valid "
                f"{encoding.upper()} (bad bytes at offset {exc.start}). Save it as UTF-8.",
                field=field,
            ) from exc
        raise BinaryInputError(
            f"The {what} is not UTF-8 text (bad byte at offset {exc.start}). "
            "Save it as UTF-8 Markdown or plain text.",
            field=field,
        ) from exc
    return clean_text(
        text, max_chars=max_bytes, what=what, field=field, too_large_hint=UPLOAD_TOO_LARGE_HINT
    )


def upload_text(
    data: bytes, *, what: str, max_bytes: int, field: str = "file", whole: bool = True
) -> str:
    """A whole answer sent as a file: PDF (by its magic bytes), Markdown or plain text.

    `what` names it in errors ("file 'answer.md'"); `whole` as for `decode_upload`. The limit
    applies to the answer's text: a PDF's fonts and images make the file itself larger, so
    its size is bounded only by what the caller read (the request or download limit)."""
    if data[:5] != b"%PDF-":
        return decode_upload(data, max_bytes=max_bytes, what=what, field=field, whole=whole)
    text = pdf_text(data, field=field)
    if _VISIBLE.search(text) is None:
        raise EmptyInputError(
            f"The {what} is a PDF with no text in it that can be read: a scan or a picture of "
            "text has none. Export it from the editor it was written in, or upload the answer "
            "as Markdown or text.",
            field=field,
        )
    return clean_text(
        text,
        max_chars=max_bytes,
        what=what,
        field=field,
        too_large_hint=UPLOAD_TOO_LARGE_HINT,
    )


def clean_text(
    text: str,
    *,
    max_chars: int,
    what: str = "answer",
    field: str = "text",
    too_large_hint: str = "Split it into shorter turns or trim it.",
) -> str:
    """Normalise newlines and refuse empty, invisible, binary-looking or oversized text.

    `field` is the request field the text came in, named by the error.
    """
    if len(text) > max_chars:
        raise InputTooLargeError(
            f"The {what} is {len(text):,} characters; the limit is {max_chars:,}. "
            + too_large_hint,
            field=field,
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise BinaryInputError(f"The {what} contains NUL characters; send plain text.", field=field)
    if (bad := _SURROGATE.search(text)) is not None:
        raise InvalidTextError(
            f"The {what} holds a broken character at position {bad.start():,} (an unpaired "
            f"UTF-16 surrogate, \\u{ord(bad.group()):04x}), which no text can contain; "
            "send valid Unicode.",
            field=field,
        )
    control = sum(1 for ch in text if ch < " " and ch not in _ALLOWED_CONTROL)
    if control > max(8, len(text) // 100):
        raise BinaryInputError(
            f"The {what} is mostly control characters, not text; send plain text.", field=field
        )
    if not text.strip():
        raise EmptyInputError(
            f"The {what} is empty; write something before sending it.", field=field
        )
    if _VISIBLE.search(text) is None:
        raise EmptyInputError(
            f"The {what} has no visible characters (only spaces, invisible or control "
            "characters); write something before sending it.",
            field=field,
        )
    return text


def pdf_text(data: bytes, *, field: str = "file") -> str:
    """Text of a PDF's pages, via pypdf (pure Python, well kept)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (DependencyError, FileNotDecryptedError) as exc:
        raise BinaryInputError(
            "The PDF is encrypted, so its text cannot be read; save a copy without a password "
            "or encryption, or upload the answer as Markdown or text.",
            field=field,
        ) from exc
    # Broad on purpose: a hostile or broken PDF makes pypdf raise nearly anything (PdfReadError,
    # OverflowError on a huge offset, RecursionError on deep nesting, KeyError...), and every
    # one of them means the same to the candidate.
    except Exception as exc:
        raise BinaryInputError(
            f"The PDF could not be read ({type(exc).__name__}: {str(exc)[:200]}); upload the "
            "answer as Markdown or text.",
            field=field,
        ) from exc
