"""A web call end to end through the real call controller (issue #19): the hub started from
plain settings (`channels.voice.webrtc`, `phone_flows` = tests/phone/ko_flows.yaml) with its
real speech engines; headless Chromium with a fake microphone presses "Call us" in the
widget, hears the greeting, and presses a key that takes a menu branch. (The transport-level
browser tests with a recording call handler stay in tests/phone/test_webrtc.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_sync
import pytest

from hub.api import create_app
from hub.api.keys import STORE
from hub.config import Settings
from hub.model import EventKind
from hub.ports import ConversationFilter
from tests.phone.audio import wav_bytes
from tests.phone.e2e_support import FLOWS
from tests.phone.test_webrtc import REMOTE_LEVEL_JS, launch, press_call_us, wait_until
from tests.phone.webrtc_support import HubThread
from tests.web.accessibility import assert_accessible

expect = playwright_sync.expect
MIC_RATE = 48_000


@pytest.fixture(scope="module")
def quiet_mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The visitor's microphone: a quiet room (the menu is chosen by keypad here; spoken
    choices are covered over Twilio, where the test controls when the caller talks)."""
    path = tmp_path_factory.mktemp("mic") / "quiet.wav"
    path.write_bytes(wav_bytes(bytes(MIC_RATE * 2), MIC_RATE))
    return path


@pytest.fixture(scope="module")
def playwright() -> Iterator[playwright_sync.Playwright]:
    with playwright_sync.sync_playwright() as pw:
        yield pw


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubThread]:
    flows = tmp_path / "phone.yaml"
    flows.write_bytes(FLOWS.read_bytes())
    settings = Settings(
        data_dir=tmp_path / "data",
        bot_enabled=False,
        log_level="warning",
        channels={"voice": {"webrtc": {"no_audio_timeout_s": 10}}},
        phone_flows=flows,
    )
    with HubThread(create_app(settings)) as running:
        yield running


def call_steps(hub: HubThread) -> list[dict[str, Any]]:
    """The call.step events of the (one) voice conversation."""

    async def read() -> list[dict[str, Any]]:
        def steps(uow: Any) -> list[dict[str, Any]]:
            convs = uow.conversations(ConversationFilter(include_empty=True))
            return [
                dict(e.payload)
                for c in convs
                if c.channel == "voice"
                for e in uow.events(c.id)
                if e.kind is EventKind.CALL_STEP
            ]

        return await hub.app[STORE].read(steps)

    found: list[dict[str, Any]] = hub.call(read())
    return found


def test_call_us_reaches_the_call_controller_and_a_key_takes_a_branch(
    playwright: playwright_sync.Playwright, quiet_mic: Path, hub: HubThread
) -> None:
    browser = launch(playwright, quiet_mic, grant=True)
    errors: list[str] = []
    try:
        page = browser.new_context(locale="ko-KR").new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        press_call_us(page, hub, "Call us")  # a ko-KR visitor gets the English strings
        expect(page.get_by_test_id("omnihub-call-hangup")).to_be_focused()
        # The greeting, synthesised by the hub, reaches the page's speaker.
        level = page.evaluate(REMOTE_LEVEL_JS, [0.02, 15_000])
        assert level >= 0.02, f"the hub's greeting did not reach the page (peak RMS {level})"
        wait_until(lambda: any(s.get("name") == "menu" for s in call_steps(hub)), "the menu step")
        assert_accessible(page)

        page.get_by_test_id("omnihub-keypad").locator('[data-key="1"]').click()
        wait_until(
            lambda: any(s.get("name") == "refund" for s in call_steps(hub)), "the refund branch"
        )
        [choice] = [s for s in call_steps(hub) if s["step"] == "menu_choice"]
        assert (choice["menu"], choice["digit"], choice["option"]) == ("menu", "1", 1)
        page.get_by_test_id("omnihub-call-hangup").click()
        wait_until(lambda: any(s["step"] == "hang_up" for s in call_steps(hub)), "the hang-up")
        [hang_up] = [s for s in call_steps(hub) if s["step"] == "hang_up"]
        assert hang_up["by"] == "caller"
    finally:
        browser.close()
    assert errors == []
