"""What the SIP transport adds around voip-utils: G.711 μ-law RTP packets, RFC 4733 keypad
events and the SDP offer/answer for them.

voip-utils 0.5 speaks only Opus on its RTP side (its SDP answer and `RtpDatagramProtocol` are
Opus-only) and drops telephone-event packets, while a PBX trunk, an ATA or a softphone offers
PCMU and sends keypad presses as RFC 4733 events. These are pure functions over bytes and text,
so they are tested without a socket.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address

PCMU = 0  # RFC 3551 static payload type of G.711 μ-law at 8000 Hz
SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8000 Hz: what every PBX sends and expects
ULAW_SILENCE = b"\xff" * FRAME_SAMPLES
EVENT_DIGITS = "0123456789*#ABCD"  # RFC 4733 events 0-15


class SdpError(ValueError):
    """An SDP body the hub cannot read."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """An RTP packet (RFC 3550) with its CSRCs, header extension and padding removed, or None
    when `data` is not one (too short, not version 2, lengths that do not add up)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    first, second, sequence, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 4 bytes of profile and length, then length words
        if len(data) < start + 4:
            return None
        (words,) = struct.unpack("!H", data[start + 2 : start + 4])
        start += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if start > end:
        return None
    return RtpPacket(second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[start:end])


def build_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
) -> bytes:
    """One RTP version 2 packet with no CSRCs, extension or padding."""
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return (
        struct.pack("!BBHII", 0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        + payload
    )


class DtmfEvents:
    """Turns a stream of RFC 4733 telephone-event packets into one digit per key press.

    A sender repeats each event's packets while the key is held and sends its end packet three
    times; all of them carry the timestamp of the event's start, which is what identifies a
    press. The digit is reported at the first packet seen for a press, so a lost start or
    end packet neither drops nor repeats it.
    """

    def __init__(self, memory: int = 32) -> None:
        self._seen: deque[tuple[int, int]] = deque(maxlen=memory)

    def feed(self, packet: RtpPacket) -> str | None:
        """The digit `packet` starts, or None (a repeat, an end packet of a press already
        reported, a non-keypad event such as flash, or a malformed payload)."""
        if len(packet.payload) < 4:
            return None
        event = packet.payload[0]
        if event >= len(EVENT_DIGITS):
            return None
        press = (packet.ssrc, packet.timestamp)
        if press in self._seen:
            return None
        self._seen.append(press)
        return EVENT_DIGITS[event]


def dtmf_relay_digit(content_type: str, body: str) -> str | None:
    """The digit of a SIP INFO keypad press (`application/dtmf-relay`'s `Signal=5` or
    `application/dtmf`'s bare digit), or None."""
    kind = content_type.split(";")[0].strip().lower()
    value = ""
    if kind == "application/dtmf-relay":
        for line in body.splitlines():
            name, _, rest = line.partition("=")
            if name.strip().lower() == "signal":
                value = rest.strip()
    elif kind == "application/dtmf":
        value = body.strip()
    if value.isdigit() and 0 <= int(value) < len(EVENT_DIGITS):  # "10" is *, "11" is #
        return EVENT_DIGITS[int(value)]
    value = value.upper()
    return value if len(value) == 1 and value in EVENT_DIGITS else None


@dataclass(slots=True)
class Media:
    """One `m=` line of an offer, with the attributes that follow it."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    address: str | None = None  # its own `c=` line, if any
    rtpmap: dict[int, str] = field(default_factory=dict)  # payload type -> "pcmu/8000"
    direction: str = "sendrecv"


@dataclass(frozen=True, slots=True)
class SdpOffer:
    """The parts of an SDP offer (RFC 4566) an audio-only G.711 answer needs."""

    address: str  # where the caller wants its audio
    port: int
    media: tuple[Media, ...]
    audio: Media
    pcmu: int | None  # the payload type of PCMU/8000 in the audio offer
    telephone_event: int | None  # of telephone-event/8000
    codecs: tuple[str, ...]  # as offered, for the log line when none is acceptable

    @property
    def receives_audio(self) -> bool:
        """Whether the caller wants our RTP (not on hold, not send-only, a real port)."""
        return self.audio.direction in ("sendrecv", "recvonly") and self.port != 0

    @property
    def sends_audio(self) -> bool:
        """Whether the caller will send RTP (not on hold, not receive-only)."""
        return self.audio.direction in ("sendrecv", "sendonly") and self.port != 0


def _connection_address(value: str, line: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[1] != "IP4":
        raise SdpError(f"only IPv4 connections are supported: {line[:60]!r}")
    address = parts[2].split("/")[0]
    try:
        IPv4Address(address)
    except ValueError:
        raise SdpError(f"bad connection address: {address[:40]!r}") from None
    return address


def parse_offer(body: str) -> SdpOffer:
    """Read an SDP offer; SdpError says what is wrong with it."""
    session_address: str | None = None
    session_direction = "sendrecv"
    media: list[Media] = []
    directions: list[str | None] = []  # a stream's own a=sendonly etc., else the session's
    for raw in body.splitlines():
        line = raw.strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or len(key) != 1:
            raise SdpError(f"not an SDP line: {line[:60]!r}")
        current = media[-1] if media else None
        if key == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError(f"bad media line: {line[:60]!r}")
            port = int(parts[1].split("/")[0])
            media.append(Media(parts[0], port, parts[2], tuple(parts[3:])))
            directions.append(None)
        elif key == "c":
            address = _connection_address(value, line)
            if current is None:
                session_address = address
            else:
                current.address = address
        elif key == "a":
            name, _, attr = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                if current is None:
                    session_direction = name
                else:
                    directions[-1] = name
            elif name == "rtpmap" and current is not None:
                pt, _, codec = attr.partition(" ")
                if not pt.isdigit() or not codec:
                    raise SdpError(f"bad rtpmap: {line[:60]!r}")
                current.rtpmap[int(pt)] = codec.strip().lower()
    for stream, direction in zip(media, directions, strict=True):
        stream.direction = direction or session_direction
    parsed = tuple(media)
    audio = next((m for m in parsed if m.kind == "audio"), None)
    if audio is None:
        raise SdpError("no audio stream offered")
    where = audio.address or session_address
    if where is None:
        raise SdpError("no connection address")
    if audio.proto != "RTP/AVP":
        raise SdpError(f"unsupported media profile {audio.proto[:20]!r} (only plain RTP/AVP)")

    def encoding(fmt: str) -> str:
        pt = int(fmt) if fmt.isdigit() else -1
        return audio.rtpmap.get(pt) or ("pcmu/8000" if pt == PCMU else f"payload {fmt}")

    names = {fmt: encoding(fmt) for fmt in audio.formats}
    pcmu = next((int(f) for f, n in names.items() if n.startswith("pcmu/8000")), None)
    events = next((int(f) for f, n in names.items() if n.startswith("telephone-event/8000")), None)
    return SdpOffer(
        address=where,
        port=audio.port,
        media=parsed,
        audio=audio,
        pcmu=pcmu,
        telephone_event=events,
        codecs=tuple(names.values()),
    )


def answer_sdp(offer: SdpOffer, *, host: str, port: int, session_id: int, version: int) -> str:
    """Our answer (RFC 3264): PCMU and, when offered, telephone-event on the audio stream;
    every other stream refused with port 0, as many `m=` lines as the offer had."""
    assert offer.pcmu is not None
    direction = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(
        offer.audio.direction, "sendrecv"
    )
    lines = [
        "v=0",
        f"o=omnihub {session_id} {version} IN IP4 {host}",
        "s=omnihub",
        f"c=IN IP4 {host}",
        "t=0 0",
    ]
    for media in offer.media:
        if media is not offer.audio:
            lines.append(f"m={media.kind} 0 {media.proto} {media.formats[0]}")
            continue
        formats = [str(offer.pcmu)]
        if offer.telephone_event is not None:
            formats.append(str(offer.telephone_event))
        lines += [f"m=audio {port} RTP/AVP {' '.join(formats)}", f"a=rtpmap:{offer.pcmu} PCMU/8000"]
        if offer.telephone_event is not None:
            lines += [
                f"a=rtpmap:{offer.telephone_event} telephone-event/8000",
                f"a=fmtp:{offer.telephone_event} 0-15",
            ]
        lines += ["a=ptime:20", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"
