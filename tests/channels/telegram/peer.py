"""A real HTTP server that speaks the part of the Telegram Bot API the adapter uses.

python-telegram-bot is pointed at it with `base_url`/`base_file_url`, so every request the
adapter makes crosses a real socket and is parsed the way Telegram would: form or multipart
bodies, JSON-encoded complex parameters, `{"ok": ..., "result"|"error_code"...}` answers. The
peer records each call, serves queued updates to `getUpdates` (a real long poll), plays
Telegram's side of the webhook (POSTing updates with the secret header), serves files for
`getFile` and the download path, and answers with the errors a test plants (429 with
`retry_after`, 403 when the user blocked the bot).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "123456789:AAE-omnihub-test-token_0123456789ab"
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Omnihub Test",
    "username": "omnihub_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
# Parameters Telegram takes as JSON inside form fields.
JSON_PARAMS = frozenset({"reply_markup", "allowed_updates", "entities", "caption_entities"})


@dataclass
class Call:
    """One Bot API request as the peer received it."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # name, type, data
    at: float = field(default_factory=time.monotonic)
    result: Any = None  # what the peer answered (the sent Message for send* methods)


@dataclass
class Failure:
    """An error answer to plant: `count` times for calls of `method` (matching `when`)."""

    method: str
    status: int
    description: str
    retry_after: int | None = None
    count: int = 1
    when: Callable[[dict[str, Any]], bool] | None = None


class BotApiPeer:
    """The Bot API stand-in: `await peer.start()`, then `peer.base_url`, `peer.base_file_url`."""

    def __init__(self, token: str = TOKEN):
        self.token = token
        self.calls: list[Call] = []
        self.failures: list[Failure] = []
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_allowed: list[str] | None = None
        self.confirmed_offset = 0  # getUpdates' offset: updates below it are confirmed
        self._pending: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(5000)
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self._file_ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, port: int = 0) -> BotApiPeer:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self

    async def outage(self) -> None:
        """Telegram's API goes away (connections refused); `recover` brings it back on the
        same address. Playing Telegram's webhook side (`post_webhook`) still works."""
        assert self._runner is not None
        await self._runner.cleanup()
        self._runner = None

    async def recover(self) -> None:
        await self.start(int(self.url.rsplit(":", 1)[1]))

    async def close(self) -> None:
        async with self._changed:  # end long polls still waiting
            self._closing = True
            self._changed.notify_all()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        return f"{self.url}/file/bot"

    # --- what tests plant ---------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        count: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self.failures.append(Failure(method, status, description, retry_after, count, when))

    def flood(self, method: str, retry_after: int, count: int = 1) -> None:
        """Answer `method` with 429 Too Many Requests, retry after `retry_after` s."""
        self.fail(
            method,
            429,
            f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
            count=count,
        )

    def blocked(self, method: str = "sendMessage", count: int = 1) -> None:
        """Answer `method` as Telegram does when the user blocked the bot."""
        self.fail(method, 403, "Forbidden: bot was blocked by the user", count=count)

    def add_file(self, data: bytes, file_path: str) -> str:
        """Make `data` downloadable; returns its file_id."""
        file_id = f"FILE-{next(self._file_ids)}-{len(data)}"
        self._files[file_id] = (file_path, data)
        return file_id

    async def queue_update(self, update: dict[str, Any]) -> int:
        """Queue an update for `getUpdates`; returns its update_id."""
        update = {"update_id": next(self._update_ids), **update}
        async with self._changed:
            self._pending.append(update)
            self._changed.notify_all()
        return int(update["update_id"])

    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def post_webhook(
        self, update: dict[str, Any] | bytes, secret: str | None = "", **headers: str
    ) -> tuple[int, str]:
        """POST an update to the registered webhook the way Telegram does. `secret=""` sends
        the registered secret, None sends no secret header; returns (status, body)."""
        assert self._http is not None and self.webhook_url, "no webhook registered"
        send = dict(headers)
        chosen = self.webhook_secret if secret == "" else secret
        if chosen is not None:
            send["X-Telegram-Bot-Api-Secret-Token"] = chosen
        if isinstance(update, bytes):
            body = update
        else:
            body = json.dumps({"update_id": self.next_update_id(), **update}).encode()
        send.setdefault("Content-Type", "application/json")
        async with self._http.post(self.webhook_url, data=body, headers=send) as resp:
            return resp.status, await resp.text()

    # --- what tests read ----------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        match: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 20,
    ) -> list[Call]:
        """The first `count` calls of `method` that satisfy `match`, waiting for them."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while True:
                    found = [c for c in self.calls_of(method) if match is None or match(c)]
                    if len(found) >= count:
                        return found[:count]
                    await self._changed.wait()

    async def wait_confirmed(self, update_id: int, timeout: float = 20) -> None:
        """Until a getUpdates call has confirmed `update_id` (offset beyond it)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                while self.confirmed_offset <= update_id:
                    await self._changed.wait()

    # --- the API ------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params, files = await _read_params(request)
        call = Call(method, params, files)
        async with self._changed:
            self.calls.append(call)
            self._changed.notify_all()
        planted = self._planted(method, params)
        if planted is not None:
            return planted
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        result = await handler(call)
        if isinstance(result, web.Response):
            return result
        call.result = result
        return web.json_response({"ok": True, "result": result})

    def _planted(self, method: str, params: dict[str, Any]) -> web.Response | None:
        for failure in self.failures:
            if failure.method != method or failure.count <= 0:
                continue
            if failure.when is not None and not failure.when(params):
                continue
            failure.count -= 1
            extra = {"retry_after": failure.retry_after} if failure.retry_after else None
            return _error(failure.status, failure.description, extra)
        return None

    async def _m_getMe(self, call: Call) -> Any:
        return BOT_USER

    async def _m_setWebhook(self, call: Call) -> Any:
        self.webhook_url = str(call.params["url"])
        self.webhook_secret = call.params.get("secret_token")
        self.webhook_allowed = call.params.get("allowed_updates")
        return True

    async def _m_deleteWebhook(self, call: Call) -> Any:
        self.webhook_url, self.webhook_secret = "", None
        if _flag(call.params.get("drop_pending_updates")):
            self._pending.clear()
        return True

    async def _m_getUpdates(self, call: Call) -> Any:
        if self.webhook_url:
            return _error(409, "Conflict: can't use getUpdates method while webhook is active")
        offset = int(call.params.get("offset", 0) or 0)
        timeout = float(call.params.get("timeout", 0) or 0)
        limit = int(call.params.get("limit", 100) or 100)
        async with self._changed:
            if offset:
                self.confirmed_offset = max(self.confirmed_offset, offset)
                self._pending = [u for u in self._pending if u["update_id"] >= offset]
                self._changed.notify_all()
            try:
                async with asyncio.timeout(timeout):
                    while not self._pending and not self._closing:
                        await self._changed.wait()
            except TimeoutError:
                pass
            return self._pending[:limit]

    async def _m_sendMessage(self, call: Call) -> Any:
        return self._sent(call, text=call.params.get("text", ""))

    async def _m_sendDocument(self, call: Call) -> Any:
        name, mime, data = call.files.get("document", ("file", "application/octet-stream", b""))
        file_id = self.add_file(data, f"documents/{name}")
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": mime,
            "file_size": len(data),
        }
        return self._sent(call, document=document, caption=call.params.get("caption"))

    async def _m_sendPhoto(self, call: Call) -> Any:
        name, _mime, data = call.files.get("photo", ("photo.jpg", "image/jpeg", b""))
        file_id = self.add_file(data, f"photos/{name}")
        size = {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 1, "height": 1}
        return self._sent(call, photo=[{**size, "file_size": len(data)}])

    async def _m_answerCallbackQuery(self, call: Call) -> Any:
        return True

    async def _m_getFile(self, call: Call) -> Any:
        file_id = str(call.params.get("file_id"))
        if file_id not in self._files:
            return _error(400, "Bad Request: invalid file_id")
        path, data = self._files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(data),
            "file_path": path,
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        wanted = request.match_info["path"]
        for path, data in self._files.values():
            if path == wanted:
                return web.Response(body=data, content_type="application/octet-stream")
        return web.Response(status=404)

    def _sent(self, call: Call, **content: Any) -> dict[str, Any]:
        chat_id = int(call.params["chat_id"])
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
        }
        message.update({k: v for k, v in content.items() if v is not None})
        if "reply_markup" in call.params:
            message["reply_markup"] = call.params["reply_markup"]
        return message


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parameters from a query string, a form, a multipart body or a JSON body."""
    params: dict[str, Any] = dict(request.query)
    files: dict[str, tuple[str, str, bytes]] = {}
    if request.content_type == "application/json":
        params.update(await request.json())
        return params, files
    if request.method == "POST":
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.content_type, value.file.read())
            else:
                params[key] = value
    for key in JSON_PARAMS & params.keys():
        if isinstance(params[key], str):
            params[key] = json.loads(params[key])
    return params, files


def _flag(value: Any) -> bool:
    return str(value).lower() in ("true", "1")


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
