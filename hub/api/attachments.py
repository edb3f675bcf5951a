"""Attachment files for agents: upload one to reply with, download what customers sent.

Downloads go through `hub.http.attachment_response`, which keeps a hostile file from running
in the hub's origin.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import current_session
from hub.api.keys import ATTACHMENTS
from hub.errors import InvalidRequest, TooLarge
from hub.http import Handler, attachment_response, endpoint, json_response
from hub.model import Attachment
from hub.ports import AttachmentStore
from hub.storage.files import clean_content_type, clean_filename
from hub.wire import AttachmentOut, attachment_out

MAX_REPLY_ATTACHMENTS = 10
_CHUNK = 64 * 1024


class AttachmentRef(BaseModel):
    """An uploaded file to send with a reply (as `POST /api/attachments` returned it)."""

    model_config = ConfigDict(extra="ignore")
    storage_key: str = Field(min_length=64, max_length=64)
    filename: str = Field(min_length=1, max_length=1000)
    content_type: str = Field(min_length=1, max_length=200)


class AttachmentQuery(BaseModel):
    name: str | None = None
    type: str | None = None


class AttachmentResponse(BaseModel):
    attachment: AttachmentOut


def stored_attachments(store: AttachmentStore, refs: list[AttachmentRef]) -> tuple[Attachment, ...]:
    """Attachments for stored files; the size comes from the file, not from the client."""
    if len(refs) > MAX_REPLY_ATTACHMENTS:
        raise InvalidRequest(
            f"{len(refs)} attachments; at most {MAX_REPLY_ATTACHMENTS} per message",
            code="too_many_attachments",
        )
    return tuple(
        Attachment(
            filename=clean_filename(r.filename),
            content_type=clean_content_type(r.content_type),
            size=store.path(r.storage_key).stat().st_size,
            storage_key=r.storage_key,
        )
        for r in refs
    )


@endpoint(
    "POST",
    "/api/attachments",
    "Upload a file to send with a reply (multipart/form-data, one `file` part)",
    tags=("attachments",),
    response=AttachmentResponse,
    status=201,
    errors=(400, 401, 403, 413),
    auth="agent",
    upload=True,
)
async def upload(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    store = request.app[ATTACHMENTS]
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequest("send the file as multipart/form-data", code="not_multipart")
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader) or part.name != "file":
            continue
        data = bytearray()
        while chunk := await part.read_chunk(_CHUNK):
            data += chunk
            if len(data) > store.max_bytes:
                raise TooLarge(
                    f"the file is larger than the limit of {store.max_bytes} bytes",
                    code="attachment_too_large",
                )
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        saved = await store.save(bytes(data), part.filename or "attachment", content_type)
        return json_response({"attachment": attachment_out(saved).model_dump(mode="json")}, 201)
    raise InvalidRequest("the form has no `file` part", code="no_file")


@endpoint(
    "GET",
    "/api/attachments/{key}",
    "Download an attachment (`name` and `type` as in the message's attachment url)",
    tags=("attachments",),
    query=AttachmentQuery,
    errors=(400, 401, 404),
    auth="agent",
    string_params=("key",),
)
async def download(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    path = request.app[ATTACHMENTS].path(request.match_info["key"])
    name = clean_filename(request.query.get("name", "attachment"))
    return attachment_response(path, name, clean_content_type(request.query.get("type", "")))


HANDLERS: list[Handler] = [upload, download]
