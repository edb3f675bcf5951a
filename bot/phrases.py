"""What the bot says, in English and Simplified Chinese, and how it picks the language.

The language is the customer's: Chinese when the message has Chinese characters, English when
it has Latin letters and no Chinese, otherwise the conversation's (or contact's) language.
"""

from __future__ import annotations

import re

LANGUAGES = ("en", "zh")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")

_EN: dict[str, str] = {
    "greeting": "Hi! I'm the virtual assistant.",
    "answer_intro": "Here is what I found:",
    "article_ref": "Article: {title}",
    "read_more": "Read it in full",  # the label of a Markdown link
    "did_it_help": "Did this answer your question?",
    "yes": "Yes",
    "no": "No",
    "glad": "Glad I could help! Is there anything else?",
    "sorry_not_helpful": (
        "Sorry that didn't help. Could you put the question another way? "
        'Or type "agent" to talk to a person.'
    ),
    "clarify": "I found a few articles that might fit. Which one do you mean?",
    "none_of_these": "None of these",
    "no_answer": (
        "Sorry, I couldn't find an answer to that. Could you rephrase it? "
        'Or type "agent" to talk to a person.'
    ),
    "no_words": "Could you tell me your question in words?",
    "too_long": "That's a long message; I looked at its beginning.",
    "collect_intro": "Before I connect you with a colleague, I need a few details.",
    "ask_name": "What is your name?",
    "ask_email": "What is your e-mail address?",
    "ask_phone": "What phone number can we reach you on?",
    "ask_order_number": "What is your order number?",
    "bad_email": "That doesn't look like an e-mail address. Could you check it?",
    "bad_phone": "That doesn't look like a phone number. Could you check it?",
    "bad_order_number": "That doesn't look like an order number. Could you check it?",
    "bad_name": "Could you tell me your name?",
    "handoff": (
        "I'm passing you to a colleague now; they will see everything you've told me. "
        "Please stay in this chat."
    ),
    "handoff_complaint": (
        "I'm sorry about this. I'm passing you to a colleague now, who will look into it "
        "personally; they will see everything you've told me."
    ),
    "after_hours": (
        "We're closed at the moment{hours}. You can leave a message and we'll answer when "
        "we open, or ask us to call you back."
    ),
    "hours_suffix": " (opening hours: {hours})",
    "leave_message": "Leave a message",
    "callback": "Call me back",
    "write_message": "Please write your message; a colleague will answer when we open.",
    "message_taken": "Thank you, we have your message and will answer when we open.",
    "callback_taken": "Thank you, we will call you back on {phone} when we open.",
    "overflow_message": (
        "All our agents are busy at the moment. Please write your message here and we will "
        "answer as soon as we can."
    ),
    "overflow_callback": (
        "All our agents are busy at the moment. We will call you back on {phone} as soon as we can."
    ),
    "overflow_ask_phone": (
        "All our agents are busy at the moment. Please write the phone number we can call "
        "you back on, and we will call you as soon as we can."
    ),
    "ask_csat": "How would you rate the help you got, from 1 (poor) to 5 (excellent)?",
    "csat_thanks": "Thank you for your rating!",
}

_ZH: dict[str, str] = {
    "greeting": "您好！我是智能助理。",
    "answer_intro": "我找到了以下内容：",
    "article_ref": "参考文章：{title}",
    "read_more": "查看全文",
    "did_it_help": "这个回答解决您的问题了吗？",
    "yes": "是",
    "no": "否",
    "glad": "很高兴能帮到您！还有其他问题吗？",
    "sorry_not_helpful": "抱歉没能帮到您。您可以换个说法再问一次，或输入“转人工”联系客服人员。",
    "clarify": "我找到了几篇可能相关的文章，您指的是哪一篇？",
    "none_of_these": "都不是",
    "no_answer": "抱歉，我没有找到答案。您可以换个说法再问一次，或输入“转人工”联系客服人员。",
    "no_words": "请用文字描述一下您的问题。",
    "too_long": "您的消息比较长，我先看了开头部分。",
    "collect_intro": "在为您转接客服人员之前，需要先了解几项信息。",
    "ask_name": "请问您怎么称呼？",
    "ask_email": "请问您的电子邮箱地址是？",
    "ask_phone": "请问我们可以拨打哪个电话号码联系您？",
    "ask_order_number": "请问您的订单号是？",
    "bad_email": "这个电子邮箱地址好像不正确，请再核对一下。",
    "bad_phone": "这个电话号码好像不正确，请再核对一下。",
    "bad_order_number": "这个订单号好像不正确，请再核对一下。",
    "bad_name": "请问您怎么称呼？",
    "handoff": "正在为您转接人工客服，客服人员会看到您之前提供的所有信息，请稍候。",
    "handoff_complaint": (
        "非常抱歉给您带来不便。正在为您转接客服人员专门处理，对方会看到您之前提供的所有信息。"
    ),
    "after_hours": (
        "我们现在不在服务时间{hours}。您可以留言，我们上班后会尽快回复；也可以预约回电。"
    ),
    "hours_suffix": "（服务时间：{hours}）",
    "leave_message": "留言",
    "callback": "预约回电",
    "write_message": "请留下您的消息，客服人员上班后会回复您。",
    "message_taken": "谢谢，我们已收到您的留言，上班后会尽快回复。",
    "callback_taken": "谢谢，我们上班后会拨打 {phone} 给您回电。",
    "overflow_message": "目前所有客服人员都在忙。请在这里留下您的消息，我们会尽快回复您。",
    "overflow_callback": "目前所有客服人员都在忙。我们会尽快拨打 {phone} 给您回电。",
    "overflow_ask_phone": "目前所有客服人员都在忙。请留下可以回电的电话号码，我们会尽快给您回电。",
    "ask_csat": "请为本次服务打分：1（很差）到 5（很好）。",
    "csat_thanks": "感谢您的评价！",
}

CATALOGUE: dict[str, dict[str, str]] = {"en": _EN, "zh": _ZH}


def language_of(code: str | None) -> str | None:
    """The bot language ("en" or "zh") of a tag such as "zh-CN"; None when neither."""
    if not code:
        return None
    primary = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return primary if primary in LANGUAGES else None


def detect(text: str, fallback: str | None) -> str:
    """The language to answer `text` in (see the module docstring)."""
    if _HAN.search(text):
        return "zh"
    if _LATIN.search(text):
        return "en"
    return language_of(fallback) or "en"


def say(lang: str, key: str, **values: str) -> str:
    """The phrase `key` in `lang` (English when the language is not known)."""
    template = CATALOGUE.get(lang, _EN)[key]
    return template.format(**values) if values else template


def say_in(tag: str | None, key: str, **values: str) -> str:
    """The phrase `key` in the language of a tag such as "zh-CN" (English when neither)."""
    return say(language_of(tag) or "en", key, **values)
