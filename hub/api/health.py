"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from aiohttp import web

from hub.api.keys import STORE
from hub.http import Handler, endpoint, error_response, json_response

log = logging.getLogger(__name__)


@endpoint("GET", "/healthz", "Liveness: the process answers", tags=("operations",))
async def healthz(request: web.Request) -> web.StreamResponse:
    return json_response({"status": "ok"})


@endpoint("GET", "/readyz", "Readiness: the database answers", tags=("operations",), errors=(503,))
async def readyz(request: web.Request) -> web.StreamResponse:
    try:
        await request.app[STORE].ping()
    except Exception as exc:  # any driver error means "not ready"; say which
        log.warning("readiness check failed: %s", exc)
        return error_response(
            503, "database_unavailable", f"database does not answer: {type(exc).__name__}"
        )
    return json_response({"status": "ready"})


HANDLERS: list[Handler] = [healthz, readyz]
