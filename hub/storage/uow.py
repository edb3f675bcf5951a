"""`hub.ports.UnitOfWork` on a SQLModel session (synchronous; runs on a storage thread)."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from hub.errors import HubError
from hub.model import (
    Agent,
    AgentRouting,
    Article,
    ArticleVersion,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    Event,
    EventKind,
    Identity,
    KbOutcome,
    KbQuery,
    Message,
    Role,
    utcnow,
)
from hub.ports import (
    AgentSession,
    ArticleFilter,
    ConversationFilter,
    KbSuggestion,
    NewEvent,
    NewMessage,
    PendingSend,
    SendSchedule,
    SuggestionFilter,
    WebchatSession,
)
from hub.storage import convert
from hub.storage.tables import (
    AgentRoutingRow,
    AgentRow,
    AgentSessionRow,
    ArticleRow,
    ArticleVersionRow,
    ContactIdentityRow,
    ContactRow,
    ConversationRow,
    EventRow,
    KbFeedbackRow,
    KbQueryRow,
    KbSuggestionRow,
    KbSynonymRow,
    MessageRow,
    OutboxScheduleRow,
    RoutingPolicyRow,
    WebchatSessionRow,
)

T_CONTACT = ContactRow.__table__  # type: ignore[attr-defined]
T_CONVERSATION = ConversationRow.__table__  # type: ignore[attr-defined]
T_MESSAGE = MessageRow.__table__  # type: ignore[attr-defined]
_RECEIPTS = (DeliveryState.DELIVERED.value, DeliveryState.READ.value)
# The states a receipt moves on from (`mark_delivery`): never back, never out of `failed`.
_BEFORE_RECEIPT = {
    DeliveryState.DELIVERED: (DeliveryState.QUEUED.value, DeliveryState.SENT.value),
    DeliveryState.READ: (
        DeliveryState.QUEUED.value,
        DeliveryState.SENT.value,
        DeliveryState.DELIVERED.value,
    ),
}
T_EVENT = EventRow.__table__  # type: ignore[attr-defined]
T_ARTICLE = ArticleRow.__table__  # type: ignore[attr-defined]


@functools.cache
def _update_conversations(columns: frozenset[str]) -> sa.Update:
    """UPDATE of just these columns on a set of conversations; built once per column set."""
    return (
        sa.update(T_CONVERSATION)
        .where(T_CONVERSATION.c.id.in_(sa.bindparam("_ids", expanding=True)))
        .values(
            {c: sa.bindparam(c) for c in sorted(columns)}
            | {"row_version": T_CONVERSATION.c.row_version + 1}
        )
    )


@functools.cache
def _driver_insert(
    stmt: sa.Insert, columns: tuple[str, ...], dialect: sa.Dialect
) -> tuple[str, list[tuple[str, Callable[[Any], Any] | None]]]:
    """`stmt` for these columns as the driver's SQL, with each column's bind processor.

    For the hot inserts on SQLite: `Connection.execute` would assemble and process every
    row's parameters through SQLAlchemy's generic per-value machinery, which took longer than
    the insert itself. The same SQL and the same column types' processors, applied column by
    column (`_bound`), bind the same values.
    """
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    table = stmt.table
    binders: list[tuple[str, Callable[[Any], Any] | None]] = [
        (key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect))
        for key in compiled.positiontup or ()
    ]
    return compiled.string, binders


def _bound(rows: list[dict[str, Any]], key: str, binder: Callable[[Any], Any] | None) -> list[Any]:
    """One column of `rows`, bound for the driver.

    A value every row shares (a batch's timestamp, no attachments) is bound once.
    """
    values = list(map(operator.itemgetter(key), rows))
    if binder is None:
        return values
    first = values[0]
    if all(v is first for v in values):
        return [binder(first)] * len(values)
    return list(map(binder, values))


_NO_ITEMS: tuple[()] = ()  # one object, so a column of empty lists is bound once (`_bound`)


def _json_items(items: tuple[Any, ...]) -> list[dict[str, Any]] | tuple[()]:
    """Attachments or choices as a JSON column's value."""
    return [dataclasses.asdict(i) for i in items] if items else _NO_ITEMS


def _hashable(value: Any) -> Any:
    """A column value as a dictionary key (the JSON columns hold lists of strings)."""
    return tuple(value) if isinstance(value, list) else value


# Built once: constructing statements per call costs more than running them on SQLite.
INSERT_MESSAGES = sa.insert(T_MESSAGE)
INSERT_EVENTS = sa.insert(T_EVENT)
SELECT_CONVERSATIONS = sa.select(T_CONVERSATION).where(
    T_CONVERSATION.c.id.in_(sa.bindparam("ids", expanding=True))
)
SELECT_CONVERSATIONS_FOR_UPDATE = SELECT_CONVERSATIONS.with_for_update()
SELECT_CONVERSATION_VERSIONS = sa.select(T_CONVERSATION.c.id, T_CONVERSATION.c.row_version).where(
    T_CONVERSATION.c.id.in_(sa.bindparam("ids", expanding=True))
)
SELECT_CONVERSATION_VERSIONS_FOR_UPDATE = SELECT_CONVERSATION_VERSIONS.with_for_update()
# Per channel: SQLite does not use the (channel, channel_message_id) index for a row-value IN.
SELECT_MESSAGES_BY_CHANNEL_ID = sa.select(T_MESSAGE).where(
    T_MESSAGE.c.channel == sa.bindparam("channel"),
    T_MESSAGE.c.channel_message_id.in_(sa.bindparam("ids", expanding=True)),
)


class ConversationCache:
    """Conversations a process has read or written, each with its row's `row_version`.

    Kept across transactions by the storage writer process, whose batches touch the same
    busy conversations again and again: checking a cached copy costs one small query for the
    whole batch (ids and versions) instead of reading and converting every row. Every UPDATE
    of a conversation bumps its version, so a copy whose version still matches is current,
    whoever else writes to the database. Bounded; the oldest entries go first.
    """

    def __init__(self, max_entries: int = 50_000):
        self.max_entries = max_entries
        self._entries: dict[int, tuple[int, Conversation]] = {}

    def get(self, conversation_id: int, row_version: int) -> Conversation | None:
        entry = self._entries.get(conversation_id)
        return entry[1] if entry is not None and entry[0] == row_version else None

    def update(self, entries: dict[int, tuple[int, Conversation]]) -> None:
        """Keep these (version, conversation) pairs; call only once their commit is done."""
        for conversation_id in entries:
            self._entries.pop(conversation_id, None)  # re-inserted last: recently used
        self._entries.update(entries)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)


class SqlUnitOfWork:
    """One transaction's worth of storage operations; collects the events it appends.

    The hot paths (messages, events, conversations) use Core statements on the SQLModel
    tables: ORM objects would pile up in the session's identity map over a group commit and
    make every flush slower than the last.
    """

    def __init__(self, session: Session, cache: ConversationCache | None = None):
        self.session = session
        self.appended: list[Event] = []
        # Conversations as last read or written here: saving writes only what changed.
        self._known: dict[int, Conversation] = {}
        # Their row versions as of this transaction, where known (for the cache).
        self._versions: dict[int, int] = {}
        self._cache = cache

    def committed(self) -> None:
        """The transaction committed: what it read and wrote is now the database's state."""
        if self._cache is not None:
            self._cache.update({i: (v, self._known[i]) for i, v in self._versions.items()})

    def _insert_many(self, stmt: sa.Insert, rows: list[dict[str, Any]]) -> list[int]:
        """Insert rows with one executemany; their new ids, in the order of `rows`."""
        if not rows:
            return []
        conn = self.session.connection()
        if conn.dialect.name != "sqlite":
            # PostgreSQL: SQLAlchemy's "insertmanyvalues" sends multi-row INSERTs and sorts the
            # RETURNING rows back into parameter order.
            ordered = stmt.returning(stmt.table.c.id, sort_by_parameter_order=True)
            return [int(i) for i in conn.execute(ordered, rows).scalars()]
        # SQLite cannot return a multi-row insert's ids in parameter order (SQLAlchemy would
        # fall back to one INSERT per row). But this transaction holds the database's write
        # lock, and SQLite gives each new row the largest rowid + 1, so one executemany's rows
        # get consecutive ids ending at last_insert_rowid().
        sql, binders = _driver_insert(stmt, tuple(rows[0]), conn.dialect)
        columns = [_bound(rows, key, binder) for key, binder in binders]
        # Straight on the driver's connection, inside this transaction: a batch's few
        # statements through SQLAlchemy's execution context cost more than running them.
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, zip(*columns, strict=True))
            if cursor.rowcount != len(rows):
                raise RuntimeError(f"inserted {cursor.rowcount} of {len(rows)} rows")
            (last,) = cursor.execute("SELECT last_insert_rowid()").fetchone()
        finally:
            cursor.close()
        return list(range(last - len(rows) + 1, last + 1))

    def append_events(self, events: Sequence[NewEvent]) -> list[Event]:
        now = utcnow()
        ids = self._insert_many(
            INSERT_EVENTS,
            [
                {
                    "kind": e.kind.value,
                    "conversation_id": e.conversation_id,
                    "actor_kind": e.actor_kind.value,
                    "actor_id": e.actor_id,
                    "payload": e.payload,
                    "created_at": now,
                }
                for e in events
            ],
        )
        stored = [
            Event(i, e.kind, e.conversation_id, e.actor_kind, e.actor_id, e.payload, now)
            for i, e in zip(ids, events, strict=True)
        ]
        self.appended.extend(stored)
        return stored

    def append_event(
        self,
        kind: EventKind,
        conversation_id: int | None,
        payload: dict[str, Any],
        actor_kind: AuthorKind = AuthorKind.SYSTEM,
        actor_id: int | None = None,
    ) -> Event:
        return self.append_events([NewEvent(kind, conversation_id, payload, actor_kind, actor_id)])[
            0
        ]

    # --- contacts -----------------------------------------------------------------------------

    def _identities(self, contact_id: int) -> list[Identity]:
        rows = self.session.exec(
            select(ContactIdentityRow)
            .where(ContactIdentityRow.contact_id == contact_id)
            .order_by(col(ContactIdentityRow.id))
        )
        return [Identity(r.channel, r.address) for r in rows]

    def contact(self, contact_id: int) -> Contact | None:
        row = self.session.get(ContactRow, contact_id)
        return convert.contact(row, self._identities(contact_id)) if row else None

    def contacts(self, contact_ids: Sequence[int]) -> dict[int, Contact]:
        if not contact_ids:
            return {}
        rows = self.session.exec(select(ContactRow).where(col(ContactRow.id).in_(set(contact_ids))))
        ids = self.session.exec(
            select(ContactIdentityRow).where(
                col(ContactIdentityRow.contact_id).in_(set(contact_ids))
            )
        )
        by_contact: dict[int, list[Identity]] = {}
        for i in ids:
            by_contact.setdefault(i.contact_id, []).append(Identity(i.channel, i.address))
        return {
            r.id: convert.contact(r, by_contact.get(r.id, [])) for r in rows if r.id is not None
        }

    def contact_by_identity(self, identity: Identity) -> Contact | None:
        row = self.session.exec(
            select(ContactIdentityRow).where(
                ContactIdentityRow.channel == identity.channel,
                ContactIdentityRow.address == identity.address,
            )
        ).first()
        return self.contact(row.contact_id) if row else None

    def create_contact(
        self, display_name: str, identities: Sequence[Identity], language: str | None
    ) -> Contact:
        row = ContactRow(display_name=display_name, language=language, created_at=utcnow())
        self.session.add(row)
        self.session.flush()
        assert row.id is not None
        for ident in identities:
            self.session.add(
                ContactIdentityRow(contact_id=row.id, channel=ident.channel, address=ident.address)
            )
        self.session.flush()
        return convert.contact(row, list(identities))

    def add_identity(self, contact_id: int, identity: Identity) -> Contact:
        owner = self.contact_by_identity(identity)
        if owner is not None and owner.id != contact_id:
            raise HubError(
                f"{identity.channel} address {identity.address!r} belongs to another contact",
                code="identity_taken",
                status=409,
            )
        if owner is None:
            self.session.add(
                ContactIdentityRow(
                    contact_id=contact_id, channel=identity.channel, address=identity.address
                )
            )
            self.session.flush()
        contact = self.contact(contact_id)
        if contact is None:
            raise HubError(f"no contact {contact_id}", code="unknown_contact", status=404)
        return contact

    def rename_contact(self, contact_id: int, display_name: str) -> None:
        row = self.session.get(ContactRow, contact_id)
        if row is not None:
            row.display_name = display_name

    # --- conversations ------------------------------------------------------------------------

    def conversation(
        self, conversation_id: int, *, for_update: bool = False
    ) -> Conversation | None:
        return self.conversations_by_id([conversation_id], for_update=for_update).get(
            conversation_id
        )

    def conversations_by_id(
        self, conversation_ids: Collection[int], *, for_update: bool = False
    ) -> dict[int, Conversation]:
        if not conversation_ids:
            return {}
        conn = self.session.connection()  # Core statements: the ORM layer adds nothing here
        found: dict[int, Conversation] = {}
        to_read = list(conversation_ids)
        if self._cache is not None:
            versions = (
                SELECT_CONVERSATION_VERSIONS_FOR_UPDATE
                if for_update
                else SELECT_CONVERSATION_VERSIONS
            )
            to_read = []
            for conversation_id, version in conn.execute(versions, {"ids": list(conversation_ids)}):
                cached = self._cache.get(conversation_id, version)
                if cached is None:
                    to_read.append(conversation_id)
                else:
                    found[conversation_id] = cached
                    self._versions[conversation_id] = version
        if to_read:
            stmt = SELECT_CONVERSATIONS_FOR_UPDATE if for_update else SELECT_CONVERSATIONS
            for r in conn.execute(stmt, {"ids": to_read}):
                found[r.id] = convert.conversation(r)
                self._versions[r.id] = r.row_version
        self._known.update(found)
        return found

    def latest_conversation(self, contact_id: int, channel: str, inbox: str) -> Conversation | None:
        row = self.session.exec(
            select(ConversationRow)
            .where(
                ConversationRow.contact_id == contact_id,
                ConversationRow.channel == channel,
                ConversationRow.inbox == inbox,
            )
            .order_by(col(ConversationRow.id).desc())
            .limit(1)
        ).first()
        return convert.conversation(row) if row else None

    def create_conversation(
        self,
        contact_id: int,
        channel: str,
        inbox: str,
        status: ConversationStatus,
        language: str | None,
    ) -> Conversation:
        now = utcnow()
        row = ConversationRow(
            contact_id=contact_id,
            channel=channel,
            inbox=inbox,
            status=status.value,
            language=language,
            created_at=now,
            updated_at=now,
        )
        self.session.add(row)
        self.session.flush()
        conv = convert.conversation(row)
        self._known[conv.id] = conv
        self._versions[conv.id] = row.row_version
        return conv

    def save_conversations(self, conversations: Sequence[Conversation]) -> None:
        if not conversations:
            return
        # Conversations taking the same new values (a batch of inbound messages sets the same
        # timestamps on each) share one UPDATE ... WHERE id IN (...).
        by_change: dict[tuple[tuple[str, Any], ...], list[int]] = {}
        for conv in conversations:
            values = convert.conversation_values(conv, self._known.get(conv.id))
            self._known[conv.id] = conv
            if values:
                # In column order always (`conversation_values`), so equal changes are equal keys.
                change = tuple([(k, _hashable(v)) for k, v in values.items()])
                by_change.setdefault(change, []).append(conv.id)
        conn = self.session.connection()
        for change, ids in by_change.items():
            values = {k: list(v) if isinstance(v, tuple) else v for k, v in change}
            result = conn.execute(_update_conversations(frozenset(values)), {**values, "_ids": ids})
            if result.rowcount != len(ids):
                raise LookupError(f"{len(ids) - result.rowcount} conversation(s) vanished")
            for conversation_id in ids:
                if conversation_id in self._versions:
                    self._versions[conversation_id] += 1

    def conversations(self, flt: ConversationFilter) -> list[Conversation]:
        stmt = select(ConversationRow)
        if flt.status:
            stmt = stmt.where(col(ConversationRow.status).in_([s.value for s in flt.status]))
        if flt.assignee_id is not None:
            stmt = stmt.where(ConversationRow.assignee_id == flt.assignee_id)
        if flt.unassigned:
            stmt = stmt.where(col(ConversationRow.assignee_id).is_(None))
        if flt.channel:
            stmt = stmt.where(ConversationRow.channel == flt.channel)
        if flt.contact_id is not None:
            stmt = stmt.where(ConversationRow.contact_id == flt.contact_id)
        if not flt.include_empty:
            stmt = stmt.where(col(ConversationRow.last_message_at).is_not(None))
        stmt = stmt.order_by(col(ConversationRow.updated_at).desc(), col(ConversationRow.id).desc())
        return [convert.conversation(r) for r in self.session.exec(stmt.limit(flt.limit))]

    def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, Message]:
        if not conversation_ids:
            return {}
        latest = (
            select(sa.func.max(MessageRow.id))
            .where(col(MessageRow.conversation_id).in_(set(conversation_ids)))
            .group_by(col(MessageRow.conversation_id))
        )
        rows = self.session.exec(select(MessageRow).where(col(MessageRow.id).in_(latest)))
        return {r.conversation_id: convert.message(r) for r in rows}

    # --- messages -----------------------------------------------------------------------------

    def messages_by_channel_ids(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Message]:
        if not keys:
            return {}
        by_channel: dict[str, list[str]] = {}
        for channel, channel_message_id in keys:
            by_channel.setdefault(channel, []).append(channel_message_id)
        found: dict[tuple[str, str], Message] = {}
        for channel, ids in by_channel.items():
            rows = self.session.connection().execute(
                SELECT_MESSAGES_BY_CHANNEL_ID, {"channel": channel, "ids": ids}
            )
            found.update(((r.channel, r.channel_message_id), convert.message(r)) for r in rows)
        return found

    def add_messages(self, messages: Sequence[NewMessage]) -> list[Message]:
        rows: list[dict[str, Any]] = [
            {
                "conversation_id": m.conversation_id,
                "direction": m.direction,
                "author_kind": m.author_kind.value,
                "author_id": m.author_id,
                "author_name": m.author_name,
                "text": m.text,
                "attachments": _json_items(m.attachments),
                "channel": m.channel,
                "channel_message_id": m.channel_message_id,
                "delivery_state": m.delivery_state.value,
                "created_at": m.created_at,
                "choices": _json_items(m.choices),
                "format": m.format.value,
            }
            for m in messages
        ]
        ids = self._insert_many(INSERT_MESSAGES, rows)
        return [convert.new_message(i, m) for i, m in zip(ids, messages, strict=True)]

    def messages(self, conversation_id: int, limit: int = 500) -> list[Message]:
        rows = self.session.execute(
            sa.select(T_MESSAGE)
            .where(T_MESSAGE.c.conversation_id == conversation_id)
            .order_by(T_MESSAGE.c.id.desc())
            .limit(limit)
        ).all()
        return [convert.message(r) for r in reversed(rows)]

    def message(self, message_id: int) -> Message | None:
        row = self.session.get(MessageRow, message_id)
        return None if row is None else convert.message(row)

    def set_delivery_state(
        self, message_id: int, state: DeliveryState, channel_message_id: str | None = None
    ) -> Message | None:
        row = self.session.get(MessageRow, message_id)
        if row is None:
            return None
        # A receipt (the widget got or showed the message) may be stored before the outbox
        # records its send: `sent` then must not take it back.
        if not (state is DeliveryState.SENT and row.delivery_state in _RECEIPTS):
            row.delivery_state = state.value
        if channel_message_id is not None:
            row.channel_message_id = channel_message_id
        self.session.flush()
        return convert.message(row)

    def mark_delivery(
        self, conversation_id: int, direction: Direction, up_to: int, state: DeliveryState
    ) -> list[Message]:
        earlier = _BEFORE_RECEIPT[state]
        rows = self.session.execute(
            sa.select(T_MESSAGE).where(
                T_MESSAGE.c.conversation_id == conversation_id,
                T_MESSAGE.c.direction == direction.value,
                T_MESSAGE.c.id <= up_to,
                T_MESSAGE.c.delivery_state.in_(earlier),
            )
        ).all()
        if not rows:
            return []
        self.session.execute(
            sa.update(T_MESSAGE)
            .where(T_MESSAGE.c.id.in_([r.id for r in rows]))
            .values(delivery_state=state.value)
        )
        return [dataclasses.replace(convert.message(r), delivery_state=state) for r in rows]

    def pending_sends(self, after_id: int = 0, limit: int = 500) -> list[PendingSend]:
        rows = self.session.exec(
            select(MessageRow, OutboxScheduleRow)
            .join(
                OutboxScheduleRow,
                col(OutboxScheduleRow.message_id) == col(MessageRow.id),
                isouter=True,
            )
            .where(
                MessageRow.direction == Direction.OUTBOUND.value,
                MessageRow.delivery_state == DeliveryState.QUEUED.value,
                col(MessageRow.id) > after_id,
            )
            .order_by(col(MessageRow.id))
            .limit(limit)
        )
        return [
            PendingSend(
                convert.message(m),
                None
                if s is None
                else SendSchedule(s.attempts, s.next_attempt_at, s.queued_at, s.last_error),
            )
            for m, s in rows
        ]

    def save_send_schedule(self, message_id: int, schedule: SendSchedule | None) -> None:
        row = self.session.get(OutboxScheduleRow, message_id)
        if schedule is None:
            if row is not None:
                self.session.delete(row)
                self.session.flush()
            return
        if row is None:
            row = OutboxScheduleRow(
                message_id=message_id,
                attempts=schedule.attempts,
                next_attempt_at=schedule.next_attempt_at,
                queued_at=schedule.queued_at,
            )
        row.attempts = schedule.attempts
        row.next_attempt_at = schedule.next_attempt_at
        row.queued_at = schedule.queued_at
        row.last_error = schedule.last_error
        self.session.add(row)
        self.session.flush()

    def fail_delivery(self, message_id: int, error: str) -> Message | None:
        self.save_send_schedule(message_id, None)
        row = self.session.get(MessageRow, message_id)
        if row is None:
            return None
        row.delivery_state = DeliveryState.FAILED.value
        row.delivery_error = error
        self.session.flush()
        return convert.message(row)

    def requeue_delivery(self, message_id: int, queued_at: datetime) -> Message | None:
        row = self.session.get(MessageRow, message_id)
        if row is None:
            return None
        row.delivery_state = DeliveryState.QUEUED.value
        row.delivery_error = None
        self.save_send_schedule(message_id, SendSchedule(0, queued_at, queued_at))
        self.session.flush()
        return convert.message(row)

    def events(self, conversation_id: int) -> list[Event]:
        rows = self.session.exec(
            select(EventRow)
            .where(EventRow.conversation_id == conversation_id)
            .order_by(col(EventRow.id))
        )
        return [convert.event(r) for r in rows]

    # --- agents and sessions ------------------------------------------------------------------

    def add_agent(self, email: str, name: str, role: Role, password_hash: str) -> Agent:
        row = AgentRow(
            email=email.lower(),
            name=name,
            role=role.value,
            password_hash=password_hash,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        return convert.agent(row)

    def agent(self, agent_id: int) -> Agent | None:
        row = self.session.get(AgentRow, agent_id)
        return convert.agent(row) if row else None

    def agent_credentials(self, email: str) -> tuple[Agent, str] | None:
        row = self.session.exec(select(AgentRow).where(AgentRow.email == email.lower())).first()
        return (convert.agent(row), row.password_hash) if row else None

    def set_agent_password(self, agent_id: int, password_hash: str) -> None:
        row = self.session.get(AgentRow, agent_id)
        if row is not None:
            row.password_hash = password_hash

    def create_agent_session(
        self, token_hash: str, agent_id: int, csrf_token: str, expires_at: datetime
    ) -> None:
        self.session.add(
            AgentSessionRow(
                token_hash=token_hash,
                agent_id=agent_id,
                csrf_token=csrf_token,
                created_at=utcnow(),
                expires_at=expires_at,
            )
        )

    def agent_session(self, token_hash: str, now: datetime) -> AgentSession | None:
        found = self.session.exec(
            select(AgentSessionRow, AgentRow)
            .join(AgentRow, col(AgentRow.id) == AgentSessionRow.agent_id)
            .where(AgentSessionRow.token_hash == token_hash)
        ).first()
        if found is None:
            return None
        sess, agent_row = found
        if sess.expires_at <= now or not agent_row.active:
            return None
        return AgentSession(convert.agent(agent_row), sess.csrf_token, sess.expires_at)

    def delete_agent_session(self, token_hash: str) -> None:
        self.session.execute(
            sa.delete(AgentSessionRow).where(col(AgentSessionRow.token_hash) == token_hash)
        )

    def create_webchat_session(
        self, token_hash: str, contact_id: int, conversation_id: int, address: str
    ) -> WebchatSession:
        row = WebchatSessionRow(
            token_hash=token_hash,
            contact_id=contact_id,
            conversation_id=conversation_id,
            address=address,
            created_at=utcnow(),
        )
        self.session.add(row)
        self.session.flush()
        assert row.id is not None
        return WebchatSession(row.id, contact_id, conversation_id, address)

    def webchat_session(self, token_hash: str) -> WebchatSession | None:
        row = self.session.exec(
            select(WebchatSessionRow).where(WebchatSessionRow.token_hash == token_hash)
        ).first()
        if row is None or row.id is None:
            return None
        return WebchatSession(row.id, row.contact_id, row.conversation_id, row.address)

    # --- knowledge base -----------------------------------------------------------------------

    def agents(self, agent_ids: Collection[int]) -> dict[int, Agent]:
        if not agent_ids:
            return {}
        rows = self.session.exec(select(AgentRow).where(col(AgentRow.id).in_(set(agent_ids))))
        return {r.id: convert.agent(r) for r in rows if r.id is not None}

    def article(self, article_id: str, *, for_update: bool = False) -> Article | None:
        stmt = sa.select(T_ARTICLE).where(T_ARTICLE.c.id == article_id)
        row = self.session.execute(stmt.with_for_update() if for_update else stmt).first()
        return convert.article(row) if row else None

    def articles(self, flt: ArticleFilter) -> list[Article]:
        stmt = sa.select(T_ARTICLE)
        if flt.status:
            stmt = stmt.where(T_ARTICLE.c.status.in_([s.value for s in flt.status]))
        if flt.language:
            stmt = stmt.where(T_ARTICLE.c.language == flt.language)
        if flt.text:
            stmt = stmt.where(T_ARTICLE.c.title.icontains(flt.text, autoescape=True))
        stmt = stmt.order_by(T_ARTICLE.c.updated_at.desc(), T_ARTICLE.c.id)
        found = (convert.article(r) for r in self.session.execute(stmt))
        if flt.tag:
            # Tags are a JSON list; filtering here keeps one query for SQLite and PostgreSQL.
            found = (a for a in found if flt.tag in a.content.tags)
        return list(found if flt.limit is None else itertools.islice(found, flt.limit))

    def add_article(self, article: Article) -> None:
        if self.session.get(ArticleRow, article.id) is not None:
            raise HubError(
                f"an article with id {article.id!r} exists", code="duplicate_id", status=409
            )
        self.session.execute(sa.insert(T_ARTICLE).values(convert.article_values(article)))

    def save_article(self, article: Article) -> None:
        values = convert.article_values(article)
        del values["id"], values["created_at"], values["created_by"]
        result = self.session.connection().execute(
            sa.update(T_ARTICLE).where(T_ARTICLE.c.id == article.id).values(values)
        )
        if result.rowcount != 1:
            raise LookupError(f"article {article.id!r} vanished")

    def add_article_version(self, version: ArticleVersion) -> None:
        self.session.add(
            ArticleVersionRow(
                article_id=version.article_id,
                version=version.version,
                **convert.content_values(version.content),
                status=version.status.value,
                author_id=version.author_id,
                created_at=version.created_at,
                changes=list(version.changes),
            )
        )
        self.session.flush()

    def article_versions(self, article_id: str) -> list[ArticleVersion]:
        rows = self.session.exec(
            select(ArticleVersionRow)
            .where(ArticleVersionRow.article_id == article_id)
            .order_by(col(ArticleVersionRow.version).desc())
        )
        return [convert.article_version(r) for r in rows]

    def article_version(self, article_id: str, version: int) -> ArticleVersion | None:
        row = self.session.exec(
            select(ArticleVersionRow).where(
                ArticleVersionRow.article_id == article_id, ArticleVersionRow.version == version
            )
        ).first()
        return convert.article_version(row) if row else None

    def add_kb_feedback(
        self, article_id: str, helpful: bool, conversation_id: int | None, now: datetime
    ) -> None:
        self.session.add(
            KbFeedbackRow(
                article_id=article_id,
                helpful=helpful,
                conversation_id=conversation_id,
                created_at=now,
            )
        )

    def set_kb_vote(self, article_id: str, visitor_id: str, helpful: bool, now: datetime) -> None:
        dialect = self.session.connection().dialect.name
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        stmt = insert(KbFeedbackRow).values(
            article_id=article_id, visitor_id=visitor_id, helpful=helpful, created_at=now
        )
        # One statement, so a double click racing itself still leaves one vote.
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["article_id", "visitor_id"],
                set_={"helpful": helpful, "created_at": now},
            )
        )

    def kb_vote(self, article_id: str, visitor_id: str) -> bool | None:
        return self.session.exec(
            select(KbFeedbackRow.helpful).where(
                KbFeedbackRow.article_id == article_id, KbFeedbackRow.visitor_id == visitor_id
            )
        ).first()

    def kb_feedback_counts(self, article_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        if not article_ids:
            return {}
        helpful = col(KbFeedbackRow.helpful)
        rows = self.session.execute(
            sa.select(
                col(KbFeedbackRow.article_id),
                sa.func.count().filter(helpful.is_(True)),
                sa.func.count().filter(helpful.is_(False)),
            )
            .where(col(KbFeedbackRow.article_id).in_(set(article_ids)))
            .group_by(col(KbFeedbackRow.article_id))
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def kb_feedback_given(self, article_id: str, conversation_id: int) -> bool:
        found = self.session.exec(
            select(KbFeedbackRow.id)
            .where(
                KbFeedbackRow.article_id == article_id,
                KbFeedbackRow.conversation_id == conversation_id,
            )
            .limit(1)
        ).first()
        return found is not None

    def add_kb_query(self, query: KbQuery) -> None:
        self.session.add(
            KbQueryRow(
                text=query.text,
                language=query.language,
                top_article_id=query.top_article_id,
                top_score=query.top_score,
                outcome=query.outcome.value,
                source=query.source.value,
                created_at=query.created_at,
            )
        )

    def kb_queries(
        self, outcomes: Collection[KbOutcome], since: datetime, limit: int
    ) -> list[KbQuery]:
        rows = self.session.exec(
            select(KbQueryRow)
            .where(
                col(KbQueryRow.outcome).in_([o.value for o in outcomes]),
                col(KbQueryRow.created_at) >= since,
            )
            .order_by(col(KbQueryRow.created_at).desc(), col(KbQueryRow.id).desc())
            .limit(limit)
        )
        return [convert.kb_query(r) for r in rows]

    def kb_synonyms(self) -> list[list[str]]:
        rows = self.session.exec(select(KbSynonymRow).order_by(col(KbSynonymRow.id)))
        return [list(r.terms) for r in rows]

    def set_kb_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        self.session.execute(sa.delete(KbSynonymRow))
        self.session.add_all(KbSynonymRow(terms=list(g)) for g in groups)
        self.session.flush()

    def kb_suggestion(self, article_id: str, normalized: str) -> KbSuggestion | None:
        row = self.session.exec(
            select(KbSuggestionRow).where(
                KbSuggestionRow.article_id == article_id, KbSuggestionRow.normalized == normalized
            )
        ).first()
        return _suggestion(row) if row else None

    def kb_suggestions_by_id(self, ids: Collection[int]) -> list[KbSuggestion]:
        if not ids:
            return []
        rows = self.session.exec(
            select(KbSuggestionRow)
            .where(col(KbSuggestionRow.id).in_(set(ids)))
            .order_by(col(KbSuggestionRow.id))
            .with_for_update()
        )
        return [_suggestion(r) for r in rows]

    def kb_suggestions(self, flt: SuggestionFilter) -> list[KbSuggestion]:
        stmt = select(KbSuggestionRow)
        if flt.article_id is not None:
            stmt = stmt.where(KbSuggestionRow.article_id == flt.article_id)
        if flt.status is not None:
            stmt = stmt.where(KbSuggestionRow.status == flt.status)
        seen, count = col(KbSuggestionRow.last_seen_at), col(KbSuggestionRow.count)
        order = (count.desc(), seen.desc()) if flt.order == "frequent" else (seen.desc(),)
        rows = self.session.exec(
            stmt.order_by(*order, col(KbSuggestionRow.id).desc()).limit(flt.limit)
        )
        return [_suggestion(r) for r in rows]

    def kb_suggestion_counts(self, status: str = "pending") -> dict[str, int]:
        article = col(KbSuggestionRow.article_id)
        rows = self.session.execute(
            sa.select(article, sa.func.count())
            .where(col(KbSuggestionRow.status) == status)
            .group_by(article)
        )
        return {r[0]: int(r[1]) for r in rows}

    def save_kb_suggestion(self, suggestion: KbSuggestion) -> KbSuggestion:
        values = dataclasses.asdict(suggestion)
        values["sources"] = list(suggestion.sources)
        values["conversation_ids"] = list(suggestion.conversation_ids)
        row = self.session.get(KbSuggestionRow, suggestion.id) if suggestion.id else None
        if row is None:
            del values["id"]
            row = KbSuggestionRow(**values)
            self.session.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        self.session.flush()
        return _suggestion(row)

    # --- routing ---------------------------------------------------------------------------

    def agent_routings(self) -> list[AgentRouting]:
        rows = self.session.exec(
            select(AgentRoutingRow)
            .join(AgentRow, col(AgentRow.id) == AgentRoutingRow.agent_id)
            .where(col(AgentRow.active))
            .order_by(col(AgentRoutingRow.agent_id))
        )
        return [convert.agent_routing(r) for r in rows]

    def save_agent_routing(self, routing: AgentRouting) -> None:
        row = self.session.get(AgentRoutingRow, routing.agent_id)
        if row is None:
            row = AgentRoutingRow(agent_id=routing.agent_id)
            self.session.add(row)
        row.skills = dict(routing.skills)
        row.languages = list(routing.languages)
        row.teams = list(routing.teams)
        row.capacity = routing.capacity
        row.costs = dict(routing.costs)
        row.wrap_up_s = routing.wrap_up_s
        row.presence = routing.presence.value
        row.updated_at = utcnow()
        self.session.flush()

    def routing_policy(self) -> str | None:
        row = self.session.get(RoutingPolicyRow, 1)
        return row.source if row else None

    def save_routing_policy(self, source: str, agent_id: int | None) -> None:
        row = self.session.get(RoutingPolicyRow, 1)
        if row is None:
            row = RoutingPolicyRow(id=1, source=source)
            self.session.add(row)
        row.source, row.updated_by, row.updated_at = source, agent_id, utcnow()
        self.session.flush()


def _suggestion(row: KbSuggestionRow) -> KbSuggestion:
    assert row.id is not None
    return KbSuggestion(
        id=row.id,
        article_id=row.article_id,
        question=row.question,
        normalized=row.normalized,
        count=row.count,
        sources=tuple(row.sources),
        conversation_ids=tuple(int(c) for c in row.conversation_ids),
        status=row.status,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
    )
