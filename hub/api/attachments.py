"""Attachment files for agents: upload one to reply with, download what customers sent.

Downloads go through `hub.http.attachment_response`, which keeps a hostile file from running
in the hub's origin.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import current_session
from hub.api.keys import ATTACHMENTS
from hub.errors import InvalidRequest
from hub.http import Handler, attachment_response, endpoint, json_response, read_upload
from hub.model import Attachment
from hub.ports import AttachmentStore
from hub.storage.files import clean_content_type, clean_filename
from hub.wire import AttachmentOut, attachment_out

MAX_REPLY_ATTACHMENTS = 10


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
    files, _ = await read_upload(request, max_bytes=store.max_bytes, max_files=1)
    if not files:
        raise InvalidRequest("the form has no `file` part", code="no_file")
    saved = await store.save(files[0].data, files[0].filename, files[0].content_type)
    return json_response({"attachment": attachment_out(saved).model_dump(mode="json")}, 201)


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
