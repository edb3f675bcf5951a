"""Composition root: builds the store, bus, services and channels and serves them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import aiohttp_cors
from aiohttp import web

from channels import channel_class
from hub.api import agent_ws, auth, conversations, health, openapi, pages
from hub.api.keys import (
    AGENT_SOCKETS,
    AGENTS,
    BUS,
    CONVERSATIONS,
    ENDPOINTS,
    OUTBOX,
    SETTINGS,
    STORE,
)
from hub.config import Settings
from hub.errors import HubError
from hub.events import LocalBus, RedisBus
from hub.http import HttpChannel, endpoints_of, error_middleware, routes
from hub.model import Event, Role
from hub.ports import Channel, ChannelContext, EventBus
from hub.services.agents import AgentService
from hub.services.conversations import ConversationService
from hub.services.outbox import Outbox
from hub.storage import SqlStore, migrate

log = logging.getLogger(__name__)

ENABLED_CHANNELS = ("webchat",)


def create_app(settings: Settings) -> web.Application:
    """The hub as an aiohttp application; I/O happens on start-up, not here."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024**2)
    app[SETTINGS] = settings
    store = SqlStore.from_url(settings.effective_database_url, settings.db_pool_size)
    bus: EventBus = RedisBus(settings.redis_url) if settings.redis_url else LocalBus()
    service = ConversationService(store, settings.max_text_chars)
    app[STORE], app[BUS], app[CONVERSATIONS] = store, bus, service
    app[AGENTS] = AgentService(store, timedelta(hours=settings.session_ttl_hours))

    ctx = ChannelContext(
        sink=service,
        store=store,
        bus=bus,
        max_text_chars=settings.max_text_chars,
        public_url=settings.effective_public_url,
        default_inbox=settings.default_inbox,
        options={"rate_per_s": settings.webchat_rate_per_s, "burst": settings.webchat_burst},
    )
    channels: dict[str, Channel] = {name: channel_class(name)(ctx) for name in ENABLED_CHANNELS}
    outbox = Outbox(store, channels)
    service.on_outbound = outbox.submit
    app[OUTBOX] = outbox
    app[AGENT_SOCKETS] = set()

    handlers = [
        *health.HANDLERS,
        *auth.HANDLERS,
        *conversations.HANDLERS,
        *agent_ws.HANDLERS,
        *openapi.HANDLERS,
    ]
    for ch in channels.values():
        if isinstance(ch, HttpChannel):
            handlers.extend(ch.handlers())
    app[ENDPOINTS] = endpoints_of(handlers)
    app.add_routes(routes(handlers))
    app.add_routes(pages.routes())
    _allow_widget_origins(app, settings.webchat_allowed_origins)

    app.cleanup_ctx.append(_storage(settings, store))
    app.cleanup_ctx.append(_bus(bus, store))
    app.cleanup_ctx.append(_channels(list(channels.values()), outbox))
    # Close websockets when shutdown starts, not after aiohttp's grace period: clients
    # reconnect to a live process at once.
    app.on_shutdown.append(_close_sockets(list(channels.values())))
    if settings.demo:
        app.on_startup.append(_seed_demo)
    return app


def _allow_widget_origins(app: web.Application, origins: list[str]) -> None:
    """Sites embedding the widget call /api/webchat/* cross-origin (no cookies involved)."""
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False, allow_headers=("Content-Type",), max_age=3600
    )
    cors = aiohttp_cors.setup(app, defaults={})
    for route in list(app.router.routes()):
        if route.resource is not None and route.resource.canonical.startswith("/api/webchat/"):
            cors.add(route, {origin: options for origin in origins})


def _storage(settings: Settings, store: SqlStore):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(migrate.upgrade, settings.effective_database_url)
        await store.ping()
        yield
        await store.close()

    return ctx


def _bus(bus: EventBus, store: SqlStore):  # type: ignore[no-untyped-def]
    def publish(events: Sequence[Event]) -> None:
        for ev in events:
            bus.publish(
                {
                    "kind": ev.kind.value,
                    "conversation_id": ev.conversation_id,
                    "data": dict(ev.payload),
                    "origin": bus.node_id,
                }
            )

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await bus.start()
        store.on_commit = publish
        yield
        store.on_commit = None
        await bus.close()

    return ctx


def _channels(channels: list[Channel], outbox: Outbox):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        for ch in channels:
            await ch.start()
        resumed = await outbox.resume()
        if resumed:
            log.info("resending %d outbound messages left queued by an earlier run", resumed)
        yield
        await outbox.close()

    return ctx


def _close_sockets(channels: list[Channel]):  # type: ignore[no-untyped-def]
    async def on_shutdown(app: web.Application) -> None:
        for ch in channels:
            await ch.stop()
        live = app[AGENT_SOCKETS]
        for ws in list(live):
            await ws.close(code=1001, message=b"server shutting down")

    return on_shutdown


async def _seed_demo(app: web.Application) -> None:
    settings = app[SETTINGS]
    try:
        await app[AGENTS].add(
            settings.demo_agent_email, "Demo Agent", Role.ADMIN, settings.demo_agent_password
        )
        log.info("created the demo agent %s", settings.demo_agent_email)
    except HubError as exc:
        if exc.code != "agent_exists":
            raise
