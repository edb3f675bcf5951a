"""Markdown replies reach a real SMTP server as multipart/alternative mail: a readable
text/plain part (aligned tables, links as "text (url)") and an inline-styled text/html part,
neither with raw Markdown; fax replies are PDFs laid out from the same structure."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium

from hub.api.app import DEMO_FAQ_TASK
from tests.channels.email.conftest import (
    INBOX,
    EmailHub,
    SmtpPeer,
    customer_mail,
    email_settings,
    inbox_options,
)
from tests.channels.email.test_fax import _fax_mail, _page, _pdf, fax_hub
from tests.support import free_port

__all__ = ["fax_hub"]  # the fixture, shared with the fax tests

RAW_MARKDOWN = re.compile(r"\*\*|\|\s*-{3}|\|---|\]\(")
REPLY = (
    "Hello! **Express** delivery is [next day](https://shop.example/express).\n\n"
    "| Option | Days | Cost |\n|---|--:|---|\n"
    "| Standard | 3–5 | free over 50 € |\n| Express | 1 | 9.90 € |\n\n"
    "<img src=x onerror=alert(1)> [x](javascript:alert(1))\n\n"
    "- Sign in\n- Open **My account**"
)


def parts(mail: EmailMessage) -> tuple[str, str]:
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    return tuple(p.get_content().replace("\r\n", "\n") for p in (plain, html))  # type: ignore[return-value]


async def test_an_agent_reply_in_markdown_is_multipart_text_and_html(
    email_hub: EmailHub, smtp_peer: SmtpPeer
) -> None:
    await email_hub.mail(customer_mail("Is my order on its way?"))
    [conv] = await email_hub.conversations(channel="email")
    await email_hub.reply(conv["id"], REPLY)
    plain, html = parts((await smtp_peer.next()).message)
    assert plain.strip() == (
        "Hello! Express delivery is next day (https://shop.example/express).\n\n"
        "Option    Days  Cost\n"
        "--------  ----  --------------\n"
        "Standard   3–5  free over 50 €\n"
        "Express      1  9.90 €\n\n"
        "x\n\n"
        "• Sign in\n"
        "• Open My account"
    )
    assert (
        "<strong>Express</strong>" in html and "<li>Open <strong>My account</strong></li>" in html
    )
    assert '<table style="border-collapse:collapse' in html
    assert '<td style="border:1px solid #c8c8c8;padding:4px 8px" align="right">3–5</td>' in html
    assert (
        '<a href="https://shop.example/express" target="_blank"'
        ' rel="noopener noreferrer nofollow">next day</a>'
    ) in html
    for part in (plain, html):
        assert not RAW_MARKDOWN.search(part), part
        assert "onerror" not in part and "javascript:" not in part


async def test_a_bot_answer_by_mail_has_no_raw_markdown(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path
) -> None:
    settings = email_settings(
        tmp_path,
        {INBOX: inbox_options(free_port(), smtp_peer.port)},
        bot_inboxes={INBOX: {"enabled": True}},
    )
    hub: EmailHub = await start_email_hub(settings)
    await asyncio.shield(hub.app[DEMO_FAQ_TASK])  # the FAQ is in and indexed
    await hub.mail(customer_mail("How long does delivery take?", subject="Delivery"))
    mail = (await smtp_peer.next()).message
    assert mail["Auto-Submitted"] == "auto-replied"  # the bot's answer
    plain, html = parts(mail)
    for part in (plain, html):
        assert not RAW_MARKDOWN.search(part), part
    assert "/help/articles/en-shipping-times" in plain
    assert re.search(r'<a href="http[^"]*/help/articles/en-shipping-times"', html), html


async def test_a_fax_reply_is_laid_out_not_raw_markdown(
    fax_hub: EmailHub, smtp_peer: SmtpPeer
) -> None:
    await fax_hub.mail(
        _fax_mail(_pdf(_page(["Please call me back."])), "f.pdf", "pdf", "010 6552 9988")
    )
    [conv] = await fax_hub.conversations(channel="fax")
    await fax_hub.reply(conv["id"], "## 发货时间\n\n" + REPLY)
    sent = await smtp_peer.next()
    [pdf_part] = list(sent.message.iter_attachments())
    pdf = pdfium.PdfDocument(pdf_part.get_content())
    try:
        text = "\n".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()
    assert not RAW_MARKDOWN.search(text), text
    assert "onerror" not in text and "javascript" not in text
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    assert "发货时间" in lines  # the heading on a line of its own
    assert "Hello! Express delivery is next day (https://shop.example/express)." in lines
    assert "Standard 3–5 free over 50 €" in lines  # a table row, cells in order
    assert "• Open My account" in lines
    assert sent.rcpt_tos == ["861065529988@fax.example"]
