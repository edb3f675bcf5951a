"""Attachment bytes on disk, content-addressed, under `<data dir>/attachments`.

The database keeps only the metadata (`Attachment`); the same bytes arriving twice (a
forwarded mail, a resent photo) are stored once. Writes go to a temporary file that is
renamed into place, so a crash never leaves a half-written attachment under its key.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import IO

from hub.errors import InvalidRequest, NotFound, TooLarge
from hub.model import Attachment

_KEY = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,127}$")
MAX_FILENAME_CHARS = 200


def clean_filename(name: str) -> str:
    """A display name safe to keep and to put in headers: no path, no control characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > MAX_FILENAME_CHARS:
        _stem, dot, ext = name.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        name = name[: MAX_FILENAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name or "attachment"


def clean_content_type(content_type: str) -> str:
    """The media type without parameters, lower case; unknown shapes become octet-stream."""
    bare = content_type.split(";", 1)[0].strip().lower()
    return bare if _CONTENT_TYPE.match(bare) else "application/octet-stream"


class FileAttachmentStore:
    """AttachmentStore on the local file system (shared by every hub process on one host)."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes

    async def save(self, data: bytes, filename: str, content_type: str) -> Attachment:
        if len(data) > self.max_bytes:
            raise TooLarge(
                f"{clean_filename(filename)} has {len(data)} bytes; the limit is {self.max_bytes}",
                code="attachment_too_large",
            )
        key = await asyncio.to_thread(self._write, data)
        return Attachment(
            filename=clean_filename(filename),
            content_type=clean_content_type(content_type),
            size=len(data),
            storage_key=key,
        )

    async def read(self, storage_key: str) -> bytes:
        return await asyncio.to_thread(self.path(storage_key).read_bytes)

    def path(self, storage_key: str) -> Path:
        if not _KEY.match(storage_key):
            raise InvalidRequest("that is not an attachment key", code="bad_attachment_key")
        path = self.root / storage_key[:2] / storage_key
        if not path.is_file():
            raise NotFound("no such attachment", code="unknown_attachment")
        return path

    def _write(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()
        folder = self.root / key[:2]
        target = folder / key
        if target.is_file() and target.stat().st_size == len(data):
            return key
        atomic_write(target, lambda out: out.write(data))
        return key


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write a file so that readers see the old one or the new one, never a torn one:
    a temporary file beside it, fsynced, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
