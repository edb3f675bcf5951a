"""A fax reply's PDF is laid out from the message's structure (headings and bold in the bold
face, lists, ruled tables), read back with pypdfium2's text extraction."""

from __future__ import annotations

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from channels.email.fax_pdf import bold_font, render_pdf
from hub.model import MessageFormat

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
BOLD = 600  # font weights at or above this are bold


def read(pdf_bytes: bytes) -> list[tuple[str, bool]]:
    """Each line of text on the pages, and whether all its letters are set in bold."""
    pdf = pdfium.PdfDocument(pdf_bytes)
    lines: list[tuple[str, bool]] = []
    try:
        for page in pdf:
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            line, bold = "", True
            for index, char in enumerate(text):
                if char in "\r\n":
                    if line.strip():
                        lines.append((line.strip(), bold))
                    line, bold = "", True
                    continue
                line += char
                if not char.isspace():
                    bold &= pdfium_c.FPDFText_GetFontWeight(textpage.raw, index) >= BOLD
            if line.strip():
                lines.append((line.strip(), bold))
    finally:
        pdf.close()
    return lines


def test_the_reply_is_laid_out_from_its_structure() -> None:
    source = (
        "## 发货 Shipping\n\n"
        "We ship **on working days**.\n\n"
        "| | Delivery | Cost |\n|---|---|--:|\n"
        "| Standard | 3–5 working days | free over 50 € |\n"
        "| Express | next working day | 9.90 € |\n\n"
        "1. Open [My account](https://shop.example/account)\n2. Select **Track parcel**\n\n"
        "- 您好\n- bye"
    )
    lines = read(render_pdf(source, FONT, "Shop Support  [#A1B2]", MessageFormat.MARKDOWN))
    text = [line for line, _ in lines]
    assert text == [
        "Shop Support [#A1B2]",
        "发货 Shipping",
        "We ship on working days.",
        "Delivery Cost",
        "Standard 3–5 working days free over 50 €",
        "Express next working day 9.90 €",
        "1. Open My account (https://shop.example/account)",
        "2. Select Track parcel",
        "• 您好",
        "• bye",
    ]
    bold = {line for line, is_bold in lines if is_bold}
    assert {"发货 Shipping", "Delivery Cost"} <= bold  # the heading and the table's header
    assert (
        "We ship on working days." not in bold
        and "Standard 3–5 working days free over 50 €" not in bold
    )


def test_plain_text_is_not_read_as_markdown() -> None:
    lines = read(render_pdf("Order **58213** | 2 items", FONT, "Fax", MessageFormat.PLAIN))
    assert [line for line, _ in lines] == ["Fax", "Order **58213** | 2 items"]


def test_a_table_too_wide_for_the_page_still_goes_out_as_text() -> None:
    columns = 60
    source = (
        "|" + "|".join(f"c{i}" for i in range(columns)) + "|\n"
        "|" + "|".join("-" for _ in range(columns)) + "|\n"
        "|" + "|".join(f"v{i}" for i in range(columns)) + "|"
    )
    text = [line for line, _ in read(render_pdf(source, FONT, "Fax", MessageFormat.MARKDOWN))]
    assert text[:4] == ["Fax", "v0", "c1: v1", "c2: v2"]
    assert not any("|" in line for line in text)


def test_the_bold_face_is_found_next_to_the_regular_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert bold_font(FONT) == FONT.replace("Regular", "Bold")
    alone = tmp_path / "Font-Regular.ttf"
    alone.write_bytes(b"")
    assert bold_font(str(alone)) == str(alone)  # no bold file: bold text in the regular face
