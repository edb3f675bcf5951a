"""SIP + RTP: a PBX trunk, an ATA or a softphone calls the hub directly (docs/phone-sip.md).

voip-utils (Home Assistant's SIP/RTP library) parses the SIP messages (`SipMessage`) and reads
an INVITE into its `CallInfo` (caller, Contact and Via endpoints) through
`SipDatagramProtocol.on_call`. Around it, this module adds what it lacks for a contact centre
or gets wrong for strict peers: PCMU (its SDP answer and RTP are Opus-only; see `rtp_events`),
RFC 4733 keypad events and SIP INFO dtmf-relay, our own 200 OK (its answer echoes the
caller's Contact), BYE both ways (its BYE has no Via branch and its 200 OK to a BYE no blank
line after the headers, which baresip's libre rejects), CANCEL, OPTIONS keepalives,
re-INVITE, retransmitted INVITEs and 200 OKs, a source allow-list, a call limit, an RTP port
range, clear 4xx answers to what it cannot take, and a watchdog for callers that vanish.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from voip_utils.sip import CallInfo as SipCallInfo
from voip_utils.sip import SdpInfo, SipDatagramProtocol, SipEndpoint, SipMessage

from hub.calls.media import CallHandler, CallInfo
from hub.config import channel_options
from hub.http import Handler
from hub.ports import ChannelContext

from .rtp_events import SdpError, SdpOffer, answer_sdp, dtmf_relay_digit, parse_offer
from .sip_call import SipCall

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
_E164 = re.compile(r"^\+?[0-9]{2,20}$")
_PARAM_HEADERS = ("from", "to", "user-agent", "p-asserted-identity", "diversion")


_LOOPBACK: list[IPv4Network | IPv6Network] = [IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")]


class SipOptions(BaseModel):
    """`[channels.voice.sip]`."""

    model_config = ConfigDict(extra="forbid")

    host: IPv4Address = IPv4Address("0.0.0.0")
    port: int = Field(5060, ge=0, le=65535)  # 0: any free port (tests)
    # The address put in our SDP and Contact; by default the bound address, or when bound to
    # every interface, the one the caller's packets are routed through.
    advertise_host: IPv4Address | None = None
    rtp_port_min: int = Field(10000, ge=1024, le=65534)
    rtp_port_max: int = Field(20000, ge=1024, le=65534)
    # Who may call: the trunk's or PBX's addresses. Others get 403.
    allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=lambda: _LOOPBACK.copy()
    )
    max_calls: int = Field(20, ge=1)
    rtp_timeout_s: float = Field(30.0, gt=0)  # no RTP for this long: the caller is gone
    user: str = Field("omnihub", pattern=r"^[A-Za-z0-9._+-]+$")  # our Contact's user part

    @model_validator(mode="after")
    def _range(self) -> SipOptions:
        if self.rtp_port_max < self.rtp_port_min + 1:
            raise ValueError("rtp_port_max must be above rtp_port_min")
        return self


@dataclass(slots=True)
class _Dialog:
    """Our side of an answered call's dialog."""

    local_tag: str
    host: str  # the address in our SDP and Contact
    session_id: int
    sdp_version: int = 1
    cseq: int = 1  # of our requests in the dialog (only the BYE)
    answer: str = ""  # the last 200 OK, sent again while the caller has not ACKed it


class _RtpPorts:
    """Even RTP ports from the configured range, round-robin so a just-freed port is not
    handed straight to the next caller while late packets for the old call still arrive."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self._ports = itertools.cycle(range(low + (low & 1), high + 1, 2))
        self._count = (high - low) // 2 + 1

    def bind(self) -> socket.socket | None:
        for _ in range(self._count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self.host, next(self._ports)))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return sock
        return None


def _header_lines(text: str, *names: str) -> list[str]:
    """Every raw `name: value` line of the given headers, in order (voip-utils keeps only the
    last of a repeated header, but a response must carry every Via)."""
    lines = []
    for line in text.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        name, colon, _ = line.partition(":")
        if colon and name.strip().lower() in names:
            lines.append(line)
    return lines


def _caller(msg: SipMessage, sip: SipCallInfo) -> str:
    """The caller's number: a trunk's P-Asserted-Identity (the network-verified number)
    before From; a SIP URI when neither has a number in it."""
    endpoints = [sip.caller_endpoint]
    if "p-asserted-identity" in msg.headers:
        try:
            endpoints.insert(0, SipEndpoint(msg.headers["p-asserted-identity"].split(",")[0]))
        except ValueError:
            log.info("unreadable P-Asserted-Identity %r", msg.headers["p-asserted-identity"])
    for endpoint in endpoints:
        if endpoint.username and _E164.match(endpoint.username):
            return endpoint.username
    return sip.caller_endpoint.uri


def _tag(header: str) -> str | None:
    match = re.search(r";\s*tag=([^;\s]+)", header, re.IGNORECASE)
    return match.group(1) if match else None


class _SipProtocol(SipDatagramProtocol):
    """voip-utils' SIP server with the hub's checks before it and its answers after."""

    def __init__(self, owner: SipTransport) -> None:
        super().__init__(
            SdpInfo(
                username=owner.options.user,
                id=secrets.randbelow(1 << 31),
                session_name="omnihub",
                version="1",
            )
        )
        self.owner = owner
        self._pending: tuple[str, SipMessage, SdpOffer, socket.socket, tuple[str, int]] | None
        self._pending = None

    # -- sending -----------------------------------------------------------------------------

    def send(self, data: str, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data.encode(), addr)

    def respond(
        self,
        text: str,
        msg: SipMessage,
        addr: tuple[str, int],
        code: int,
        reason: str,
        *,
        to_tag: str | None = None,
        extra: Sequence[str] = (),
        body: str = "",
        content_type: str = "application/sdp",
    ) -> str:
        to = msg.headers.get("to", "")
        if to_tag and _tag(to) is None:
            to = f"{to};tag={to_tag}"
        lines = [
            f"SIP/2.0 {code} {reason}",
            *_header_lines(text, "via"),
            f"From: {msg.headers.get('from', '')}",
            f"To: {to}",
            f"Call-ID: {msg.headers.get('call-id', '')}",
            f"CSeq: {msg.headers.get('cseq', '')}",
            "Server: omnihub",
            *extra,
        ]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body.encode())}")
        response = "\r\n".join(lines) + "\r\n\r\n" + body
        self.send(response, addr)
        return response

    # -- receiving ---------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._received(data, addr)
        except Exception:  # a bug here must cost one message, never the listener
            log.exception("SIP message from %s:%s could not be handled", *addr[:2])

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():  # RFC 5626 CRLF keepalive
            return
        try:
            text = data.decode("utf-8")
            msg = SipMessage.parse_sip(text)
            if msg.method is None and not (msg.code or "").isdigit():
                raise ValueError("no request or status line")
        except (UnicodeDecodeError, ValueError, IndexError) as exc:
            log.warning("malformed SIP message from %s:%s dropped: %s", addr[0], addr[1], exc)
            return
        if msg.method is None:  # a response: to our BYE; nothing waits on it
            return
        method = msg.method.upper()
        if not self.owner.allowed(addr[0]):
            log.warning(
                "SIP %s from %s refused: not in channels.voice.sip.allowed_networks",
                method,
                addr[0],
            )
            if method != "ACK":
                self.respond(text, msg, addr, 403, "Forbidden")
            return
        missing = [h for h in ("via", "from", "to", "call-id", "cseq") if h not in msg.headers]
        if missing:
            log.warning(
                "malformed SIP %s from %s:%s: missing %s",
                method,
                addr[0],
                addr[1],
                ", ".join(missing),
            )
            if method != "ACK" and "via" in msg.headers:
                self.respond(text, msg, addr, 400, "Bad Request")
            return
        call = self.owner.calls.get(msg.headers["call-id"])
        handler = getattr(self, f"_on_{method.lower()}", None)
        if handler is None:
            self.respond(text, msg, addr, 405, "Method Not Allowed", extra=[f"Allow: {ALLOW}"])
            return
        handler(text, msg, addr, call, data)

    def _on_options(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        self.respond(
            text, msg, addr, 200, "OK", extra=[f"Allow: {ALLOW}", "Accept: application/sdp"]
        )

    def _on_ack(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        if call is not None:
            call.acked()

    def _on_bye(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        if call is None:
            self.respond(text, msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        # Not voip-utils' BYE handling: its 200 OK lacks the blank line that ends the
        # headers, so a strict peer (baresip's libre) cannot read it and retransmits its BYE.
        self.respond(text, msg, addr, 200, "OK")
        call.end("caller", "BYE")

    def _on_cancel(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        if call is None:
            self.respond(text, msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        # The INVITE was answered at once, so the CANCEL crossed our 200 OK: the caller has
        # given up and will ACK and BYE; end the call now rather than talk to nobody.
        self.respond(text, msg, addr, 200, "OK")
        call.end("caller", "CANCEL")

    def _on_info(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        if call is None:
            self.respond(text, msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        content_type = msg.headers.get("content-type", "")
        if msg.body.strip():
            digit = dtmf_relay_digit(content_type, msg.body)
            if digit is None:
                self.respond(
                    text,
                    msg,
                    addr,
                    415,
                    "Unsupported Media Type",
                    extra=["Accept: application/dtmf-relay, application/dtmf"],
                )
                return
            call.dtmf(digit)
        self.respond(text, msg, addr, 200, "OK")

    def _on_invite(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall | None, data: bytes
    ) -> None:
        call_id = msg.headers["call-id"]
        if call is not None:
            if _tag(msg.headers["to"]) is None:  # our 200 OK was lost: the INVITE again
                self.owner.resend_ok(call, addr)
            else:
                self._reinvite(text, msg, addr, call)
            return
        if _tag(msg.headers["to"]) is not None:
            self.respond(text, msg, addr, 481, "Call/Transaction Does Not Exist")
            return
        if self.owner.closing:
            self.respond(text, msg, addr, 503, "Service Unavailable")
            return
        if len(self.owner.calls) >= self.owner.options.max_calls:
            log.warning(
                "SIP call %s from %s refused: %d calls already (max_calls)",
                call_id,
                addr[0],
                len(self.owner.calls),
            )
            self.respond(text, msg, addr, 486, "Busy Here")
            return
        offer = self._offer(text, msg, addr, call_id)
        if offer is None:
            return
        sock = self.owner.rtp_ports.bind()
        if sock is None:
            log.error(
                "SIP call %s refused: no free RTP port in channels.voice.sip's range", call_id
            )
            self.respond(text, msg, addr, 503, "Service Unavailable")
            return
        self._pending = (text, msg, offer, sock, addr)
        try:
            super().datagram_received(data, addr)  # voip-utils reads it -> on_call
        finally:
            if self._pending is not None:  # voip-utils could not read it: it logged why
                self._pending = None
                sock.close()
                log.warning(
                    "SIP call %s from %s refused: its INVITE could not be read", call_id, addr[0]
                )
                self.respond(text, msg, addr, 400, "Bad Request")

    def _offer(
        self, text: str, msg: SipMessage, addr: tuple[str, int], call_id: str
    ) -> SdpOffer | None:
        """The INVITE's SDP offer if it has PCMU, else None after a 488 and a log line."""
        try:
            offer = parse_offer(msg.body)
        except SdpError as exc:
            log.warning(
                "SIP call %s from %s refused: unreadable SDP offer (%s)", call_id, addr[0], exc
            )
            self.respond(
                text, msg, addr, 488, "Not Acceptable Here", extra=[f'Warning: 399 omnihub "{exc}"']
            )
            return None
        if offer.pcmu is None:
            log.warning(
                "SIP call %s from %s refused: no codec we speak offered (%s); "
                "the hub takes PCMU/8000",
                call_id,
                addr[0],
                ", ".join(offer.codecs),
            )
            self.respond(
                text,
                msg,
                addr,
                488,
                "Not Acceptable Here",
                extra=['Warning: 305 omnihub "Incompatible media format: offer PCMU"'],
            )
            return None
        return offer

    def _reinvite(self, text: str, msg: SipMessage, addr: tuple[str, int], call: SipCall) -> None:
        if not msg.body.strip():  # an offerless re-INVITE: our answer becomes the offer
            offer: SdpOffer | None = call.offer
        else:
            offer = self._offer(text, msg, addr, msg.headers["call-id"])
        if offer is None:  # 488 sent: the call goes on as it was (RFC 3261 14.2)
            return
        call.update(offer)
        self.owner.answer(call, text, msg, addr, renegotiated=True)

    def on_call(self, call_info: SipCallInfo) -> None:
        """voip-utils read an INVITE: answer it with PCMU and hand the call to the handler."""
        if self._pending is None:  # not ours to take (voip-utils' outgoing calls: unused)
            return
        text, msg, offer, sock, addr = self._pending
        self._pending = None
        self.owner.accept(call_info, text, msg, offer, sock, addr)


class SipTransport:
    """Answers SIP calls on a UDP port and runs each through the call handler."""

    name: ClassVar[str] = "sip"

    def __init__(self, options: dict[str, Any], ctx: ChannelContext) -> None:
        self.options = channel_options(SipOptions, options, "voice.sip")
        self.ctx = ctx
        self.calls: dict[str, SipCall] = {}  # by SIP Call-ID
        self._dialogs: dict[str, _Dialog] = {}
        self.rtp_ports = _RtpPorts(
            str(self.options.host), self.options.rtp_port_min, self.options.rtp_port_max
        )
        self.closing = False
        self._protocol: _SipProtocol | None = None
        self._handler: CallHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def handlers(self) -> Sequence[Handler]:
        return []

    @property
    def port(self) -> int:
        """The UDP port SIP listens on (the configured one, or the one picked for 0)."""
        assert self._protocol is not None and self._protocol.transport is not None
        port: int = self._protocol.transport.get_extra_info("sockname")[1]
        return port

    def allowed(self, host: str) -> bool:
        address = ip_address(host)
        return any(address in network for network in self.options.allowed_networks)

    async def start(self, handler: CallHandler) -> None:
        self._handler = handler
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(str(self.options.host), self.options.port)
        )
        self._protocol = protocol
        log.info("SIP listening on udp %s:%d", self.options.host, self.port)

    async def stop(self) -> None:
        self.closing = True
        for call in list(self.calls.values()):
            await call.hang_up()
        if self._tasks:
            # The handlers have their HangUp; give them a moment to write their records.
            _, late = await asyncio.wait(self._tasks, timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()

    def _advertised(self, peer: str) -> str:
        if self.options.advertise_host is not None:
            return str(self.options.advertise_host)
        if str(self.options.host) != "0.0.0.0":
            return str(self.options.host)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((peer, 9))  # no packet: only asks the kernel for the route
            local: str = probe.getsockname()[0]
            return local

    def accept(
        self,
        sip: SipCallInfo,
        text: str,
        msg: SipMessage,
        offer: SdpOffer,
        sock: socket.socket,
        addr: tuple[str, int],
    ) -> None:
        """Build the call for an INVITE voip-utils read, answer it, run the handler."""
        assert self._protocol is not None and self._handler is not None
        protocol = self._protocol
        call_id = msg.headers["call-id"]
        host = self._advertised(addr[0])
        local_tag = secrets.token_hex(8)
        contact = sip.contact_endpoint or sip.caller_endpoint
        caller = _caller(msg, sip)
        dialled = (msg.request_uri or "").removeprefix("sip:").split("@")[0].split(";")[0]
        params = {h: msg.headers[h] for h in _PARAM_HEADERS if h in msg.headers}
        params["source"] = f"{addr[0]}:{addr[1]}"
        info = CallInfo(
            call_id=f"sip:{call_id}",
            transport="sip",
            caller=caller,
            dialled=dialled or (sip.local_endpoint.username or ""),
            sample_rate=8000,
            params=params,
        )
        # Our BYE goes to the caller's Contact with its From tag; voip-utils' hang_up() sends
        # a Via without a branch and no Max-Forwards, which RFC 3261 phones reject.
        remote_target = contact.uri
        dialog = _Dialog(local_tag=local_tag, host=host, session_id=secrets.randbelow(1 << 31))

        def send_ok() -> None:
            protocol.send(dialog.answer, addr)

        def send_bye() -> None:
            dialog.cseq += 1
            branch = f"z9hG4bK{secrets.token_hex(8)}"  # RFC 3261's magic cookie
            protocol.send(
                "\r\n".join(
                    [
                        f"BYE {remote_target} SIP/2.0",
                        f"Via: SIP/2.0/UDP {host}:{self.port};rport;branch={branch}",
                        "Max-Forwards: 70",
                        f"From: <sip:{self.options.user}@{host}:{self.port}>;tag={local_tag}",
                        f"To: {msg.headers['from']}",
                        f"Call-ID: {call_id}",
                        f"CSeq: {dialog.cseq} BYE",
                        "User-Agent: omnihub",
                        "Content-Length: 0",
                        "",
                        "",
                    ]
                ),
                addr,
            )

        call = SipCall(
            info,
            offer,
            sock,
            signalling_peer=addr[0],
            rtp_timeout_s=self.options.rtp_timeout_s,
            send_ok=send_ok,
            send_bye=send_bye,
            on_closed=self._closed,
        )
        self.calls[call_id] = call
        self._dialogs[call_id] = dialog
        self.answer(call, text, msg, addr, renegotiated=False)
        log.info(
            "SIP call %s from %s (%s) answered on RTP port %d",
            call_id,
            info.caller,
            addr[0],
            call.rtp_port,
        )
        task = asyncio.create_task(self._run(call), name=f"sip call {call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answer(
        self,
        call: SipCall,
        text: str,
        msg: SipMessage,
        addr: tuple[str, int],
        *,
        renegotiated: bool,
    ) -> None:
        assert self._protocol is not None
        dialog = self._dialogs[call.info.call_id.removeprefix("sip:")]
        if renegotiated:
            dialog.sdp_version += 1
        body = answer_sdp(
            call.offer,
            host=dialog.host,
            port=call.rtp_port,
            session_id=dialog.session_id,
            version=dialog.sdp_version,
        )
        dialog.answer = self._protocol.respond(
            text,
            msg,
            addr,
            200,
            "OK",
            to_tag=dialog.local_tag,
            body=body,
            extra=[
                f"Contact: <sip:{self.options.user}@{dialog.host}:{self.port}>",
                f"Allow: {ALLOW}",
            ],
        )

    def resend_ok(self, call: SipCall, addr: tuple[str, int]) -> None:
        """The caller sent its INVITE again (our 200 OK was lost): the same answer."""
        assert self._protocol is not None
        self._protocol.send(self._dialogs[call.info.call_id.removeprefix("sip:")].answer, addr)

    async def _run(self, call: SipCall) -> None:
        assert self._handler is not None
        try:
            await call.open()
            await self._handler(call)
        except Exception:  # the controller's bug must not outlive the call
            log.exception("%s: call handler failed", call.info.call_id)
        finally:
            await call.hang_up()

    def _closed(self, call: SipCall) -> None:
        call_id = call.info.call_id.removeprefix("sip:")
        self.calls.pop(call_id, None)
        self._dialogs.pop(call_id, None)
