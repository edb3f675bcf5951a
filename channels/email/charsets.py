"""Text from bytes whose charset is declared wrongly, vaguely or not at all.

Chinese mail is the hard case: clients label GBK and GB18030 text "gb2312", and Big5 text
"big5" while using HKSCS characters. Each declared charset is widened to the superset that
decodes the same bytes identically; when that fails, or nothing is declared, UTF-8 and then
charset-normalizer's detection are tried, and only as a last resort characters are replaced.
"""

from __future__ import annotations

import codecs
from email.header import decode_header

from charset_normalizer import from_bytes

# Declared charset -> a superset that decodes every valid text of it the same way.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",  # what "latin-1" mail from Windows clients really is
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "shift_jis": "cp932",
}


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip('"').lower()
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode_text(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """The text and, when the declared charset was missing or wrong, a note saying so."""
    codec = _codec(declared)
    if codec:
        try:
            return data.decode(codec), None
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode("utf-8")
        return text, None if not declared or codec else f"unknown charset {declared!r}"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data[:200_000]).best()
    if best is not None and best.encoding:
        try:
            text = data.decode(best.encoding)
            note = f"charset {declared!r} was wrong; read as {best.encoding}" if declared else None
            return text, note
        except (UnicodeDecodeError, LookupError):
            pass
    return data.decode(codec or "utf-8", errors="replace"), (
        f"undecodable text (charset {declared or 'missing'}); unreadable characters replaced"
    )


def decode_header_value(raw: str, fallback: str | None = None) -> str:
    """An unfolded header with its RFC 2047 encoded words (and raw 8-bit bytes) decoded.

    Raw 8-bit bytes (no encoded word: Foxmail, old Outlook) are read as UTF-8 when they are,
    else in `fallback`, the charset the mail's body declares (a client writes its headers in
    the same one), and only then guessed: a guess on a few bytes of a subject is often wrong
    (GBK 忘记密码 reads as Korean)."""
    parts: list[str] = []
    try:
        chunks = decode_header(raw)
    except Exception:  # a malformed encoded word: keep the header as it came
        chunks = [(raw, None)]
    for chunk, charset in chunks:
        # Raw 8-bit header bytes arrive as surrogate escapes: back to bytes, then decoded.
        data = chunk.encode("utf-8", "surrogateescape") if isinstance(chunk, str) else chunk
        if charset is None and fallback and not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                charset = fallback
        parts.append(decode_text(data, charset)[0])
    return " ".join("".join(parts).split())
