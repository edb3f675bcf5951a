"""Agents: argon2id password hashing, login sessions with CSRF tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.errors import HubError, InvalidRequest, NotAuthenticated
from hub.model import Agent, Role, utcnow
from hub.ports import AgentSession, Store

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verifying against this when the email is unknown keeps login time independent of it.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def token_hash(token: str) -> str:
    """Tokens are stored hashed: a database leak does not hand out sessions."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@dataclass(frozen=True, slots=True)
class Login:
    agent: Agent
    session_token: str
    csrf_token: str


class AgentService:
    def __init__(self, store: Store, session_ttl: timedelta):
        self.store = store
        self.session_ttl = session_ttl

    async def add(self, email: str, name: str, role: Role, password: str) -> Agent:
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise InvalidRequest(f"not an email address: {email!r}")
        if len(password) < 8:
            raise InvalidRequest("the password needs at least 8 characters")
        if await self.store.read(lambda uow: uow.agent_credentials(email)) is not None:
            raise HubError(f"an agent with email {email} exists", code="agent_exists", status=409)
        hashed = await asyncio.to_thread(hash_password, password)
        return await self.store.write(lambda uow: uow.add_agent(email, name.strip(), role, hashed))

    async def login(self, email: str, password: str) -> Login:
        found = await self.store.read(lambda uow: uow.agent_credentials(email.strip()))
        stored_hash = found[1] if found else _DUMMY_HASH
        ok = await asyncio.to_thread(_verify, stored_hash, password)
        if not ok or found is None or not found[0].active:
            raise NotAuthenticated("invalid email or password", code="invalid_credentials")
        agent = found[0]
        if _hasher.check_needs_rehash(stored_hash):
            rehashed = await asyncio.to_thread(hash_password, password)
            await self.store.write(lambda uow: uow.set_agent_password(agent.id, rehashed))
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = utcnow() + self.session_ttl
        await self.store.write(
            lambda uow: uow.create_agent_session(token_hash(token), agent.id, csrf, expires)
        )
        return Login(agent, token, csrf)

    async def session(self, token: str) -> AgentSession | None:
        hashed, now = token_hash(token), utcnow()
        return await self.store.read(lambda uow: uow.agent_session(hashed, now))

    async def logout(self, token: str) -> None:
        hashed = token_hash(token)
        await self.store.write(lambda uow: uow.delete_agent_session(hashed))


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
