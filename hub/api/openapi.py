"""The OpenAPI 3.1 document, generated from the declared endpoints and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import hub
from hub.api.keys import ENDPOINTS
from hub.http import Endpoint, Handler, endpoint, json_response

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Bad request",
    401: "Not signed in or bad token",
    403: "Forbidden or CSRF failure",
    404: "Not found",
    409: "Not allowed in this state",
    413: "Too large",
    422: "Validation failed",
    503: "Not ready",
}


class ErrorDetail(BaseModel):
    code: str
    detail: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


def build(endpoints: list[Endpoint]) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorResponse}
    for e in endpoints:
        models.update(m for m in (e.body, e.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation") for m in ordered], ref_template="#/components/schemas/{model}"
    )

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "validation")]

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {
            "summary": e.summary,
            "tags": list(e.tags),
            "operationId": re.sub(r"\W+", "_", f"{e.method}_{e.path}").strip("_"),
        }
        params = [
            {
                "name": n,
                "in": "path",
                "required": True,
                "schema": {"type": "string" if n in e.string_params else "integer"},
            }
            for n in re.findall(r"{(\w+)}", e.path)
        ]
        if e.query is not None:
            for name, field in e.query.model_fields.items():
                schema = e.query.model_json_schema()["properties"][name]
                params.append(
                    {"name": name, "in": "query", "required": field.is_required(), "schema": schema}
                )
        if params:
            op["parameters"] = params
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(e.body)}},
            }
        if e.upload:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                **{f: {"type": "string"} for f in e.form_fields},
                            },
                            "required": ["file"],
                        }
                    }
                },
            }
        ok: dict[str, Any] = {
            "description": "Switching protocols"
            if e.websocket
            else _STATUS_TEXT.get(e.status, "OK")
        }
        if e.response is not None:
            ok["content"] = {"application/json": {"schema": ref(e.response)}}
        responses = {str(101 if e.websocket else e.status): ok}
        for status in e.errors:
            responses[str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": ref(ErrorResponse)}},
            }
        op["responses"] = responses
        if e.auth == "agent":
            op["security"] = [{"session": []}]
        paths.setdefault(e.path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "omnihub",
            "version": hub.__version__,
            "description": "Omnichannel contact-center hub API. Errors: {error: {code, detail}}.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "omnihub_session",
                    "description": "Unsafe methods also need the X-CSRF-Token header.",
                }
            },
        },
    }


@endpoint("GET", "/api/openapi.json", "This document", tags=("operations",))
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return json_response(build(request.app[ENDPOINTS]))


HANDLERS: list[Handler] = [openapi_json]
