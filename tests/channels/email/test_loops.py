"""Loop protection: machine-made mail is stored for people, and the bot never answers it."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from hub.api.app import DEMO_FAQ_TASK
from hub.api.keys import STORE
from hub.model import EventKind
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


def _bounce() -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {ADDRESS}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; x@example.com\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n--b1--\r\n"
    ).encode()


async def _bot_hub(start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path) -> EmailHub:
    settings = email_settings(
        tmp_path, {INBOX: inbox_options(free_port(), smtp_peer.port)}, bot_enabled=True
    )
    hub: EmailHub = await start_email_hub(settings)
    await asyncio.shield(hub.app[DEMO_FAQ_TASK])  # the FAQ is in: the bot has answers
    return hub


async def _decisions(hub: EmailHub, conversation_id: int) -> list[dict[str, Any]]:
    events = await hub.app[STORE].read(lambda uow: uow.events(conversation_id))
    return [dict(e.payload) for e in events if e.kind is EventKind.BOT_DECISION]


async def test_the_bot_answers_people_but_not_their_auto_replies(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path
) -> None:
    hub = await _bot_hub(start_email_hub, smtp_peer, tmp_path)
    await hub.mail(
        customer_mail("How do I reset my password?", subject="Password", message_id="q1@ex.com")
    )
    await hub.settle()
    answer = (await smtp_peer.next()).message
    assert answer["Auto-Submitted"] == "auto-replied"  # auto-responders must not answer it
    [conv] = await hub.conversations(channel="email")

    # The customer's out-of-office answers the bot's mail, in the same thread.
    ooo = customer_mail(
        "I am out of the office until Monday.",
        subject=f"Automatic reply: {answer['Subject']}",
        message_id="ooo@ex.com",
        In_Reply_To=answer["Message-ID"],
        Auto_Submitted="auto-replied",
    )
    await hub.mail(ooo)
    await hub.settle()
    assert smtp_peer.inbox.empty()  # no answer to the auto-reply went out
    detail = await hub.detail(conv["id"])
    assert detail["messages"][-1]["text"] == "I am out of the office until Monday."
    last = await _decisions(hub, conv["id"])
    assert last[-1]["decision"] == "ignored" and last[-1]["reason"] == "automated"
    assert last[-1]["key"] == f"message:{detail['messages'][-1]['id']}"

    # The bot still answers the customer's next real question, its state intact.
    await hub.mail(
        customer_mail(
            "And how do I change my email address?",
            subject=f"Re: {answer['Subject']}",
            message_id="q2@ex.com",
            In_Reply_To=answer["Message-ID"],
        )
    )
    await hub.settle()
    assert (await smtp_peer.next()).message["In-Reply-To"] == "<q2@ex.com>"


async def test_machine_made_mail_opens_for_people_and_gets_no_answer(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path
) -> None:
    hub = await _bot_hub(start_email_hub, smtp_peer, tmp_path)
    kinds: dict[str, tuple[EmailMessage | bytes, str | None]] = {
        "auto-submitted": (
            customer_mail("Auto", sender="a@ex.com", Auto_Submitted="auto-generated"),
            None,
        ),
        "precedence": (customer_mail("Newsletter", sender="b@ex.com", Precedence="bulk"), None),
        "suppress": (
            customer_mail("Out of office", sender="c@ex.com", X_Auto_Response_Suppress="All"),
            None,
        ),
        "null return path": (customer_mail("Notice", sender="d@ex.com"), ""),
        "bounce": (_bounce(), ""),
    }
    for mail, envelope_sender in kinds.values():
        await hub.mail(mail, sender=envelope_sender)
    await hub.settle()
    convs = await hub.conversations(channel="email")
    assert len(convs) == len(kinds)
    assert {c["status"] for c in convs} == {"queued"}  # people see them; the bot is not on
    for conv in convs:
        [decision] = await _decisions(hub, conv["id"])
        assert decision["decision"] == "ignored", decision
    assert smtp_peer.inbox.empty()
