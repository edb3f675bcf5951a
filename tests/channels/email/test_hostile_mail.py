"""Mail that real clients and relays send which the hub used to read wrong: a raw 8-bit GBK
subject, a part whose base64 is broken, and the same mail without a Message-ID relayed twice
(one more `Received:` header). Sent with Python's smtplib to the real SMTP listener."""

from __future__ import annotations

import asyncio
import base64
import smtplib

import pytest

from tests.channels.email.conftest import ADDRESS, EmailHub

SENDER = "wang@example.cn"


async def smtp_send(hub: EmailHub, raw: bytes, sender: str = SENDER) -> None:
    """The raw bytes through smtplib (blocking, so on a thread: the listener shares our loop)."""

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", hub.listen_port, timeout=30) as smtp:
            smtp.sendmail(sender, [ADDRESS], raw)

    await asyncio.to_thread(send)


async def only_messages(hub: EmailHub) -> list[dict[str, object]]:
    [conv] = await hub.conversations(channel="email")
    return list((await hub.detail(conv["id"]))["messages"])


PLAIN_GBK = (
    b"Content-Type: text/plain; charset=gbk\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "我登录不了，怎么重置密码？\r\n".encode("gbk")
)
MULTIPART_GB2312 = (
    b'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain; charset=GB2312\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes("我登录不了，怎么重置密码？".encode("gb2312")).replace(b"\n", b"\r\n")
    + b"--b1--\r\n"
)


@pytest.mark.parametrize("body", [PLAIN_GBK, MULTIPART_GB2312], ids=["plain", "multipart"])
async def test_a_raw_8bit_gbk_subject_is_read_with_the_bodys_charset(
    email_hub: EmailHub, body: bytes
) -> None:
    # Foxmail and older Outlook send the subject as raw GBK bytes, no RFC 2047 encoded word;
    # the body (or its first text part) says which charset the mail is in.
    raw = (
        f"From: {SENDER}\r\nTo: {ADDRESS}\r\n".encode()
        + "Subject: 忘记密码\r\n".encode("gbk")
        + b"Message-ID: <gbk-subject@example.cn>\r\nMIME-Version: 1.0\r\n"
        + body
    )
    await smtp_send(email_hub, raw)
    [message] = await only_messages(email_hub)
    assert message["text"] == "忘记密码\n\n我登录不了，怎么重置密码？"


async def test_a_part_with_broken_base64_is_not_read_as_text(email_hub: EmailHub) -> None:
    good = base64.encodebytes(b"My order 1234 has not arrived.").decode()
    stray = "VGhpcyBpcyBub3QgdmFsaWQ=Zm9v!!@@\r\nQUJD\r\n"  # characters that are not base64
    cut = "SGVsbG8gd29ybGQgaGVsbG8gd29ybGQxA"  # cut off: Python hands back the raw base64
    raw = (
        f"From: {SENDER}\r\nTo: {ADDRESS}\r\nSubject: Order\r\n"
        "Message-ID: <broken-b64@example.cn>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b2"\r\n\r\n'
        "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{good}\r\n"
        "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{stray}\r\n"
        "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{cut}\r\n"
        '--b2\r\nContent-Type: application/pdf; name="invoice.pdf"\r\n'
        'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{cut}\r\n"
        "--b2--\r\n"
    ).encode()
    await smtp_send(email_hub, raw)
    [message] = await only_messages(email_hub)
    text = str(message["text"])
    assert text.startswith("Order\n\nMy order 1234 has not arrived.")
    # Neither raw base64 nor half-decoded text for the bot to read...
    assert "SGVsbG8" not in text and "This is not valid" not in text, text
    # ...the agent is told, and the original with the broken parts is kept.
    assert text.count("broken base64") == 3, text
    names = [a["filename"] for a in message["attachments"]]  # type: ignore[index,union-attr]
    assert names == ["message.eml"]


async def test_mail_without_message_id_relayed_twice_is_stored_once(email_hub: EmailHub) -> None:
    mail = (
        f"From: Wang <{SENDER}>\r\nTo: {ADDRESS}\r\nSubject: Invoice\r\n"
        "Date: Mon, 07 Dec 2026 10:00:00 +0800\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease send the invoice.\r\n"
    ).encode()
    await smtp_send(email_hub, b"Received: from a.example by b.example; Mon, 7 Dec 2026\r\n" + mail)
    await smtp_send(
        email_hub,
        b"Received: from b.example by c.example; Mon, 7 Dec 2026\r\n"
        b"Received: from a.example by b.example; Mon, 7 Dec 2026\r\n" + mail,
    )
    assert len(await only_messages(email_hub)) == 1
    # A different mail from the same sender without a Message-ID is a new message.
    await smtp_send(email_hub, mail.replace(b"the invoice", b"the receipt"))
    convs = await email_hub.conversations(channel="email")
    assert sum([len((await email_hub.detail(c["id"]))["messages"]) for c in convs]) == 2
