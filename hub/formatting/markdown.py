"""Markdown to safe HTML: the one parser, and the HTML every screen shows.

CommonMark plus GitHub's tables, strikethrough and bare-URL links (linkify-it-py). Raw HTML
in the source is dropped rather than shown escaped: editors paste snippets from other
systems, and neither the tags nor their attributes belong on the page. nh3 (ammonia) is the
second wall, so a renderer bug or a crafted link (`javascript:`) still cannot put script into
a page. A single newline is a line break (as in chat apps and GitHub comments): agents type
messages, not hard-wrapped prose.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

LINK_REL = "noopener noreferrer nofollow"
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_ALIGNS = {"left", "center", "right"}
_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}  # fmt: skip
_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}},
    # Only these values survive: an `align` can carry nothing but an alignment.
    tag_attribute_values={"th": {"align": _ALIGNS}, "td": {"align": _ALIGNS}},
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes=set(URL_SCHEMES),
    link_rel=LINK_REL,
)


def _drop(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    return ""


def _cell(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """A table cell with `align="…"` instead of an inline style: pages with a strict
    Content-Security-Policy and mail clients both keep the attribute. An empty header cell
    (the corner of a table whose first column names its rows) is a `td`: a header must
    name something for screen readers."""
    token = tokens[idx]
    style = str(token.attrs.pop("style", ""))
    if style.startswith("text-align:"):
        token.attrs["align"] = style.removeprefix("text-align:")
    if token.tag == "th" and _empty(tokens, idx + 1):
        token.tag = "td"
    return str(renderer.renderToken(tokens, idx, options, env))


def _cell_end(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    if _empty(tokens, idx - 1):
        tokens[idx].tag = "td"
    return str(renderer.renderToken(tokens, idx, options, env))


def _empty(tokens: Sequence[Token], idx: int) -> bool:
    return tokens[idx].type == "inline" and not tokens[idx].content.strip()


def _any_link(url: str) -> bool:
    return True


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True, "linkify": True, "breaks": True})
    md.enable(["table", "strikethrough", "linkify"])
    # Every link is parsed as a link, so one with a forbidden scheme (`javascript:`) shows as
    # its text: nh3 strips the href here, and the text renderers drop such a link's URL.
    md.validateLink = _any_link  # type: ignore[method-assign]  # markdown-it's documented hook
    # The parser recognises raw HTML (so it does not turn into visible text); output drops it.
    md.add_render_rule("html_block", _drop)
    md.add_render_rule("html_inline", _drop)
    md.add_render_rule("th_open", _cell)
    md.add_render_rule("td_open", _cell)
    md.add_render_rule("th_close", _cell_end)
    return md


_MD = _parser()


def tree(text: str) -> SyntaxTreeNode:
    """The Markdown's syntax tree, for the renderers of other channels."""
    return SyntaxTreeNode(_MD.parse(text))


CACHED_CHARS = 8192  # longer texts (whole articles) are rendered each time, not kept


def html(text: str) -> str:
    """Markdown as sanitised HTML (a fragment) for the widget, inbox, help center and KB."""
    return _cached_html(text) if len(text) <= CACHED_CHARS else _render(text)


def _render(text: str) -> str:
    return _CLEANER.clean(_MD.render(text)).strip()


# The bot's answers repeat, and every message event, history and API read renders them.
_cached_html = functools.lru_cache(maxsize=1024)(_render)


def plain_html(text: str) -> str:
    """Plain text as HTML: escaped, paragraphs at blank lines, line breaks kept."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(_escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Mail clients drop <style> blocks and class names; they keep inline styles.
_EMAIL_STYLES = {
    "table": "border-collapse:collapse;margin:0 0 1em",
    "th": "border:1px solid #c8c8c8;padding:4px 8px;background:#f3f3f3",
    "td": "border:1px solid #c8c8c8;padding:4px 8px",
    "blockquote": "margin:0 0 1em;padding-left:1em;border-left:3px solid #c8c8c8;color:#555",
    "pre": "background:#f3f3f3;padding:8px;white-space:pre-wrap",
}
_STYLED = re.compile(r"<(table|th|td|blockquote|pre)([ >])")


def email_document(fragment: str) -> str:
    """A sanitised HTML fragment as a whole mail body in a minimal inline-styled layout."""
    styled = _STYLED.sub(lambda m: f'<{m[1]} style="{_EMAIL_STYLES[m[1]]}"{m[2]}', fragment)
    return (
        '<!doctype html><html><head><meta charset="utf-8"></head>'
        '<body style="font-family:sans-serif;line-height:1.4">'
        f"{styled}</body></html>"
    )
