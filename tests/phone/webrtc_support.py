"""A hub whose voice channel answers WebRTC calls with a recording test CallControl.

The hub's real call controller is built in another part; until it is wired into
`hub.api.create_app`, these tests build the app with `create_app` and add the real
`PhoneChannel` (with only `channels.voice.webrtc`) on a `ChannelContext` whose `calls` is
`RecordingCalls`, exactly as the composition root will hand it the controller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from channels.phone import PhoneChannel
from hub.api import create_app
from hub.api.keys import ATTACHMENTS, BUS, CONVERSATIONS, ENDPOINTS, SETTINGS, STORE
from hub.calls.media import AudioIn, CallInfo, Dtmf, HangUp, MediaSession
from hub.http import endpoints_of, routes
from hub.model import Conversation, Message
from hub.ports import ChannelContext, ChannelSendError, SendResult

PHONE = web.AppKey("test_phone", PhoneChannel)


@dataclasses.dataclass
class CallRecord:
    """What one call did, as the hub's side saw it."""

    info: CallInfo
    audio: bytearray = dataclasses.field(default_factory=bytearray)
    digits: list[str] = dataclasses.field(default_factory=list)
    hangup: HangUp | None = None
    played: bool | None = None
    ended: threading.Event = dataclasses.field(default_factory=threading.Event)
    answered: threading.Event = dataclasses.field(default_factory=threading.Event)


class RecordingCalls:
    """The test's CallControl: records the caller's audio and keys, plays `reply` once the
    first audio arrives, and hangs up from the hub's side when the caller presses `hang_up_on`.
    Thread-safe to read (the browser test runs the hub in a thread of its own)."""

    def __init__(self, reply: bytes = b"", hang_up_on: str = "#") -> None:
        self.reply = reply
        self.hang_up_on = hang_up_on
        self.calls: list[CallRecord] = []
        self.new_call = threading.Condition()

    async def handle(self, session: MediaSession) -> None:
        record = CallRecord(session.info)
        with self.new_call:
            self.calls.append(record)
            self.new_call.notify_all()
        player: asyncio.Task[bool] | None = None
        try:
            async for event in session.events():
                if isinstance(event, AudioIn):
                    record.audio += event.pcm
                    if player is None:
                        record.answered.set()
                        player = asyncio.create_task(session.play(self.reply))
                elif isinstance(event, Dtmf):
                    record.digits.append(event.digit)
                    if event.digit == self.hang_up_on:
                        await session.hang_up()
                elif isinstance(event, HangUp):
                    record.hangup = event
            if player is not None:
                record.played = await player
        finally:
            record.ended.set()

    async def deliver(self, conversation: Conversation, message: Message) -> SendResult:
        raise ChannelSendError("the test control speaks nothing", retryable=False)

    def wait_call(self, index: int, timeout: float = 30) -> CallRecord:
        with self.new_call:
            assert self.new_call.wait_for(lambda: len(self.calls) > index, timeout), "no call"
            return self.calls[index]


def phone_app(settings: Any, calls: RecordingCalls, webrtc: dict[str, Any]) -> web.Application:
    """The hub (`create_app`) plus the voice channel with `channels.voice.webrtc = webrtc`."""
    app = create_app(settings)
    ctx = ChannelContext(
        sink=app[CONVERSATIONS],
        store=app[STORE],
        bus=app[BUS],
        max_text_chars=app[SETTINGS].max_text_chars,
        public_url=app[SETTINGS].effective_public_url,
        default_inbox=app[SETTINGS].default_inbox,
        options={"webrtc": webrtc},
        attachments=app[ATTACHMENTS],
        data_dir=app[SETTINGS].data_dir,
        calls=calls,
    )
    phone = PhoneChannel(ctx)
    app[PHONE] = phone
    app.add_routes(routes(phone.handlers()))
    app[ENDPOINTS].extend(endpoints_of(phone.handlers()))  # in the OpenAPI document too

    async def run(_app: web.Application) -> AsyncIterator[None]:
        await phone.start()
        yield
        await phone.stop()

    app.cleanup_ctx.append(run)
    return app


class HubThread:
    """`phone_app` served on 127.0.0.1 from a thread with its own event loop, for the browser
    test (Playwright's sync API owns the test thread)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test hub", daemon=True)

    def __enter__(self) -> HubThread:
        self._thread.start()
        assert self._ready.wait(60), "the hub did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the hub did not stop"

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run `coro` on the hub's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _main(self) -> None:
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(self.app)
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            self.url = f"http://127.0.0.1:{port}"
        except BaseException as exc:  # reported to the test thread, which raises it
            self._error = exc
            self._ready.set()
            await runner.cleanup()
            return
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
