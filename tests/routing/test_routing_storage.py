"""Routing profiles, presence and the policy survive in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from hub.config import Settings
from hub.model import AgentRouting, Presence, Role
from hub.ports import UnitOfWork
from hub.storage import SqlStore, migrate
from tests.routing.support import POLICY


async def test_profiles_presence_and_policy_round_trip(settings: Settings) -> None:
    url = settings.effective_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate.upgrade, url)
    store = SqlStore.from_url(url)
    await store.start()
    try:
        ids = await store.write(
            lambda uow: [
                uow.add_agent(f"r{i}@example.test", f"R{i}", Role.AGENT, "x").id for i in range(2)
            ]
        )
        first = AgentRouting(
            ids[0],
            {"billing": 4, "tech": 2},
            ("en", "zh"),
            ("tier1",),
            150,
            {"email": 10},
            30.0,
            Presence.AVAILABLE,
        )
        second = AgentRouting(ids[1], {"text-relay": 5})

        def save_all(uow: UnitOfWork) -> None:
            uow.save_agent_routing(first)
            uow.save_agent_routing(second)
            uow.save_routing_policy(POLICY, ids[0])

        await store.write(save_all)
        assert await store.read(lambda uow: uow.agent_routings()) == [first, second]
        away = AgentRouting(ids[1], {"text-relay": 5}, presence=Presence.AWAY)
        await store.write(lambda uow: uow.save_agent_routing(away))
        assert (await store.read(lambda uow: uow.agent_routings()))[1] == away
        assert await store.read(lambda uow: uow.routing_policy()) == POLICY
    finally:
        await store.close()
