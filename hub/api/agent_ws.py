"""The agents' live events websocket: committed events and typing, from every hub process;
with routing on, first a `routing` frame with the agent's presence, open offers and SLA states
(docs/api.md)."""

from __future__ import annotations

import logging

import orjson
from aiohttp import WSMsgType, web

from hub.api.auth import current_session
from hub.api.keys import AGENT_SOCKETS, BUS
from hub.api.routing import ROUTING
from hub.http import Handler, SocketFeed, endpoint
from hub.ports import BusEnvelope

log = logging.getLogger(__name__)


@endpoint(
    "GET",
    "/api/agent/ws",
    "Live events for agents (docs/api.md)",
    tags=("agents",),
    errors=(401,),
    auth="agent",
    websocket=True,
)
async def agent_events(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    bus = request.app[BUS]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 * 1024)
    await ws.prepare(request)
    feed = SocketFeed(ws, limit=5000)

    def forward(envelope: BusEnvelope) -> None:
        if envelope["kind"] == "typing":
            if envelope["data"].get("author") == "customer":
                feed.send(
                    {
                        "type": "typing",
                        "conversation_id": envelope["conversation_id"],
                        "author": "customer",
                    }
                )
            return
        if envelope["kind"] == "caption":
            # Relay mode: the caller's words as they are recognised (partial, then final) and
            # what the hub speaks to them, for the agent reading the call in the inbox.
            data = envelope["data"]
            feed.send(
                {
                    "type": "caption",
                    "conversation_id": envelope["conversation_id"],
                    "call_id": data.get("call_id"),
                    "speaker": data.get("speaker"),
                    "text": data.get("text", ""),
                    "final": bool(data.get("final")),
                }
            )
            return
        feed.send(
            {
                "type": "event",
                "kind": envelope["kind"],
                "conversation_id": envelope["conversation_id"],
                "data": envelope["data"],
            }
        )

    unsubscribe = bus.subscribe(forward)
    routing = request.app.get(ROUTING)
    if routing is not None:
        # The page learns that routing is on, and the presence it starts from, only here:
        # without this frame the inbox shows no routing controls (routing off).
        engine, me = routing.router, session.agent.id
        presence = engine.presence(me).value if me in engine.agent_ids() else None
        # Offers and SLA states from before the page (re)connected come with it.
        offers = await routing.open_offers(me)
        sla = routing.sla_states()
        feed.send({"type": "routing", "presence": presence, "offers": offers, "sla": sla})
    request.app[AGENT_SOCKETS].add(ws)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                frame = orjson.loads(msg.data)
                conv_id = frame["conversation_id"] if frame.get("type") == "typing" else None
            except (ValueError, TypeError, KeyError, AttributeError):
                feed.send(
                    {
                        "type": "error",
                        "code": "invalid_frame",
                        "detail": 'expected {"type": "typing", "conversation_id": N}',
                    }
                )
                continue
            if not isinstance(conv_id, int):
                feed.send(
                    {
                        "type": "error",
                        "code": "invalid_frame",
                        "detail": 'expected {"type": "typing", "conversation_id": N}',
                    }
                )
                continue
            bus.publish(
                {
                    "kind": "typing",
                    "conversation_id": conv_id,
                    "data": {"author": "agent", "agent_id": session.agent.id},
                    "origin": bus.node_id,
                }
            )
    finally:
        request.app[AGENT_SOCKETS].discard(ws)
        unsubscribe()
        await feed.close()
    return ws


HANDLERS: list[Handler] = [agent_events]
