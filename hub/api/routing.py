"""Routing endpoints: policy and agent profiles (admins), presence and offers (agents).

Served only when routing is on (`routing_policy` set); thin: parse, check the role, call
the routing service.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import current_session
from hub.errors import Forbidden
from hub.http import Handler, endpoint, json_response, parse, path_id, read_json, read_query
from hub.model import Presence, Role
from hub.ports import AgentSession
from hub.routing import AgentSpec
from hub.routing.erlang import MAX_AGENTS, agents_needed, staffing
from hub.services.router import MAX_POLICY_CHARS, RoutingService

ROUTING = web.AppKey("routing", RoutingService)
TAGS = ("routing",)
SUPERVISORS = frozenset({Role.SUPERVISOR, Role.ADMIN})


async def _role(request: web.Request, roles: frozenset[Role], what: str) -> AgentSession:
    session = await current_session(request)
    if session.agent.role not in roles:
        raise Forbidden(f"only {what} may do this")
    return session


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(max_length=MAX_POLICY_CHARS, description="the policy, YAML or JSON")


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skills: dict[str, int]
    languages: list[str] = ["en"]
    teams: list[str] = []
    capacity: int | None = None
    costs: dict[str, int] = {}
    wrap_up_s: float | None = None
    presence: Presence = Presence.OFFLINE


class PresenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    presence: Presence


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: int | None = Field(None, ge=1)
    team: str | None = Field(None, max_length=100)


class Ok(BaseModel):
    ok: bool


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


@endpoint(
    "GET",
    "/api/routing/policy",
    "The routing policy in force",
    tags=TAGS,
    response=PolicyBody,
    errors=(401, 403),
    auth="agent",
)
async def get_policy(request: web.Request) -> web.StreamResponse:
    await _role(request, SUPERVISORS, "supervisors and admins")
    return json_response({"source": await request.app[ROUTING].policy_source()})


@endpoint(
    "PUT",
    "/api/routing/policy",
    "Replace the routing policy (validated; waiting conversations re-route under it)",
    tags=TAGS,
    body=PolicyBody,
    response=PolicyBody,
    errors=(400, 401, 403, 413, 422),
    auth="agent",
)
async def put_policy(request: web.Request) -> web.StreamResponse:
    session = await _role(request, frozenset({Role.ADMIN}), "admins")
    body = await read_json(request, PolicyBody)
    await request.app[ROUTING].set_policy(body.source, session.agent.id)
    return json_response({"source": body.source})


@endpoint(
    "GET",
    "/api/routing/agents",
    "Agents' routing profiles, presence and load",
    tags=TAGS,
    errors=(401, 403),
    auth="agent",
)
async def list_profiles(request: web.Request) -> web.StreamResponse:
    await _role(request, SUPERVISORS, "supervisors and admins")
    return json_response({"agents": await request.app[ROUTING].profiles()})


@endpoint(
    "PUT",
    "/api/routing/agents/{id}",
    "Set an agent's skills, languages, teams, capacity",
    tags=TAGS,
    body=ProfileBody,
    errors=(400, 401, 403, 404, 422),
    auth="agent",
)
async def put_profile(request: web.Request) -> web.StreamResponse:
    await _role(request, frozenset({Role.ADMIN}), "admins")
    body = await read_json(request, ProfileBody)
    spec = parse(AgentSpec, {"id": path_id(request), **body.model_dump()})
    saved = await request.app[ROUTING].save_profile(spec)
    data: dict[str, Any] = AgentSpec.from_routing(saved).model_dump(mode="json")
    return json_response({"agent": data})


@endpoint(
    "PUT",
    "/api/agent/presence",
    "Set your presence (available, busy, away, offline...)",
    tags=TAGS,
    body=PresenceBody,
    response=Ok,
    errors=(400, 401, 404, 422),
    auth="agent",
)
async def put_presence(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    body = await read_json(request, PresenceBody)
    await request.app[ROUTING].set_presence(session.agent.id, body.presence)
    return json_response({"ok": True})


@endpoint(
    "POST",
    "/api/conversations/{id}/accept",
    "Accept the conversation offered to you",
    tags=TAGS,
    body=Empty,
    errors=(400, 401, 404, 409),
    auth="agent",
)
async def accept(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    await read_json(request, Empty)
    summary = await request.app[ROUTING].accept(path_id(request), session.agent.id)
    return json_response({"conversation": summary})


@endpoint(
    "POST",
    "/api/conversations/{id}/decline",
    "Decline the conversation offered to you",
    tags=TAGS,
    body=Empty,
    response=Ok,
    errors=(400, 401, 409),
    auth="agent",
)
async def decline(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    await read_json(request, Empty)
    await request.app[ROUTING].decline(path_id(request), session.agent.id)
    return json_response({"ok": True})


@endpoint(
    "POST",
    "/api/conversations/{id}/transfer",
    "Transfer your conversation to an agent or a team",
    tags=TAGS,
    body=TransferBody,
    response=Ok,
    errors=(400, 401, 403, 404, 409),
    auth="agent",
)
async def transfer(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    body = await read_json(request, TransferBody)
    await request.app[ROUTING].transfer(
        path_id(request), session.agent.id, to_agent=body.agent_id, to_team=body.team
    )
    return json_response({"ok": True})


class ErlangQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(gt=0, description="arrivals per hour")
    aht: float = Field(gt=0, description="average handle time, seconds")
    target: float = Field(20.0, ge=0, description="answer target, seconds")
    agents: int | None = Field(None, ge=1, le=MAX_AGENTS, description="evaluate this many")
    service_level: float = Field(0.8, gt=0, lt=1, description="else size for this")
    max_occupancy: float = Field(1.0, gt=0, le=1)


class ErlangResponse(BaseModel):
    agents: int
    traffic_erlangs: float
    probability_wait: float
    service_level: float
    asa_s: float
    occupancy: float


@endpoint(
    "GET",
    "/api/routing/erlang",
    "Erlang C: agents needed, or the service N agents give",
    tags=TAGS,
    query=ErlangQuery,
    response=ErlangResponse,
    errors=(400, 401, 403, 422),
    auth="agent",
)
async def erlang(request: web.Request) -> web.StreamResponse:
    await _role(request, SUPERVISORS, "supervisors and admins")
    q = read_query(request, ErlangQuery)
    if q.agents is not None:
        result = staffing(q.rate, q.aht, q.target, q.agents)
    else:
        result = agents_needed(q.rate, q.aht, q.target, q.service_level, q.max_occupancy)
    return json_response(dataclasses.asdict(result))


HANDLERS: list[Handler] = [
    erlang,
    get_policy,
    put_policy,
    list_profiles,
    put_profile,
    put_presence,
    accept,
    decline,
    transfer,
]
