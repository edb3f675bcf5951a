"""Files from Telegram users: fetched with getFile, stored as attachments, refused politely
when too big; voice notes transcribed (real Korean speech, real Vosk model)."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from typing import Any

import pytest

from channels.telegram import TelegramChannel
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import only_conversation, telegram_conversations
from tests.channels.telegram.peer import BotApiPeer
from tests.channels.telegram.test_outbound import PDF, PNG
from tests.support import Agent

# espeak-ng's Korean is robotic; the Korean Vosk model reliably recognises this phrase from
# it (checked at several speeds and bitrates before choosing it). "Welcome. How much is it?"
KOREAN_PHRASE = "어서 오세요. 얼마예요?"


def korean_voice_note(text: str) -> bytes:
    """`text` spoken by espeak-ng, encoded as Telegram voice notes are: OGG/Opus."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", "140", "--stdout", text], capture_output=True, check=True
    ).stdout
    return subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-ar", "48000", "-ac", "1",
         "-c:a", "libopus", "-b:a", "24k", "-application", "voip", "-f", "ogg", "pipe:1"],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout  # fmt: skip


async def download(agent: Agent, attachment: dict[str, Any]) -> bytes:
    async with agent.http.get(agent.base + attachment["url"]) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def test_a_photo_is_stored_as_an_attachment_with_its_caption(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    file_id = peer.add_file(PNG, "photos/file_1.jpg")
    update = {"update_id": 31, **u.photo(u.ANNA, file_id, len(PNG), caption="broken box")}
    for _ in range(2):  # the second time as Telegram resends: stored once, fetched once
        status, _ = await peer.post_webhook(json.dumps(update).encode())
        assert status == 200
    detail = await only_conversation(agent)
    [message] = detail["messages"]
    assert message["text"] == "broken box"
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "image/jpeg"
    assert attachment["size"] == len(PNG)
    assert await download(agent, attachment) == PNG
    [get_file] = peer.calls_of("getFile")
    assert get_file.params["file_id"] == file_id  # the largest size, not the thumbnail


async def test_a_document_without_caption_is_stored_under_its_name(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    file_id = peer.add_file(PDF, "documents/file_2.pdf")
    update = u.document(u.ANNA, file_id, len(PDF), "receipt.pdf", "application/pdf")
    status, _ = await peer.post_webhook(update)
    assert status == 200
    [message] = (await only_conversation(agent))["messages"]
    assert message["text"] == ""
    [attachment] = message["attachments"]
    assert (attachment["filename"], attachment["content_type"]) == (
        "receipt.pdf",
        "application/pdf",
    )
    assert await download(agent, attachment) == PDF


@pytest.mark.parametrize("telegram_extra", [{"max_file_bytes": 4096}])
async def test_a_file_over_the_limit_is_refused_with_a_reply_not_a_crash(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels.telegram")
    big = bytes(10_000)
    file_id = peer.add_file(big, "documents/big.bin")
    # Announced as big: refused before anything is downloaded.
    status, _ = await peer.post_webhook(
        u.document(u.ANNA, file_id, len(big), "big.bin", "application/octet-stream")
    )
    assert status == 200
    assert not peer.calls_of("getFile")
    # Size not announced in the update: getFile tells, still nothing is downloaded.
    status, _ = await peer.post_webhook(
        u.message(u.ANNA, document={"file_id": file_id, "file_unique_id": "ubig"})
    )
    assert status == 200
    refusals = await peer.wait_for("sendMessage", count=2)
    for call in refusals:
        assert int(call.params["chat_id"]) == 7001
        assert "too large" in call.params["text"]
    assert await telegram_conversations(agent) == []
    assert "refused a document" in caplog.text


async def test_stickers_and_other_unread_kinds_get_a_polite_answer(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    sticker = {"file_id": "st1", "file_unique_id": "ust1", "type": "regular", "width": 512,
               "height": 512, "is_animated": False, "is_video": False}  # fmt: skip
    status, _ = await peer.post_webhook(u.message(u.LI, sticker=sticker))
    assert status == 200
    [answer] = await peer.wait_for("sendMessage")
    assert answer.params["text"] == "抱歉，我们只能接收文字、图片、文件和语音消息。"
    assert await telegram_conversations(agent) == []


async def test_a_korean_voice_note_is_transcribed_and_kept_as_audio(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    audio = korean_voice_note(KOREAN_PHRASE)
    file_id = peer.add_file(audio, "voice/file_3.oga")
    status, _ = await peer.post_webhook(u.voice(u.ANNA, file_id, len(audio)))
    assert status == 200
    [message] = (await only_conversation(agent))["messages"]
    assert "어서 오세요" in message["text"]
    assert "얼마" in message["text"]
    [attachment] = message["attachments"]
    assert attachment["content_type"] == "audio/ogg"
    assert await download(agent, attachment) == audio


async def test_a_voice_note_that_is_not_audio_is_kept_with_a_placeholder(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    junk = b"this is not an ogg file" * 10
    file_id = peer.add_file(junk, "voice/file_4.oga")
    status, _ = await peer.post_webhook(u.voice(u.ANNA, file_id, len(junk)))
    assert status == 200
    [message] = (await only_conversation(agent))["messages"]
    assert message["text"] == "[voice message]"
    assert len(message["attachments"]) == 1


async def test_a_resend_while_a_voice_note_is_still_transcribed_stores_it_once(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    audio = korean_voice_note(KOREAN_PHRASE)
    file_id = peer.add_file(audio, "voice/file_5.oga")
    body = json.dumps({"update_id": 9191, **u.voice(u.ANNA, file_id, len(audio))}).encode()
    # Telegram resends an update it got no answer for in time; both copies arrive together.
    results = await asyncio.gather(peer.post_webhook(body), peer.post_webhook(body))
    assert [status for status, _ in results] == [200, 200]
    [message] = (await only_conversation(agent))["messages"]
    assert "어서 오세요" in message["text"]
    assert len(peer.calls_of("getFile")) == 1  # downloaded and transcribed once
