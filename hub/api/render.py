"""Article bodies to safe HTML: CommonMark without raw HTML, then sanitised by nh3 (ammonia).

Raw HTML in a body is dropped rather than shown escaped: editors paste snippets from other
systems, and neither the tags nor their attributes belong on the page. nh3 is the second wall,
so a renderer bug or a crafted link (`javascript:`) still cannot put script into a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

_TAGS = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "img",
    "li", "ol", "p", "pre", "strong", "ul",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}}
_URL_SCHEMES = {"http", "https", "mailto", "tel"}


def _drop(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return ""


# The parser recognises raw HTML (so it does not turn into visible text); rendering drops it.
_md = MarkdownIt("commonmark", {"html": True})
_md.add_render_rule("html_block", _drop)
_md.add_render_rule("html_inline", _drop)


def markdown_html(body: str) -> str:
    """The article body as sanitised HTML."""
    return nh3.clean(
        _md.render(body),
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
