"""Relay mode end to end in the inbox (issue #19): headless Chromium signed in as an agent
while a Twilio caller (tests/phone/twilio_caller.py, espeak-ng Korean) is on the line of a real
`omnihub serve` started from plain settings (`channels.voice.twilio`, the Korean test flows),
with the hub's real speech engines. The agent sees the caller's words as a live caption, types
a reply that is spoken to the caller (recognised at the caller's side by the real Korean Vosk
model), and sees the call end.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from channels.speech import Pyttsx3Speech, VoskLiveSpeech
from tests.conftest import LiveHub, start_live_hub
from tests.phone.e2e_support import (
    AGENT_REPLY,
    AUTH_TOKEN,
    CALLER,
    FLOWS,
    MENU_WORDS,
    OPEN_LINE,
    SENTENCE,
    SYNTH_SLACK_BYTES,
    recognise,
    spoken,
)
from tests.phone.twilio_caller import TwilioCaller
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible

expect = shared.expect
Page = shared.Page

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page
T = TypeVar("T")

# Every text the call's caption line showed (a partial caption lasts a few hundred ms).
WATCH_CAPTIONS = """() => {
  window.__captions = [];
  const node = document.querySelector('[data-testid="call-caption"]');
  new MutationObserver(() => window.__captions.push(node.textContent))
    .observe(node, {childList: true, characterData: true, subtree: true});
}"""


class CallerLine:
    """The caller's side, on an event loop of its own (Playwright's sync API owns this
    thread): each method runs one step of the call there and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.http: aiohttp.ClientSession | None = None
        self.call: TwilioCaller | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def shut() -> None:
            if self.call is not None and not self.call.ws.closed:
                await self.call.close()
            if self.http is not None:
                await self.http.close()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def dial(self, url: str) -> TwilioCaller:
        async def dial() -> TwilioCaller:
            self.http = aiohttp.ClientSession()
            return await TwilioCaller.dial(
                self.http, url, caller=CALLER, dialled=OPEN_LINE, auth_token=AUTH_TOKEN
            )

        self.call = self.run(dial())
        return self.call


@pytest.fixture
def phone_hub(tmp_path: Path) -> Iterator[LiveHub]:
    flows = tmp_path / "phone.yaml"
    flows.write_bytes(FLOWS.read_bytes())
    channels = {"voice": {"twilio": {"auth_token": AUTH_TOKEN}}}
    proc = start_live_hub(
        tmp_path, OMNIHUB_CHANNELS=json.dumps(channels), OMNIHUB_PHONE_FLOWS=str(flows)
    )
    try:
        yield LiveHub(proc)
    finally:
        proc.stop()


@pytest.fixture
def line() -> Iterator[CallerLine]:
    caller = CallerLine()
    yield caller
    caller.close()


def test_the_agent_follows_and_answers_a_call_from_the_inbox(
    phone_hub: LiveHub, line: CallerLine, open_page: Any
) -> None:
    call = line.dial(phone_hub.url)
    line.run(call.until(lambda: len(call.heard) >= 4000))  # the menu is being said
    line.run(call.press("2"))  # the agent queue
    # The caller's first words make the conversation a row in the inbox.
    line.run(call.send_audio(spoken(SENTENCE)))

    agent = open_page()
    shared.sign_in(agent, phone_hub)
    row = agent.get_by_test_id("conversation-row").filter(has_text="얼마")
    expect(row).to_have_count(1)
    row.click()
    box = agent.get_by_test_id("conv-call")
    expect(box).to_be_visible()
    expect(agent.get_by_test_id("call-state")).to_have_text("On the line now (phone number)")
    agent.evaluate(WATCH_CAPTIONS)

    heard_from = len(call.heard)  # the caller hears nothing more until the agent replies
    # The caller talks, at the pace of speech: the agent reads along as it is recognised.
    line.run(call.send_audio(spoken(SENTENCE), realtime=True))
    agent.wait_for_function(
        "() => window.__captions.some((t) => t.startsWith('Caller: ') && t.length > 8)"
    )
    assert_accessible(agent)
    # The caller has finished (their last words are a message, the caption line is clear):
    # an agent reply spoken while the caller still talks is cut short by barge-in, as it
    # should be, so the test replies after.
    agent.wait_for_function(
        """() => document.querySelectorAll(
          '[data-testid="conv-message"][data-author="customer"]').length >= 2"""
    )
    expect(agent.get_by_test_id("call-caption")).to_have_text("")

    # The agent's typed reply is read out to the caller (recognised at their side).
    agent.get_by_test_id("reply-input").fill(AGENT_REPLY)
    agent.get_by_test_id("reply-input").press("Enter")
    expect(agent.get_by_test_id("call-caption")).to_have_text(
        f"Spoken to the caller: {AGENT_REPLY}"
    )
    # As long as espeak-ng makes it (the hub's voice: same engine, same settings).
    voice = Pyttsx3Speech()
    try:
        size = len(line.run(voice.synthesize(AGENT_REPLY, sample_rate=8000, language="ko"))) // 2
    finally:
        voice.close()
    try:
        line.run(
            call.until(
                lambda: (
                    len(call.heard) >= heard_from + size - SYNTH_SLACK_BYTES
                    and call.marks_echoed == len(call.marks_received)
                )
            )
        )
    except TimeoutError:
        raise AssertionError(
            f"the reply did not reach the caller: {len(call.heard) - heard_from} of {size}"
            f" bytes, marks {call.marks_echoed}/{len(call.marks_received)}, clears {call.clears}"
        ) from None
    ears = VoskLiveSpeech()
    try:
        reply = call.heard_pcm()[heard_from * 2 :]
        assert line.run(recognise(ears, reply, MENU_WORDS)) == "아니요"
    finally:
        ears.close()

    # The caller hangs up: the call box says so.
    line.run(call.stop())
    expect(agent.get_by_test_id("call-state")).to_contain_text("Call ended after")
    expect(agent.get_by_test_id("call-state")).to_contain_text("the caller hung up")
