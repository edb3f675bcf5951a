"""Agent login with a session cookie; CSRF token required on every unsafe request."""

from __future__ import annotations

import hmac

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.keys import AGENTS, SETTINGS
from hub.errors import Forbidden, NotAuthenticated
from hub.http import Handler, endpoint, json_response, read_json
from hub.ports import AgentSession
from hub.wire import AgentOut, agent_out

COOKIE = "omnihub_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = web.RequestKey("agent_session", AgentSession)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    agent: AgentOut
    csrf_token: str


async def current_session(request: web.Request) -> AgentSession:
    """The signed-in agent's session, or 401; checks CSRF on unsafe methods."""
    if SESSION_KEY in request:
        return request[SESSION_KEY]
    token = request.cookies.get(COOKIE)
    session = await request.app[AGENTS].session(token) if token else None
    if session is None:
        raise NotAuthenticated("sign in first")
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header", code="csrf_failed")
    request[SESSION_KEY] = session
    return session


@endpoint(
    "POST",
    "/api/auth/login",
    "Sign in; sets the session cookie",
    tags=("auth",),
    body=LoginRequest,
    response=LoginResponse,
    errors=(401, 422),
)
async def login(request: web.Request) -> web.StreamResponse:
    req = await read_json(request, LoginRequest)
    result = await request.app[AGENTS].login(req.email, req.password)
    settings = request.app[SETTINGS]
    resp = json_response(LoginResponse(agent=agent_out(result.agent), csrf_token=result.csrf_token))
    resp.set_cookie(
        COOKIE,
        result.session_token,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=settings.secure_cookies,
        max_age=settings.session_ttl_hours * 3600,
    )
    return resp


@endpoint(
    "GET",
    "/api/auth/me",
    "The signed-in agent and the CSRF token",
    tags=("auth",),
    response=LoginResponse,
    errors=(401,),
    auth="agent",
)
async def me(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    return json_response(
        LoginResponse(agent=agent_out(session.agent), csrf_token=session.csrf_token)
    )


@endpoint(
    "POST",
    "/api/auth/logout",
    "Sign out",
    tags=("auth",),
    status=204,
    errors=(401, 403),
    auth="agent",
)
async def logout(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    await request.app[AGENTS].logout(request.cookies[COOKIE])
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE, path="/")
    return resp


HANDLERS: list[Handler] = [login, me, logout]
