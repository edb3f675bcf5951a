"""Fax-to-email: a fax page made here (text drawn with Pillow) comes in through the gateway
route, is read by Tesseract, and the agent's reply reaches the gateway as a PDF."""

from __future__ import annotations

import io
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont

from hub.api.keys import STORE
from hub.model import EventKind
from tests.channels.email.conftest import (
    ADDRESS,
    INBOX,
    EmailHub,
    SmtpPeer,
    email_settings,
    inbox_options,
)
from tests.support import free_port

FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
GATEWAY = "fax-gateway@faxprovider.example"
ENGLISH = (
    "Dear support team, please send a replacement printer cartridge for order 58213. "
    "The delivery address is unchanged and the invoice should go to accounting. "
    "Thank you for your quick help with this request."
)
CHINESE = "您好，我们的打印机墨盒用完了，请尽快寄送新的墨盒。谢谢！"


def _page(lines: list[str]) -> Image.Image:
    """A fax page at 200 dpi (A4 is 1654x2339 pixels) with the lines typed on it."""
    page = Image.new("L", (1654, 2339), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 44, index=2)
    y = 160
    for line in lines:
        draw.text((140, y), line, font=font, fill=0)
        y += 80
    return page


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def _tiff(pages: list[Image.Image]) -> bytes:
    data = io.BytesIO()
    pages[0].save(data, "TIFF", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    return data.getvalue()


def _pdf(page: Image.Image) -> bytes:
    data = io.BytesIO()
    page.save(data, "PDF", resolution=200)
    return data.getvalue()


def _fax_mail(document: bytes, filename: str, subtype: str, number: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Fax Gateway <{GATEWAY}>"
    msg["To"] = ADDRESS
    msg["Subject"] = f"Fax from {number} (1 document)"
    msg["Message-ID"] = f"<fax-{abs(hash(filename))}@faxprovider.example>"
    msg.set_content("You have received a fax. The document is attached.")
    maintype = "image" if subtype == "tiff" else "application"
    msg.add_attachment(document, maintype=maintype, subtype=subtype, filename=filename)
    return msg


@pytest.fixture
async def fax_hub(start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path) -> EmailHub:
    fax = {
        "gateways": [re.escape(GATEWAY)],
        "subject": r"^Fax from",
        "number_from": "subject",
        "region": "CN",
        "send_to": "{number}@fax.example",
    }
    options = inbox_options(free_port(), smtp_peer.port, fax=fax)
    hub: EmailHub = await start_email_hub(email_settings(tmp_path, {INBOX: options}))
    return hub


def _recall(expected: list[str], text: str) -> float:
    found = text.lower()
    return sum(1 for item in expected if item.lower() in found) / len(expected)


async def test_a_faxed_tiff_is_read_and_the_reply_goes_back_as_pdf(
    fax_hub: EmailHub, smtp_peer: SmtpPeer
) -> None:
    pages = [_page(_wrap(ENGLISH, 55)), _page([CHINESE[:16], CHINESE[16:]])]
    await fax_hub.mail(_fax_mail(_tiff(pages), "fax.tif", "tiff", "+86 10 6552 9988"))

    [conv] = await fax_hub.conversations(channel="fax")
    detail = await fax_hub.detail(conv["id"])
    assert detail["contact"]["identities"] == [{"channel": "fax", "address": "+861065529988"}]
    [message] = detail["messages"]
    text = message["text"]
    words = re.findall(r"[A-Za-z0-9]+", ENGLISH)
    assert _recall(words, text) >= 0.9, text
    chars = [ch for ch in CHINESE if "\u4e00" <= ch <= "\u9fff"]
    assert _recall(chars, text) >= 0.9, text
    names = [a["filename"] for a in message["attachments"]]
    assert names == ["message.eml", "fax.tif", "page-1.png", "page-2.png"]
    page = next(a for a in message["attachments"] if a["filename"] == "page-1.png")
    with Image.open(io.BytesIO(await fax_hub.download(page["url"]))) as shown:
        assert shown.size == (1654, 2339)  # the page as faxed, viewable by the agent

    reply = "您好，墨盒今天寄出。 The cartridge ships today."
    await fax_hub.reply(conv["id"], reply)
    sent = await smtp_peer.next()
    assert sent.rcpt_tos == ["861065529988@fax.example"]
    [pdf_part] = list(sent.message.iter_attachments())
    assert pdf_part.get_content_type() == "application/pdf"
    pdf = pdfium.PdfDocument(pdf_part.get_content())
    try:
        assert reply in pdf[0].get_textpage().get_text_range().replace("\r\n", " ")
    finally:
        pdf.close()


async def test_a_faxed_pdf_is_read(fax_hub: EmailHub) -> None:
    lines = _wrap(ENGLISH, 55)
    await fax_hub.mail(_fax_mail(_pdf(_page(lines)), "fax.pdf", "pdf", "010 6552 9988"))
    [conv] = await fax_hub.conversations(channel="fax")
    [message] = (await fax_hub.detail(conv["id"]))["messages"]
    assert _recall(re.findall(r"[A-Za-z0-9]+", ENGLISH), message["text"]) >= 0.9
    assert [a["filename"] for a in message["attachments"]][-1] == "page-1.png"


async def test_a_broken_fax_is_stored_with_an_explanation(fax_hub: EmailHub) -> None:
    not_a_pdf = b"%PDF-1.7\n" + b"\x00garbage" * 500  # says PDF, is not one
    await fax_hub.mail(_fax_mail(not_a_pdf, "fax.pdf", "pdf", "+86 10 6552 9988"))
    mail = _fax_mail(b"II*\x00" + b"\x00" * 64, "scan.tif", "tiff", "no number here")
    mail.replace_header("Message-ID", "<broken-tiff@faxprovider.example>")
    await fax_hub.mail(mail)
    convs = await fax_hub.conversations(channel="fax")
    texts = {}
    for conv in convs:
        detail = await fax_hub.detail(conv["id"])
        identity = detail["contact"]["identities"][0]["address"]
        texts[identity] = [m["text"] for m in detail["messages"]]
    assert "fax.pdf could not be read" in texts["+861065529988"][0]
    [unknown] = next(t for i, t in texts.items() if i.startswith("unknown:"))
    assert "scan.tif could not be read" in unknown
    assert "the caller's number could not be read from the subject" in unknown
    # The mail that a gateway did not send stays an email.
    ordinary = _fax_mail(b"%PDF-1.4", "a.pdf", "pdf", "+86 10 1234 5678")
    ordinary.replace_header("From", "someone@example.com")
    ordinary.replace_header("Message-ID", "<not-a-fax@example.com>")
    await fax_hub.mail(ordinary)
    assert len(await fax_hub.conversations(channel="email")) == 1


async def test_a_gateway_notice_is_not_for_the_bot(fax_hub: EmailHub) -> None:
    notice = EmailMessage()
    notice["From"] = GATEWAY
    notice["To"] = ADDRESS
    notice["Subject"] = "Fax from +86 10 6552 9988: delivered"
    notice["Message-ID"] = "<notice-1@faxprovider.example>"
    notice.set_content("Your fax to +86 10 6552 9988 was delivered (1 page).")
    await fax_hub.mail(notice)
    [conv] = await fax_hub.conversations(channel="fax")
    assert conv["status"] == "queued"  # for people, never the bot: no fax ping-pong
    events = await fax_hub.app[STORE].read(lambda uow: uow.events(conv["id"]))
    [decision] = [e.payload for e in events if e.kind is EventKind.BOT_DECISION]
    assert decision["decision"] == "ignored"
    assert decision["detail"] == "a fax gateway's notice without a fax"


async def test_faxes_without_a_readable_number_stay_apart_and_replies_reach_the_gateway(
    fax_hub: EmailHub, smtp_peer: SmtpPeer
) -> None:
    page = _pdf(_page(["Please call me back about order 58213."]))
    for n in (1, 2):
        mail = _fax_mail(page, "fax.pdf", "pdf", "a withheld number")
        mail.replace_header("Message-ID", f"<withheld-{n}@faxprovider.example>")
        await fax_hub.mail(mail)
    convs = await fax_hub.conversations(channel="fax")
    assert len(convs) == 2  # two senders we cannot tell apart are not merged into one
    contacts = [(await fax_hub.detail(c["id"]))["contact"] for c in convs]
    identities = [c["identities"][0]["address"] for c in contacts]
    assert len(set(identities)) == 2 and all(i.startswith("unknown:") for i in identities)
    names = [c["display_name"] for c in contacts]
    assert len(set(names)) == 2 and all(n.startswith("Unknown fax sender ") for n in names)

    # The reply goes back through the gateway address the fax came from, as a PDF.
    await fax_hub.reply(convs[0]["id"], "We will call you back today.")
    sent = await smtp_peer.next()
    assert sent.rcpt_tos == [GATEWAY]
    [pdf_part] = list(sent.message.iter_attachments())
    assert pdf_part.get_content_type() == "application/pdf"
    await fax_hub.settle()
    [reply] = [
        m for m in (await fax_hub.detail(convs[0]["id"]))["messages"] if m["author"] != "customer"
    ]
    assert reply["delivery_state"] == "sent"
