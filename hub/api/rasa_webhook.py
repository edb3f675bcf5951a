"""Rasa's action-server contract on the hub's own server: point a Rasa assistant's
`endpoints.yml` (`action_endpoint: url: https://HUB/webhook`) at the hub to reuse its actions.

Same paths, payloads, status codes and error bodies as rasa-sdk's own server
(`rasa_sdk/endpoint.py`): `POST /webhook` runs `next_action` and answers
`{"events", "responses"}`; 404 for an unknown action, 400 for a rejected action or a body that
is not a JSON object, 449 when the domain is missing (Rasa then retries with it); errors are
`{"error": "...", "action_name": "..."}`. Stricter than rasa-sdk in one way: a body without a
`next_action` or a usable `tracker` is a 400 naming the field (rasa-sdk answers 200 `null`
or 500), so a malformed call never reaches an action; so is a body labelled
`Content-Encoding: deflate` that is not, or JSON nested deeper than the hub reads, and a
`conversation_id` slot that names no conversation is a 422.

Guarded unlike rasa-sdk's (whose server trusts its network): off (404 `action_server_off`)
until `action_server_token` is set; then every call needs the token as
`Authorization: Bearer <token>` or `?token=<token>` (401), at most
`action_server_rate_per_minute` calls a minute per client address (429), and a body of at most
MAX_BODY bytes after inflating (413). These answers use the hub's error shape
`{"error": {"code", "detail"}}`: Rasa reads error bodies of 400 and 449 only.
"""

from __future__ import annotations

import contextvars
import hmac
import logging
from collections import OrderedDict
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from rasa_sdk.interfaces import (
    ActionExecutionRejection,
    ActionMissingDomainException,
    ActionNotFoundException,
)

from hub.api.keys import SETTINGS, STORE
from hub.errors import HubError, InvalidRequest, InvalidToken, NotAuthenticated, NotFound
from hub.http import (
    INT_MAX,
    Handler,
    KeyedLimit,
    endpoint,
    json_response,
    loads_json,
    read_body,
)
from hub.ports import BotKnowledge, FrontLineBot, KbArticle, KbResult
from hub.storage import SqlStore

log = logging.getLogger(__name__)
BOT = web.AppKey("bot", FrontLineBot)
LIMIT = web.AppKey("action_server_limit", KeyedLimit)
SUPPORTED_RASA = "3."  # rasa-sdk 3.x speaks to Rasa 3.x
# Largest action call read (after inflating a deflated one): Rasa sends the whole tracker, so
# a long conversation is large, but a megabyte is thousands of turns.
MAX_BODY = 1024**2
VOTES_REMEMBERED = 100_000  # (caller, article) pairs whose vote is counted already
# Who the running call votes for (set per request, read by `OneVotePerCaller.feedback`).
_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("rasa_caller", default="")


def setup(app: web.Application, rate_per_minute: float) -> None:
    app[LIMIT] = KeyedLimit(rate_per_minute / 60, rate_per_minute)


class OneVotePerCaller:
    """The knowledge base as actions called through `/webhook` see it: a "was this helpful?"
    vote counts once per conversation and article (the hub conversation the `conversation_id`
    slot names, else Rasa's own conversation, its `sender_id`); a repeated call only answers.

    A hub conversation's earlier vote is looked up in the database (`store`), so it holds
    across restarts; Rasa's own conversations are remembered while the hub runs.
    """

    def __init__(
        self, kb: BotKnowledge, store: SqlStore | None = None, remembered: int = VOTES_REMEMBERED
    ):
        self.kb = kb
        self.store = store
        self.remembered = remembered
        self._voted: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def search(self, query: str, language: str | None, limit: int) -> KbResult:
        return await self.kb.search(query, language, limit)

    async def article(self, article_id: str) -> KbArticle | None:
        return await self.kb.article(article_id)

    def article_url(self, article_id: str) -> str:
        return self.kb.article_url(article_id)

    async def feedback(self, article_id: str, helpful: bool, conversation_id: int | None) -> None:
        voter = f"conversation:{conversation_id}" if conversation_id else f"rasa:{_CALLER.get()}"
        key = (voter, article_id)
        if key in self._voted:
            log.info("vote on %s by %s counted already; not counted again", article_id, voter)
            return
        self._voted[key] = None  # before any await: two calls at once count once too
        if len(self._voted) > self.remembered:
            self._voted.popitem(last=False)
        try:
            if await self._stored(article_id, conversation_id):
                log.info("vote on %s by %s is stored already; not counted again", article_id, voter)
                return
            await self.kb.feedback(article_id, helpful, conversation_id)
        except BaseException:
            self._voted.pop(key, None)  # not counted: a later call may count it
            raise

    async def _stored(self, article_id: str, conversation_id: int | None) -> bool:
        if self.store is None or not conversation_id:
            return False
        return await self.store.read(lambda uow: uow.kb_feedback_given(article_id, conversation_id))


class ActionCallIn(BaseModel):
    """Rasa's action call (documented shape; the handler checks it field by field)."""

    model_config = ConfigDict(extra="allow")
    next_action: str
    sender_id: str | None = None
    tracker: dict[str, Any]
    domain: dict[str, Any] | None = None
    version: str | None = None


class ActionResultOut(BaseModel):
    events: list[dict[str, Any]]
    responses: list[dict[str, Any]]


def _error(status: int, message: str, action_name: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if action_name is not None:
        body["action_name"] = action_name
    return web.json_response(body, status=status)


def _guard(request: web.Request) -> None:
    """Off, rate-limited, token: raises the HubError that answers the call, else passes."""
    token = request.app[SETTINGS].action_server_token
    if token is None:
        raise NotFound(
            "the Rasa action-server endpoint is off; set OMNIHUB_ACTION_SERVER_TOKEN to use it"
            " (docs/bot.md)",
            code="action_server_off",
        )
    # Before the token check, so that guessing tokens is limited too.
    if not request.app[LIMIT].take(request.remote or "?"):
        raise HubError(
            "too many calls from your address; try later", code="rate_limited", status=429
        )
    sent = _sent_token(request)
    if sent is None:
        raise NotAuthenticated("send the token as `Authorization: Bearer <token>`")
    if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
        raise InvalidToken("wrong action-server token")


def _sent_token(request: web.Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token")  # Rasa's `token:` option in endpoints.yml


def _malformed(call: dict[str, Any]) -> str | None:
    """What is wrong with an action call, or None."""
    action = call.get("next_action")
    if not isinstance(action, str) or not action:
        return "next_action: a non-empty string is required"
    tracker = call.get("tracker")
    if not isinstance(tracker, dict):
        return "tracker: an object is required"
    if not isinstance(tracker.get("sender_id"), str):
        return "tracker.sender_id: a string is required"
    for key, kind in (("slots", dict), ("latest_message", dict), ("events", list)):
        if tracker.get(key) is not None and not isinstance(tracker[key], kind):
            return f"tracker.{key}: an {'object' if kind is dict else 'array'} is expected"
    if call.get("domain") is not None and not isinstance(call["domain"], dict):
        return "domain: an object is expected"
    return None


@endpoint(
    "POST",
    "/webhook",
    "Rasa action server: run an action (errors in Rasa's format: 400, 404, 422, 449; "
    "the hub's for 401, 404 when off, 413, 429)",
    tags=("rasa",),
    errors=(400, 401, 404, 413, 422, 429, 449),
    body=ActionCallIn,
    response=ActionResultOut,
)
async def webhook(request: web.Request) -> web.StreamResponse:
    _guard(request)
    raw = await read_body(request, MAX_BODY)
    try:
        call = loads_json(raw)
    except InvalidRequest as exc:  # not JSON, or nested too deeply
        return _error(400, f"Invalid body request: {exc.detail}")
    if not isinstance(call, dict):
        return _error(400, "Invalid body request")
    problem = _malformed(call)
    if problem is not None:
        name = call.get("next_action")
        return _error(
            400, f"Invalid body request: {problem}", name if isinstance(name, str) else None
        )
    if (unknown := await _unknown_conversation(request, call)) is not None:
        return _error(422, unknown, call["next_action"])
    version = call.get("version")
    if not (isinstance(version, str) and version.startswith(SUPPORTED_RASA)):
        log.info("action call from Rasa %r; these actions are built for Rasa 3.x", version)
    _CALLER.set(call["tracker"]["sender_id"])
    try:
        result = await request.app[BOT].run_external(call)
    except ActionExecutionRejection as exc:
        return _error(400, exc.message, exc.action_name)
    except ActionNotFoundException as exc:
        return _error(404, exc.message, exc.action_name)
    except ActionMissingDomainException as exc:
        return _error(449, exc.message, exc.action_name)
    return json_response(result)


async def _unknown_conversation(request: web.Request, call: dict[str, Any]) -> str | None:
    """Why the `conversation_id` slot (the hub conversation a vote is counted on) is no
    conversation of this hub, or None when it is one or is not set."""
    slots = call["tracker"].get("slots") or {}
    value = slots.get("conversation_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= INT_MAX:
        return f"tracker.slots.conversation_id: a conversation id is expected, not {value!r:.40}"
    found = await request.app[STORE].read(lambda uow: uow.conversation(value))
    return None if found else f"tracker.slots.conversation_id: no conversation {value}"


@endpoint("GET", "/health", "Rasa action server: liveness", tags=("rasa",))
async def health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


@endpoint("GET", "/actions", "Rasa action server: the actions it runs", tags=("rasa",))
async def actions(request: web.Request) -> web.StreamResponse:
    _guard(request)
    return json_response([{"name": name} for name in request.app[BOT].action_names()])


HANDLERS: list[Handler] = [webhook, health, actions]
