"""Composition root: builds the store, bus, services and channels and serves them."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

import aiohttp_cors
from aiohttp import web

from bot import DecisionPolicy, FrontLineBot, PolicyDecider, say_in
from channels import REGISTRY, channel_class
from hub.api import (
    agent_ws,
    attachments,
    auth,
    conversations,
    health,
    help_center,
    invites,
    kb,
    openapi,
    pages,
    rasa_webhook,
)
from hub.api import routing as routing_api
from hub.api.keys import (
    AGENT_SOCKETS,
    AGENTS,
    ARTICLES,
    ATTACHMENTS,
    BOT_RUNNER,
    BUS,
    CONVERSATIONS,
    ENDPOINTS,
    OUTBOX,
    SETTINGS,
    STORE,
)
from hub.calls.controller import CallController, FlowFile
from hub.channel_names import VOICE
from hub.config import ENV_PREFIX, OUTBOX_RETRY_DEFAULTS, Settings
from hub.demo import synonym_groups as demo_synonym_groups
from hub.demo import team as demo_team
from hub.errors import ConfigError, HubError
from hub.events import LocalBus, RedisBus
from hub.http import HttpChannel, endpoints_of, error_middleware, routes
from hub.model import Event, Role
from hub.ports import Channel, ChannelContext, EventBus, LiveSpeechToText, TextToSpeech
from hub.services import kb_io
from hub.services.agents import AgentService
from hub.services.articles import ArticleService
from hub.services.bot_runner import ArticleKnowledge, BotConsole, BotRunner
from hub.services.conversations import ConversationService
from hub.services.kb_index import IndexKeeper
from hub.services.kb_suggestions import SuggestionService
from hub.services.outbox import Outbox
from hub.services.retry import RetryPolicy
from hub.services.router import RoutingService
from hub.storage import SqlStore, migrate
from hub.storage.files import FileAttachmentStore
from kb import open_index

log = logging.getLogger(__name__)

ALWAYS_ENABLED_CHANNELS = ("webchat",)
DEMO_FAQ = Path(__file__).resolve().parent.parent / "demo" / "faq.jsonl"
DEMO_PHONE = Path(__file__).resolve().parent.parent / "demo" / "phone.yaml"
# Long enough for a search question of 100 KB in the query string to reach the handler and be
# refused with a clear JSON error instead of the HTTP parser's bare 400.
MAX_REQUEST_LINE = 512 * 1024
DEMO_FAQ_TASK = web.AppKey("demo_faq_task", asyncio.Task[None])
CALL_CONTROL = web.AppKey("call_control", CallController)  # when channels.voice is on


def create_app(
    settings: Settings, *, speech: tuple[LiveSpeechToText, TextToSpeech] | None = None
) -> web.Application:
    """The hub as an aiohttp application; I/O happens on start-up, not here.

    `speech`: the live recogniser and synthesiser for phone calls; by default the bundled
    engines (channels.speech) are built when `channels.voice` is configured."""
    app = web.Application(
        middlewares=[error_middleware],
        client_max_size=1024**2,
        # Bodies are inflated by hub.http.read_body, with a limit and a clear 400 when they
        # are not what their Content-Encoding says (aiohttp's parser logs that as a fault).
        handler_args={"max_line_size": MAX_REQUEST_LINE, "auto_decompress": False},
    )
    app[SETTINGS] = settings
    store = SqlStore.from_url(
        settings.effective_database_url,
        settings.db_pool_size,
        writer_process=settings.db_writer_process,
    )
    bus: EventBus = RedisBus(settings.redis_url) if settings.redis_url else LocalBus()
    service = ConversationService(
        store,
        settings.max_text_chars,
        bot_first=lambda inbox: settings.bot_rules(inbox) is not None,
    )
    app[STORE], app[BUS], app[CONVERSATIONS] = store, bus, service
    app[AGENTS] = AgentService(store, timedelta(hours=settings.session_ttl_hours))
    keeper = IndexKeeper(
        store,
        functools.partial(open_index, settings.kb_index_dir, **settings.kb_index_options),
    )
    app[ARTICLES] = ArticleService(store, keeper)
    help_center.setup(app)
    policy = decision_policy(settings)
    knowledge = ArticleKnowledge(app[ARTICLES], settings.effective_public_url)
    bot = FrontLineBot(knowledge, policy)
    log.info("front-line bot actions: %s", ", ".join(bot.action_names()))
    # External Rasa calls get the same actions, with one vote per caller and article.
    app[rasa_webhook.BOT] = FrontLineBot(rasa_webhook.OneVotePerCaller(knowledge, store), policy)
    rasa_webhook.setup(app, settings.action_server_rate_per_minute)
    app[kb.BOT_CONSOLE] = BotConsole(
        lambda knowledge: FrontLineBot(knowledge, policy),
        app[ARTICLES],
        settings.effective_public_url,
    )
    app[BOT_RUNNER] = BotRunner(bot, service, store, settings.bot_rules)
    app[kb.SUGGESTIONS] = SuggestionService(store, keeper, app[ARTICLES])

    files = FileAttachmentStore(settings.data_dir / "attachments", settings.max_attachment_bytes)
    app[ATTACHMENTS] = files
    calls = _call_controller(settings, store, service, bus, files, speech)
    channels = _build_channels(
        settings,
        ChannelContext(
            sink=service,
            store=store,
            bus=bus,
            max_text_chars=settings.max_text_chars,
            public_url=settings.effective_public_url,
            default_inbox=settings.default_inbox,
            options={},
            attachments=files,
            data_dir=settings.data_dir,
            calls=calls,
        ),
    )
    # An adapter may deliver for more channel names than its own (`sends_for`: email sends
    # the replies to fax contacts through the fax gateway).
    senders = {alias: ch for ch in channels.values() for alias in getattr(ch, "sends_for", ())}
    outbox = Outbox(store, {**senders, **channels}, _retry_policies(settings, senders, channels))
    service.on_outbound = outbox.submit
    app[OUTBOX] = outbox
    app[AGENT_SOCKETS] = set()

    handlers = [
        *health.HANDLERS,
        *auth.HANDLERS,
        *conversations.HANDLERS,
        *kb.HANDLERS,
        *help_center.HANDLERS,
        *agent_ws.HANDLERS,
        *openapi.HANDLERS,
        *rasa_webhook.HANDLERS,
        *attachments.HANDLERS,
        *invites.HANDLERS,
    ]
    for ch in channels.values():
        if isinstance(ch, HttpChannel):
            handlers.extend(ch.handlers())
    routing_service = _routing_service(settings, store, service, bus)
    if routing_service is not None:  # off unless a policy is configured
        app[routing_api.ROUTING] = routing_service
        handlers.extend(routing_api.HANDLERS)
    app[ENDPOINTS] = endpoints_of(handlers)
    app.add_routes(routes(handlers))
    app.add_routes(pages.routes())
    _allow_widget_origins(app, settings.webchat_allowed_origins)

    app.cleanup_ctx.append(_storage(settings, store))
    app.cleanup_ctx.append(_bus(bus, store))
    if calls is not None:  # before the transports answer: calls follow their conversation
        app[CALL_CONTROL] = calls
        if routing_service is not None:
            calls.queue_position = routing_service.queue_position
        app.cleanup_ctx.append(_calls(calls, bus))
    app.cleanup_ctx.append(_channels(list(channels.values()), outbox))
    app.cleanup_ctx.append(_knowledge_base(keeper, bus))
    app.cleanup_ctx.append(_kb_suggestions(app[kb.SUGGESTIONS], bus))
    if settings.bot_anywhere:
        app.cleanup_ctx.append(_bot(app[BOT_RUNNER], bus))
    if routing_service is not None:
        app.cleanup_ctx.append(_routing(routing_service))
    # Close websockets when shutdown starts, not after aiohttp's grace period: clients
    # reconnect to a live process at once.
    app.on_shutdown.append(_close_sockets(list(channels.values())))
    if settings.demo:
        app.on_startup.append(_seed_demo)
        app.on_shutdown.append(_stop_demo_seed)
    return app


def _retry_policies(
    settings: Settings, senders: dict[str, Channel], channels: dict[str, Channel]
) -> Callable[[str], RetryPolicy]:
    """The outbox's retry policy per channel (`outbox_retry`); a row for a channel nobody
    knows is a typo that would silently not apply, so it stops start-up."""
    known = {*OUTBOX_RETRY_DEFAULTS, *REGISTRY, *senders, *channels}
    unknown = sorted(set(settings.outbox_retry) - known)
    if unknown:
        raise ConfigError(
            f"outbox_retry ({ENV_PREFIX}OUTBOX_RETRY): unknown channel {', '.join(unknown)};"
            f" use one of {', '.join(sorted(known))}"
        )

    @functools.cache
    def policy(channel: str) -> RetryPolicy:
        rule = settings.outbox_retry_rule(channel)
        assert rule.first_retry and rule.max_retry and rule.lifetime
        return RetryPolicy(rule.first_retry, rule.max_retry, rule.lifetime)

    return policy


def _routing_service(
    settings: Settings, store: SqlStore, service: ConversationService, bus: EventBus
) -> RoutingService | None:
    """The skill-based router when `routing_policy` names a policy file (or `demo_routing`
    asks for the demo shop's), else None."""
    path = settings.routing_policy
    if path is None and settings.demo and settings.demo_routing:
        path = demo_team.POLICY
    if path is None:
        return None
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"routing_policy: cannot read {path}: {exc}") from None
    return RoutingService(store, service, bus, source, source_name=str(path), say=say_in)


def _call_controller(
    settings: Settings,
    store: SqlStore,
    service: ConversationService,
    bus: EventBus,
    files: FileAttachmentStore,
    speech: tuple[LiveSpeechToText, TextToSpeech] | None,
) -> CallController | None:
    """The phone line's call controller when `channels.voice` is configured, else None."""
    if VOICE not in settings.channels:
        return None
    stt, tts = speech if speech is not None else _speech_engines(settings)
    return CallController(
        store=store,
        conversations=service,
        bus=bus,
        attachments=files,
        speech_to_text=stt,
        text_to_speech=tts,
        flows=FlowFile(settings.phone_flows or DEMO_PHONE),
    )


def _speech_engines(settings: Settings) -> tuple[LiveSpeechToText, TextToSpeech]:
    """The bundled live engines (Vosk, pyttsx3 over espeak-ng) as the speech settings say."""
    from channels.speech import Pyttsx3Speech, VoskLiveSpeech  # loads vosk: phone hubs only

    return VoskLiveSpeech.from_settings(settings), Pyttsx3Speech.from_settings(settings)


@runtime_checkable
class SpeechEngine(Protocol):
    """What the bundled speech engines add to their ports: loading up front, and closing."""

    async def preload(self) -> None: ...
    def close(self) -> None: ...


def _calls(calls: CallController, bus: EventBus):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        engines = [calls.stt, calls.tts]
        for engine in engines:  # models and voices loaded now, not on the first caller's words
            if isinstance(engine, SpeechEngine):
                await engine.preload()
        calls.follow(bus)
        yield
        await calls.close()
        for engine in engines:
            if isinstance(engine, SpeechEngine):
                engine.close()

    return ctx


def _routing(routing: RoutingService):  # type: ignore[no-untyped-def]
    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        await routing.start()
        yield
        await routing.close()

    return ctx


def _build_channels(settings: Settings, base: ChannelContext) -> dict[str, Channel]:
    """Web chat plus every channel named under `channels` in the settings, each handed its
    own options; an unknown name stops start-up with the setting named."""
    names = dict.fromkeys([*ALWAYS_ENABLED_CHANNELS, *settings.channels])
    channels: dict[str, Channel] = {}
    for name in names:
        try:
            cls = channel_class(name)
        except KeyError as exc:
            raise ConfigError(f"channels.{name}: {exc.args[0]}") from None
        options = dict(settings.channels.get(name, {}))
        if name == "webchat":
            options.setdefault("rate_per_s", settings.webchat_rate_per_s)
            options.setdefault("burst", settings.webchat_burst)
        channels[name] = cls(dataclasses.replace(base, options=options))
    return channels


PUBLIC_PREFIXES = ("/api/webchat/", "/api/help/")


def _allow_widget_origins(app: web.Application, origins: list[str]) -> None:
    """Sites embedding the widget call /api/webchat/* and the help center /api/help/*
    cross-origin (no cookies involved)."""
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False, allow_headers=("Content-Type",), max_age=3600
    )
    cors = aiohttp_cors.setup(app, defaults={})
    for route in list(app.router.routes()):
        if route.resource is not None and route.resource.canonical.startswith(PUBLIC_PREFIXES):
            cors.add(route, {origin: options for origin in origins})


def _storage(settings: Settings, store: SqlStore):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await asyncio.to_thread(migrate.upgrade, settings.effective_database_url)
        await store.ping()
        await store.start()
        yield
        await store.close()

    return ctx


def bus_publisher(bus: EventBus) -> Callable[[Sequence[Event]], None]:
    """The store's commit hook: every committed event goes out on the bus."""

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

    return publish


def _bus(bus: EventBus, store: SqlStore):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await bus.start()
        store.on_commit = bus_publisher(bus)
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


def _knowledge_base(keeper: IndexKeeper, bus: EventBus):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await keeper.open()
        unsubscribe = keeper.follow(bus)
        keeper.check_in_background()
        yield
        unsubscribe()
        await keeper.close()

    return ctx


def _kb_suggestions(suggestions: SuggestionService, bus: EventBus):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        unsubscribe = suggestions.follow(bus)  # learning from traffic (issue #22)
        yield
        unsubscribe()
        await suggestions.drain()

    return ctx


def _bot(runner: BotRunner, bus: EventBus):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        unsubscribe = runner.follow(bus)
        resumed = await runner.resume()
        if resumed:
            log.info("the bot answers %d customers left waiting by an earlier run", resumed)
        yield
        unsubscribe()
        await runner.close()

    return ctx


def _close_sockets(channels: list[Channel]):  # type: ignore[no-untyped-def]
    async def on_shutdown(app: web.Application) -> None:
        for ch in channels:
            await ch.stop()
        live = app[AGENT_SOCKETS]
        for ws in list(live):
            await ws.close(code=1001, message=b"server shutting down")

    return on_shutdown


def decision_policy(settings: Settings) -> DecisionPolicy:
    """The bot's answer/clarify/escalate policy from the settings."""
    return DecisionPolicy(
        clarify_margin=settings.bot_clarify_margin,
        clarify_below=settings.bot_clarify_below,
        max_misses=settings.bot_max_misses,
        answer_thresholds=dict(settings.bot_answer_thresholds),
        clarify_margins=dict(settings.bot_clarify_margins),
    )


def bot_decider(settings: Settings) -> PolicyDecider:
    """The bot's decision, replayable on a search result (`omnihub kb evaluate/calibrate`)."""
    return PolicyDecider(decision_policy(settings))


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
    try:
        await app[AGENTS].add(
            settings.demo_editor_email, "Demo Editor", Role.EDITOR, settings.demo_agent_password
        )
    except HubError as exc:
        if exc.code != "agent_exists":
            raise
    if settings.demo_routing and routing_api.ROUTING in app:
        await demo_team.seed(settings, app[AGENTS], app[routing_api.ROUTING])
    # In the background: the hub answers at once and the articles become searchable a moment
    # later (importing and indexing them takes a second or two).
    app[DEMO_FAQ_TASK] = asyncio.create_task(_seed_demo_faq(app), name="omnihub-demo-faq")


async def _stop_demo_seed(app: web.Application) -> None:
    if (seeding := app.get(DEMO_FAQ_TASK)) is not None:
        seeding.cancel()
        await asyncio.gather(seeding, return_exceptions=True)


async def _seed_demo_faq(app: web.Application) -> None:
    # Idempotent: a restart finds every article unchanged and writes nothing.
    report = await kb_io.import_articles(app[ARTICLES], DEMO_FAQ, "jsonl", publish=True)
    if not report.ok:
        log.error("the demo FAQ has bad rows: %s", "; ".join(report.errors))
    else:
        log.info("demo FAQ: %s", report.summary())
    # The curated Chinese synonyms, once: after that they are the editors' to change.
    if not await app[ARTICLES].synonyms():
        await app[ARTICLES].set_synonyms(demo_synonym_groups(), None)
