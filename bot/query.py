"""What the bot searches the knowledge base with: the message's text, not its markup, and
of a long paste its first question.

Markup is read with the standard library's HTML parser (`html.parser`), the parser browsers'
rules are modelled on: tags and comments go, entities are decoded, script and style contents
are dropped, and block elements (paragraphs, list items, table cells, <br>) separate words
instead of gluing them together. Text without markup comes out unchanged.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_QUERY_CHARS = 500  # a long paste is searched by its first question, else its beginning
SCAN_CHARS = 3000  # how far into a long paste its first question is looked for
_SENTENCE_END = re.compile(r"[.!?。！？]+\s*")
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript"})
_BLOCKS = frozenset(
    """address article aside blockquote br dd div dl dt figcaption footer form h1 h2 h3 h4 h5
    h6 header hr li main nav ol p pre section table tbody td tfoot th thead tr ul""".split()
)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def plain_text(text: str) -> str:
    """The readable text of a message that may carry HTML (see the module docstring)."""
    if "<" not in text and "&" not in text:
        return text
    parser = _TextOf()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def search_text(text: str) -> tuple[str, bool]:
    """The part of a message to search with, and whether it was cut.

    Markup is removed and whitespace collapsed. Of a text over MAX_QUERY_CHARS, its first
    question is searched: the text up to its first question mark when that is within the
    limit, else the sentence that mark ends (within the first SCAN_CHARS); with no question
    mark, the beginning, cut at the last space before the limit.
    """
    flat = " ".join(plain_text(text).split())
    if len(flat) <= MAX_QUERY_CHARS:
        return flat, False
    end = _first_question_end(flat)
    if end is not None and end <= MAX_QUERY_CHARS:
        return flat[:end], True
    if end is not None:
        window = flat[end - MAX_QUERY_CHARS : end]
        starts = [m.end() for m in _SENTENCE_END.finditer(window[:-1])]
        return (window[starts[-1] :] if starts else window.split(" ", 1)[-1]), True
    cut = flat[:MAX_QUERY_CHARS]
    return (cut.rsplit(" ", 1)[0] if " " in cut[-50:] else cut), True


def _first_question_end(flat: str) -> int | None:
    """Where the first question ends (after its question mark) within the first SCAN_CHARS;
    a "?" inside a word or URL (…/?page=2) ends none."""
    for i, ch in enumerate(flat[:SCAN_CHARS]):
        if ch == "？" or (ch == "?" and (i + 1 == len(flat) or flat[i + 1].isspace())):
            return i + 1
    return None
