"""The mail parser on its own: reply stripping, loop detection, threading headers, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.email.parsing import parse_head, parse_mail, strip_quotes
from channels.email.threading import ThreadTokens, base_subject, reply_subject


def _mail(body: str, **headers: str) -> bytes:
    head = {"From": "Ann <ann@example.com>", "To": "s@shop.example", "Subject": "Hi", **headers}
    lines = [f"{k.replace('_', '-')}: {v}" for k, v in head.items()]
    return (
        "\r\n".join(lines) + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    ).encode()


@pytest.mark.parametrize(
    ("text", "new"),
    [
        (
            "Yes please.\n\nOn Tue, 24 Nov 2026 at 09:00, Shop <s@shop.example> wrote:\n"
            "> Shall we?",
            "Yes please.",
        ),
        (
            "好的，谢谢。\n\n在 2026年11月24日 09:00，客服 <s@shop.example> 写道：\n> 可以吗？",
            "好的，谢谢。",
        ),
        (
            "Top posted.\n\n-----Original Message-----\nFrom: Shop\nSent: today\n\nold",
            "Top posted.",
        ),
        ("收到。\n\n------------------ 原始邮件 ------------------\n发件人: 客服", "收到。"),
        ("Thanks!\n\n-- \nAnn Example\nACME Ltd", "Thanks!"),
        ("> everything quoted\n> nothing new", "> everything quoted\n> nothing new"),
    ],
)
def test_only_the_new_text_is_shown(text: str, new: str) -> None:
    assert strip_quotes(text) == new


@pytest.mark.parametrize(
    ("headers", "envelope", "why"),
    [
        ({"Auto_Submitted": "auto-replied"}, None, "Auto-Submitted: auto-replied"),
        ({"Auto_Submitted": "no"}, None, None),
        ({"Precedence": "list"}, None, "Precedence: list"),
        ({"Precedence": "junk"}, None, "Precedence: junk"),
        ({"List_Id": "<news.shop.example>"}, None, "list-id header"),
        ({"X_Auto_Response_Suppress": "OOF"}, None, "x-auto-response-suppress header"),
        ({"Return_Path": "<>"}, None, "null return path (a bounce or notification)"),
        ({}, "", "null return path (a bounce or notification)"),
        ({"From": "MAILER-DAEMON@mx.example.com"}, None, "sent by mailer-daemon@mx.example.com"),
        ({}, "ann@example.com", None),
    ],
)
def test_machine_made_mail_is_recognised(
    headers: dict[str, str], envelope: str | None, why: str | None
) -> None:
    assert parse_mail(_mail("text", **headers), envelope).auto_generated == why


def test_threading_headers() -> None:
    raw = _mail(
        "x",
        Message_ID="<a@x>",
        In_Reply_To="<b@x>",
        References="<c@x>\r\n <d@x> no-brackets@x <b@x>",
    )
    parsed = parse_mail(raw)
    assert (parsed.message_id, parsed.in_reply_to) == ("a@x", ("b@x",))
    assert parsed.references == ("c@x", "d@x", "b@x")
    head = parse_head(_mail("x", Reply_To="Team <team@example.com>", Message_ID="<a@x>"))
    assert (head.reply_address, head.message_id) == ("team@example.com", "a@x")


def test_subject_tokens_cannot_be_forged(tmp_path: Path) -> None:
    tokens = ThreadTokens.from_data_dir(tmp_path)
    again = ThreadTokens.from_data_dir(tmp_path)  # the key is kept: the same after a restart
    token = tokens.token(42)
    assert again.token(42) == token
    assert tokens.conversation_in(f"Re: AW: Your order {token}") == 42
    assert (
        tokens.conversation_in(token.replace(token[-3], "a" if token[-3] != "a" else "b")) is None
    )
    assert tokens.conversation_in("[#42-aaaaaaaaaa]") is None
    assert ThreadTokens(b"another key").conversation_in(token) is None
    assert base_subject(f"RE: 回复: Fwd: Order 7 {token}") == "Order 7"
    assert reply_subject(f"Re: Order 7 {token}", token) == f"Re: Order 7 {token}"
