"""Hostile and broken mail: refused cleanly at SMTP level, or stored with an explanation.
Never a crash of the listener, never a lost mail."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from PIL import Image

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


@pytest.fixture
async def strict_hub(start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path) -> EmailHub:
    """An inbox with a 64 KB size limit and a sender limit of 3 mails, then 1 a minute."""
    options = inbox_options(
        free_port(),
        smtp_peer.port,
        listen={"max_message_bytes": 64 * 1024, "burst": 3, "rate_per_minute": 1},
    )
    hub: EmailHub = await start_email_hub(email_settings(tmp_path, {INBOX: options}))
    return hub


async def test_limits_answer_at_smtp_level(strict_hub: EmailHub) -> None:
    big = customer_mail("x" * 100_000, sender="big@example.com")
    with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
        await strict_hub.mail(big)
    assert too_big.value.code == 552  # refused while the sender is connected: no bounce of ours

    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=strict_hub.listen_port) as smtp:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as unknown:
            await smtp.sendmail("a@example.com", ["nobody@shop.example"], b"Subject: x\r\n\r\nx")
    assert unknown.value.recipients[0].code == 550

    for i in range(3):
        await strict_hub.mail(customer_mail(f"mail {i}", sender="flood@example.com"))
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as flood:
        await strict_hub.mail(customer_mail("one too many", sender="flood@example.com"))
    assert flood.value.code == 450  # temporary: the sending server keeps it and retries later
    await strict_hub.mail(customer_mail("someone else", sender="calm@example.com"))
    convs = await strict_hub.conversations(channel="email")
    # Each mail opened its own thread; the one over the rate was not stored (the relay has it).
    assert sorted(c["contact"]["display_name"] for c in convs) == [
        "calm@example.com",
        *["flood@example.com"] * 3,
    ]


def _png() -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(data, "PNG")
    return data.getvalue()


def _zip_bomb() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bills.txt", b"0" * 50_000_000)  # 50 MB of zeros in ~50 KB
    return data.getvalue()


MALFORMED: dict[str, bytes] = {
    "no headers at all": b"\x00\xff\xfe garbage \x80\x81\r\n\r\n\x00binary",
    "unclosed multipart": (
        b"From: a@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b"Content-Type: text/plain\r\n\r\nthe text survives\r\n--zz\r\nContent-Type: image/png"
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
    ),
    "multipart without boundary": (
        b"From: b@example.com\r\nSubject: no boundary\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed\r\n\r\nsome text\r\n"
    ),
    "bad encoded words": (
        b"From: =?no-such?Q?=FF=FE?= <c@example.com>\r\nSubject: =?utf-8?B?@@@?= hi\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
        b"\r\n\r\nbroken =ZZ escapes =\r\n"
    ),
    "oversized header values": (
        b"From: " + b"N" * 500 + b" <" + b"x" * 300 + b"@example.com>\r\n"
        b"Message-ID: <"
        + b"i" * 400
        + b"@example.com>\r\nIn-Reply-To: <"
        + b"r" * 400
        + b"@example.com>\r\nSubject: "
        + b"\r\n ".join([b"S" * 900] * 6)  # folded: no line over SMTP's 1000
        + b"\r\n\r\nlong headers\r\n"
    ),
    "deep nesting": (
        b"From: d@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        + b"".join(
            f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
            for i in range(40)
        )
        + b"Content-Type: text/plain\r\n\r\ndeep inside\r\n"
    ),
}


async def test_malformed_mail_is_kept_raw_and_explained(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path, database_url: str | None
) -> None:
    # On PostgreSQL too: it refuses NUL characters in text, which broken mail is full of.
    options = inbox_options(free_port(), smtp_peer.port)
    email_hub: EmailHub = await start_email_hub(
        email_settings(tmp_path, {INBOX: options}, database_url=database_url)
    )
    for name, raw in MALFORMED.items():
        reply = await email_hub.mail(raw, sender=f"{name.replace(' ', '-')}@example.com")
        assert reply[1].startswith("2.0.0 Stored"), (name, reply)
    convs = await email_hub.conversations(channel="email")
    assert len(convs) == len(MALFORMED)
    texts = []
    for conv in convs:
        [message] = (await email_hub.detail(conv["id"]))["messages"]
        raw_copy = next(a for a in message["attachments"] if a["filename"] == "message.eml")
        kept = (await email_hub.download(raw_copy["url"])).removesuffix(b"\r\n")
        assert kept in {raw.removesuffix(b"\r\n") for raw in MALFORMED.values()}
        texts.append(message["text"])
    joined = "\n".join(texts)
    assert "the text survives" in joined
    assert "MIME nested deeper than" in joined
    assert "read as text" in joined and "some text" in joined
    assert "long headers" in joined
    # The listener is still up and reads a good mail.
    await email_hub.mail(customer_mail("Still there?", sender="after@example.com"))
    assert len(await email_hub.conversations(channel="email")) == len(MALFORMED) + 1


async def test_disguised_and_dangerous_attachments_are_not_kept(email_hub: EmailHub) -> None:
    mail = customer_mail("Please see the attached invoice.")
    mail.add_attachment(_zip_bomb(), maintype="application", subtype="pdf", filename="invoice.pdf")
    mail.add_attachment(
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        maintype="image",
        subtype="svg+xml",
        filename="logo.svg",
    )
    mail.add_attachment(
        _png(),
        maintype="application",
        subtype="octet-stream",
        filename="photo.png",
    )
    await email_hub.mail(mail)
    [conv] = await email_hub.conversations(channel="email")
    [message] = (await email_hub.detail(conv["id"]))["messages"]
    kept = {a["filename"]: a["content_type"] for a in message["attachments"]}
    assert kept == {"message.eml": "message/rfc822", "photo.png": "image/png"}
    assert (
        "'invoice.pdf' not kept: the file is application/zip (labelled application/pdf)"
        in (message["text"])
    )
    assert "'logo.svg' not kept" in message["text"]


async def test_html_only_mail_is_read_without_its_scripts(email_hub: EmailHub) -> None:
    raw = (
        f"From: h@example.com\r\nTo: {ADDRESS}\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><head><style>p{color:red}</style><script>steal(document.cookie)</script></head>"
        '<body><p>Line one</p><p>Line <b>two</b><img src="http://tracker.example/t.gif"></p>'
        '<a href="javascript:alert(1)">click</a></body></html>\r\n'
    ).encode()
    await email_hub.mail(raw, sender="h@example.com")
    [conv] = await email_hub.conversations(channel="email")
    [message] = (await email_hub.detail(conv["id"]))["messages"]
    assert message["text"] == "html\n\nLine one\nLine two\nclick"
    html = next(a for a in message["attachments"] if a["filename"] == "message.html")
    shown = (await email_hub.download(html["url"])).decode()
    for bad in ("steal", "script", "tracker.example", "javascript:", "color:red"):
        assert bad not in shown
