"""Typed application state."""

from __future__ import annotations

from aiohttp import web

from hub.config import Settings
from hub.http import Endpoint
from hub.ports import AttachmentStore, EventBus
from hub.services.agents import AgentService
from hub.services.articles import ArticleService
from hub.services.bot_runner import BotRunner
from hub.services.conversations import ConversationService
from hub.services.outbox import Outbox
from hub.storage import SqlStore

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", SqlStore)
BUS = web.AppKey("bus", EventBus)
CONVERSATIONS = web.AppKey("conversations", ConversationService)
AGENTS = web.AppKey("agents", AgentService)
OUTBOX = web.AppKey("outbox", Outbox)
ENDPOINTS = web.AppKey("endpoints", list[Endpoint])
AGENT_SOCKETS = web.AppKey("agent_sockets", set[web.WebSocketResponse])
ARTICLES = web.AppKey("articles", ArticleService)
BOT_RUNNER = web.AppKey("bot_runner", BotRunner)
ATTACHMENTS = web.AppKey("attachments", AttachmentStore)
