"""`hub.ports.UnitOfWork` on a SQLModel session (synchronous; runs on a storage thread)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from hub.model import (
    Agent,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    Event,
    EventKind,
    Identity,
    Message,
    Role,
    utcnow,
)
from hub.ports import AgentSession, ConversationFilter, WebchatSession
from hub.storage import convert
from hub.storage.tables import (
    AgentRow,
    AgentSessionRow,
    ContactIdentityRow,
    ContactRow,
    ConversationRow,
    EventRow,
    MessageRow,
    WebchatSessionRow,
)

T_CONTACT = ContactRow.__table__  # type: ignore[attr-defined]
T_CONVERSATION = ConversationRow.__table__  # type: ignore[attr-defined]
T_MESSAGE = MessageRow.__table__  # type: ignore[attr-defined]
T_EVENT = EventRow.__table__  # type: ignore[attr-defined]


def _prebuilt_update(table: sa.Table, columns: list[str]) -> sa.Update:
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values({c: sa.bindparam(c) for c in columns})
    )


# Built once: constructing statements per call costs more than running them on SQLite.
INSERT_MESSAGE = sa.insert(T_MESSAGE).returning(T_MESSAGE.c.id)
INSERT_EVENT = sa.insert(T_EVENT).returning(T_EVENT.c.id)
SELECT_CONVERSATION = sa.select(T_CONVERSATION).where(T_CONVERSATION.c.id == sa.bindparam("_id"))
SELECT_CONVERSATION_FOR_UPDATE = SELECT_CONVERSATION.with_for_update()
UPDATE_CONVERSATION = _prebuilt_update(T_CONVERSATION, list(convert.CONVERSATION_MUTABLE))
SELECT_MESSAGE_BY_CHANNEL_ID = sa.select(T_MESSAGE).where(
    T_MESSAGE.c.channel == sa.bindparam("channel"),
    T_MESSAGE.c.channel_message_id == sa.bindparam("cmid"),
)


class SqlUnitOfWork:
    """One transaction's worth of storage operations; collects the events it appends.

    The hot paths (messages, events, conversations) use Core statements on the SQLModel
    tables: ORM objects would pile up in the session's identity map over a group commit and
    make every flush slower than the last.
    """

    def __init__(self, session: Session):
        self.session = session
        self.appended: list[Event] = []

    def _insert(self, stmt: sa.Insert, values: dict[str, Any]) -> int:
        return int(self.session.execute(stmt, values).scalar_one())

    def _first(self, stmt: sa.Select[Any]) -> Any:
        return self.session.execute(stmt).first()

    def append_event(
        self,
        kind: EventKind,
        conversation_id: int | None,
        payload: dict[str, Any],
        actor_kind: AuthorKind = AuthorKind.SYSTEM,
        actor_id: int | None = None,
    ) -> Event:
        now = utcnow()
        event_id = self._insert(
            INSERT_EVENT,
            {
                "kind": kind.value,
                "conversation_id": conversation_id,
                "actor_kind": actor_kind.value,
                "actor_id": actor_id,
                "payload": payload,
                "created_at": now,
            },
        )
        ev = Event(event_id, kind, conversation_id, actor_kind, actor_id, payload, now)
        self.appended.append(ev)
        return ev

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

    def rename_contact(self, contact_id: int, display_name: str) -> None:
        row = self.session.get(ContactRow, contact_id)
        if row is not None:
            row.display_name = display_name

    # --- conversations ------------------------------------------------------------------------

    def conversation(
        self, conversation_id: int, *, for_update: bool = False
    ) -> Conversation | None:
        stmt = SELECT_CONVERSATION_FOR_UPDATE if for_update else SELECT_CONVERSATION
        row = self.session.execute(stmt, {"_id": conversation_id}).first()
        return convert.conversation(row) if row else None

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
        return convert.conversation(row)

    def save_conversation(self, conversation: Conversation) -> None:
        values = {"_id": conversation.id, **convert.conversation_values(conversation)}
        result = self.session.connection().execute(UPDATE_CONVERSATION, values)
        if result.rowcount != 1:
            raise LookupError(f"conversation {conversation.id} vanished")

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

    def message_by_channel_id(self, channel: str, channel_message_id: str) -> Message | None:
        row = self.session.execute(
            SELECT_MESSAGE_BY_CHANNEL_ID, {"channel": channel, "cmid": channel_message_id}
        ).first()
        return convert.message(row) if row else None

    def add_message(
        self,
        conversation_id: int,
        *,
        direction: str,
        author_kind: AuthorKind,
        text: str,
        channel: str,
        author_id: int | None = None,
        author_name: str | None = None,
        channel_message_id: str | None = None,
        delivery_state: DeliveryState = DeliveryState.QUEUED,
        created_at: datetime | None = None,
    ) -> Message:
        created_at = created_at or utcnow()
        values = {
            "conversation_id": conversation_id,
            "direction": direction,
            "author_kind": author_kind.value,
            "author_id": author_id,
            "author_name": author_name,
            "text": text,
            "attachments": [],
            "channel": channel,
            "channel_message_id": channel_message_id,
            "delivery_state": delivery_state.value,
            "created_at": created_at,
        }
        return convert.message(SimpleNamespace(id=self._insert(INSERT_MESSAGE, values), **values))

    def messages(self, conversation_id: int, limit: int = 500) -> list[Message]:
        rows = self.session.execute(
            sa.select(T_MESSAGE)
            .where(T_MESSAGE.c.conversation_id == conversation_id)
            .order_by(T_MESSAGE.c.id.desc())
            .limit(limit)
        ).all()
        return [convert.message(r) for r in reversed(rows)]

    def set_delivery_state(self, message_id: int, state: DeliveryState) -> Message | None:
        row = self.session.get(MessageRow, message_id)
        if row is None:
            return None
        row.delivery_state = state.value
        self.session.flush()
        return convert.message(row)

    def undelivered_outbound(self, limit: int = 500) -> list[Message]:
        rows = self.session.exec(
            select(MessageRow)
            .where(
                MessageRow.direction == Direction.OUTBOUND.value,
                MessageRow.delivery_state == DeliveryState.QUEUED.value,
            )
            .order_by(col(MessageRow.id))
            .limit(limit)
        )
        return [convert.message(r) for r in rows]

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
