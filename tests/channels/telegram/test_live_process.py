"""A real `omnihub serve` process configured through OMNIHUB_CHANNELS: it connects its bot,
takes a webhook update and answers through Telegram."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.channels.telegram import updates as u
from tests.channels.telegram.peer import TOKEN, BotApiPeer
from tests.support import Agent, HubProcess


async def test_a_hub_process_configured_by_environment_serves_its_bot(
    tmp_path: Path, peer: BotApiPeer
) -> None:
    proc = HubProcess(env={})
    channels = {
        "telegram": {
            "inboxes": {"helpdesk": {"token": TOKEN, "webhook_secret": "s3cret-s3cret-s3cret"}},
            "base_url": peer.base_url,
            "base_file_url": peer.base_file_url,
        }
    }
    proc.env = {
        "OMNIHUB_DATA_DIR": str(tmp_path / "live"),
        "OMNIHUB_DEMO": "1",
        "OMNIHUB_LOG_LEVEL": "warning",
        "OMNIHUB_PUBLIC_URL": proc.url,
        "OMNIHUB_CHANNELS": json.dumps(channels),
    }
    proc.log_path = tmp_path / "hub.log"
    await asyncio.to_thread(proc.start)
    try:
        [hooked] = await peer.wait_for("setWebhook")
        assert hooked.params["url"] == f"{proc.url}/api/telegram/helpdesk/webhook"
        assert hooked.params["secret_token"] == "s3cret-s3cret-s3cret"
        status, _ = await peer.post_webhook(u.text(u.ANNA, "도와주세요"))
        assert status == 200
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            agent = await Agent(http, proc.url).login()
            _, body = await agent.get("/api/conversations", channel="telegram")
            [conv] = body["conversations"]
            assert conv["inbox"] == "helpdesk"
            assert conv["last_message"]["text"] == "도와주세요"
            status, _ = await agent.post(
                f"/api/conversations/{conv['id']}/messages", {"text": "네, 말씀하세요."}
            )
            assert status == 201
        [sent] = await peer.wait_for("sendMessage")
        assert (int(sent.params["chat_id"]), sent.params["text"]) == (7001, "네, 말씀하세요.")
    finally:
        await asyncio.to_thread(proc.stop)
    assert len(peer.calls_of("getMe")) == 1
