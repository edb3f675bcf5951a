"""The front-line bot: rasa-sdk actions over the knowledge-base port (see docs/bot.md).

`FrontLineBot` implements the hub's `FrontLineBot` port: two rasa-sdk executors over the same
actions, one for the hub's own conversations and one for an external Rasa server calling the
hub's /webhook (each keeps the domain its caller sent, so the two never mix).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk.executor import ActionExecutor

from bot import dialogue
from bot.actions import ACTIONS, SLOTS
from bot.phrases import say_in
from bot.policy import DecisionPolicy, PolicyDecider
from hub.ports import BotKnowledge

__all__ = ["DOMAIN", "DecisionPolicy", "FrontLineBot", "PolicyDecider", "say_in"]

# The domain the hub sends with its in-process action calls (Rasa's format, trimmed to what
# the actions use).
DOMAIN: dict[str, Any] = {
    "version": "3.1",
    "slots": {name: {"type": "any", "mappings": [{"type": "custom"}]} for name in SLOTS},
    "actions": [cls.NAME for cls in ACTIONS],
}


class FrontLineBot:
    """The bot's actions behind rasa-sdk's executor."""

    def __init__(self, kb: BotKnowledge, policy: DecisionPolicy | None = None):
        self.policy = policy or DecisionPolicy()
        self._own = ActionExecutor()
        self._external = ActionExecutor()
        for cls in ACTIONS:
            self._own.register_action(cls(kb, self.policy))
        # The same actions: a copy of the registry, not a second registration, which made
        # rasa-sdk log "Registered function for ..." twice for every action at start-up.
        self._external.actions = dict(self._own.actions)

    def next_action(self, tracker: dict[str, Any]) -> str:
        return dialogue.next_action(tracker)

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        result = await self._own.run({"domain": DOMAIN, **action_call})
        if result is None:
            return {"events": [], "responses": []}
        dumped: dict[str, Any] = result.model_dump()
        return dumped

    async def run_external(self, action_call: dict[str, Any]) -> dict[str, Any] | None:
        result = await self._external.run(action_call)
        return None if result is None else dict(result.model_dump())

    def action_names(self) -> list[str]:
        return [item.name for item in self._external.list_actions()]
