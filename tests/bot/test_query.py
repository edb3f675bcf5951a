"""What the bot searches with: a message's text without markup, of a long paste its first
question (bot/query.py)."""

from __future__ import annotations

from bot.query import MAX_QUERY_CHARS, plain_text, search_text


def test_markup_is_read_as_text() -> None:
    html = (
        "<html><head><style>p { color: red }</style><title>x</title></head><body>"
        '<div style="font-family:Arial"><p>Hello,</p><p>how do I return an item?</p></div>'
        "<script>alert('hi')</script>Fish &amp; chips<br>today</body></html>"
    )
    assert search_text(html) == ("Hello, how do I return an item? Fish & chips today", False)
    assert plain_text("<li>one</li><li>two</li>").split() == ["one", "two"]  # not "onetwo"
    # Plain text, comparisons included, comes out as it went in.
    assert plain_text("is 3 < 5 and 7 > 2?") == "is 3 < 5 and 7 > 2?"


def test_a_long_paste_is_searched_by_its_first_question() -> None:
    story = "I ordered skates for my daughter and the box came damaged on one side. " * 4
    early = "Where is my refund? " + story * 3
    assert search_text(early) == ("Where is my refund?", True)
    late = story * 2 + "How do I return an item? " + "Details follow. " * 30
    assert len(late) > MAX_QUERY_CHARS
    assert search_text(late) == ("How do I return an item?", True)
    url_only = "See https://shop.example/?page=2 " + "word " * 200
    text, cut = search_text(url_only)
    assert cut and len(text) <= MAX_QUERY_CHARS and text.startswith("See https://")
    chinese = "好" * 600 + "。我想退货，怎么办？" + "嗯" * 100
    assert search_text(chinese) == ("我想退货，怎么办？", True)
