"""Twilio Media Streams on the wire: the events a stream sends, the voice webhook's
`X-Twilio-Signature`, the signed stream token and the TwiML that connects a call's stream.

Pure functions and pydantic models: no sockets, no clock (the time is passed in).

The Telnyx TeXML spellings of the same events (`stream_id`, `sequence_number`,
`media_format`, encoding `PCMU`) are read as well, so a Telnyx number pointed at the same
webhook works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MULAW_ENCODINGS = frozenset({"audio/x-mulaw", "PCMU"})
MAX_SID = 64  # Twilio's SIDs are 34 characters; Telnyx's ids are UUIDs
MAX_PARAMETER = 256


class _Event(BaseModel):
    # Twilio adds fields over time (sequenceNumber, timestamps): unknown fields are ignored.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Connected(_Event):
    event: Literal["connected"]


class MediaFormat(_Event):
    encoding: str = Field(max_length=64)
    sample_rate: int = Field(validation_alias=AliasChoices("sampleRate", "sample_rate"))
    channels: int = 1


class StartInfo(_Event):
    stream_sid: str | None = Field(
        None, max_length=MAX_SID, validation_alias=AliasChoices("streamSid", "stream_id")
    )
    call_sid: str = Field(
        "", max_length=MAX_SID, validation_alias=AliasChoices("callSid", "call_control_id")
    )
    custom_parameters: dict[str, Annotated[str, Field(max_length=MAX_PARAMETER)]] = Field(
        default_factory=dict,
        max_length=32,
        validation_alias=AliasChoices("customParameters", "custom_parameters"),
    )
    media_format: MediaFormat = Field(validation_alias=AliasChoices("mediaFormat", "media_format"))


class Start(_Event):
    event: Literal["start"]
    stream_sid: str | None = Field(
        None, max_length=MAX_SID, validation_alias=AliasChoices("streamSid", "stream_id")
    )
    start: StartInfo

    @property
    def sid(self) -> str | None:
        return self.stream_sid or self.start.stream_sid


class MediaBody(_Event):
    track: str = "inbound"
    payload: str


class Media(_Event):
    event: Literal["media"]
    media: MediaBody


class DtmfBody(_Event):
    digit: str = Field(pattern=r"^[0-9*#A-D]$")


class DtmfEvent(_Event):
    event: Literal["dtmf"]
    dtmf: DtmfBody


class MarkBody(_Event):
    name: str = Field(max_length=128)


class MarkEvent(_Event):
    event: Literal["mark"]
    mark: MarkBody


class Stop(_Event):
    event: Literal["stop"]


class ErrorEvent(_Event):
    """Telnyx reports a failed stream with an `error` event."""

    event: Literal["error"]
    payload: dict[str, object] = Field(default_factory=dict)


StreamEvent = Connected | Start | Media | DtmfEvent | MarkEvent | Stop | ErrorEvent
_EVENTS: TypeAdapter[StreamEvent] = TypeAdapter(
    Annotated[StreamEvent, Field(discriminator="event")]
)


class WireError(ValueError):
    """A frame that is not a Media Streams event; the message says why, for the log."""


def parse_event(data: str | bytes) -> StreamEvent:
    """One websocket text frame as its event, or WireError."""
    try:
        return _EVENTS.validate_json(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "frame"
        raise WireError(f"{where}: {err['msg']}") from None


def decode_payload(media: Media) -> bytes:
    """The μ-law bytes of a media event, or WireError when the payload is not base64."""
    try:
        return base64.b64decode(media.media.payload, validate=True)
    except ValueError:
        raise WireError("media.payload: not base64") from None


# --- the voice webhook's signature ---------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, form: Iterable[tuple[str, str]]) -> str:
    """`X-Twilio-Signature` as Twilio computes it: HMAC-SHA1 keyed with the account's auth
    token over the full URL Twilio requested followed by each POST parameter's name and value,
    sorted by name (and by value for a repeated name), base64-encoded."""
    signed = url + "".join(name + value for name, value in sorted(set(form)))
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def signature_ok(
    auth_token: str, urls: Iterable[str], form: Iterable[tuple[str, str]], sent: str
) -> bool:
    """True when `sent` is the signature of the request at one of `urls` (the public URL the
    number is configured with, and the URL the request arrived at)."""
    pairs = list(form)
    return any(
        hmac.compare_digest(sent.encode(), twilio_signature(auth_token, url, pairs).encode())
        for url in urls
    )


# --- the stream token -------------------------------------------------------------------------

_TOKEN = re.compile(r"^([0-9a-f]{1,12})\.([A-Za-z0-9_-]{32})$")


class StreamTokens:
    """Short-lived tokens the voice webhook puts in the TwiML as a stream `<Parameter>`; a
    stream is answered only with a token minted for its own CallSid. Signed, not stored: every
    hub process sharing the key accepts them."""

    def __init__(self, key: bytes, ttl: float):
        self._key = hmac.new(key, b"omnihub-twilio-stream", hashlib.sha256).digest()
        self.ttl = ttl

    def mint(self, call_sid: str, now: float) -> str:
        expires = f"{int(now + self.ttl):x}"
        return f"{expires}.{self._sign(call_sid, expires)}"

    def valid(self, token: str, call_sid: str, now: float) -> bool:
        found = _TOKEN.match(token)
        if not found or not call_sid:
            return False
        expires, signature = found.groups()
        if not hmac.compare_digest(signature, self._sign(call_sid, expires)):
            return False
        return int(expires, 16) >= now

    def _sign(self, call_sid: str, expires: str) -> str:
        mac = hmac.new(self._key, f"{call_sid}|{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode()[:32]


# --- TwiML -------------------------------------------------------------------------------------


def connect_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """`<Response><Connect><Stream url=…>` with one `<Parameter>` per item: Twilio opens a
    bidirectional stream and keeps the call up while the websocket is open."""
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", url=stream_url)
    for name, value in parameters.items():
        ET.SubElement(stream, "Parameter", name=name, value=value)
    return _xml(response)


def reject_twiml(reason: Literal["busy", "rejected"]) -> str:
    """`<Reject>`: the caller hears busy (all lines taken) or the call is refused."""
    response = ET.Element("Response")
    ET.SubElement(response, "Reject", reason=reason)
    return _xml(response)


def _xml(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
