"""The JSON a stored message travels as (events, the bus, the API) matches its pydantic schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub import formatting, wire
from hub.model import (
    Attachment,
    AuthorKind,
    Choice,
    DeliveryState,
    Direction,
    Message,
    MessageFormat,
)

ATTACHMENT = Attachment("photo of the receipt.jpg", "image/jpeg", 48_213, "ab/cd/ef01")


@pytest.mark.parametrize(
    "message",
    [
        Message(
            1,
            2,
            Direction.INBOUND,
            AuthorKind.CUSTOMER,
            "我的订单在哪里？",
            "webchat",
            channel_message_id="s:1",
            delivery_state=DeliveryState.DELIVERED,
            created_at=datetime(2026, 12, 6, 21, 45, 1, 975_733, tzinfo=UTC),
        ),
        Message(
            3,
            2,
            Direction.OUTBOUND,
            AuthorKind.AGENT,
            "",
            "email",
            author_id=7,
            author_name="Dana",
            attachments=(ATTACHMENT, ATTACHMENT),
            created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds
        ),
        Message(
            4,
            5,
            Direction.OUTBOUND,
            AuthorKind.BOT,
            "Which one?",
            "telegram",
            choices=(Choice("Refund", "/refund"), Choice("Track", "/track")),
            delivery_state=DeliveryState.FAILED,
            delivery_error="Telegram refused the message: Bad Request: chat not found",
            created_at=datetime(2026, 6, 1, 12, 0, 0, 120_000, tzinfo=timezone(timedelta(hours=2))),
            format=MessageFormat.MARKDOWN,
        ),
    ],
)
def test_message_json_is_what_pydantic_makes_of_the_schema(message: Message) -> None:
    by_pydantic = wire.dump(
        wire.MessageOut(
            id=message.id,
            conversation_id=message.conversation_id,
            direction=message.direction.value,
            author=message.author_kind.value,
            author_id=message.author_id,
            author_name=message.author_name,
            text=message.text,
            attachments=[wire.attachment_out(a) for a in message.attachments],
            channel=message.channel,
            delivery_state=message.delivery_state.value,
            created_at=message.created_at,
            choices=[wire.ChoiceOut(title=c.title, payload=c.payload) for c in message.choices],
            html=formatting.message_html(message.text, message.format),
            delivery_error=message.delivery_error,
        )
    )
    assert wire.message_json(message) == by_pydantic
    assert wire.dump(wire.message_out(message)) == by_pydantic


def test_markdown_messages_carry_html_and_plain_ones_none() -> None:
    def message(text: str, author: AuthorKind, format: MessageFormat) -> Message:
        direction = Direction.INBOUND if author is AuthorKind.CUSTOMER else Direction.OUTBOUND
        return Message(1, 2, direction, author, text, "webchat", format=format)

    text = (
        "**Forgot password?** See [the guide](https://acme.example/reset) "
        "<img src=x onerror=alert(1)>"
    )
    bot = wire.message_json(message(text, AuthorKind.BOT, MessageFormat.MARKDOWN))
    assert bot["text"] == text
    assert bot["html"] == (
        "<p><strong>Forgot password?</strong> See "
        '<a href="https://acme.example/reset" target="_blank" rel="noopener noreferrer nofollow">'
        "the guide</a> </p>"
    )
    customer = wire.message_json(message(text, AuthorKind.CUSTOMER, MessageFormat.PLAIN))
    assert customer["html"] is None and customer["text"] == text
