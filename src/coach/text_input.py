"""One gate for candidate text, so every front door rejects the same bad input the same way."""

from __future__ import annotations

import io

from coach.errors import BinaryInputError, EmptyInputError, InputTooLargeError

_ALLOWED_CONTROL = {"\n", "\r", "\t", "\f"}


def decode_upload(data: bytes, *, max_bytes: int, what: str = "upload") -> str:
    """Turn uploaded bytes into text, refusing binary files and oversized ones."""
    if len(data) > max_bytes:
        raise InputTooLargeError(
            f"The {what} is {len(data):,} bytes; the limit is {max_bytes:,} bytes. "
            "Trim it or raise COACH_MAX_UPLOAD_BYTES."
        )
    if b"\x00" in data:
        raise BinaryInputError(
            f"The {what} looks like a binary file (it contains NUL bytes). "
            "Upload a Markdown or plain-text answer."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BinaryInputError(
            f"The {what} is not UTF-8 text (bad byte at offset {exc.start}). "
            "Save it as UTF-8 Markdown or plain text."
        ) from exc
    return clean_text(text, max_chars=max_bytes, what=what)


def clean_text(text: str, *, max_chars: int, what: str = "answer") -> str:
    """Normalise newlines and refuse empty, binary-looking or oversized text."""
    if len(text) > max_chars:
        raise InputTooLargeError(
            f"The {what} is {len(text):,} characters; the limit is {max_chars:,}. "
            "Split it into shorter turns or trim it."
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise BinaryInputError(f"The {what} contains NUL characters; send plain text.")
    control = sum(1 for ch in text if ch < " " and ch not in _ALLOWED_CONTROL)
    if control > max(8, len(text) // 100):
        raise BinaryInputError(
            f"The {what} is mostly control characters, not text; send plain text."
        )
    if not text.strip():
        raise EmptyInputError(f"The {what} is empty; write something before sending it.")
    return text


def pdf_text(data: bytes) -> str:
    """Text of a PDF's pages, via pypdf (pure Python, well kept)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise BinaryInputError(
            f"The PDF could not be read ({exc}); upload Markdown or text."
        ) from exc
