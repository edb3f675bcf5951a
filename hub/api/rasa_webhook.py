"""Rasa's action-server contract on the hub's own server: point a Rasa assistant's
`endpoints.yml` (`action_endpoint: url: https://HUB/webhook`) at the hub to reuse its actions.

Same paths, payloads, status codes and error bodies as rasa-sdk's own server
(`rasa_sdk/endpoint.py`): `POST /webhook` runs `next_action` and answers
`{"events", "responses"}`; 404 for an unknown action, 400 for a rejected action or a body that
is not a JSON object, 449 when the domain is missing (Rasa then retries with it); errors are
`{"error": "...", "action_name": "..."}`. Stricter than rasa-sdk in one way: a body without a
`next_action` or a usable `tracker` is a 400 naming the field (rasa-sdk answers 200 `null`
or 500), so a malformed call never reaches an action.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from rasa_sdk.interfaces import (
    ActionExecutionRejection,
    ActionMissingDomainException,
    ActionNotFoundException,
)

from hub.http import Handler, endpoint, json_response
from hub.ports import FrontLineBot

log = logging.getLogger(__name__)
BOT = web.AppKey("bot", FrontLineBot)
SUPPORTED_RASA = "3."  # rasa-sdk 3.x speaks to Rasa 3.x


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


def _decode(body: bytes, encoding: str | None) -> Any:
    # Rasa can deflate its calls. aiohttp inflates such bodies itself; one that still is
    # not JSON is inflated here once (as rasa-sdk's server does).
    for attempt in range(2):
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if attempt or encoding != "deflate":
                return None
        try:
            body = zlib.decompress(body)
        except zlib.error:
            return None
    return None


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
    "Rasa action server: run an action (errors in Rasa's format: 400, 404, 449)",
    tags=("rasa",),
    body=ActionCallIn,
    response=ActionResultOut,
)
async def webhook(request: web.Request) -> web.StreamResponse:
    call = _decode(await request.read(), request.headers.get("Content-Encoding"))
    if not isinstance(call, dict):
        return _error(400, "Invalid body request")
    problem = _malformed(call)
    if problem is not None:
        name = call.get("next_action")
        return _error(
            400, f"Invalid body request: {problem}", name if isinstance(name, str) else None
        )
    version = call.get("version")
    if not (isinstance(version, str) and version.startswith(SUPPORTED_RASA)):
        log.info("action call from Rasa %r; these actions are built for Rasa 3.x", version)
    try:
        result = await request.app[BOT].run_external(call)
    except ActionExecutionRejection as exc:
        return _error(400, exc.message, exc.action_name)
    except ActionNotFoundException as exc:
        return _error(404, exc.message, exc.action_name)
    except ActionMissingDomainException as exc:
        return _error(449, exc.message, exc.action_name)
    return json_response(result)


@endpoint("GET", "/health", "Rasa action server: liveness", tags=("rasa",))
async def health(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


@endpoint("GET", "/actions", "Rasa action server: the actions it runs", tags=("rasa",))
async def actions(request: web.Request) -> web.StreamResponse:
    return json_response([{"name": name} for name in request.app[BOT].action_names()])


HANDLERS: list[Handler] = [webhook, health, actions]
