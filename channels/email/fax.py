"""Fax-to-email: faxes arriving as mail from a gateway, and replies sent back as PDF.

A mail from a configured gateway becomes a `fax` channel message: the caller's number (read
from the subject, sender or body, normalised to E.164 with `phonenumbers`) is the contact's
identity, every page of the attached PDF or multi-page TIFF is rendered to an image (kept as
an attachment, so agents see the pages) and read by Tesseract (English and Simplified Chinese);
the recognised text is the message text, so the bot and agents can read it. A document that
is not a readable PDF or TIFF, or a page that cannot be read, is stored all the same with an
explanation. Replies are rendered to a PDF with a CJK font and mailed to the gateway.

OCR and rendering are CPU-bound: they run on a small dedicated thread pool, never on the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import phonenumbers
import pypdfium2 as pdfium
import pytesseract
from PIL import Image, ImageSequence

from channels.email.fax_pdf import render_pdf
from channels.email.intake import MailIntake, mail_key
from channels.email.options import EmailOptions, FaxOptions, InboxOptions
from channels.email.parsing import MailHead, MailPart, ParsedMail
from channels.email.sending import OutgoingFile
from hub.errors import ConfigError
from hub.model import Attachment, Contact, Identity, InboundMessage, Message
from hub.ports import ChannelContext, ChannelSendError

CHANNEL = "fax"
# A fax whose caller's number cannot be read is its own contact: "unknown:<digest of its
# mail key>", never one contact shared by every such fax. Replies go to the gateway address
# the fax came from.
UNKNOWN_PREFIX = "unknown:"
UNKNOWN_NUMBER = "unknown"  # what earlier versions stored for all of them
RENDER_DPI = 200  # fine fax resolution is 204x196 dpi: rendering finer adds nothing
MAX_PAGE_PIXELS = 40_000_000  # a page larger than this (a hostile media box) is not rendered
_CJK_GAP = re.compile(
    r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]) (?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])"
)
_DOCUMENT_TYPES = {"application/pdf": "pdf", "image/tiff": "tiff"}


@dataclass
class FaxReading:
    """What was read from a fax's documents."""

    pages: list[bytes] = field(default_factory=list)  # PNG of every page, in order
    texts: list[str] = field(default_factory=list)  # recognised text, page by page
    problems: list[str] = field(default_factory=list)


def caller_number(fax: FaxOptions, parsed: ParsedMail) -> str | None:
    """The caller's number in E.164, or None when the configured place does not hold one."""
    source = {"subject": parsed.subject, "sender": parsed.sender, "body": parsed.full_text}
    text = source[fax.number_from][:5000]
    if fax.number_pattern is None:
        leniency = phonenumbers.Leniency.POSSIBLE  # fax lines are often not in the metadata
        for match in phonenumbers.PhoneNumberMatcher(text, fax.region, leniency=leniency):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        return None
    for found in re.finditer(fax.number_pattern, text):
        try:
            number = phonenumbers.parse(found.group("number"), fax.region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def read_fax(documents: Sequence[MailPart], languages: str, max_pages: int) -> FaxReading:
    """Render and OCR every page (blocking: run it on a worker thread)."""
    reading = FaxReading()
    for doc in documents:
        kind = _DOCUMENT_TYPES.get(doc.sniffed_type)
        if kind is None:
            reading.problems.append(
                f"{doc.filename} is not a PDF or TIFF fax (it is {doc.sniffed_type})"
            )
            continue
        try:
            images = _pdf_pages(doc, max_pages) if kind == "pdf" else _tiff_pages(doc, max_pages)
            for number, image in enumerate(images, start=1):
                _read_page(reading, doc.filename, number, image, languages)
                if len(reading.pages) >= max_pages:
                    reading.problems.append(f"only the first {max_pages} pages were read")
                    return reading
        except Exception as exc:  # a broken document: say so, keep the rest
            reading.problems.append(f"{doc.filename} could not be read ({_reason(exc)})")
    return reading


def _pdf_pages(doc: MailPart, max_pages: int) -> list[Image.Image | Exception]:
    pdf = pdfium.PdfDocument(doc.data)
    try:
        out: list[Image.Image | Exception] = []
        for index in range(min(len(pdf), max_pages)):
            try:
                page = pdf[index]
                width, height = page.get_size()
                scale = RENDER_DPI / 72
                if width * height * scale * scale > MAX_PAGE_PIXELS:
                    raise ValueError(f"the page is {width:.0f}x{height:.0f} points, too large")
                out.append(page.render(scale=scale, grayscale=True).to_pil())
            except Exception as exc:
                out.append(exc)
        return out
    finally:
        pdf.close()


def _tiff_pages(doc: MailPart, max_pages: int) -> list[Image.Image | Exception]:
    out: list[Image.Image | Exception] = []
    with Image.open(io.BytesIO(doc.data)) as tiff:
        for frame in ImageSequence.Iterator(tiff):
            if len(out) >= max_pages:
                break
            try:
                if frame.width * frame.height > MAX_PAGE_PIXELS:
                    raise ValueError(f"the page is {frame.width}x{frame.height} pixels, too large")
                out.append(frame.convert("L"))
            except Exception as exc:
                out.append(exc)
    return out


def _read_page(
    reading: FaxReading, filename: str, number: int, image: Image.Image | Exception, langs: str
) -> None:
    if isinstance(image, Exception):
        reading.problems.append(f"{filename} page {number} could not be read ({_reason(image)})")
        return
    png = io.BytesIO()
    image.save(png, "PNG", optimize=False)
    reading.pages.append(png.getvalue())
    try:
        text = pytesseract.image_to_string(image, lang=langs)
    except Exception as exc:  # Tesseract missing or failing: the page image is still there
        reading.problems.append(f"page {len(reading.pages)} was not recognised ({_reason(exc)})")
        return
    # Tesseract spaces out Chinese characters; Chinese is written without spaces.
    reading.texts.append(_CJK_GAP.sub("", text).strip())


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


class FaxDesk:
    """The fax side of the email channel."""

    def __init__(self, ctx: ChannelContext, options: EmailOptions):
        self.ctx = ctx
        self.intake: MailIntake | None = None
        for name, inbox in options.inboxes.items():
            if inbox.fax is not None and not _readable(inbox.fax.reply_font):
                raise ConfigError(
                    f"channels.email.inboxes.{name}.fax.reply_font: no font file at "
                    f"{inbox.fax.reply_font} (Debian: fonts-noto-cjk)"
                )
        self.pool = ThreadPoolExecutor(options.ocr_workers, thread_name_prefix="omnihub-fax")

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def take(
        self,
        opts: InboxOptions,
        inbox: str,
        raw: bytes,
        parsed: ParsedMail,
        original: Attachment,
    ) -> Message:
        """Store a fax that came as mail from a gateway (MailIntake's fax handler)."""
        assert self.intake is not None and opts.fax is not None
        fax = opts.fax
        message_id = mail_key(parsed, raw)
        found = await self.intake.thread_of(CHANNEL, message_id, parsed)
        if isinstance(found, Message):
            return found
        documents = [
            p
            for p in parsed.attachments
            if p.sniffed_type in _DOCUMENT_TYPES
            or p.declared_type in _DOCUMENT_TYPES
            or p.filename.lower().endswith((".pdf", ".tif", ".tiff"))
        ]
        loop = asyncio.get_running_loop()
        reading = await loop.run_in_executor(
            self.pool, read_fax, documents, fax.ocr_languages, fax.max_pages
        )
        notes = list(reading.problems)
        if not documents:
            notes.append("the gateway's mail had no PDF or TIFF fax attached")
        number = caller_number(fax, parsed)
        if number is None:
            notes.append(f"the caller's number could not be read from the {fax.number_from}")
        kept: list[Attachment | None] = [original]
        for doc in documents:
            kept.append(await self._save(doc.data, doc.filename, doc.sniffed_type, notes))
        for index, png in enumerate(reading.pages, start=1):
            kept.append(await self._save(png, f"page-{index}.png", "image/png", notes))
        text = "\n\n".join(t for t in reading.texts if t) or "(no text was recognised on the fax)"
        if notes:
            text += "\n\n" + "\n".join(f"[{note}]" for note in notes)
        limit = self.ctx.max_text_chars
        if len(text) > limit:
            text = text[: limit - 60] + "\n\n[cut; the pages are attached]"
        if number is not None:
            sender, name = number, f"Fax {number}"
        else:
            short = hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()[:10]
            sender, name = UNKNOWN_PREFIX + short, f"Unknown fax sender {short[:6]}"
        return await self.ctx.sink.receive(
            InboundMessage(
                channel=CHANNEL,
                inbox=inbox,
                sender=Identity(CHANNEL, sender),
                text=text,
                channel_message_id=message_id,
                sender_name=name,
                attachments=tuple(a for a in kept if a is not None),
                conversation_id=found,
                # Gateways label every mail machine-made; a fax is still a person's document.
                # A gateway mail without one is a notice (such as "your fax was sent"): the
                # bot must not answer it, or it would fax the gateway's notices back and forth.
                automated=None if documents else "a fax gateway's notice without a fax",
            )
        )

    async def _save(
        self, data: bytes, filename: str, content_type: str, notes: list[str]
    ) -> Attachment | None:
        try:
            return await self.ctx.attachments.save(data, filename, content_type)
        except Exception as exc:
            notes.append(f"{filename} not kept: {getattr(exc, 'detail', exc)}")
            return None

    async def reply_route(
        self,
        opts: InboxOptions,
        contact: Contact | None,
        message: Message,
        token: str,
        head: MailHead | None = None,
    ) -> tuple[str, list[OutgoingFile]]:
        """The gateway address for the contact's number and the reply rendered as PDF. For a
        fax whose number could not be read, the address the gateway's mail came from
        (`head`: the customer's latest fax mail), which answers the fax it relayed."""
        if opts.fax is None:
            raise ChannelSendError("this inbox has no fax gateway configured", retryable=False)
        number = next(
            (i.address for i in (contact.identities if contact else ()) if i.channel == CHANNEL),
            UNKNOWN_NUMBER,
        )
        if number == UNKNOWN_NUMBER or number.startswith(UNKNOWN_PREFIX):
            to = head.reply_address if head is not None else ""
            if not to:
                raise ChannelSendError(
                    "the fax sender's number could not be read and the gateway's mail gives"
                    " no address to reply to",
                    retryable=False,
                )
        else:
            to = opts.fax.send_to.format(number=number.lstrip("+"))
        heading = f"{opts.display_name or opts.address}  {token}"
        loop = asyncio.get_running_loop()
        try:
            pdf = await loop.run_in_executor(
                self.pool, render_pdf, message.text, opts.fax.reply_font, heading, message.format
            )
        except Exception as exc:  # fpdf2 on a font or text it cannot handle
            raise ChannelSendError(
                f"the fax PDF could not be made: {_reason(exc)}", retryable=False
            ) from None
        return to, [OutgoingFile(pdf, "fax-reply.pdf", "application/pdf")]

    def cover_text(self, message: Message) -> str:
        """The mail body to the gateway; the fax itself is the attached PDF."""
        return "Fax reply: see the attached PDF."


def _readable(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False
