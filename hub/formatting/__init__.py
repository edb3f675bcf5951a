"""One formatting model for outbound content, rendered per channel.

Bot and agent messages (and article bodies) are Markdown; customer messages are plain text
and are never parsed (`hub.model.MessageFormat`). This package is the one place Markdown
becomes output, for every channel:

- `html`: sanitised HTML for the widget, the inbox, the help center and the KB preview;
- `telegram_chunks`: Telegram's HTML subset, in pieces within its length limit;
- `email_text` / `email_html`: the text/plain and text/html parts of a mail;
- `fax_html`: the HTML a fax PDF is laid out from;
- `plain`: text with no markup at all (SMS, voice).

Pure: no I/O, no web framework, no storage.
"""

from __future__ import annotations

import re

from hub.formatting import text as _text
from hub.formatting.markdown import email_document, html, plain_html, tree
from hub.model import MessageFormat

__all__ = [
    "email_html",
    "email_text",
    "fax_html",
    "html",
    "message_html",
    "plain",
    "plain_html",
    "telegram_chunks",
]

TELEGRAM_LIMIT = 4096  # characters of one Bot API message


def message_html(text: str, format: MessageFormat) -> str | None:
    """What message JSON carries as `html`: None for plain text (clients escape `text`)."""
    return html(text) if format is MessageFormat.MARKDOWN else None


def plain(text: str) -> str:
    """Markdown as text without markup: links as "text (url)", tables as "Header: value"."""
    return "\n\n".join(_text.blocks(tree(text), _text.PLAIN))


def email_text(text: str, format: MessageFormat = MessageFormat.MARKDOWN) -> str:
    """A mail's text/plain part: tables as aligned columns, links as "text (url)"."""
    if format is MessageFormat.PLAIN:
        return text
    return "\n\n".join(_text.blocks(tree(text), _text.EMAIL_TEXT))


def email_html(text: str, format: MessageFormat = MessageFormat.MARKDOWN) -> str:
    """A mail's text/html part: the sanitised HTML in a minimal inline-styled layout."""
    fragment = html(text) if format is MessageFormat.MARKDOWN else plain_html(text)
    return email_document(fragment)


def fax_html(text: str, format: MessageFormat = MessageFormat.MARKDOWN) -> str:
    """The HTML a fax reply is laid out from (fpdf2's `write_html` subset): links spelled
    out as "text (url)", since paper has nothing to click, images as their description
    (the renderer must not fetch anything), table cells as text, and no whitespace between
    tags (fpdf2 would print it as blank lines)."""
    fragment = html(text) if format is MessageFormat.MARKDOWN else plain_html(text)
    fragment = _ANCHOR.sub(_spelled_out, _IMAGE.sub(_described, fragment))
    fragment = _CELL.sub(lambda cell: cell[1] + _TAG.sub("", cell[2]) + cell[3], fragment)
    return _GAP.sub("><", fragment)


_ANCHOR = re.compile(r'<a(?: href="([^"]*)")?[^>]*>(.*?)</a>', re.DOTALL)
_IMAGE = re.compile(r"<img[^>]*>")
_ALT = re.compile(r' alt="([^"]*)"')
_CELL = re.compile(r"(<t[dh](?: [^>]*)?>)(.*?)(</t[dh]>)", re.DOTALL)  # fpdf2 takes text only there
_GAP = re.compile(r">\s*\n\s*<")


def _described(image: re.Match[str]) -> str:
    alt = _ALT.search(image[0])
    return alt[1] if alt else ""


def _spelled_out(anchor: re.Match[str]) -> str:
    url, inner = anchor[1], anchor[2]
    if not url:  # a link whose scheme was not allowed: only its text is left
        return str(inner)
    shown = url.removeprefix("mailto:").removeprefix("tel:")
    return inner if _TAG.sub("", inner) in (url, shown) else f"{inner} ({shown})"


def telegram_chunks(
    text: str, format: MessageFormat = MessageFormat.MARKDOWN, limit: int = TELEGRAM_LIMIT
) -> list[str]:
    """The message in Telegram's HTML (parse_mode HTML), split into pieces of at most `limit`
    characters at block boundaries; each piece has balanced tags. A single block longer than
    the limit loses its markup and is cut at line or word ends."""
    if format is MessageFormat.PLAIN:
        pieces = [_text.TELEGRAM.escape(text.strip())] if text.strip() else []
    else:
        pieces = _text.blocks(tree(text), _text.TELEGRAM)
    chunks: list[str] = []
    for piece in pieces:
        for part in [piece] if len(piece) <= limit else _cut(_TAG.sub("", piece), limit):
            if chunks and len(chunks[-1]) + 2 + len(part) <= limit:
                chunks[-1] += "\n\n" + part
            else:
                chunks.append(part)
    return chunks


_TAG = re.compile(r"<[^>]*>")
_UNIT = re.compile(r"&[#a-zA-Z0-9]+;|.", re.DOTALL)  # an entity is never cut in two


def _cut(escaped: str, limit: int) -> list[str]:
    out: list[str] = []
    units = _UNIT.findall(escaped)
    while units:
        size, end = 0, 0
        while end < len(units) and size + len(units[end]) <= limit:
            size += len(units[end])
            end += 1
        if end < len(units):
            window = units[:end]
            for sep in ("\n", " "):
                if sep in window[end // 2 :]:
                    end = len(window) - window[::-1].index(sep)
                    break
        piece = "".join(units[:end]).strip()
        if piece:
            out.append(piece)
        units = units[end:]
    return out
