"""What the Telegram channel itself says to customers (not the bot, not agents): English and
Simplified Chinese, picked by the Telegram user's language."""

from __future__ import annotations

from typing import Any

PHRASES: dict[str, dict[str, str]] = {
    "welcome": {
        "en": "Hello! Write your question here and we will answer.",
        "zh-CN": "您好！请在这里写下您的问题，我们会尽快回复。",
    },
    "linked": {
        "en": "Thank you: this chat is now linked to your earlier conversations with us.",
        "zh-CN": "谢谢：此聊天已与您之前和我们的对话关联。",
    },
    "bad_link": {
        "en": "This link has expired or is not valid. Please ask us for a new one.",
        "zh-CN": "此链接已过期或无效，请向我们重新获取。",
    },
    "link_taken": {
        "en": "This Telegram account is already linked to another customer record. "
        "Write your question here and an agent will help you.",
        "zh-CN": "此 Telegram 账号已关联到另一位客户的记录。请在这里写下您的问题，客服会为您处理。",
    },
    "too_large": {
        "en": "Sorry, that file is too large: the limit is {mb} MB. Please send a smaller one.",
        "zh-CN": "抱歉，文件太大：上限为 {mb} MB。请发送较小的文件。",
    },
    "unsupported": {
        "en": "Sorry, we can read text, photos, documents and voice messages only.",
        "zh-CN": "抱歉，我们只能接收文字、图片、文件和语音消息。",
    },
    "choice_gone": {
        "en": "This choice is no longer available.",
        "zh-CN": "该选项已失效。",
    },
}

VOICE_PLACEHOLDER = "[voice message]"  # the text of a voice note nobody could transcribe


def say(key: str, language: str | None, **values: Any) -> str:
    lang = "zh-CN" if language == "zh-CN" else "en"
    return PHRASES[key][lang].format(**values)
