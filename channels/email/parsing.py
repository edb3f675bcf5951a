"""A raw email into what the hub shows: text, sanitised HTML, attachments, threading headers.

Parsing never raises on bad input: what cannot be read is reported in `problems` (shown to the
agent) and the raw message is kept by the caller. Limits (parts, depth, sizes) bound the work
a hostile message can cause.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email import errors, policy
from email.message import Message
from email.parser import BytesParser
from email.utils import parseaddr
from html import unescape

import magic
import nh3
from mailparser_reply import EmailReplyParser

from channels.email.charsets import decode_header_value, decode_text

MAX_PARTS = 200  # MIME parts looked at; the rest are reported, not walked
MAX_DEPTH = 10  # nested multiparts / attached messages
MAX_TEXT_BYTES = 2 * 1024 * 1024  # text beyond this (all parts together) is cut
MAX_IDS = 50  # References entries kept (the newest ones)
RAW_NAME = "message.eml"  # the original as stored with every mail (channels.email.intake)
# The hub's languages (each one more costs parse time on every mail).
REPLY_LANGUAGES = ["en", "zh"]
# "在 2026年11月23日 10:00，客服 <s@x> 写道：" and Outlook's "-----原始邮件-----".
_ZH_REPLY_HEADER = re.compile(r"^(在.{0,200}写道\s*[:：]|-{2,}\s*原始邮件\s*-{2,})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MSGID = re.compile(r"<([^<>\s]{1,900})>")
_BLOCK_END = re.compile(r"(?i)<\s*(br\s*/?|/p|/div|/li|/tr|/h[1-6]|/blockquote)\s*>")
# HTML tags kept (never images: remote ones track the reader, and agents see links instead).
_HTML_TAGS = nh3.ALLOWED_TAGS - {"img"}
_replies = EmailReplyParser(languages=REPLY_LANGUAGES)
# What Python's decoder reports for base64 it cannot read: it then returns what it could
# (characters skipped) or, for a cut-off payload, the undecoded base64 itself.
_BROKEN_BASE64 = (
    errors.InvalidBase64CharactersDefect,
    errors.InvalidBase64PaddingDefect,
    errors.InvalidBase64LengthDefect,
)
# Headers that say which mail this is, whichever relays it passed (not Received and the like).
_FINGERPRINT_HEADERS = ("from", "sender", "to", "cc", "date", "subject", "in-reply-to")


@dataclass(frozen=True, slots=True)
class MailPart:
    """An attachment as found in the mail; checked and stored by the caller."""

    filename: str
    declared_type: str
    data: bytes
    sniffed_type: str


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender: str  # lower-case address from From (or the envelope sender), "" when none
    sender_name: str | None
    body: str  # the new text: quoted replies and signature stripped
    full_text: str  # the whole text body
    html: str | None  # sanitised HTML body, when the mail had one
    attachments: tuple[MailPart, ...]
    auto_generated: str | None  # why the mail is machine-made (no bot answer), or None
    problems: tuple[str, ...] = field(default=())
    # A digest of what the mail says (From, To, Date, Subject..., text and attachments), the
    # same however many relays added headers: its key when it has no Message-ID.
    fingerprint: str = ""


def message_ids(value: str | None) -> tuple[str, ...]:
    """Message-IDs in a header value, without angle brackets."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [value.strip()]  # some clients drop the brackets
    return tuple(found)


def parse_mail(raw: bytes, envelope_sender: str | None = None) -> ParsedMail:
    """Parse a raw RFC 5322 message. Bad input becomes `problems`, not an exception."""
    problems: list[str] = []
    # compat32: headers stay raw strings (decoded leniently by `_Headers`), which is also
    # several times faster than building the default policy's header objects.
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    header = _Headers(msg, body_charset(msg))
    subject = header.text("subject")
    name, address = parseaddr(header.text("from"))
    if not address and envelope_sender:
        address = envelope_sender
    walker = _Walker(problems)
    walker.walk(msg, 0)
    plain = "\n\n".join(t for t in walker.plain if t.strip())
    html = "\n".join(walker.html) or None
    full = plain or (html_to_text(html) if html else "")
    references = message_ids(header.raw("references"))[-MAX_IDS:]
    return ParsedMail(
        message_id=next(iter(message_ids(header.raw("message-id"))), None),
        in_reply_to=message_ids(header.raw("in-reply-to"))[:MAX_IDS],
        references=references,
        subject=subject,
        # RFC 5321 caps an address at 254 characters; a longer one is no address.
        sender=address.strip().lower() if "@" in address and len(address) <= 254 else "",
        sender_name=name or None,
        body=strip_quotes(full),
        full_text=full.strip(),
        html=sanitise_html(html) if html else None,
        attachments=tuple(walker.attachments),
        auto_generated=auto_generated(msg, header, envelope_sender),
        problems=tuple(problems),
        fingerprint=_fingerprint(header, full, html, walker.attachments),
    )


def body_charset(msg: Message) -> str | None:
    """The first charset a part of the mail declares (other than ASCII): what a client that
    writes raw 8-bit headers wrote them in too."""
    try:
        charsets = msg.get_charsets()
    except Exception:  # a malformed parameter in a hostile part
        return None
    for charset in charsets[:MAX_PARTS]:
        if charset and charset.lower() not in ("us-ascii", "ascii"):
            return str(charset)
    return None


def _fingerprint(header: _Headers, text: str, html: str | None, parts: list[MailPart]) -> str:
    digest = hashlib.sha256()
    for name in _FINGERPRINT_HEADERS:
        digest.update(f"{name}:{header.raw(name) or ''}\n".encode("utf-8", "surrogateescape"))
    digest.update(text.encode("utf-8", "surrogateescape") + b"\0")
    digest.update((html or "").encode("utf-8", "surrogateescape") + b"\0")
    for part in parts:
        digest.update(hashlib.sha256(part.data).digest())
    return "sha256:" + digest.hexdigest()


class _Headers:
    """Header access that tolerates malformed values (a defect is a problem, not a crash)."""

    def __init__(self, msg: Message, charset: str | None = None):
        self.raw_values: dict[str, str] = {}
        self.charset = charset  # for raw 8-bit header bytes that are not UTF-8
        for key, value in msg.raw_items():
            self.raw_values.setdefault(key.lower(), str(value))

    def raw(self, name: str) -> str | None:
        value = self.raw_values.get(name)
        return " ".join(value.split()) if value is not None else None

    def text(self, name: str) -> str:
        value = self.raw(name)
        return _printable(decode_header_value(value, self.charset)) if value else ""


class _Walker:
    def __init__(self, problems: list[str]):
        self.problems = problems
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[MailPart] = []
        self.parts = 0
        self.text_budget = MAX_TEXT_BYTES  # all text parts together

    def walk(self, part: Message, depth: int) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            if self.parts == MAX_PARTS + 1:
                self.problems.append(f"more than {MAX_PARTS} MIME parts; the rest were ignored")
            return
        if depth > MAX_DEPTH:
            self.problems.append(f"MIME nested deeper than {MAX_DEPTH} levels; ignored below")
            return
        ctype = part.get_content_type()
        if part.is_multipart():
            payload = part.get_payload()
            children = (
                [c for c in payload if isinstance(c, Message)] if isinstance(payload, list) else []
            )
            if not children:
                self.problems.append(f"an empty or broken {ctype} part")
                return
            if ctype == "multipart/alternative":
                self._alternative(children, depth)
                return
            for child in children:
                self.walk(child, depth + 1)
            return
        disposition = _get(part, "get_content_disposition")
        filename = _filename(part)
        if ctype.startswith("multipart/"):  # declared multipart without a usable boundary
            self.problems.append(f"a {ctype} part without parts, read as text")
            self._text(part, "text/plain")
        elif ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            self._text(part, ctype)
        else:
            self._attachment(part, ctype, filename)

    def _alternative(self, children: list[Message], depth: int) -> None:
        # Prefer the plain part for text and keep the HTML one for display.
        kinds = [c.get_content_type() for c in children]
        for child, kind in zip(children, kinds, strict=True):
            if kind in ("text/plain", "text/html") or child.is_multipart():
                self.walk(child, depth + 1)

    def _text(self, part: Message, ctype: str) -> None:
        data = _payload(part, self.problems, f"a {ctype} part")
        if data is None:
            return
        if len(data) > self.text_budget:
            self.problems.append(f"a {ctype} part of {len(data)} bytes was cut")
            data = data[: self.text_budget]
        self.text_budget -= len(data)
        text, note = decode_text(data, _get(part, "get_content_charset"))
        if note:
            self.problems.append(note)
        (self.plain if ctype == "text/plain" else self.html).append(_printable(text))

    def _attachment(self, part: Message, ctype: str, filename: str | None) -> None:
        name = filename or f"attachment-{len(self.attachments) + 1}"
        data = _payload(part, self.problems, f"attachment {name!r}")
        if data is None:
            return
        self.attachments.append(MailPart(name, ctype, data, sniff(data)))


def _printable(text: str) -> str:
    """Without control characters (NUL and friends: PostgreSQL refuses them in text)."""
    return _CONTROL.sub("", text)


def _get(part: Message, method: str) -> str | None:
    try:
        value = getattr(part, method)()
    except Exception:  # a malformed parameter in a header of a hostile part
        return None
    return str(value) if value is not None else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if not name:
        return None
    # Keep only the last path segment: a name is shown and used for downloads, never a path.
    name = decode_header_value(str(name)).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or None


def _payload(part: Message, problems: list[str], what: str) -> bytes | None:
    """The decoded content of a part, or None (and a problem named) when it cannot be read:
    a part whose base64 is broken is left out rather than read half-decoded or raw."""
    seen = len(part.defects)
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        problems.append(f"an unreadable {part.get_content_type()} part ({type(exc).__name__})")
        return None
    if any(isinstance(d, _BROKEN_BASE64) for d in part.defects[seen:]):
        problems.append(f"{what} has broken base64 and was left out; it is in {RAW_NAME}")
        return None
    if data is None:
        return None
    if not isinstance(data, bytes):
        return str(data).encode("utf-8", "surrogateescape")
    return data


def sniff(data: bytes) -> str:
    """The type the bytes really have (libmagic), whatever the mail declared."""
    try:
        return str(magic.from_buffer(data[:65536], mime=True))
    except Exception:
        return "application/octet-stream"


def sanitise_html(html: str) -> str:
    """HTML safe to show an agent: no scripts, styles, event handlers, images or frames."""
    return nh3.clean(
        html,
        tags=_HTML_TAGS,
        clean_content_tags={"script", "style", "title", "head"},
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
    )


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: block ends become line breaks, tags go."""
    marked = _BLOCK_END.sub("\n", html)
    text = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style", "title", "head"})
    lines = [" ".join(line.split()) for line in unescape(text).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def strip_quotes(text: str) -> str:
    """The new text of a reply: quoted earlier messages and the signature removed.

    Falls back to the whole text when stripping leaves nothing (a forward, or a reply that is
    all quote), so nothing the customer wrote disappears from view.
    """
    if not text.strip():
        return ""
    try:
        replies = _replies.read(text).replies
        body = replies[0].body.strip() if replies else ""
    except Exception:  # the parser's regexes on odd input: show the whole text
        body = ""
    body = _strip_quote_tail(body or text.strip())
    return body or text.strip()


def _strip_quote_tail(text: str) -> str:
    """What the library leaves: a Chinese client's reply header, or a bare "> " block."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _ZH_REPLY_HEADER.match(line.strip()):
            lines = lines[:i]
            break
    while lines and (not lines[-1].strip() or lines[-1].lstrip().startswith(">")):
        lines.pop()
    return "\n".join(lines).strip()


# --- loop protection (RFC 3834) ------------------------------------------------------------


def auto_generated(msg: Message, header: _Headers, envelope_sender: str | None) -> str | None:
    """Why this mail was made by a machine (out-of-office, bounce, list mail), or None."""
    auto = (header.raw("auto-submitted") or "").lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (header.raw("precedence") or "").lower()
    if precedence in ("bulk", "list", "junk", "auto_reply"):
        return f"Precedence: {precedence}"
    for name in ("x-auto-response-suppress", "x-autoreply", "x-autorespond", "list-id"):
        if header.raw(name) is not None:
            return f"{name} header"
    if envelope_sender == "" or (header.raw("return-path") or "").strip() == "<>":
        return "null return path (a bounce or notification)"
    if msg.get_content_type() == "multipart/report":
        return "delivery or read report"
    sender = parseaddr(header.text("from"))[1].lower()
    if sender.split("@")[0] in ("mailer-daemon", "postmaster"):
        return f"sent by {sender}"
    return None


@dataclass(frozen=True, slots=True)
class MailHead:
    """The headers of a stored mail that a reply to it needs."""

    subject: str
    message_id: str | None
    references: tuple[str, ...]
    reply_address: str  # Reply-To, else From; "" when neither holds an address


def parse_head(raw: bytes) -> MailHead:
    """Only the header block of a raw mail (cheap on a large one)."""
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head = raw if end < 0 else raw[: end + 2]
    msg = BytesParser(policy=policy.compat32).parsebytes(head, headersonly=True)
    header = _Headers(msg, msg.get_param("charset"))  # type: ignore[arg-type]
    address = ""
    for name in ("reply-to", "from"):
        candidate = parseaddr(header.text(name))[1]
        if "@" in candidate:
            address = candidate
            break
    return MailHead(
        subject=header.text("subject"),
        message_id=next(iter(message_ids(header.raw("message-id"))), None),
        references=message_ids(header.raw("references"))[-MAX_IDS:],
        reply_address=address,
    )
