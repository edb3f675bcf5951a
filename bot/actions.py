"""The bot's rasa-sdk actions: answer from the knowledge base, clarify, feedback, hand-off,
collect details, CSAT.

Each action reads the conversation from the `Tracker` (its latest message and slots), speaks
through the `CollectingDispatcher` and returns Rasa events; the knowledge base is reached
through the `BotKnowledge` port and nothing else. Whoever runs the action (the hub's runner,
or an external Rasa through the hub's /webhook) applies the events: `SlotSet` carries the
bot's state and its explained decision, `ConversationPaused` hands the conversation to people
(Rasa's own human-handoff event), `FollowupAction` chains the next action.

The slots are listed in `SLOTS`; the context ones (channel, language, opening hours, what to
collect) are filled by the runner from the conversation and the inbox configuration and may
be missing when an external assistant calls: every action has a default for each.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from rasa_sdk import Action, ActionExecutionRejection, Tracker
from rasa_sdk.events import ConversationPaused, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot import phrases, understanding
from bot.phrases import say
from bot.policy import Decision, DecisionPolicy, decide
from bot.query import search_text
from hub.channel_names import FULL_CHANNELS, SPOKEN_CHANNELS
from hub.ports import BotKnowledge, KbArticle, KbHit

log = logging.getLogger(__name__)

ANSWER = "action_answer_from_kb"
CHOOSE = "action_choose_article"
FEEDBACK = "action_article_feedback"
HAND_OFF = "action_hand_off"
COLLECT = "action_collect_details"
ASK_CSAT = "action_ask_csat"
RECORD_CSAT = "action_record_csat"

# Filled by the runner before every turn (defaults apply when absent).
CONTEXT_SLOTS = (
    "conversation_id",  # int; feedback is counted against it
    "channel",  # "webchat", "email", "voice", "fax", ...: decides the answer's length
    "language",  # the conversation's or contact's language tag
    "open_now",  # False out of hours; None or True otherwise
    "opening_hours",  # text shown out of hours
    "required_details",  # what to collect before a hand-off, e.g. ["name", "order_number"]
    "known_details",  # what the hub already knows, e.g. {"name": "Ana"}
    "human_only_topics",  # words or phrases that always go to a person
    "human_required",  # the contact's accessibility profile asks for a person
)
# The bot's own state, carried from turn to turn.
STATE_SLOTS = (
    "pending",  # what the last bot message asked: feedback | choice | detail | after_hours |
    # leave_message | csat; None when nothing
    "offered",  # the choices offered: [{"title", "payload", "article_id"}]
    "last_article",  # {"article_id", "title", "score"} of the last answer
    "misses",  # answers missed in a row
    "details",  # details collected for the hand-off
    "collecting",  # the detail being asked for
    "detail_attempts",
    "handoff",  # the hand-off being prepared: {"reason", "mode", "article_id", "score", ...}
    "greeted",
)
# What the runner reads back: the decision explained, and a CSAT rating.
OUTPUT_SLOTS = ("bot_decision", "csat")
SLOTS = CONTEXT_SLOTS + STATE_SLOTS + OUTPUT_SLOTS

# Answer length per kind of channel (hub.channel_names): small channels get the short answer
# and a link, spoken ones the short answer alone, e-mail and fax the full body.
MAX_ANSWER_CHARS = 1500  # an article without a short answer, on a small channel
SEARCH_LIMIT = 5
_DETAIL_KINDS = ("name", "email", "phone", "order_number")
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")


def _text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def _slots(tracker: Tracker) -> dict[str, Any]:
    return dict(tracker.slots or {})


def _lang(tracker: Tracker) -> str:
    return phrases.detect(_text(tracker), _slots(tracker).get("language"))


def _button(title: str, payload: str | None = None) -> dict[str, str]:
    return {"title": title, "payload": payload if payload is not None else title}


def _yes_no_buttons(lang: str) -> list[dict[str, str]]:
    return [_button(say(lang, "yes")), _button(say(lang, "no"))]


def _greeting(tracker: Tracker, lang: str) -> tuple[str, list[dict[str, Any]]]:
    """The greeting to put before the bot's first message in a conversation."""
    if _slots(tracker).get("greeted"):
        return "", []
    return say(lang, "greeting") + " ", [SlotSet("greeted", True)]


def _misses(tracker: Tracker) -> int:
    value = _slots(tracker).get("misses")
    return value if isinstance(value, int) else 0


def answer_text(article: KbArticle, channel: str | None, url: str, lang: str) -> str:
    """What the bot says when it answers with `article` on `channel` (Markdown): which
    article it is, then

    - on small channels (web chat, Telegram, SMS; also an unknown channel) the article's short
      answer and a "Read it in full" link; its body, shortened if need be, when it has no
      short answer;
    - on spoken channels (voice, phone) the short answer alone (else the first sentence);
    - on e-mail and fax the full body and the link.

    The one place this is decided: the live turn and the editor's "Test the bot" console
    both use it.
    """
    ref = say(lang, "article_ref", title=article.title)
    body = article.body.strip()
    if channel in SPOKEN_CHANNELS:
        return f"{ref}\n\n{article.short_answer or _SENTENCE.split(body, maxsplit=1)[0]}"
    link = f"[{say(lang, 'read_more')}]({url})"
    if channel in FULL_CHANNELS:
        return "\n\n".join([ref, body, link])
    return "\n\n".join([ref, article.short_answer or _shortened(body), link])


def _shortened(body: str) -> str:
    """The body up to MAX_ANSWER_CHARS, cut between paragraphs (so a table or a list is not
    broken in two), else between words."""
    if len(body) <= MAX_ANSWER_CHARS:
        return body
    head = body[:MAX_ANSWER_CHARS]
    cut = head.rfind("\n\n")
    if cut > 0:
        return head[:cut].rstrip() + "\n\n…"
    return head.rsplit(" ", 1)[0] + " …"


class BotAction(Action):
    """An action with the knowledge-base port and the decision policy."""

    NAME = ""

    def __init__(self, kb: BotKnowledge, policy: DecisionPolicy):
        self.kb = kb
        self.policy = policy

    def name(self) -> str:
        return self.NAME

    async def _answer(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        article_id: str,
        decision: dict[str, Any],
        prefix: str = "",
    ) -> list[dict[str, Any]]:
        """Answer with an article and ask whether it helped; falls back to a miss when the
        article was unpublished meanwhile."""
        lang = _lang(tracker)
        article = await self.kb.article(article_id)
        if article is None:
            return await self._miss(dispatcher, tracker, {**decision, "reason": "unpublished"})
        greeting, events = _greeting(tracker, lang)
        channel = _slots(tracker).get("channel")
        text = answer_text(article, channel, self.kb.article_url(article.id), lang)
        dispatcher.utter_message(
            text=f"{greeting}{prefix}{text}\n\n{say(lang, 'did_it_help')}",
            buttons=_yes_no_buttons(lang),
        )
        last = {"article_id": article.id, "title": article.title, "score": decision.get("score")}
        return [
            *events,
            SlotSet("pending", "feedback"),
            SlotSet("offered", None),
            SlotSet("last_article", last),
            SlotSet("misses", 0),
            SlotSet("bot_decision", decision),
        ]

    async def _miss(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        decision: dict[str, Any],
        prefix: str = "",
    ) -> list[dict[str, Any]]:
        """Nothing good enough: say so, or hand off after `max_misses` in a row."""
        misses = _misses(tracker) + 1
        events: list[dict[str, Any]] = [
            SlotSet("misses", misses),
            SlotSet("pending", None),
            SlotSet("offered", None),
            SlotSet("bot_decision", {**decision, "misses": misses}),
        ]
        if misses >= self.policy.max_misses:
            handoff = {
                "reason": "low_confidence",
                "article_id": decision.get("article_id"),
                "score": decision.get("score"),
                "misses": misses,
            }
            return [*events, SlotSet("handoff", handoff), FollowupAction(HAND_OFF)]
        lang = _lang(tracker)
        greeting, greeted = _greeting(tracker, lang)
        dispatcher.utter_message(text=greeting + prefix + say(lang, "no_answer"))
        return [*events, *greeted]


class AnswerFromKb(BotAction):
    """Search the knowledge base with the customer's message; answer, clarify or miss."""

    NAME = ANSWER

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        text, lang = _text(tracker), _lang(tracker)
        if not understanding.has_words(text):
            # Emoji or punctuation only: nothing to search for, and not the bot's miss.
            greeting, events = _greeting(tracker, lang)
            dispatcher.utter_message(text=greeting + say(lang, "no_words"))
            return [*events, SlotSet("pending", None)]
        query, cut = search_text(text)
        try:
            result = await self.kb.search(query, None, SEARCH_LIMIT)
        except ValueError as exc:
            reason = {"decision": "escalate", "reason": "unusable_query", "detail": str(exc)}
            return await self._miss(dispatcher, tracker, reason)
        decision = decide(result, self.policy)
        explained = {**decision.explain(), "query_cut": cut}
        prefix = say(lang, "too_long") + "\n\n" if cut else ""
        if decision.kind == "answer":
            return await self._answer(
                dispatcher, tracker, decision.hits[0].article_id, explained, prefix
            )
        if decision.kind == "clarify":
            return self._clarify(dispatcher, tracker, decision, explained, prefix)
        return await self._miss(dispatcher, tracker, explained, prefix)

    def _clarify(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        decision: Decision,
        explained: dict[str, Any],
        prefix: str,
    ) -> list[dict[str, Any]]:
        lang = _lang(tracker)
        greeting, events = _greeting(tracker, lang)
        offered = [_choice(hit) for hit in decision.hits]
        offered.append({**_button(say(lang, "none_of_these")), "article_id": None})
        numbered = "\n".join(f"{i}. {o['title']}" for i, o in enumerate(offered, 1))
        dispatcher.utter_message(
            text=f"{greeting}{prefix}{say(lang, 'clarify')}\n{numbered}",
            buttons=[_button(o["title"], o["payload"]) for o in offered],
        )
        return [
            *events,
            SlotSet("pending", "choice"),
            SlotSet("offered", offered),
            SlotSet("bot_decision", explained),
        ]


def _choice(hit: KbHit) -> dict[str, Any]:
    return {**_button(hit.title), "article_id": hit.article_id}


class ChooseArticle(BotAction):
    """The customer picked one of the offered articles (or none of them). Rejects the call
    (Rasa's ActionExecutionRejection) when the message picks nothing that was offered."""

    NAME = CHOOSE

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        offered: Sequence[dict[str, Any]] = _slots(tracker).get("offered") or []
        picked = understanding.choice(_text(tracker), offered)
        if picked is None:
            raise ActionExecutionRejection(self.NAME, "the message picks none of the choices")
        article_id = offered[picked].get("article_id")
        if article_id is None:
            return await self._miss(
                dispatcher, tracker, {"decision": "escalate", "reason": "none_chosen"}
            )
        decision = {"decision": "answer", "reason": "chosen", "article_id": article_id}
        return await self._answer(dispatcher, tracker, article_id, decision)


class ArticleFeedback(BotAction):
    """Yes or no to "did this answer your question?": counted on the article."""

    NAME = FEEDBACK

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        lang = _lang(tracker)
        helpful = understanding.yes_no(_text(tracker))
        last = _slots(tracker).get("last_article") or {}
        article_id = last.get("article_id")
        conversation_id = _slots(tracker).get("conversation_id")
        if helpful is not None and article_id:
            try:
                await self.kb.feedback(article_id, helpful, conversation_id)
            except ValueError as exc:
                # Unpublished since: nothing to count the vote on; the reply still stands.
                log.info("helpful vote on %s not counted: %s", article_id, exc)
        decision = {"decision": "feedback", "helpful": helpful, "article_id": article_id}
        if helpful:
            dispatcher.utter_message(text=say(lang, "glad"))
            return [
                SlotSet("pending", None),
                SlotSet("misses", 0),
                SlotSet("bot_decision", decision),
            ]
        misses = _misses(tracker) + 1
        events: list[dict[str, Any]] = [
            SlotSet("pending", None),
            SlotSet("misses", misses),
            SlotSet("bot_decision", {**decision, "misses": misses}),
        ]
        if misses >= self.policy.max_misses:
            handoff = {"reason": "not_helpful", "article_id": article_id, "misses": misses}
            return [*events, SlotSet("handoff", handoff), FollowupAction(HAND_OFF)]
        dispatcher.utter_message(text=say(lang, "sorry_not_helpful"))
        return events


class HandOff(BotAction):
    """Pass the conversation to people: collect the required details first, offer a message
    or a callback out of hours, then pause the bot (`ConversationPaused`)."""

    NAME = HAND_OFF

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slots, text, lang = _slots(tracker), _text(tracker), _lang(tracker)
        handoff = dict(slots.get("handoff") or {})
        if not handoff.get("reason"):
            handoff.update(_reason(text, slots))
        details = dict(slots.get("details") or {})
        known = dict(slots.get("known_details") or {})
        missing = [
            d for d in slots.get("required_details") or () if d not in known and d not in details
        ]
        if missing:
            first = not details and not slots.get("collecting")
            intro = say(lang, "collect_intro") + " " if first else ""
            return self._ask(dispatcher, lang, missing[0], intro, handoff)
        if slots.get("open_now") is False:
            asked = self._after_hours(dispatcher, tracker, handoff, {**known, **details})
            if asked is not None:
                return asked
        handoff.update(_for_people(tracker, {**known, **details}))
        handoff["after_hours"] = slots.get("open_now") is False
        handoff.setdefault("mode", "queue")
        dispatcher.utter_message(text=_handoff_text(handoff, lang))
        return [
            SlotSet("handoff", handoff),
            SlotSet("pending", None),
            SlotSet("collecting", None),
            SlotSet("offered", None),
            SlotSet("bot_decision", {"decision": "handoff", **_brief(handoff)}),
            ConversationPaused(),
        ]

    def _ask(
        self,
        dispatcher: CollectingDispatcher,
        lang: str,
        kind: str,
        intro: str,
        handoff: dict[str, Any],
    ) -> list[dict[str, Any]]:
        question = say(lang, f"ask_{kind}") if kind in _DETAIL_KINDS else f"{kind}?"
        dispatcher.utter_message(text=intro + question)
        return [
            SlotSet("handoff", handoff),
            SlotSet("pending", "detail"),
            SlotSet("collecting", kind),
            SlotSet("detail_attempts", 0),
        ]

    def _after_hours(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        handoff: dict[str, Any],
        details: dict[str, Any],
    ) -> list[dict[str, Any]] | None:
        """Out of hours: offer a message or a callback; None when the choice is made and
        the hand-off can complete."""
        slots, text, lang = _slots(tracker), _text(tracker), _lang(tracker)
        pending = slots.get("pending")
        if pending == "after_hours":
            reply = understanding.normal(text)
            if reply == understanding.normal(say(lang, "callback")) or _asks_callback(reply):
                handoff["mode"] = "callback"
            elif reply == understanding.normal(say(lang, "leave_message")):
                handoff["mode"] = "message"
                dispatcher.utter_message(text=say(lang, "write_message"))
                return [SlotSet("handoff", handoff), SlotSet("pending", "leave_message")]
            else:
                handoff["mode"] = "message"  # what they wrote is the message
        elif pending == "leave_message":
            handoff["mode"] = "message"
        elif not handoff.get("mode"):
            hours = slots.get("opening_hours")
            suffix = say(lang, "hours_suffix", hours=str(hours)) if hours else ""
            dispatcher.utter_message(
                text=say(lang, "after_hours", hours=suffix),
                buttons=[_button(say(lang, "leave_message")), _button(say(lang, "callback"))],
            )
            return [SlotSet("handoff", handoff), SlotSet("pending", "after_hours")]
        if handoff.get("mode") == "callback" and not details.get("phone"):
            return self._ask(dispatcher, lang, "phone", "", handoff)
        return None


def _asks_callback(reply: str) -> bool:
    return bool(re.search(r"\bcall\b|回电|回拨|打电话", reply))


def _reason(text: str, slots: dict[str, Any]) -> dict[str, Any]:
    reason = understanding.handoff_reason(text, slots) or "customer_request"
    found: dict[str, Any] = {"reason": reason}
    if reason == "complaint":
        found["tags"] = ["complaint"]
    elif reason == "human_only_topic":
        found["topic"] = understanding.topic_in(text, slots.get("human_only_topics") or ())
    last = slots.get("last_article") or {}
    if last.get("article_id"):
        found["article_id"] = last["article_id"]
        found["score"] = last.get("score")
    return found


def _handoff_text(handoff: dict[str, Any], lang: str) -> str:
    if handoff.get("mode") == "message":
        return say(lang, "message_taken")
    if handoff.get("mode") == "callback":
        return say(lang, "callback_taken", phone=str(handoff["details"].get("phone", "")))
    if handoff.get("reason") == "complaint":
        return say(lang, "handoff_complaint")
    return say(lang, "handoff")


def _brief(handoff: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "reason",
        "mode",
        "article_id",
        "score",
        "topic",
        "tags",
        "after_hours",
        "misses",
        "summary",
    )
    return {k: handoff[k] for k in keys if k in handoff}


_SUMMARY_QUESTIONS = 2  # the customer's latest questions make the summary, one line each
_SUMMARY_LINE_CHARS = 200
_SCANNED_MESSAGES = 20
_ORDER_WORD = re.compile(r"\border\b|订单", re.IGNORECASE)
# The bot's requests for a detail (and its second try): the customer's reply is no question.
_DETAIL_QUESTIONS = tuple(
    say(lang, f"{ask}_{kind}")
    for lang in phrases.LANGUAGES
    for ask in ("ask", "bad")
    for kind in _DETAIL_KINDS
)
# A request for a person this short says nothing more ("talk to a human please", "转人工").
_JUST_ASKING_CHARS = {"en": 24, "zh": 8}


def _for_people(tracker: Tracker, collected: dict[str, Any]) -> dict[str, Any]:
    """What the agent who takes the conversation reads first (docs/bot.md, "Hand-off"):
    `summary`, the customer's latest questions; `details`, what the bot asked for and knows
    (`collected`) over what the customer wrote unasked (an order number, an e-mail)."""
    said: list[str] = []  # the customer's messages, oldest first
    answers: set[int] = set()  # which of them answered the bot's request for a detail
    asked = False
    for event in tracker.events or ():
        text = " ".join(str(event.get("text") or "").split())
        if event.get("event") == "bot":
            asked = text.endswith(_DETAIL_QUESTIONS)
        elif event.get("event") == "user":
            if asked:
                answers.add(len(said))
            said.append(text)
    spotted: dict[str, Any] = {}
    for text in said[-_SCANNED_MESSAGES:]:
        email = understanding.detail_value("email", text)
        order = _ORDER_WORD.search(text)
        number = understanding.detail_value("order_number", text[order.end() :]) if order else None
        spotted.update({k: v for k, v in (("email", email), ("order_number", number)) if v})
    questions = [
        t for i, t in enumerate(said) if i not in answers and _is_question(t, collected)
    ][-_SUMMARY_QUESTIONS:]
    return {
        "summary": "\n".join(
            t if len(t) <= _SUMMARY_LINE_CHARS else t[: _SUMMARY_LINE_CHARS - 1] + "…"
            for t in questions
        ),
        "details": {**spotted, **collected},
    }


def _is_question(text: str, collected: dict[str, Any]) -> bool:
    """Whether a customer message asked something, rather than answered the bot (yes/no, a
    pick, a rating, a detail) or only asked for a person."""
    reply = understanding.normal(text)
    if not understanding.has_words(text) or reply.isdigit():
        return False
    if understanding.yes_no(text) is not None or understanding.rating(text) is not None:
        return False
    if any(reply == understanding.normal(str(v)) for v in collected.values() if v):
        return False
    short = _JUST_ASKING_CHARS["zh" if phrases.detect(text, None) == "zh" else "en"]
    return not (understanding.wants_human(text) and len(reply) <= short)


class CollectDetails(BotAction):
    """Store the detail just asked for (checked for its kind), then go on with the hand-off."""

    NAME = COLLECT

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        slots, text, lang = _slots(tracker), _text(tracker), _lang(tracker)
        kind = str(slots.get("collecting") or "detail")
        details = dict(slots.get("details") or {})
        attempts = slots.get("detail_attempts") or 0
        if understanding.wants_human(text):
            details[kind] = None  # they would rather not say: skip it
        else:
            value = understanding.detail_value(kind, text)
            if value is None and attempts < 1 and kind in _DETAIL_KINDS:
                dispatcher.utter_message(text=say(lang, f"bad_{kind}"))
                return [SlotSet("detail_attempts", attempts + 1)]
            # A second answer that still does not look right is kept as given, for a person
            # to read: asking a third time helps nobody.
            details[kind] = value or " ".join(text.split())[: understanding.MAX_DETAIL_CHARS]
        return [
            SlotSet("details", details),
            SlotSet("collecting", None),
            SlotSet("pending", None),
            SlotSet("detail_attempts", 0),
            FollowupAction(HAND_OFF),
        ]


class AskCsat(BotAction):
    """After a person resolved the conversation: ask for a 1-5 rating."""

    NAME = ASK_CSAT

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        lang = phrases.language_of(_slots(tracker).get("language")) or "en"
        dispatcher.utter_message(
            text=say(lang, "ask_csat"), buttons=[_button(str(n)) for n in range(1, 6)]
        )
        return [
            SlotSet("pending", "csat"),
            SlotSet("bot_decision", {"decision": "ask_csat"}),
        ]


class RecordCsat(BotAction):
    """The reply to the rating question: a rating is recorded; anything else is left to the
    person who handled the conversation."""

    NAME = RECORD_CSAT

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        score = understanding.rating(_text(tracker))
        if score is None:
            return [SlotSet("pending", None), SlotSet("bot_decision", {"decision": "no_rating"})]
        dispatcher.utter_message(text=say(_lang(tracker), "csat_thanks"))
        return [
            SlotSet("pending", None),
            SlotSet("csat", score),
            SlotSet("bot_decision", {"decision": "csat", "csat": score}),
        ]


ACTIONS: tuple[type[BotAction], ...] = (
    AnswerFromKb,
    ChooseArticle,
    ArticleFeedback,
    HandOff,
    CollectDetails,
    AskCsat,
    RecordCsat,
)
