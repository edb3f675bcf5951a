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
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_address
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from voip_utils.sip import CallInfo as SipCallInfo

from hub.calls.media import CallHandler, CallInfo
from hub.config import channel_options
from hub.http import Handler
from hub.ports import ChannelContext

from .rtp_events import SdpOffer, answer_sdp
from .sip_call import SipCall
from .sip_signalling import ALLOW, SipRequest, SipSignalling, caller_number

log = logging.getLogger(__name__)

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
        self._protocol: SipSignalling | None = None
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
            lambda: SipSignalling(self), local_addr=(str(self.options.host), self.options.port)
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
        self, sip: SipCallInfo, req: SipRequest, offer: SdpOffer, sock: socket.socket
    ) -> None:
        """Build the call for an INVITE voip-utils read, answer it, run the handler."""
        assert self._protocol is not None and self._handler is not None
        protocol, msg, addr = self._protocol, req.msg, req.addr
        call_id = msg.headers["call-id"]
        host = self._advertised(addr[0])
        local_tag = secrets.token_hex(8)
        contact = sip.contact_endpoint or sip.caller_endpoint
        caller = caller_number(msg, sip)
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
        self.answer(call, req, renegotiated=False)
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

    def answer(self, call: SipCall, req: SipRequest, *, renegotiated: bool) -> None:
        """Our 200 OK with the SDP answer to the call's (new) offer."""
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
            req,
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
