"""Mail in through our SMTP listener, replies out to a real SMTP server, threaded."""

from __future__ import annotations

import asyncio
import smtplib
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from tests.channels.email.conftest import (
    ADDRESS,
    INBOX,
    EmailHub,
    SmtpPeer,
    customer_mail,
    email_settings,
    inbox_options,
)
from tests.support import free_port


def _only(convs: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(convs) == 1, convs
    return convs[0]


async def test_a_mail_becomes_a_conversation_with_its_sender_as_contact(
    email_hub: EmailHub,
) -> None:
    mail = customer_mail(
        "Hi, my order 1234 has not arrived.\n\nAlice\n-- \nAlice Customer\nExample Ltd\n\n"
        "On Mon, 23 Nov 2026 at 10:00, Shop <support@shop.example> wrote:\n"
        "> Thanks for your order!\n> It ships tomorrow.\n",
        message_id="first@example.com",
    )
    mail.add_alternative(
        "<p>Hi, my order 1234 has not arrived.</p><script>alert('x')</script>"
        '<img src="https://tracker.example/pixel.png"><p onclick="steal()">Alice</p>',
        subtype="html",
    )
    mail.add_attachment(
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        maintype="application",
        subtype="pdf",
        filename="receipt.pdf",
    )
    # A real SMTP client from the standard library, as a relaying mail server would be.
    raw = mail.as_bytes(policy=policy.SMTP)  # CRLF line ends, as on the wire
    await asyncio.to_thread(_smtplib_send, email_hub.listen_port, raw)

    conv = _only(await email_hub.conversations(channel="email"))
    assert conv["inbox"] == INBOX and conv["status"] == "queued"
    detail = await email_hub.detail(conv["id"])
    assert detail["contact"]["display_name"] == "Alice Customer"
    assert detail["contact"]["identities"] == [{"channel": "email", "address": "alice@example.com"}]
    [message] = detail["messages"]
    text = message["text"]
    # The subject opens a new thread's text; quote and signature are stripped for display.
    assert text.startswith("Where is my order?\n\nHi, my order 1234 has not arrived.")
    assert "Thanks for your order" not in text and "Example Ltd" not in text
    files = {a["filename"]: a for a in message["attachments"]}
    assert set(files) == {"message.eml", "message.html", "receipt.pdf"}
    # The whole original is kept, byte for byte the mail that was sent.
    original = await email_hub.download(files["message.eml"]["url"])
    kept = BytesParser(policy=policy.default).parsebytes(original)
    assert kept["Message-ID"] == "<first@example.com>"
    assert "Thanks for your order" in kept.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = (await email_hub.download(files["message.html"]["url"])).decode()
    assert "has not arrived" in html
    for bad in ("<script", "alert(", "tracker.example", "onclick", "steal()"):
        assert bad not in html
    assert files["receipt.pdf"]["content_type"] == "application/pdf"


def _smtplib_send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail("alice@example.com", [ADDRESS], raw)


async def test_five_message_exchange_stays_in_one_thread(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path, database_url: str | None
) -> None:
    options = inbox_options(free_port(), smtp_peer.port)
    hub: EmailHub = await start_email_hub(
        email_settings(tmp_path, {INBOX: options}, database_url=database_url)
    )
    # 1. the customer writes
    await hub.mail(customer_mail("My parcel is late.", message_id="c1@example.com"))
    conv_id = _only(await hub.conversations(channel="email"))["id"]

    # 2. the agent answers: a threaded reply from the inbox's address
    await hub.reply(conv_id, "Sorry! Which order number?")
    first = (await smtp_peer.next()).message
    assert first["From"].addresses[0].addr_spec == ADDRESS
    assert first["To"] == "alice@example.com"
    assert first["In-Reply-To"] == "<c1@example.com>"
    assert first["References"] == "<c1@example.com>"
    assert first["Subject"].startswith("Re: Where is my order? [#")
    assert first.get_body(("plain",)).get_content().strip() == "Sorry! Which order number?"  # type: ignore[union-attr]
    assert "Which order number?" in first.get_body(("html",)).get_content()  # type: ignore[union-attr]
    token = first["Subject"][first["Subject"].index("[#") :]

    # 3. the customer answers the reply (In-Reply-To our Message-ID)
    ours = first["Message-ID"].strip("<>")
    await hub.mail(
        customer_mail(
            "It is 1234.\n\n> Sorry! Which order number?",
            subject=f"Re: {first['Subject']}",
            message_id="c2@example.com",
            In_Reply_To=f"<{ours}>",
            References=f"<c1@example.com> <{ours}>",
        )
    )
    # 4. the agent answers again: threads on the customer's latest mail
    await hub.reply(conv_id, "Found it, it ships today.")
    second = (await smtp_peer.next()).message
    assert second["In-Reply-To"] == "<c2@example.com>"
    assert second["References"].split() == ["<c1@example.com>", f"<{ours}>", "<c2@example.com>"]

    # 5. a client that dropped the threading headers: the subject token still finds it
    await hub.mail(
        customer_mail("Thank you!", subject=f"RE: AW: {token}", message_id="c3@example.com")
    )
    detail = await hub.detail(conv_id)
    assert [(m["author"], m["text"]) for m in detail["messages"]] == [
        ("customer", "Where is my order?\n\nMy parcel is late."),
        ("agent", "Sorry! Which order number?"),
        ("customer", "It is 1234."),
        ("agent", "Found it, it ships today."),
        ("customer", "Thank you!"),
    ]
    assert all(m["delivery_state"] in ("sent", "delivered") for m in detail["messages"])
    assert len(await hub.conversations(channel="email")) == 1

    # A new subject without references is a new thread; a forged token does not get in.
    conv_token = token.strip("[]#").split("-")[0]
    await hub.mail(customer_mail("Another question", subject=f"Hello [#{conv_token}-aaaaaaaaaa]"))
    convs = await hub.conversations(channel="email")
    assert len(convs) == 2
    assert {c["contact"]["id"] for c in convs} == {detail["contact"]["id"]}


async def test_a_resent_mail_is_stored_once(email_hub: EmailHub) -> None:
    mail = customer_mail("Hello?", message_id="same@example.com")
    await email_hub.mail(mail)
    await email_hub.mail(mail)  # a relay that lost our 250 and sends again
    conv = _only(await email_hub.conversations(channel="email"))
    assert len((await email_hub.detail(conv["id"]))["messages"]) == 1
