"""Chinese mail in the charsets clients really use, labelled right, wrong or not at all."""

from __future__ import annotations

import base64

import pytest

from tests.channels.email.conftest import ADDRESS, EmailHub

BODY = "您好，我的订单还没有到，请帮我查一下。谢谢！"
SUBJECT = "订单查询"
TRADITIONAL = "您好，我的訂單還沒有到，請幫我查一下。謝謝！"


def _raw(
    body: bytes,
    charset: str | None,
    subject_header: str,
    sender: str,
    cte: str = "base64",
) -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    payload = base64.encodebytes(body).decode() if cte == "base64" else body.decode("latin-1")
    head = (
        f"From: {sender}\r\nTo: {ADDRESS}\r\nSubject: {subject_header}\r\n"
        f"Message-ID: <{sender.split('<')[-1].strip('>')}.1@example.cn>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return (head + payload.replace("\n", "\r\n")).encode("latin-1")


def _word(text: str, charset: str, encoding: str = "B") -> str:
    data = text.encode(charset)
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    quoted = "".join(f"={b:02X}" for b in data)
    return f"=?{charset}?Q?{quoted}?="


CASES = [
    # (case, body bytes, declared charset, subject header, expected body, expected subject)
    ("gb2312", BODY.encode("gb2312"), "gb2312", _word(SUBJECT, "gb2312"), BODY, SUBJECT),
    (
        "gbk",
        "镕基 ".encode("gbk") + BODY.encode("gbk"),
        "gbk",
        _word(SUBJECT, "gbk", "Q"),
        "镕基 " + BODY,
        SUBJECT,
    ),
    (
        "gb18030",
        ("𠀀 " + BODY).encode("gb18030"),
        "gb18030",
        _word(SUBJECT, "gb18030"),
        "𠀀 " + BODY,
        SUBJECT,
    ),
    (
        "big5",
        TRADITIONAL.encode("big5"),
        "big5",
        _word("訂單查詢", "big5"),
        TRADITIONAL,
        "訂單查詢",
    ),
    # GBK text labelled gb2312 (Outlook and Foxmail do this): 镕 is not in GB2312.
    (
        "gbk-as-gb2312",
        ("朱镕基 " + BODY).encode("gbk"),
        "gb2312",
        _word("朱镕基的订单", "gbk"),
        "朱镕基 " + BODY,
        "朱镕基的订单",
    ),
    # No charset at all, 8-bit GB18030 body: detected.
    (
        "missing",
        (BODY * 3).encode("gb18030"),
        None,
        "=?utf-8?B?" + base64.b64encode(SUBJECT.encode()).decode() + "?=",
        BODY * 3,
        SUBJECT,
    ),
    # Labelled with a charset that does not exist.
    ("bogus", BODY.encode("utf-8"), "x-no-such-charset", _word(SUBJECT, "utf-8"), BODY, SUBJECT),
]


@pytest.mark.parametrize("case", [c[0] for c in CASES])
async def test_chinese_mail_reads_right(email_hub: EmailHub, case: str) -> None:
    _, body, charset, subject_header, want_body, want_subject = next(
        c for c in CASES if c[0] == case
    )
    sender = f"{case}@example.cn"
    await email_hub.mail(_raw(body, charset, subject_header, sender), sender=sender)
    [conv] = await email_hub.conversations(channel="email")
    [message] = (await email_hub.detail(conv["id"]))["messages"]
    text = message["text"]
    assert text.startswith(f"{want_subject}\n\n{want_body}"), text
    assert "\ufffd" not in text


async def test_encoded_display_name_and_8bit_header(email_hub: EmailHub) -> None:
    # A raw UTF-8 subject (no RFC 2047) and a GB2312-encoded display name.
    raw = (
        f"From: {_word('张三', 'gb2312')} <zhang@example.cn>\r\nTo: {ADDRESS}\r\n"
        "Subject: 退货申请\r\nMessage-ID: <zh-8bit@example.cn>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "我要退货。\r\n"
    ).encode()
    await email_hub.mail(raw, sender="zhang@example.cn")
    [conv] = await email_hub.conversations(channel="email")
    detail = await email_hub.detail(conv["id"])
    assert detail["contact"]["display_name"] == "张三"
    assert detail["messages"][0]["text"] == "退货申请\n\n我要退货。"
    assert detail["conversation"]["language"] == "zh-CN"
