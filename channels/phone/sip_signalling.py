"""The SIP side of the SIP transport: voip-utils' `SipDatagramProtocol` with the hub's checks
in front of it and its own answers where voip-utils has none or gets them wrong for strict
peers (see `channels.phone.sip`)."""

from __future__ import annotations

import logging
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voip_utils.sip import CallInfo as SipCallInfo
from voip_utils.sip import SdpInfo, SipDatagramProtocol, SipEndpoint, SipMessage

from .rtp_events import SdpError, SdpOffer, dtmf_relay_digit, parse_offer
from .sip_call import SipCall

if TYPE_CHECKING:
    from .sip import SipTransport

log = logging.getLogger("channels.phone.sip")

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_IN_DIALOG = ("BYE", "CANCEL", "INFO")  # meaningless without a live call: 481
_E164 = re.compile(r"^\+?[0-9]{2,20}$")


def header_lines(text: str, *names: str) -> list[str]:
    """Every raw `name: value` line of the given headers, in order (voip-utils keeps only the
    last of a repeated header, but a response must carry every Via)."""
    lines = []
    for line in text.split("\r\n\r\n", 1)[0].splitlines()[1:]:
        name, colon, _ = line.partition(":")
        if colon and name.strip().lower() in names:
            lines.append(line)
    return lines


def tag_of(header: str) -> str | None:
    match = re.search(r";\s*tag=([^;\s]+)", header, re.IGNORECASE)
    return match.group(1) if match else None


def caller_number(msg: SipMessage, sip: SipCallInfo) -> str:
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


_REQUEST_USER = re.compile(rb"^(INVITE sip:)([^@\s]+)(@)")


def _readable_by_voip_utils(data: bytes) -> bytes:
    """The INVITE with its request-URI user reduced to what voip-utils' pattern reads.

    voip-utils takes only letters, digits, `_` and `.` there, so a trunk dialling the E.164
    `sip:+15550100@hub` (the usual form) or `sip:555-0100@hub` would be refused as unreadable.
    The dialled number the hub uses comes from the original request line, not from this copy.
    """
    return _REQUEST_USER.sub(
        lambda m: m[1] + (re.sub(rb"[^\w.]", b"", m[2]) or b"s") + m[3], data, count=1
    )


@dataclass(frozen=True, slots=True)
class SipRequest:
    """A request as it arrived: its text (for every Via), voip-utils' parse, its source."""

    text: str
    msg: SipMessage
    addr: tuple[str, int]
    data: bytes

    @property
    def call_id(self) -> str:
        return self.msg.headers["call-id"]


class SipSignalling(SipDatagramProtocol):
    """Reads SIP datagrams for a `SipTransport` and answers them."""

    def __init__(self, owner: SipTransport) -> None:
        sdp = SdpInfo(owner.options.user, secrets.randbelow(1 << 31), "omnihub", "1")
        super().__init__(sdp)
        self.owner = owner
        # The INVITE being handed to voip-utils, for its on_call to pick up.
        self._pending: tuple[SipRequest, SdpOffer, socket.socket] | None = None

    # -- sending -----------------------------------------------------------------------------

    def send(self, data: str, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data.encode(), addr)

    def respond(
        self,
        req: SipRequest,
        code: int,
        reason: str,
        *,
        to_tag: str | None = None,
        extra: Sequence[str] = (),
        body: str = "",
    ) -> str:
        """Send a response to `req` (to where it came from, as with rport) and return it."""
        headers = req.msg.headers
        to = headers.get("to", "")
        if to_tag and tag_of(to) is None:
            to = f"{to};tag={to_tag}"
        lines = [
            f"SIP/2.0 {code} {reason}",
            *header_lines(req.text, "via"),
            f"From: {headers.get('from', '')}",
            f"To: {to}",
            f"Call-ID: {headers.get('call-id', '')}",
            f"CSeq: {headers.get('cseq', '')}",
            "Server: omnihub",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        response = "\r\n".join(lines) + "\r\n\r\n" + body
        self.send(response, req.addr)
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
        req, method = SipRequest(text, msg, addr, data), msg.method.upper()
        if not self.owner.allowed(addr[0]):
            log.warning(
                "SIP %s from %s refused: not in channels.voice.sip.allowed_networks",
                method,
                addr[0],
            )
            if method != "ACK":
                self.respond(req, 403, "Forbidden")
            return
        missing = [h for h in _REQUIRED if h not in msg.headers]
        if missing:
            log.warning(
                "malformed SIP %s from %s:%s: missing %s", method, *addr[:2], ", ".join(missing)
            )
            if method != "ACK" and "via" in msg.headers:
                self.respond(req, 400, "Bad Request")
            return
        call = self.owner.calls.get(req.call_id)
        if method == "INVITE":
            self._invite(req, call)
        elif method == "OPTIONS":  # a trunk's keepalive, or a capabilities query
            self.respond(req, 200, "OK", extra=[f"Allow: {ALLOW}", "Accept: application/sdp"])
        elif method == "ACK":
            if call is not None:
                call.acked()
        elif method not in _IN_DIALOG:
            self.respond(req, 405, "Method Not Allowed", extra=[f"Allow: {ALLOW}"])
        elif call is None:
            self.respond(req, 481, "Call/Transaction Does Not Exist")
        elif method == "INFO":
            self._info(req, call)
        else:
            # BYE: not voip-utils' handling, whose 200 OK lacks the blank line that ends the
            # headers, so a strict peer (baresip's libre) cannot read it and repeats its BYE.
            # CANCEL: the INVITE was answered at once, so the CANCEL crossed our 200 OK; the
            # caller has given up: end the call now rather than talk to nobody.
            self.respond(req, 200, "OK")
            call.end("caller", method)

    def _info(self, req: SipRequest, call: SipCall) -> None:
        if req.msg.body.strip():
            digit = dtmf_relay_digit(req.msg.headers.get("content-type", ""), req.msg.body)
            if digit is None:
                accept = "Accept: application/dtmf-relay, application/dtmf"
                self.respond(req, 415, "Unsupported Media Type", extra=[accept])
                return
            call.dtmf(digit)
        self.respond(req, 200, "OK")

    def _invite(self, req: SipRequest, call: SipCall | None) -> None:
        to_tag = tag_of(req.msg.headers["to"])
        if call is not None:
            if to_tag is None:  # our 200 OK was lost: the INVITE again
                self.owner.resend_ok(call, req.addr)
            else:
                self._reinvite(req, call)
            return
        if to_tag is not None:
            self.respond(req, 481, "Call/Transaction Does Not Exist")
            return
        if self.owner.closing:
            self.respond(req, 503, "Service Unavailable")
            return
        if len(self.owner.calls) >= self.owner.options.max_calls:
            log.warning(
                "SIP call %s from %s refused: %d calls already (max_calls)",
                req.call_id,
                req.addr[0],
                len(self.owner.calls),
            )
            self.respond(req, 486, "Busy Here")
            return
        offer = self._offer(req, "call")
        if offer is None:
            return
        sock = self.owner.rtp_ports.bind()
        if sock is None:
            log.error("SIP call %s refused: no free RTP port in the range", req.call_id)
            self.respond(req, 503, "Service Unavailable")
            return
        self._pending = (req, offer, sock)
        try:
            # voip-utils reads it -> on_call
            super().datagram_received(_readable_by_voip_utils(req.data), req.addr)
        finally:
            if self._pending is not None:  # voip-utils could not read it: it logged why
                self._pending = None
                sock.close()
                log.warning(
                    "SIP call %s from %s refused: voip-utils could not read its INVITE",
                    req.call_id,
                    req.addr[0],
                )
                self.respond(req, 400, "Bad Request")

    def _offer(self, req: SipRequest, what: str) -> SdpOffer | None:
        """The INVITE's SDP offer if it has PCMU, else None after a 488 and a log line."""
        try:
            offer = parse_offer(req.msg.body)
        except SdpError as exc:
            problem, warning = f"unreadable SDP offer ({exc})", f"399 omnihub {str(exc)!r}"
        else:
            if offer.pcmu is not None:
                return offer
            problem = (
                f"no codec we speak offered ({', '.join(offer.codecs)}); the hub takes PCMU/8000"
            )
            warning = '305 omnihub "Incompatible media format: offer PCMU"'
        log.warning("SIP %s %s from %s refused: %s", what, req.call_id, req.addr[0], problem)
        self.respond(req, 488, "Not Acceptable Here", extra=[f"Warning: {warning}"])
        return None

    def _reinvite(self, req: SipRequest, call: SipCall) -> None:
        if not req.msg.body.strip():  # an offerless re-INVITE: our answer becomes the offer
            offer: SdpOffer | None = call.offer
        else:
            offer = self._offer(req, "re-INVITE of call")
        if offer is None:  # 488 sent: the call goes on as it was (RFC 3261 14.2)
            return
        call.update(offer)
        self.owner.answer(call, req, renegotiated=True)

    def on_call(self, call_info: SipCallInfo) -> None:
        """voip-utils read an INVITE: answer it with PCMU and hand the call to the handler."""
        if self._pending is None:  # not ours to take (voip-utils' outgoing calls: unused)
            return
        req, offer, sock = self._pending
        self._pending = None
        self.owner.accept(call_info, req, offer, sock)
