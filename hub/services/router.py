"""The routing service: the routing engine run against live conversations.

It follows committed events: a conversation that becomes `queued` (no bot, or the bot's
hand-off) is routed; one that becomes `assigned` is booked against its agent's capacity, by
whatever path it was assigned (an accepted offer, a supervisor's assign, an agent replying
to a waiting customer): the conversation service stays the one way of assigning. Offers,
escalations and overflows are written to the conversation's event log with the router's why.
A conversation that overflows after its last step is told what happens next (leave a message,
or a callback) by a notice on its own channel: a bot turn keyed on the overflow event, so it
goes out once, through the outbox, even across a restart.

One hub process runs the router (the state lives in memory and is rebuilt from the database
at start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.errors import ConfigError, Forbidden, HubError, InvalidTransition, NotFound
from hub.model import (
    AgentRouting,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    Event,
    EventKind,
    Presence,
)
from hub.ports import BusEnvelope, ConversationFilter, EventBus, Store, UnitOfWork
from hub.routing import (
    PRIORITY_RANK,
    AgentSpec,
    Assigned,
    Clock,
    ConfigFileError,
    Decision,
    Declined,
    Offered,
    OfferExpired,
    Overflowed,
    Policy,
    PresenceChanged,
    Queued,
    Requirements,
    Router,
    Task,
    load_policy,
    system_clock,
)
from hub.routing.agents import check_agent
from hub.routing.languages import primary_language
from hub.routing.sla import FIRST_RESPONSE, sla_targets
from hub.services.conversations import BotReply, BotTurn, ConversationService

log = logging.getLogger(__name__)
_S = ConversationStatus
_WATCHED = {EventKind.CONVERSATION_CREATED.value, EventKind.CONVERSATION_UPDATED.value}
MAX_POLICY_CHARS = 200_000
# (language tag or None, phrase key, **values) -> the text; the bot's phrase book, wired in
# by the composition root. Keys: overflow_message, overflow_callback, overflow_ask_phone.
Say = Callable[..., str]
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,}$")


@dataclass(frozen=True, slots=True)
class OverflowState:
    """The overflow (after the last step) of a conversation's current stay in the queue."""

    event_id: int
    action: str  # voicemail, leave_message or callback
    notified: bool  # the customer has been told what happens next


def overflow_state(events: Sequence[Event]) -> OverflowState | None:
    """The current stay's timeout overflow, from the event log; a return to the queue (an
    agent handing the conversation back, a reopen) starts a new stay."""
    found: OverflowState | None = None
    for ev in events:
        p = ev.payload
        if ev.kind is EventKind.ROUTING_DECISION and p.get("decision") == "overflow":
            if p.get("reason") == "timeout":
                found = OverflowState(ev.id, str(p.get("action")), False)
        elif ev.kind is EventKind.BOT_DECISION and found is not None:
            if p.get("key") == _notice_key(found.event_id):
                found = OverflowState(found.event_id, found.action, True)
        elif ev.kind is EventKind.CONVERSATION_UPDATED:
            status = (p.get("changes") or {}).get("status") or [None, None]
            if status[1] == _S.QUEUED.value and status[0] != _S.QUEUED.value:
                found = None
    return found


def _notice_key(overflow_event_id: int) -> str:
    return f"overflow:{overflow_event_id}"


def requirements_for(
    conv: Conversation,
    contact: Contact | None,
    last_agent: tuple[int, float] | None,
    handoff: Mapping[str, Any] | None = None,
    known_skills: Collection[str] = (),
) -> Requirements:
    """What a conversation asks of an agent: its skills ("billing" or "billing:4"), plus the
    bot's hand-off topic, tags and reason where the policy declares a skill of that name;
    language, priority, the contact's VIP tag and accessibility needs, and the last agent
    who helped the contact."""
    language = conv.language or (contact.language if contact else None)
    skills: dict[str, int] = {}
    for item in conv.required_skills:
        name, _, level = item.partition(":")
        skills[name.strip()] = int(level) if level.strip().isdigit() else 1
    if handoff:
        named = [handoff.get("topic"), handoff.get("reason"), *(handoff.get("tags") or ())]
        for name in named:
            if isinstance(name, str) and name in known_skills:
                skills.setdefault(name, 1)
    return Requirements(
        skills=skills,
        language=primary_language(language) if language else None,
        priority=PRIORITY_RANK[conv.priority],
        vip=bool(contact and "vip" in contact.tags),
        needs=contact.accessibility.needs if contact else frozenset(),
        preferred_agent=last_agent[0] if last_agent else None,
        preferred_since=last_agent[1] if last_agent else 0.0,
    )


class RoutingService:
    """Skill-based routing of queued conversations (see the module doc)."""

    def __init__(
        self,
        store: Store,
        conversations: ConversationService,
        bus: EventBus,
        initial_policy: str,
        clock: Clock = system_clock,
        source_name: str = "routing policy",
        say: Say | None = None,
    ):
        self.store = store
        self.conversations = conversations
        self.bus = bus
        self.clock = clock
        self.say = say  # None: overflows are recorded but the customer is not told
        # validated now: a bad policy file stops start-up with its lines named
        try:
            self._initial = load_policy(initial_policy, source_name)
        except ConfigFileError as exc:
            raise ConfigError("; ".join(exc.problems)) from None
        self._initial_source = initial_policy
        self.router = Router(self._initial, clock)
        self._inbox: asyncio.Queue[int] = asyncio.Queue()  # conversations to reconcile
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        self._lock = asyncio.Lock()  # one change to the engine and its writes at a time
        # SLA timers: (due, seq, conversation id, target, "warning" | "breach", version)
        self._sla: list[tuple[float, int, int, str, str, int]] = []
        self._sla_basis: dict[int, tuple[tuple[str, int, float], int]] = {}  # what, version
        self._sla_seq = itertools.count()
        # What the SLA events said so far, per open conversation: target -> warning | breach
        self._sla_states: dict[int, dict[str, str]] = {}

    @property
    def policy(self) -> Policy:
        return self.router.policy

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        stored = await self.store.read(lambda uow: uow.routing_policy())
        if stored is not None:
            try:
                self.router.set_policy(load_policy(stored, "stored routing policy"))
            except ConfigFileError as exc:  # saved by an older version: keep the file's
                log.error("stored routing policy ignored: %s", "; ".join(exc.problems))
        profiles = await self.store.read(lambda uow: uow.agent_routings())
        for routing in profiles:
            self.router.upsert_agent(AgentSpec.from_routing(routing).profile(), routing.presence)
        self._unsubscribe = self.bus.subscribe(self._on_bus)
        waiting = await self.store.read(
            lambda uow: uow.conversations(
                ConversationFilter(
                    status=(_S.QUEUED, _S.ASSIGNED), include_empty=True, limit=10_000
                )
            )
        )
        async with self._lock:
            for conv in sorted(waiting, key=lambda c: c.updated_at):
                await self._reconcile(conv.id)
        self._tasks = [
            asyncio.create_task(self._follow(), name="routing-events"),
            asyncio.create_task(self._timers(), name="routing-timers"),
        ]

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_bus(self, envelope: BusEnvelope) -> None:
        # Only what routing acts on is queued: every stored message also passes by here.
        conv_id = envelope["conversation_id"]
        if envelope["kind"] in _WATCHED and conv_id is not None:
            self._inbox.put_nowait(conv_id)

    async def _follow(self) -> None:
        while True:
            conv_id = await self._inbox.get()
            try:
                async with self._lock:
                    await self._reconcile(conv_id)
            except Exception:  # one bad conversation must not stop routing for all
                log.exception("routing conversation %s failed", conv_id)

    async def _timers(self) -> None:
        while True:
            deadlines = [d for d in (self.router.next_deadline(), self._next_sla()) if d]
            delay = 60.0 if not deadlines else max(0.0, min(deadlines) - self.clock())
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel that lands
            # in the loop turn the event fires, and close() would wait on this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(delay, 60.0)):
                    await self._wake.wait()
            try:
                await self.run_due()
            except Exception:
                log.exception("routing timers failed")

    async def run_due(self) -> None:
        """Fire the engine's due timers (offer timeouts, escalation steps, wrap-up ends)."""
        async with self._lock:
            await self._apply(self.router.tick())
            await self._fire_slas()

    # --- what agents and admins do ----------------------------------------------------------

    async def accept(self, conversation_id: int, agent_id: int) -> dict[str, Any]:
        """The agent takes the conversation it was offered; assigned through the service."""
        if self.router.offer_of(conversation_id) != agent_id:
            raise InvalidTransition(
                f"conversation {conversation_id} is not on offer to you", code="no_such_offer"
            )
        summary = await self.conversations.assign(conversation_id, agent_id, agent_id)
        if self.router.offer_of(conversation_id) == agent_id:
            # Already this agent's in the database (a transfer declined and offered back to
            # the agent who handed it on): nothing changed, so no event will tell the engine.
            async with self._lock:
                await self._reconcile(conversation_id)
        return summary

    async def decline(self, conversation_id: int, agent_id: int) -> None:
        async with self._lock:
            await self._apply(self.router.decline(conversation_id, agent_id))

    async def transfer(
        self, conversation_id: int, agent_id: int, *, to_agent: int | None, to_team: str | None
    ) -> None:
        if self.router.agent_of(conversation_id) != agent_id:
            raise Forbidden("only the assigned agent may transfer the conversation")
        async with self._lock:
            await self._apply(
                self.router.transfer(conversation_id, agent_id=to_agent, team=to_team)
            )

    def queue_position(self, conversation_id: int) -> tuple[int, int] | None:
        """(place in the queue, agents on shift who could take it), or None when the
        conversation is not waiting: what a caller on hold is told."""
        return self.router.queue_position(conversation_id)

    async def set_presence(self, agent_id: int, presence: Presence) -> None:
        async with self._lock:
            if agent_id not in self.router.agent_ids():
                raise NotFound("you have no routing profile yet", code="no_routing_profile")
            # Recorded as a decision like the router's own changes, so the event reaches the
            # agent's other tabs and supervisors, and the change is saved once.
            manual = PresenceChanged(agent_id, presence.value, "manual")
            await self._apply([manual, *self.router.set_presence(agent_id, presence)])

    async def open_offers(self, agent_id: int) -> list[dict[str, Any]]:
        """The offers an agent has now, each as its `offered` decision event said it (with the
        conversation id): what a page that was reloaded or reconnected shows again."""
        task_ids = self.router.offers_to(agent_id)
        if not task_ids:
            return []

        def read(uow: UnitOfWork) -> list[dict[str, Any]]:
            found = []
            for conv_id in task_ids:
                offered = [
                    e.payload
                    for e in uow.events(conv_id)
                    if e.kind is EventKind.ROUTING_DECISION
                    and e.payload.get("decision") == "offered"
                    and e.payload.get("agent_id") == agent_id
                ]
                if offered:
                    found.append({"conversation_id": conv_id, **offered[-1]})
            return found

        return await self.store.read(read)

    async def save_profile(self, spec: AgentSpec) -> AgentRouting:
        problems = check_agent(spec, self.policy, None)
        if problems:
            raise HubError("; ".join(problems), code="invalid_profile", status=422)
        if await self.store.read(lambda uow: uow.agent(spec.id)) is None:
            raise NotFound(f"no agent {spec.id}", code="unknown_agent")
        routing = spec.routing()
        async with self._lock:
            await self.store.write(lambda uow: uow.save_agent_routing(routing))
            await self._apply(self.router.upsert_agent(spec.profile(), spec.presence))
        return routing

    async def profiles(self) -> list[dict[str, Any]]:
        found = await self.store.read(lambda uow: uow.agent_routings())
        out = []
        for r in found:
            spec = AgentSpec.from_routing(r).model_dump(mode="json")
            known = r.agent_id in self.router.agent_ids()
            spec["presence"] = self.router.presence(r.agent_id).value if known else r.presence
            spec["used_capacity"] = self.router.used_capacity(r.agent_id) if known else 0
            out.append(spec)
        return out

    async def policy_source(self) -> str:
        stored = await self.store.read(lambda uow: uow.routing_policy())
        return stored if stored is not None else self._initial_source

    async def set_policy(self, source: str, actor_id: int) -> None:
        """Validate, store and apply a policy; waiting conversations re-route under it."""
        if len(source) > MAX_POLICY_CHARS:
            raise HubError(
                f"the policy is longer than {MAX_POLICY_CHARS} characters",
                code="policy_too_large",
                status=413,
            )
        policy = load_policy(source, "policy")  # ConfigFileError (422) lists the lines
        async with self._lock:
            await self.store.write(lambda uow: uow.save_routing_policy(source, actor_id))
            await self._apply(self.router.set_policy(policy))

    # --- the engine against the database ----------------------------------------------------

    async def _reconcile(self, conversation_id: int) -> None:
        """Bring the engine in line with the conversation's stored state."""
        found = await self.store.read(lambda uow: _load_for_routing(uow, conversation_id))
        if found is None:
            return
        conv, contact, last_agent, handoff, overflow = found
        self._track_sla(conv)
        r, cid = self.router, conv.id
        holder, offered = r.agent_of(cid), r.offer_of(cid)
        out: list[Decision] = []

        def task() -> Task:
            requirements = self._requirements(conv, contact, last_agent, handoff)
            return Task(cid, conv.inbox, conv.channel, requirements, conv.updated_at.timestamp())

        if conv.status is _S.QUEUED:
            if holder is not None:
                out += r.finish(cid)  # unassigned back to the queue
            if overflow is not None:
                # It overflowed: it waits in the queue for people, not for the router again
                # (a restarted hub would otherwise overflow it, and notify, a second time).
                if not overflow.notified:
                    await self._notify_overflow(cid, overflow.event_id, overflow.action)
            elif not r.is_waiting(cid) and r.offer_of(cid) is None:
                out += r.enqueue(task())
        elif conv.status is _S.ASSIGNED and conv.assignee_id is not None:
            agent = conv.assignee_id
            if offered == agent:
                out += r.accept(cid, agent)
            elif holder != agent:
                if agent in r.agent_ids():
                    out += r.reassign(cid, agent, task())
                else:
                    out += r.cancel(cid) if holder is None else r.finish(cid)
        elif conv.status in (_S.RESOLVED, _S.CLOSED, _S.BOT):
            out += r.finish(cid) if holder is not None else r.cancel(cid)
        await self._apply(out)

    async def _apply(self, decisions: Sequence[Decision]) -> None:
        """Record what the engine decided: events with the why, presence it changed."""
        events: list[tuple[int | None, EventKind, dict[str, Any]]] = []
        for d in decisions:
            if isinstance(d, Offered):
                events.append(
                    (
                        d.task_id,
                        EventKind.ROUTING_DECISION,
                        {
                            "decision": "offered",
                            "agent_id": d.agent_id,
                            "expires_at": _iso(d.expires_at),
                            "why": d.why.as_dict(),
                        },
                    )
                )
            elif isinstance(d, Queued):
                events.append(
                    (
                        d.task_id,
                        EventKind.ROUTING_DECISION,
                        {
                            "decision": "skipped" if d.skipped else "queued",
                            "filter": d.filter,
                            "step": d.step,
                            "priority": d.priority,
                        },
                    )
                )
            elif isinstance(d, OfferExpired | Declined):
                kind = "offer_expired" if isinstance(d, OfferExpired) else "declined"
                events.append(
                    (
                        d.task_id,
                        EventKind.ROUTING_DECISION,
                        {"decision": kind, "agent_id": d.agent_id},
                    )
                )
            elif isinstance(d, Overflowed):
                events.append(
                    (
                        d.task_id,
                        EventKind.ROUTING_DECISION,
                        {
                            "decision": "overflow",
                            "action": d.action,
                            "reason": d.reason,
                        },
                    )
                )
            elif isinstance(d, Assigned):
                events.append(
                    (
                        d.task_id,
                        EventKind.ROUTING_DECISION,
                        {
                            "decision": "assigned",
                            "agent_id": d.agent_id,
                            "waited_s": round(d.waited_s, 1),
                            "forced": d.forced,
                        },
                    )
                )
            elif isinstance(d, PresenceChanged):
                await self._save_presence(d.agent_id, Presence(d.presence))
                events.append(
                    (
                        None,
                        EventKind.AGENT_PRESENCE,
                        {
                            "agent_id": d.agent_id,
                            "presence": d.presence,
                            "reason": d.reason,
                        },
                    )
                )
        if events:

            def write(uow: UnitOfWork) -> list[Event]:
                return [
                    uow.append_event(kind, conv_id, payload, AuthorKind.SYSTEM, None)
                    for conv_id, kind, payload in events
                ]

            for ev in await self.store.write(write):
                p = ev.payload
                if p.get("decision") == "overflow" and p.get("reason") == "timeout":
                    assert ev.conversation_id is not None
                    await self._notify_overflow(ev.conversation_id, ev.id, str(p["action"]))
        self._wake.set()

    async def _notify_overflow(self, conversation_id: int, event_id: int, action: str) -> None:
        """Tell the customer what happens next, in the conversation's language, as a bot turn
        keyed on the overflow event (stored once, sent through the outbox). Voicemail needs a
        voice channel; on text channels it is a left message. The hand-off it records marks
        the conversation for agents: mode "overflow_message" or "overflow_callback" (reason
        "overflow" unless the bot's hand-off gave one)."""
        if self.say is None:
            return
        found = await self.store.read(lambda uow: _load_for_notice(uow, conversation_id))
        if found is None:
            return
        language, phone, before = found
        if action == "callback":
            mode = "overflow_callback"
            if phone:
                text = self.say(language, "overflow_callback", phone=phone)
            else:
                text = self.say(language, "overflow_ask_phone")
        else:
            mode, text = "overflow_message", self.say(language, "overflow_message")
        # the bot's hand-off (reason, details it collected) stays; the mode says what's next
        details = {**(before.get("details") or {}), **({"phone": phone} if phone else {})}
        handoff = {"reason": "overflow", **before, "mode": mode, "overflow": action}
        handoff["details"] = details
        await self.conversations.bot_turn(
            BotTurn(
                conversation_id,
                _notice_key(event_id),
                (BotReply(text),),
                {"decision": "overflow", "action": action, "overflow_event_id": event_id},
                None,
                handoff=handoff,
                needs_bot_status=False,
                queued_notice=True,
            )
        )

    def _requirements(
        self,
        conv: Conversation,
        contact: Contact | None,
        last_agent: tuple[int, float] | None,
        handoff: Mapping[str, Any] | None,
    ) -> Requirements:
        return requirements_for(conv, contact, last_agent, handoff, self.policy.skills)

    # --- SLAs ---------------------------------------------------------------------------------

    def _track_sla(self, conv: Conversation) -> None:
        """(Re)schedule a conversation's SLA timers when its inbox or priority changes."""
        if conv.status in (_S.RESOLVED, _S.CLOSED):
            self._sla_basis.pop(conv.id, None)
            self._sla_states.pop(conv.id, None)
            return
        basis = (conv.inbox, PRIORITY_RANK[conv.priority], conv.created_at.timestamp())
        known = self._sla_basis.get(conv.id)
        if known is not None and known[0] == basis:
            return
        version = (known[1] + 1) if known else 0
        self._sla_basis[conv.id] = (basis, version)
        for t in sla_targets(self.policy, *basis):
            for state, due in (("warning", t.warning_at), ("breach", t.breach_at)):
                if math.isfinite(due):
                    heapq.heappush(
                        self._sla, (due, next(self._sla_seq), conv.id, t.target, state, version)
                    )
        self._wake.set()

    def _next_sla(self) -> float | None:
        return self._sla[0][0] if self._sla else None

    async def _fire_slas(self) -> None:
        """Warn of, or report, each SLA target still unmet when it falls due."""
        now = self.clock()
        due: list[tuple[float, int, str, str]] = []
        while self._sla and self._sla[0][0] <= now:
            at, _seq, conv_id, target, state, version = heapq.heappop(self._sla)
            known = self._sla_basis.get(conv_id)
            if known is not None and known[1] == version:
                due.append((at, conv_id, target, state))
        if not due:
            return

        def write(uow: UnitOfWork) -> list[tuple[int, str, str]]:
            written = []
            for at, conv_id, target, state in due:
                conv = uow.conversation(conv_id)
                if conv is None or conv.status in (_S.RESOLVED, _S.CLOSED):
                    continue
                if target == FIRST_RESPONSE and conv.first_response_at is not None:
                    continue
                uow.append_event(
                    EventKind.CONVERSATION_SLA,
                    conv_id,
                    {"target": target, "state": state, "due_at": _iso(at)},
                    AuthorKind.SYSTEM,
                    None,
                )
                written.append((conv_id, target, state))
            return written

        for conv_id, target, state in await self.store.write(write):
            if conv_id not in self._sla_basis:
                continue  # resolved while the events were being written
            states = self._sla_states.setdefault(conv_id, {})
            if states.get(target) != "breach":  # a breach is never downgraded to a warning
                states[target] = state

    def sla_states(self) -> list[dict[str, Any]]:
        """Every SLA warning or breach reported so far on a conversation still open, as
        `conversation.sla` events said it: what a reloaded page shows again."""
        return [
            {"conversation_id": conv_id, "target": target, "state": state}
            for conv_id, states in self._sla_states.items()
            for target, state in states.items()
        ]

    async def _save_presence(self, agent_id: int, presence: Presence) -> None:
        p = self.router.profile(agent_id)
        routing = AgentRouting(
            agent_id,
            dict(p.skills),
            tuple(sorted(p.languages)),
            tuple(sorted(p.teams)),
            p.capacity,
            dict(p.costs),
            p.wrap_up_s,
            presence,
        )
        await self.store.write(lambda uow: uow.save_agent_routing(routing))


def _load_for_notice(
    uow: UnitOfWork, conversation_id: int
) -> tuple[str | None, str, dict[str, Any]] | None:
    """The conversation's language, a phone number to call back (the one the bot collected,
    else a phone-number identity of the contact; "" when none) and the bot's hand-off."""
    conv = uow.conversation(conversation_id)
    if conv is None:
        return None
    contact = uow.contact(conv.contact_id)
    handoff: dict[str, Any] = {}
    for event in uow.events(conv.id):
        found = event.payload.get("handoff")
        if event.kind is EventKind.CONVERSATION_UPDATED and isinstance(found, dict):
            handoff = found
    phone = str((handoff.get("details") or {}).get("phone") or "")
    if not phone and contact is not None:
        phone = next((i.address for i in contact.identities if _PHONE.match(i.address)), "")
    return conv.language or (contact.language if contact else None), phone, handoff


_Routing = tuple[
    Conversation,
    Contact | None,
    tuple[int, float] | None,
    Mapping[str, Any] | None,
    OverflowState | None,
]


def _load_for_routing(uow: UnitOfWork, conversation_id: int) -> _Routing | None:
    """The conversation, its contact, the contact's last agent, the bot's latest hand-off and
    the current stay's overflow."""
    conv = uow.conversation(conversation_id)
    if conv is None:
        return None
    contact = uow.contact(conv.contact_id)
    last = None
    for other in uow.conversations(ConversationFilter(contact_id=conv.contact_id, limit=10)):
        if other.id != conv.id and other.assignee_id is not None:
            last = (other.assignee_id, other.updated_at.timestamp())
            break
    handoff = overflow = None
    if conv.status is _S.QUEUED:
        events = uow.events(conv.id)
        for event in events:
            if event.kind is EventKind.CONVERSATION_UPDATED and "handoff" in event.payload:
                handoff = event.payload["handoff"]
        overflow = overflow_state(events)
    return conv, contact, last, handoff, overflow


def _iso(epoch: float) -> str | None:
    return None if not math.isfinite(epoch) else datetime.fromtimestamp(epoch, UTC).isoformat()
