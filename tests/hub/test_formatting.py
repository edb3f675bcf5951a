"""One Markdown source, rendered per channel (hub.formatting): sanitised HTML for screens,
Telegram's HTML subset, the two parts of a mail, the HTML a fax is laid out from, and text
without markup. Every renderer must leave no raw Markdown and let no script through."""

from __future__ import annotations

import html.parser
import json
import re
from pathlib import Path

import pytest

from hub import formatting
from hub.formatting.markdown import CACHED_CHARS, _cached_html
from hub.formatting.text import width
from hub.model import MessageFormat

DEMO_FAQ = Path(__file__).parents[2] / "hub" / "demo" / "faq.jsonl"
SHIPPING = next(
    json.loads(line)["body"]
    for line in DEMO_FAQ.read_text().splitlines()
    if json.loads(line)["id"] == "en-shipping-times"
)
ANSWER = (
    "**Forgot password?** Use the link on the sign-in page.\n\n"
    "| | Delivery | Cost |\n|---|---|--:|\n"
    "| Standard | 3–5 working days | free over 50 € |\n"
    "| Express | next working day | 9.90 € |\n\n"
    "- Sign in\n- Open **My account**\n\n"
    "[Read it in full](https://shop.example/help/articles/en-shipping-times)"
)
ATTACKS = [
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="https://evil.example" onclick="steal()">x</a>',
    "<style>body{display:none}</style>",
    "<iframe src=https://evil.example></iframe>",
    '| a | b |\n|---|---|\n| <script>alert(1)</script> | <img src=x onerror="alert(1)"> |',
    "<svg onload=alert(1)>",
    "[x](vbscript:msgbox(1))",
]
RAW_MARKDOWN = re.compile(r"\*\*|\|\s*-{3}|\]\(|^#+ ", re.MULTILINE)


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(markup)
    return parser.tags


def assert_harmless(markup: str) -> None:
    for tag, attrs in tags_of(markup):
        assert tag not in ("script", "style", "iframe", "svg"), markup
        for name, value in attrs.items():
            assert not name.startswith("on"), markup
            if name in ("href", "src"):
                assert re.match(r"(https?|mailto|tel):", value or ""), markup


# --- HTML (widget, inbox, help center, KB preview) ------------------------------------------------


def test_the_demo_faqs_table_is_a_real_table() -> None:
    out = formatting.html(SHIPPING)
    assert "|" not in out
    tags = [t for t, _ in tags_of(out)]
    assert tags.count("table") == 1 and tags.count("th") == 2 and tags.count("td") == 7
    # The empty corner is no header: axe-core (empty-table-header) and screen readers agree.
    assert "<thead>\n<tr>\n<td></td>\n<th>Delivery</th>\n<th>Cost</th>" in out
    assert "<td>3–5 working days</td>" in out


def test_html_of_a_bot_answer() -> None:
    out = formatting.html(ANSWER)
    assert "<strong>Forgot password?</strong>" in out
    assert '<th align="right">Cost</th>' in out and '<td align="right">9.90 €</td>' in out
    assert "<li>Open <strong>My account</strong></li>" in out
    assert (
        '<a href="https://shop.example/help/articles/en-shipping-times" target="_blank"'
        ' rel="noopener noreferrer nofollow">Read it in full</a>'
    ) in out
    assert not RAW_MARKDOWN.search(out)


def test_html_extras_and_line_breaks() -> None:
    out = formatting.html("~~old~~ price\nsee https://acme.example/x")
    assert out == (
        "<p><s>old</s> price<br>\nsee "
        '<a href="https://acme.example/x" target="_blank" rel="noopener noreferrer nofollow">'
        "https://acme.example/x</a></p>"
    )


def test_a_link_with_a_forbidden_scheme_is_its_text() -> None:
    source = "[click](javascript:alert(1)) ![pic](javascript:alert(2))"
    assert formatting.html(source) == (
        '<p><a target="_blank" rel="noopener noreferrer nofollow">click</a> <img alt="pic"></p>'
    )
    assert formatting.plain(source) == "click pic"
    assert formatting.telegram_chunks(source) == ["click pic"]


def test_an_alignment_can_only_be_an_alignment() -> None:
    # Raw HTML is dropped before nh3; nh3 would drop an align it does not know anyway.
    out = formatting.html('<table><tr><td align="x onmouseover=alert(1)">a</td></tr></table>')
    assert "onmouseover" not in out and "align" not in out


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_script_survives_any_renderer(attack: str) -> None:
    source = f"Hello\n\n{attack}\n\nbye"
    assert_harmless(formatting.html(source))
    assert_harmless(formatting.email_html(source))
    assert_harmless(formatting.fax_html(source))
    for chunk in formatting.telegram_chunks(source):
        assert_harmless(chunk)
        assert {t for t, _ in tags_of(chunk)} <= {"b", "i", "s", "code", "pre", "a"}
    for text in (formatting.plain(source), formatting.email_text(source)):
        assert "<script" not in text and "(javascript:" not in text.lower()


def test_plain_messages_have_no_html_and_are_not_parsed() -> None:
    assert formatting.message_html("**not bold** <b>", MessageFormat.PLAIN) is None
    assert formatting.message_html("**bold**", MessageFormat.MARKDOWN) == (
        "<p><strong>bold</strong></p>"
    )


# --- text without markup (SMS, voice) and email ------------------------------------------------


def test_plain_text_has_no_markup() -> None:
    out = formatting.plain(ANSWER)
    assert out == (
        "Forgot password? Use the link on the sign-in page.\n\n"
        "Standard\nDelivery: 3–5 working days\nCost: free over 50 €\n\n"
        "Express\nDelivery: next working day\nCost: 9.90 €\n\n"
        "• Sign in\n• Open My account\n\n"
        "Read it in full (https://shop.example/help/articles/en-shipping-times)"
    )


def test_email_text_part_aligns_tables() -> None:
    out = formatting.email_text(SHIPPING)
    assert out == (
        "We ship from our own warehouse on working days.\n\n"
        "          Delivery          Cost\n"
        "--------  ----------------  --------------\n"
        "Standard  3–5 working days  free over 50 €\n"
        "Express   next working day  9.90 €\n\n"
        "Orders placed before 14:00 leave the same day."
    )
    chinese = formatting.email_text("| 方式 | 天数 |\n|---|--:|\n| 标准 | 3 |\n| Express | 1 |")
    assert chinese.split("\n") == [
        "方式     天数",
        "-------  ----",
        "标准        3",
        "Express     1",
    ]


def test_email_text_of_links_lists_and_quotes() -> None:
    out = formatting.email_text(
        "1. [Orders](https://shop.example/orders)\n2. https://shop.example/x\n"
        "3. [mail us](mailto:help@shop.example)\n\n> your question\n> two lines"
    )
    assert out == (
        "1. Orders (https://shop.example/orders)\n2. https://shop.example/x\n"
        "3. mail us (help@shop.example)\n\n> your question\n> two lines"
    )
    assert formatting.email_text("**x** | y", MessageFormat.PLAIN) == "**x** | y"


def test_email_html_part_is_a_styled_document() -> None:
    out = formatting.email_html(ANSWER)
    assert out.startswith("<!doctype html><html>") and out.endswith("</body></html>")
    assert '<table style="border-collapse:collapse' in out
    assert '<td style="border:1px solid #c8c8c8;padding:4px 8px" align="right">9.90 €</td>' in out
    assert not RAW_MARKDOWN.search(out)
    plain = formatting.email_html("a < b\n\nline\nnext", MessageFormat.PLAIN)
    assert "<p>a &lt; b</p><p>line<br>next</p>" in plain


def test_fax_html_spells_out_links() -> None:
    out = formatting.fax_html(
        "[Read it in full](https://shop.example/a?b=1&c=2) or https://x.example"
    )
    assert out == (
        "<p>Read it in full (https://shop.example/a?b=1&amp;c=2) or https://x.example</p>"
    )
    assert "\n" not in formatting.fax_html(SHIPPING)  # fpdf2 would print it as blank lines


def test_display_width_counts_chinese_double() -> None:
    assert (width("abc"), width("订单"), width("é"), width("e\u0301")) == (3, 4, 1, 1)


# --- Telegram ---------------------------------------------------------------------------------


def test_telegram_uses_only_its_tags() -> None:
    [out] = formatting.telegram_chunks(ANSWER)
    assert out == (
        "<b>Forgot password?</b> Use the link on the sign-in page.\n\n"
        "<b>Standard</b>\nDelivery: 3–5 working days\nCost: free over 50 €\n\n"
        "<b>Express</b>\nDelivery: next working day\nCost: 9.90 €\n\n"
        "• Sign in\n• Open <b>My account</b>\n\n"
        '<a href="https://shop.example/help/articles/en-shipping-times">Read it in full</a>'
    )


def test_telegram_shows_a_narrow_table_as_columns() -> None:
    [out] = formatting.telegram_chunks("| Size | EU |\n|---|--:|\n| S & M | 36 |\n| L | 40 |")
    assert out == "<pre>Size   EU\n-----  --\nS &amp; M  36\nL      40</pre>"


def test_telegram_headings_code_and_escaping() -> None:
    [out] = formatting.telegram_chunks("## Steps\n\nUse `a<b>` & go\n\n```\nx < 1\n```")
    assert out == "<b>Steps</b>\n\nUse <code>a&lt;b&gt;</code> &amp; go\n\n<pre>x &lt; 1</pre>"
    [plain] = formatting.telegram_chunks("**no** <b>markup</b> & co", MessageFormat.PLAIN)
    assert plain == "**no** &lt;b&gt;markup&lt;/b&gt; &amp; co"


def test_telegram_splits_between_blocks_within_the_limit() -> None:
    paragraphs = [f"**Part {i}** " + "word " * 30 for i in range(40)]
    chunks = formatting.telegram_chunks("\n\n".join(paragraphs), limit=1000)
    assert len(chunks) > 1 and all(len(c) <= 1000 for c in chunks)
    for chunk in chunks:  # each piece parses on its own: no tag cut in two
        assert chunk.count("<b>") == chunk.count("</b>") and chunk.startswith("<b>Part")
    assert sum(c.count("<b>Part") for c in chunks) == 40


def test_telegram_cuts_a_long_block_without_breaking_an_entity() -> None:
    text = "**" + " ".join(["a&b"] * 600) + "**"  # one bold paragraph: 4199 characters escaped
    chunks = formatting.telegram_chunks(text, limit=1000)
    assert all(len(c) <= 1000 for c in chunks) and len(chunks) >= 5
    for chunk in chunks:
        assert "<" not in chunk  # too long for one message: its markup is dropped
        assert re.fullmatch(r"(a&amp;b ?)+", chunk), chunk
    assert sum(c.count("a&amp;b") for c in chunks) == 600


def test_the_same_answer_is_rendered_once() -> None:
    text = "**cached** answer " + "x" * 50
    formatting.html(text)
    before = _cached_html.cache_info()
    assert formatting.html(text) == "<p><strong>cached</strong> answer " + "x" * 50 + "</p>"
    assert _cached_html.cache_info().hits == before.hits + 1
    long = "**long** " + "y" * CACHED_CHARS  # a whole article is not kept in memory
    assert formatting.html(long).startswith("<p><strong>long</strong> yyy")
    assert _cached_html.cache_info().currsize == before.currsize
