"""Small PDFs built by hand for the upload tests: no PDF writer needed, every byte known."""

from __future__ import annotations

import zlib


def build_pdf(objects: list[bytes], *, trailer: bytes = b"") -> bytes:
    """A PDF of `objects` (numbered from 1, the first the catalog) with a correct xref table."""
    out, offsets = b"%PDF-1.7\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\n" % (len(objects) + 1, trailer)
    return out + b"startxref\n%d\n%%%%EOF\n" % xref


ONE_PAGE = [
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
]


def text_pdf(lines: list[str], *, padding: int = 0) -> bytes:
    """A one-page PDF whose text is `lines` (Helvetica). Its page is compressed, as real PDFs'
    are, so the file's bytes do not hold the text: only a PDF reader finds it. `padding`
    bytes of an unused stream stand for the fonts and images that make real PDFs large."""
    shown = " ".join(f"({line}) Tj T*" for line in lines)
    stream = zlib.compress(f"BT /F1 10 Tf 14 TL 40 800 Td {shown} ET".encode())
    return build_pdf(
        [
            *ONE_PAGE,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n%s\nendstream" % (padding, b"0" * padding),
        ]
    )


def aes256_encrypted_pdf() -> bytes:
    """A PDF encrypted with AES-256 (V5 R6): pypdf needs the `cryptography` package to open it."""
    zeros = {n: b"<" + b"00" * n + b">" for n in (16, 32, 48)}
    encrypt = (
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /CF << /StdCF << /AuthEvent /DocOpen "
        b"/CFM /AESV3 /Length 32 >> >> /StmF /StdCF /StrF /StdCF /O "
        + zeros[48]
        + b" /U "
        + zeros[48]
        + b" /OE "
        + zeros[32]
        + b" /UE "
        + zeros[32]
        + b" /P -4 /Perms "
        + zeros[16]
        + b" >>"
    )
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"
    file_id = b"<00112233445566778899aabbccddeeff>"
    return build_pdf(
        [*ONE_PAGE, page, encrypt], trailer=b"/Encrypt 4 0 R /ID [%s %s] " % (file_id, file_id)
    )
