"""Telegram updates as the Bot API sends them (JSON shapes of core.telegram.org/bots/api)."""

from __future__ import annotations

import itertools
import time
from typing import Any

_message_ids = itertools.count(1)

ANNA = {
    "id": 7001,
    "is_bot": False,
    "first_name": "Anna",
    "last_name": "Kim",
    "username": "annakim",
    "language_code": "ko",
}
LI = {
    "id": 7002,
    "is_bot": False,
    "first_name": "李",
    "last_name": "雷",
    "language_code": "zh-hans",
}
NOBODY = {"id": 7003, "is_bot": False, "first_name": "", "username": "ghost42"}


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat = {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
    if user.get("username"):
        chat["username"] = user["username"]
    return chat


GROUP = {"id": -100200300, "type": "supergroup", "title": "Customers"}


def message(
    user: dict[str, Any],
    chat: dict[str, Any] | None = None,
    message_id: int | None = None,
    **content: Any,
) -> dict[str, Any]:
    return {
        "message": {
            "message_id": message_id if message_id is not None else next(_message_ids),
            "date": int(time.time()),
            "chat": chat or private_chat(user),
            "from": user,
            **content,
        }
    }


def text(user: dict[str, Any], body: str, **kw: Any) -> dict[str, Any]:
    return message(user, text=body, **kw)


def command(user: dict[str, Any], body: str) -> dict[str, Any]:
    """A bot command such as "/start TOKEN" (with its entity, as Telegram marks it)."""
    length = len(body.split(" ", 1)[0])
    return message(
        user, text=body, entities=[{"type": "bot_command", "offset": 0, "length": length}]
    )


def voice(user: dict[str, Any], file_id: str, size: int, seconds: int = 2) -> dict[str, Any]:
    return message(
        user,
        voice={
            "file_id": file_id,
            "file_unique_id": "u" + file_id,
            "duration": seconds,
            "mime_type": "audio/ogg",
            "file_size": size,
        },
    )


def document(
    user: dict[str, Any], file_id: str, size: int, name: str, mime: str, caption: str | None = None
) -> dict[str, Any]:
    extra = {"caption": caption} if caption else {}
    return message(
        user,
        document={
            "file_id": file_id,
            "file_unique_id": "u" + file_id,
            "file_name": name,
            "mime_type": mime,
            "file_size": size,
        },
        **extra,
    )


def photo(
    user: dict[str, Any], file_id: str, size: int, caption: str | None = None
) -> dict[str, Any]:
    small = {
        "file_id": "thumb-" + file_id,
        "file_unique_id": "ut" + file_id,
        "width": 90,
        "height": 90,
        "file_size": 100,
    }
    big = {
        "file_id": file_id,
        "file_unique_id": "u" + file_id,
        "width": 800,
        "height": 600,
        "file_size": size,
    }
    extra = {"caption": caption} if caption else {}
    return message(user, photo=[small, big], **extra)


def callback(
    user: dict[str, Any], data: str, sent: dict[str, Any], query_id: str
) -> dict[str, Any]:
    """The user pressed an inline button under `sent` (a message the bot sent)."""
    return {
        "callback_query": {
            "id": query_id,
            "from": user,
            "chat_instance": "ci-" + str(user["id"]),
            "data": data,
            "message": {
                "message_id": sent["message_id"],
                "date": sent["date"],
                "chat": private_chat(user),
                "from": sent["from"],
                "text": sent.get("text", ""),
            },
        }
    }
