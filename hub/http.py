"""HTTP plumbing shared by the API and the channel adapters that serve HTTP.

One way to: declare an endpoint (and so its OpenAPI entry), read a JSON body or a query
string into a pydantic model, answer with a JSON error, serve a stored attachment, and push
frames to a websocket without letting a slow client stall the event bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import orjson
from aiohttp import BodyPartReader, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from hub.errors import HubError, InvalidRequest, TooLarge, ValidationFailed
from hub.ports import Channel

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_JSON_BODY = 256 * 1024
# Deeper JSON is refused before any model or library sees it: no real payload of ours nests
# beyond a dozen levels, and deep nesting makes recursive code (pydantic, deepcopy, rasa-sdk)
# hit Python's recursion limit. orjson itself stops at 1024 levels.
MAX_JSON_DEPTH = 64
# Every integer the hub stores or compares with a stored one is a signed 64-bit database
# integer (SQLite INTEGER, PostgreSQL BIGINT); larger values would overflow in the driver.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


# --- endpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One REST operation: how to route it and how to describe it in OpenAPI."""

    method: str
    path: str
    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    auth: str | None = None  # "agent" (cookie + CSRF on unsafe methods), "token" (webchat)
    websocket: bool = False
    string_params: tuple[str, ...] = ()  # path parameters that are not integer ids
    upload: bool = False  # the body is multipart/form-data with `file` parts
    form_fields: tuple[str, ...] = ()  # text fields an upload form may have besides `file`


F = TypeVar("F", bound=Callable[..., Awaitable[web.StreamResponse]])


def endpoint(method: str, path: str, summary: str, **kw: Any) -> Callable[[F], F]:
    """Declare a handler; `routes()` turns the declared handlers into aiohttp routes."""

    def wrap(handler: F) -> F:
        handler.__omnihub_endpoint__ = Endpoint(method, path, summary, **kw)  # type: ignore[attr-defined]
        return handler

    return wrap


def endpoints_of(handlers: Sequence[Handler]) -> list[Endpoint]:
    return [h.__omnihub_endpoint__ for h in handlers]  # type: ignore[attr-defined]


def routes(handlers: Sequence[Handler]) -> list[web.RouteDef]:
    return [
        web.route(e.method, e.path, h)
        for e, h in zip(endpoints_of(handlers), handlers, strict=True)
    ]


@runtime_checkable
class HttpChannel(Channel, Protocol):
    """A channel adapter that also serves HTTP (web chat, webhooks)."""

    def handlers(self) -> Sequence[Handler]: ...


# --- input --------------------------------------------------------------------------------------


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body as `model`, or a 4xx HubError saying what is wrong."""
    raw = await read_body(request, MAX_JSON_BODY)
    if not raw.strip():
        raw = b"{}"
    return parse(model, loads_json(raw))


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, inflated when labelled `Content-Encoding: deflate` or `gzip`, or TooLarge
    `body_too_large` beyond `limit` bytes (before and after inflating), or InvalidRequest
    `bad_encoding` when it is not what its Content-Encoding says.

    The hub inflates bodies here, not in aiohttp's parser (`auto_decompress` is off in
    hub.api.app): the parser's failure on a broken body surfaces after the answer and is
    logged as a server error, and it inflates without a limit."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is larger than {limit} bytes", code="body_too_large")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(f"the body is larger than {limit} bytes", code="body_too_large")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in _WBITS:
        raise InvalidRequest(
            f"Content-Encoding {encoding!r:.40} is not supported; use deflate or gzip",
            code="bad_encoding",
        )
    wbits = _WBITS[encoding]
    if encoding == "deflate" and raw and raw[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # raw deflate without the zlib header (some clients send it)
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise InvalidRequest(
            f"the body is not what its Content-Encoding {encoding!r} says", code="bad_encoding"
        ) from None
    if len(data) > limit:
        raise TooLarge(f"the body is larger than {limit} bytes inflated", code="body_too_large")
    if raw and not inflater.eof:
        raise InvalidRequest(f"the {encoding} body is cut off", code="bad_encoding")
    return data


_WBITS = {"deflate": zlib.MAX_WBITS, "gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}


def loads_json(raw: bytes) -> Any:
    """A JSON document no deeper than MAX_JSON_DEPTH, or InvalidRequest `malformed_json`."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise _too_deep() from None
        raise InvalidRequest("the body is not valid JSON", code="malformed_json") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON", code="malformed_json") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise _too_deep()
    return data


def _too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels", code="malformed_json"
    )


def json_depth(data: Any) -> int:
    """How deeply arrays and objects nest in parsed JSON (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse(model: type[M], data: Any) -> M:
    """`data` as `model`, or a 4xx HubError; every integer in the result fits 64 bits."""
    if not isinstance(data, dict):
        raise InvalidRequest("expected a JSON object", code="malformed_json")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_validation_detail(exc)) from None
    if (where := _out_of_range(parsed)) is not None:
        raise ValidationFailed(f"{where}: the number is out of range ({INT_MIN} to {INT_MAX})")
    return parsed


def _out_of_range(value: Any, where: str = "") -> str | None:
    """The field path of the first integer outside 64 bits in a parsed model, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT_MIN <= value <= INT_MAX else (where or "body")
    if isinstance(value, BaseModel):
        items: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, child in items:
        found = _out_of_range(child, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str  # as the client named it: clean it before storing (hub.storage.files)
    content_type: str
    data: bytes


MAX_FORM_FIELD = 256 * 1024
_CHUNK = 64 * 1024


async def read_upload(
    request: web.Request, *, max_bytes: int, max_files: int, fields: tuple[str, ...] = ()
) -> tuple[list[UploadedFile], dict[str, str]]:
    """The `file` parts and the named text `fields` of a multipart/form-data body, each read
    with its limit so that a large body is refused without being held in memory; other parts
    are skipped. Raises a 4xx HubError naming the limit that was hit."""
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequest("send the file as multipart/form-data", code="not_multipart")
    files: list[UploadedFile] = []
    values: dict[str, str] = {}
    try:
        # aiohttp's reader raises ValueError for a missing boundary or a body that breaks the
        # format part-way: the client's mistake, answered as such rather than as a 500.
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                if len(files) == max_files:
                    raise InvalidRequest(
                        f"more than {max_files} files in one request",
                        code="too_many_attachments",
                    )
                data = await _read_part(part, max_bytes, "attachment_too_large", "the file")
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files.append(UploadedFile(part.filename or "attachment", content_type, data))
            elif part.name in fields:
                raw = await _read_part(part, MAX_FORM_FIELD, "field_too_large", f"`{part.name}`")
                values[part.name] = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("a text field of the form is not UTF-8") from None
    except (ValueError, HttpProcessingError) as exc:
        # HttpProcessingError: a part header aiohttp's header parser refuses (a control
        # character, an over-long line), raised as InvalidHeader / LineTooLong.
        why = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
        raise InvalidRequest(
            f"malformed multipart body: {why}", code="malformed_multipart"
        ) from None
    return files, values


async def _read_part(part: BodyPartReader, limit: int, code: str, what: str) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > limit:
            raise TooLarge(f"{what} is larger than the limit of {limit} bytes", code=code)
    return bytes(data)


def read_query(request: web.Request, model: type[M]) -> M:
    return parse(model, dict(request.query))


def path_id(request: web.Request, what: str = "an id", name: str = "id") -> int:
    """The integer id in the path parameter `name`, or InvalidRequest "not <what>: ..."."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:  # 18 digits always fit a 64-bit database id
        raise InvalidRequest(f"not {what}: {raw!r}")
    return int(raw)


def json_response(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def error_body(code: str, detail: str) -> dict[str, Any]:
    return {"error": {"code": code, "detail": detail}}


def error_response(status: int, code: str, detail: str) -> web.Response:
    return web.json_response(error_body(code, detail), status=status, dumps=_dumps)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    400: "invalid_request",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes `{"error": {"code", "detail"}}` with a 4xx status; a bug is a 500."""
    try:
        return await handler(request)
    except HubError as exc:
        return error_response(exc.status, exc.code, exc.detail)
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith("/api/"):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it has been logged")


# --- attachments -------------------------------------------------------------------------------

# Served inline only where a browser shows them passively; anything else is a download.
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/wav",
        "application/pdf",
        "text/plain",
    }
)


def attachment_response(path: Path, filename: str, content_type: str) -> web.FileResponse:
    """Stream a stored attachment so that a hostile file cannot run in the hub's origin:
    `nosniff`, a sandboxing CSP, and a download for every type not in `INLINE_TYPES`.
    `filename` and `content_type` must already be cleaned (`hub.storage.files`)."""
    inline = content_type in INLINE_TYPES
    disposition = "inline" if inline else "attachment"
    fallback = filename.encode("ascii", "replace").decode().replace('"', "'")
    disposition += f"; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": content_type if inline else "application/octet-stream",
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Referrer-Policy": "no-referrer",
            # Content-addressed: the bytes under a key never change.
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


# --- websockets ---------------------------------------------------------------------------------


class SocketFeed:
    """A bounded send queue with its own writer task for one websocket.

    Bus handlers only enqueue; a client too slow to keep up is disconnected (it reconnects
    and refetches) instead of stalling delivery to everybody else.
    """

    def __init__(self, ws: web.WebSocketResponse, limit: int = 1000):
        self.ws = ws
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(limit)
        self._task = asyncio.create_task(self._write(), name="omnihub-socket-feed")
        self._closer: asyncio.Task[bool] | None = None

    async def reply(self, frame: dict[str, Any]) -> None:
        """Answer a frame of the client's own (an ack, a refusal) straight from the task that
        reads the socket: no queue hop, and a client that does not read its answers only
        slows down its own frames."""
        if self.ws.closed:
            return
        try:
            await self.ws.send_frame(orjson.dumps(frame), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            return  # the socket is going away; the reading loop ends with it

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame from elsewhere (the bus) for the feed's writer task."""
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("websocket client too slow; closing it")
            self._task.cancel()
            self._closer = asyncio.create_task(self.ws.close(code=1013, message=b"too slow"))

    async def close(self) -> None:
        if not self._task.done():
            try:
                self._queue.put_nowait(None)
            except asyncio.QueueFull:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write(self) -> None:
        while (frame := await self._queue.get()) is not None:
            if self.ws.closed:
                return
            try:
                await self.ws.send_frame(orjson.dumps(frame), WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                return


class TokenBucket:
    """Flood guard: `rate` messages a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class KeyedLimit:
    """A token bucket per key (a client address, a session), forgetting the least recently
    seen keys beyond `tracked` so that memory stays bounded."""

    def __init__(self, rate: float, burst: float, tracked: int = 10_000):
        self.rate, self.burst, self.tracked = rate, burst, tracked
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable) -> bool:
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self._buckets[key] = bucket
        if len(self._buckets) > self.tracked:
            self._buckets.popitem(last=False)
        return bucket.take()
