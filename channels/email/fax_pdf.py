"""Fax replies as PDF pages laid out from the message's structure.

The message's Markdown becomes HTML (`hub.formatting.fax_html`) and fpdf2's `write_html`
lays it out: headings and bold in the bold face, lists with their markers, tables as ruled
tables, all in black (a fax is black and white) and in a font with Chinese glyphs.

fpdf2 parses and subsets every face it is given, which for a CJK font costs more than a
second per face: the bold face is added only when the reply has bold text, and emphasis is
underlined (Chinese fonts have no italic face to add).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace, TextStyle

from hub import formatting
from hub.model import MessageFormat

log = logging.getLogger(__name__)

_SC_INDEX = 2  # Simplified Chinese in Noto Sans CJK's collection (JP, KR, SC, TC, HK)
FONT = "cjk"
# fpdf2's defaults colour headings, bullets, quotes and links, which a fax turns grey.
_STYLES = {
    **{
        f"h{n}": TextStyle(color=0, font_style="B", font_size_pt=size, t_margin=4, b_margin=1)
        for n, size in ((1, 18), (2, 16), (3, 14), (4, 13), (5, 12), (6, 12))
    },
    "a": FontFace(color=0, emphasis="U"),
    "em": FontFace(emphasis="U"),
    "i": FontFace(emphasis="U"),
    "blockquote": TextStyle(color=0, l_margin=8, t_margin=2, b_margin=2),
    "code": FontFace(family=FONT),
    "pre": TextStyle(font_family=FONT, t_margin=2, b_margin=2),
}
_BOLD = re.compile(r"<(?:strong|b|th|h[1-6])[ >]")  # what fpdf2 sets in the bold face


def bold_font(regular: str) -> str:
    """The bold face next to a regular font file (Noto's "-Regular" -> "-Bold"), or the
    regular one itself when there is none (bold text is then set in the regular face)."""
    path = Path(regular)
    bold = path.with_name(path.name.replace("Regular", "Bold"))
    return str(bold) if bold != path and bold.is_file() else regular


def render_pdf(
    text: str, font_path: str, heading: str, format: MessageFormat = MessageFormat.PLAIN
) -> bytes:
    """The reply as a PDF page (or more) with a font that has Chinese glyphs.

    A structure fpdf2's HTML layout does not handle still goes out, as plain text."""
    if format is MessageFormat.PLAIN:
        pdf = _page(font_path, heading, bold=False)
        pdf.multi_cell(0, 7, text)
        return _output(pdf)
    markup = formatting.fax_html(text, format)
    pdf = _page(font_path, heading, bold=_BOLD.search(markup) is not None)
    try:
        pdf.write_html(
            markup,
            font_family=FONT,
            tag_styles=_STYLES,
            li_prefix_color=0,
            table_line_separators=True,
        )
    # fpdf2's HTML layout fails in many ways (FPDFException, NotImplementedError, failed
    # assertions, KeyError) on structures it does not take; the reply still goes out.
    except Exception as exc:
        log.warning("fax reply laid out as plain text: fpdf2 refused its HTML (%s)", exc)
        _close_fonts(pdf)
        pdf = _page(font_path, heading, bold=False)
        pdf.multi_cell(0, 7, formatting.plain(text))
    return _output(pdf)


def _page(font_path: str, heading: str, *, bold: bool) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.add_font(FONT, fname=font_path, collection_font_number=_SC_INDEX)
    if bold:
        pdf.add_font(FONT, "B", fname=bold_font(font_path), collection_font_number=_SC_INDEX)
    pdf.set_font(FONT, size=14)
    pdf.multi_cell(0, 8, heading)
    pdf.ln(4)
    pdf.set_font(FONT, size=12)
    return pdf


def _output(pdf: FPDF) -> bytes:
    try:
        return bytes(pdf.output())
    finally:
        _close_fonts(pdf)


def _close_fonts(pdf: FPDF) -> None:
    """fpdf2 closes the font files it embedded; a face a reply did not use stays open."""
    for font in pdf.fonts.values():
        close = getattr(font, "close", None)
        if close is not None:
            close()
