"""Markdown's syntax tree as text for channels without HTML: plain text (email's text part,
SMS, voice) and Telegram's HTML subset (b, i, u, s, code, pre, a).

One walk over the tree; a `Style` says how each piece looks on the channel. Tables become
aligned columns where a monospaced block fits, otherwise "Header: value" lines per row, which
read well on a phone and out loud.
"""

from __future__ import annotations

import html
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from markdown_it.tree import SyntaxTreeNode

from hub.formatting.markdown import URL_SCHEMES

TableLayout = Literal["aligned", "records"]


def _same(text: str) -> str:
    return text


def _tg_escape(text: str) -> str:
    return html.escape(text, quote=False)


@dataclass(frozen=True, slots=True)
class Style:
    """How one channel shows each piece of a message."""

    escape: Callable[[str], str]
    strong: tuple[str, str] = ("", "")
    em: tuple[str, str] = ("", "")
    strike: tuple[str, str] = ("", "")
    code: tuple[str, str] = ("", "")
    pre: tuple[str, str] = ("", "")
    links: Literal["inline", "anchor"] = "inline"  # "text (url)", or <a href>
    quote: str = ""  # put in front of each line of a quotation
    tables: TableLayout = "records"
    max_table_width: int = 0  # with "aligned": wider tables become records (0: no limit)
    extra_schemes: frozenset[str] = frozenset()


PLAIN = Style(escape=_same)
EMAIL_TEXT = Style(escape=_same, quote="> ", tables="aligned")
TELEGRAM = Style(
    escape=_tg_escape,
    strong=("<b>", "</b>"),
    em=("<i>", "</i>"),
    strike=("<s>", "</s>"),
    code=("<code>", "</code>"),
    pre=("<pre>", "</pre>"),
    links="anchor",
    quote="> ",
    tables="aligned",
    max_table_width=34,  # what a phone shows of a <pre> block without scrolling sideways
    extra_schemes=frozenset({"tg"}),
)


def blocks(root: SyntaxTreeNode, style: Style) -> list[str]:
    """The top-level blocks of the message, each complete in itself (balanced tags)."""
    return [b for node in root.children if (b := _block(node, style))]


def _block(node: SyntaxTreeNode, style: Style) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline_of(node, style).strip()
    if kind == "heading":
        text = _inline_of(node, style).strip()
        return f"{style.strong[0]}{text}{style.strong[1]}" if text else ""
    if kind in ("bullet_list", "ordered_list"):
        return "\n".join(_list_lines(node, style))
    if kind == "blockquote":
        inner = "\n\n".join(blocks(node, style))
        return "\n".join(
            style.quote + line if line else style.quote.rstrip() for line in inner.split("\n")
        )
    if kind in ("fence", "code_block"):
        code = node.content.rstrip("\n")
        return f"{style.pre[0]}{style.escape(code)}{style.pre[1]}" if code else ""
    if kind == "table":
        return _table(node, style)
    if kind == "hr":
        return "———"
    return ""  # html_block: raw HTML is not shown on any channel


def _list_lines(node: SyntaxTreeNode, style: Style) -> list[str]:
    ordered = node.type == "ordered_list"
    number = int(str(node.attrs.get("start", 1))) if ordered else 0
    lines: list[str] = []
    for item in node.children:
        marker = f"{number}. " if ordered else "• "
        number += 1
        inner = "\n".join(blocks(item, style)).split("\n") or [""]
        pad = " " * len(marker)
        lines.append(marker + inner[0])
        lines.extend(pad + line if line else line for line in inner[1:])
    return lines


def _inline_of(node: SyntaxTreeNode, style: Style) -> str:
    return "".join(_inline(child, style) for child in node.children)


def _inline(node: SyntaxTreeNode, style: Style) -> str:
    kind = node.type
    if kind == "inline":
        return _inline_of(node, style)
    if kind == "text":
        return style.escape(node.content)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return f"{style.code[0]}{style.escape(node.content)}{style.code[1]}"
    if kind == "strong":
        return f"{style.strong[0]}{_inline_of(node, style)}{style.strong[1]}"
    if kind == "em":
        return f"{style.em[0]}{_inline_of(node, style)}{style.em[1]}"
    if kind == "s":
        return f"{style.strike[0]}{_inline_of(node, style)}{style.strike[1]}"
    if kind == "link":
        return _link(_inline_of(node, style), str(node.attrs.get("href", "")), style)
    if kind == "image":
        alt = style.escape(str(node.attrs.get("alt", "") or "")) or _inline_of(node, style)
        return _link(alt or "image", str(node.attrs.get("src", "")), style)
    return ""  # html_inline


def _link(content: str, href: str, style: Style) -> str:
    scheme = urllib.parse.urlsplit(href).scheme.lower()
    if scheme not in URL_SCHEMES | style.extra_schemes:
        return content  # not a link any channel should offer
    if style.links == "anchor":
        return f'<a href="{html.escape(href, quote=True)}">{content}</a>'
    shown = href.removeprefix("mailto:").removeprefix("tel:")
    if _plain_of(content) in (href, shown):  # a bare URL: once is enough
        return style.escape(shown)
    return f"{content} ({style.escape(shown)})"


def _plain_of(text: str) -> str:
    return html.unescape(text) if "&" in text else text


# --- tables --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cell:
    text: str  # in the channel's style
    plain: str  # for the monospaced layout
    align: str


def _table(node: SyntaxTreeNode, style: Style) -> str:
    rows: list[list[_Cell]] = []
    for section in node.children:
        for tr in section.children:
            rows.append(
                [
                    _Cell(
                        _inline_of(cell, style).replace("\n", " ").strip(),
                        _inline_of(cell, PLAIN).replace("\n", " ").strip(),
                        str(cell.attrs.get("style", "")).removeprefix("text-align:"),
                    )
                    for cell in tr.children
                ]
            )
    if not rows:
        return ""
    columns = max(len(r) for r in rows)
    rows = [r + [_Cell("", "", "")] * (columns - len(r)) for r in rows]
    if style.tables == "aligned":
        widths = [max(width(r[c].plain) for r in rows) for c in range(columns)]
        total = sum(widths) + 2 * (columns - 1)
        if not style.max_table_width or total <= style.max_table_width:
            return _aligned(rows, widths, style)
    return _records(rows, style)


def _aligned(rows: list[list[_Cell]], widths: list[int], style: Style) -> str:
    header, *body = rows
    lines = [_line(header, widths), "  ".join("-" * w for w in widths)]
    lines.extend(_line(r, widths) for r in body)
    text = "\n".join(line.rstrip() for line in lines)
    return f"{style.pre[0]}{style.escape(text)}{style.pre[1]}"


def _line(row: list[_Cell], widths: list[int]) -> str:
    out = []
    for cell, w in zip(row, widths, strict=True):
        gap = w - width(cell.plain)
        if cell.align == "right":
            out.append(" " * gap + cell.plain)
        elif cell.align == "center":
            out.append(" " * (gap // 2) + cell.plain + " " * (gap - gap // 2))
        else:
            out.append(cell.plain + " " * gap)
    return "  ".join(out)


def _records(rows: list[list[_Cell]], style: Style) -> str:
    """Each body row as its first cell (a title) and "Header: value" lines for the rest."""
    header, *body = rows
    if not body:
        return "\n".join(c.text for c in header if c.text)
    out = []
    for row in body:
        title, *rest = row
        lines = [f"{style.strong[0]}{title.text}{style.strong[1]}"] if title.text else []
        for head, cell in zip(header[1:], rest, strict=True):
            if cell.text:
                lines.append(f"{head.text}: {cell.text}" if head.text else cell.text)
        out.append("\n".join(lines))
    return "\n\n".join(out)


def width(text: str) -> int:
    """Columns `text` takes in a monospaced font: Chinese characters take two."""
    return sum(
        0
        if unicodedata.combining(ch)
        else 2
        if unicodedata.east_asian_width(ch) in ("W", "F")
        else 1
        for ch in text
    )
