"""Reading a customer message without an NLU model: pattern rules in English and Chinese.

The knowledge base answers the questions; these rules only recognise the few things the bot
must act on itself: a request for a person, a complaint or anger, a configured human-only
topic, a yes/no answer, a rating, a pick from offered choices, and the details it collects.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

# "agent", "talk to a human", "real person", "representative", "operator", ...
_HUMAN_EN = re.compile(
    r"\b(?:(?:human|live|real)\s+(?:agent|person|being|support|help)|agent|human|operator"
    r"|representative|real\s+person|somebody\s+real|someone\s+real"
    r"|(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|the\s+)?"
    r"(?:human|person|agent|someone|somebody|staff|manager|people))\b",
    re.IGNORECASE,
)
_HUMAN_ZH = re.compile(r"人工|真人|客服人员|人工客服|找客服|转客服|接客服|联系客服|活人")

_COMPLAINT_EN = re.compile(
    r"\b(?:complain\w*|complaint|unacceptable|ridiculous|outrageous|disgusting|terrible"
    r"|awful|horrible|furious|angry|worst|scam\w*|fraud|rip[\s-]?off|lawyer|sue|useless"
    r"|fed\s+up|pathetic|incompetent|shame\s+on)\b",
    re.IGNORECASE,
)
_COMPLAINT_ZH = re.compile(
    r"投诉|举报|太差|垃圾|气死|骗子|骗人|生气|愤怒|差评|无语|坑人|欺诈|维权|律师|太过分"
)

_YES = {
    "yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "it did", "yes it did",
    "yes thanks", "yes thank you", "helpful", "that helped", "it helped", "thanks", "thank you",
    "是", "是的", "有", "有帮助", "好的", "解决了", "对", "谢谢", "可以", "嗯",
}  # fmt: skip
_NO = {
    "no", "n", "nope", "nah", "not really", "no it didn't", "no it did not", "it didn't",
    "didn't help", "did not help", "not helpful", "no thanks",
    "否", "不是", "没有", "没用", "没帮助", "没有帮助", "不行", "没解决", "没有解决", "不",
}  # fmt: skip
_EDGE_PUNCT = " \t\r\n.,!?;:~。，！？；：…、\"'“”‘’()（）[]"
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_RATING = re.compile(r"^(?:rating\s*)?([1-5])(?:\s*(?:/\s*5|stars?|分|星|颗星))?$", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]{2,}")
_PHONE = re.compile(r"\+?\d[\d\s().-]{5,}\d")
_ORDER = re.compile(r"\b[A-Za-z]{0,4}[-#]?\d[\w-]{2,29}\b")

MAX_DETAIL_CHARS = 100


def normal(text: str) -> str:
    """Lower case, NFKC, single spaces, edge punctuation off: for matching short replies."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split()).strip(_EDGE_PUNCT)


def has_words(text: str) -> bool:
    """Whether the text has any letter or digit (not only emoji, symbols or punctuation)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def wants_human(text: str) -> bool:
    return bool(_HUMAN_EN.search(text) or _HUMAN_ZH.search(text))


def is_complaint(text: str) -> bool:
    """A complaint or an angry message: complaint words, or shouting."""
    if _COMPLAINT_EN.search(text) or _COMPLAINT_ZH.search(text):
        return True
    letters = [ch for ch in text if ch.isalpha() and ch.isascii()]
    shouting = len(letters) >= 12 and sum(ch.isupper() for ch in letters) / len(letters) > 0.8
    return shouting or "!!!" in text or "！！！" in text


def topic_in(text: str, topics: Sequence[str]) -> str | None:
    """The first configured topic (a word or phrase) the message mentions."""
    folded = normal(text)
    for topic in topics:
        t = normal(topic)
        if not t:
            continue
        if t.isascii():
            if re.search(rf"\b{re.escape(t)}\b", folded):
                return topic
        elif t in folded:  # Chinese has no word boundaries
            return topic
    return None


def handoff_reason(text: str, slots: dict[str, Any]) -> str | None:
    """Why this message must go to a person at once, or None."""
    if wants_human(text):
        return "customer_request"
    if is_complaint(text):
        return "complaint"
    if topic_in(text, slots.get("human_only_topics") or ()):
        return "human_only_topic"
    if slots.get("human_required"):
        return "accessibility"
    return None


def yes_no(text: str) -> bool | None:
    reply = normal(text)
    if reply in _YES:
        return True
    if reply in _NO:
        return False
    return None


def rating(text: str) -> int | None:
    """A 1-5 rating ("4", "4/5", "4 stars", "4分"), or None."""
    match = _RATING.match(normal(text).translate(_FULL_WIDTH_DIGITS))
    return int(match.group(1)) if match else None


def choice(text: str, options: Sequence[dict[str, Any]]) -> int | None:
    """Which offered option the reply picks: its number, title or payload; None otherwise."""
    reply = normal(text).translate(_FULL_WIDTH_DIGITS)
    if reply.isdigit() and 1 <= int(reply) <= len(options):
        return int(reply) - 1
    for i, option in enumerate(options):
        if reply in (normal(str(option.get("title", ""))), normal(str(option.get("payload", "")))):
            return i
    return None


def detail_value(kind: str, text: str) -> str | None:
    """The detail of this kind in the reply, cleaned, or None when it does not look right."""
    text = " ".join(text.split())
    if kind == "email":
        match = _EMAIL.search(text)
        return match.group(0).strip(_EDGE_PUNCT) if match else None
    if kind == "phone":
        match = _PHONE.search(text.translate(_FULL_WIDTH_DIGITS))
        return match.group(0).strip() if match else None
    if kind == "order_number":
        match = _ORDER.search(text.translate(_FULL_WIDTH_DIGITS))
        return match.group(0) if match else None
    value = text.strip(_EDGE_PUNCT)
    if kind == "name":
        return value if has_words(value) and len(value) <= MAX_DETAIL_CHARS else None
    return value[:MAX_DETAIL_CHARS] or None
