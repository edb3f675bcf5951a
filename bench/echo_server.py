"""Bare aiohttp websocket echo server: the baseline that bench/webchat.py compares the hub to.

It serves the same URL as the hub (`GET /api/webchat/ws?token=…`, any token accepted) and,
for every text frame, parses the JSON and answers an ack frame of the same shape and size
as the hub's: `{"type": "ack", "client_id": …, "message_id": <counter>}`. Nothing is stored,
so the figure it yields is what the same client load achieves against a do-nothing aiohttp
websocket server on this machine. `GET /readyz` answers 200 once it listens.

Run: `python bench/echo_server.py --port 8765` (loopback only).
"""

from __future__ import annotations

import argparse
import itertools
import json

from aiohttp import WSMsgType, web
from benchlib import LOOPBACK, raise_nofile_limit

COUNTER = web.AppKey("counter", itertools.count)


async def readyz(request: web.Request) -> web.Response:
    """Readiness probe, shaped like the hub's."""
    return web.json_response({"status": "ready"})


def reply_for(data: str, counter: itertools.count[int]) -> str:
    """The frame answering one client text frame."""
    try:
        frame = json.loads(data)
    except ValueError:
        return json.dumps({"type": "error", "code": "malformed_json", "detail": "not JSON"})
    if not isinstance(frame, dict):
        return json.dumps({"type": "error", "code": "malformed_json", "detail": "not an object"})
    return json.dumps(
        {"type": "ack", "client_id": frame.get("client_id"), "message_id": next(counter)}
    )


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Ack every text frame immediately; ignore everything else."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    counter = request.app[COUNTER]
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(reply_for(msg.data, counter))
    return ws


def make_app() -> web.Application:
    """The echo application."""
    app = web.Application()
    app[COUNTER] = itertools.count(1)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/webchat/ws", websocket)
    return app


def main() -> None:
    """Parse the command line and serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_nofile_limit()
    web.run_app(make_app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
