"""Which action answers a customer message: the hub's stand-in for Rasa's dialogue policy.

An external Rasa assistant decides this itself (stories, rules) and only calls the actions;
when the hub runs the bot in-process it asks `next_action` instead. Rules, in order: a reply
to what the bot just asked (a rating, a detail, the out-of-hours choice) goes to the action
that asked; a request for a person, a complaint, a human-only topic or an accessibility need
hands off; a pick from offered articles or a yes/no to "did this help?" is taken as such;
anything else is a question for the knowledge base.
"""

from __future__ import annotations

from typing import Any

from bot import actions, understanding


def next_action(tracker: dict[str, Any]) -> str:
    """The name of the action to run for the tracker's latest user message."""
    slots: dict[str, Any] = tracker.get("slots") or {}
    text = str((tracker.get("latest_message") or {}).get("text") or "")
    pending = slots.get("pending")
    if pending == "csat":
        return actions.RECORD_CSAT
    if pending == "detail":
        return actions.COLLECT
    if pending in ("after_hours", "leave_message"):
        return actions.HAND_OFF
    if understanding.handoff_reason(text, slots):
        return actions.HAND_OFF
    if pending == "choice" and understanding.choice(text, slots.get("offered") or []) is not None:
        return actions.CHOOSE
    if pending == "feedback" and understanding.yes_no(text) is not None:
        return actions.FEEDBACK
    return actions.ANSWER
