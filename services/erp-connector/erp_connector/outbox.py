"""Transactional outbox: changes are written with the data, then relayed to the bus.

`record` adds a row in the caller's transaction, so a change and its event commit together or not
at all. `OutboxRelay` publishes unsent rows in id order with publisher confirms and only then
marks them sent: a broker outage only delays them, and a crash between the confirm and the mark
publishes the row again with the same message id, which consumers drop (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from erp_connector.broker import publish_each_confirmed
from erp_connector.database import Database
from erp_connector.models import IdempotencyRecord, OutboxMessage, WebhookSeen, utcnow
from erp_connector.settings import ErpConnectorSettings
from shared.bus import Bus
from shared.db import one_row
from shared.envelope import Envelope, Kind, MessageType
from shared.metrics import SampledGauge
from shared.telemetry import meter

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("erp_connector.outbox")
_meter = meter("erp_connector.outbox")
relayed = _meter.create_counter("erp_outbox_relayed", description="Outbox rows published to the bus")
relay_failures = _meter.create_counter("erp_outbox_relay_failures", description="Outbox publishes that failed")
backlog = SampledGauge("erp_outbox_unsent", "Outbox rows not yet published to the bus")
backlog_age = SampledGauge("erp_outbox_oldest_unsent_seconds", "Age of the oldest unpublished outbox row", unit="s")


def _message(*, type: MessageType, user: str, kind: Kind | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The columns of one outbox message, with the current trace context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {
        "message_id": str(uuid.uuid4()),
        "type": type.value,
        "kind": kind.value if kind else None,
        "user": user.lower(),
        "payload": payload,
        "traceparent": carrier.get("traceparent"),
        "tracestate": carrier.get("tracestate"),
        "occurred_at": utcnow(),
        "sent_at": None,
        "attempts": 0,
        "last_error": None,
    }


def record(
    session: AsyncSession,
    *,
    type: MessageType,
    user: str,
    kind: Kind | None,
    payload: dict[str, Any],
) -> OutboxMessage:
    """Append one message to the outbox in the session's transaction (flushed with the session)."""
    row = OutboxMessage(**_message(type=type, user=user, kind=kind, payload=payload))
    session.add(row)
    return row


_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
_APPEND = insert(_OUTBOX)
# The relay's statements, built once on the table: rows, not ORM objects (ADR 0054).
_UNSENT = core_select(_OUTBOX).where(_OUTBOX.c.sent_at.is_(None)).order_by(_OUTBOX.c.id).limit(bindparam("batch"))
_UNSENT_LOCKED = _UNSENT.with_for_update(skip_locked=True)  # PostgreSQL: replicas relay disjoint batches
_MARK_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(sent_at=bindparam("at"), attempts=_OUTBOX.c.attempts + 1)
)
_MARK_FAILED = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(attempts=_OUTBOX.c.attempts + 1, last_error=bindparam("error"))
)


async def append(
    session: AsyncSession, *, type: MessageType, user: str, kind: Kind | None, payload: dict[str, Any]
) -> None:
    """`record` as one Core INSERT, at once: for the activity writes, whose rows are not ORM objects
    either (ADR 0054)."""
    await session.exec(_APPEND, params=_message(type=type, user=user, kind=kind, payload=payload))  # type: ignore[call-overload]


def envelope_of(row: Any, tenant: str) -> Envelope:
    """The envelope of an outbox row; its id is the row's `message_id`, identical on every re-publish."""
    return Envelope(
        id=uuid.UUID(row.message_id),
        type=MessageType(row.type),
        tenant=tenant,
        user=row.user,
        kind=Kind(row.kind) if row.kind else None,
        occurred_at=row.occurred_at,
        payload=row.payload,
    )


class OutboxRelay:
    """Publishes the outbox to the bus: woken after each write, and every `interval` anyway."""

    def __init__(self, db: Database, bus: Bus, settings: ErpConnectorSettings) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_prune = 0.0
        self._broker_was_down = False
        # Set once the bus has connected and declared the topology (see `app.connect_bus`).
        self.broker_ready = False

    def wake(self) -> None:
        """Ask for a relay round now (called after a write commits)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped; errors are logged and retried, never fatal."""
        interval = self.settings.erp_outbox_relay_interval_s
        while not self._stopping:
            try:
                while await self.publish_pending() >= self.settings.erp_outbox_batch_size:
                    pass  # a full batch: there may be more right away
                await self._prune_now_and_then()
            except Exception:
                log.exception("outbox relay round failed; retrying in %.1fs", interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows in order; returns how many were published."""
        if not (self.broker_ready and self.bus.connected):
            return 0
        if self.db.sqlite:
            # SQLite: read, publish, then mark in a short write transaction, so API writes are
            # not blocked behind the broker's confirms.
            # A keyed read (the unsent rows' index), in place (ADR 0056).
            rows = await self.db.transactions.read_keyed(lambda session: self._unsent(session, lock=False))
            sent, failed = await self._publish(rows)
            if sent or failed:
                await self.db.run_write(lambda session: self._mark(session, sent, failed), keyed=True)
            return len(sent)
        # PostgreSQL: rows locked with SKIP LOCKED, so replicas relay disjoint batches.
        async with self.db.sessions() as session, session.begin():
            rows = await self._unsent(session, lock=True)
            sent, failed = await self._publish(rows)
            await self._mark(session, sent, failed)
        return len(sent)

    async def _unsent(self, session: AsyncSession, *, lock: bool) -> list[Any]:
        query = _UNSENT_LOCKED if lock else _UNSENT
        batch = {"batch": self.settings.erp_outbox_batch_size}
        return list((await session.exec(query, params=batch)).all())  # type: ignore[call-overload]

    async def _publish(self, rows: list[Any]) -> tuple[list[int], tuple[int, str] | None]:
        """Publish the rows at once (one write; their confirms awaited together). They count as sent
        in id order up to the first the broker did not confirm, so one user's changes keep their order:
        a later row it did confirm goes again next round with the same message id, which consumers drop."""
        if not rows:
            return [], None
        # Continue the trace of the write that created each row: one trace runs from the ERP write
        # through the broker to sync-core.
        spans = [
            _tracer.start_span(
                "erp outbox relay",
                context=propagate.extract({"traceparent": row.traceparent or "", "tracestate": row.tracestate or ""}),
                kind=SpanKind.INTERNAL,
                attributes={"messaging.message.id": row.message_id, "erp.outbox.id": row.id or 0},
            )
            for row in rows
        ]
        failures = await publish_each_confirmed(
            self.bus,
            [envelope_of(row, self.settings.tenant) for row in rows],
            [trace.set_span_in_context(span) for span in spans],
        )
        sent: list[int] = []
        failed: tuple[int, str] | None = None
        for row, span, failure in zip(rows, spans, failures, strict=True):
            assert row.id is not None
            if failure is None and failed is None:
                sent.append(row.id)
                relayed.add(1, {"type": row.type})
            elif failure is not None:
                span.set_status(Status(StatusCode.ERROR, str(failure)[:200]))
                if failed is None:
                    failed = (row.id, str(failure)[:500])
                    relay_failures.add(1)
            span.end()
        if failed is not None:
            if not self._broker_was_down:
                log.warning("outbox relay paused: broker unavailable; %d row(s) wait", len(rows) - len(sent))
            self._broker_was_down = True
        elif self._broker_was_down and sent:
            log.info("outbox relay resumed")
            self._broker_was_down = False
        return sent, failed

    async def _mark(self, session: AsyncSession, sent: list[int], failed: tuple[int, str] | None) -> None:
        if sent:
            await session.exec(_MARK_SENT, params={"ids": sent, "at": utcnow()})  # type: ignore[call-overload]
        if failed:
            row_id, error = failed
            await session.exec(_MARK_FAILED, params={"row_id": row_id, "error": error})  # type: ignore[call-overload]

    async def _prune_now_and_then(self) -> None:
        """Forget sent rows, idempotency records and seen webhook ids past the retention period."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_prune < 600:
            return
        self._last_prune = loop.time()
        cutoff = utcnow() - timedelta(hours=self.settings.erp_retention_hours)
        await self.db.run_write(lambda session: self._prune(session, cutoff))

    @staticmethod
    async def _prune(session: AsyncSession, cutoff: datetime) -> None:
        await session.exec(  # type: ignore[call-overload]
            delete(OutboxMessage).where(col(OutboxMessage.sent_at).is_not(None), col(OutboxMessage.sent_at) < cutoff)
        )
        await session.exec(delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < cutoff))  # type: ignore[call-overload]
        await session.exec(delete(WebhookSeen).where(col(WebhookSeen.received_at) < cutoff))  # type: ignore[call-overload]


class OutboxProbe:
    """How many changes wait in the outbox, and since when (a broker outage shows here first)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def sample(self) -> None:
        query = select(func.count(), func.min(OutboxMessage.occurred_at)).where(col(OutboxMessage.sent_at).is_(None))
        count, oldest = await self.db.run_read(lambda session: one_row(session, query))
        backlog.set(self, {(): float(count)})
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        backlog_age.set(self, {(): max(age, 0.0)})

    def forget(self) -> None:
        backlog.forget(self)
        backlog_age.forget(self)
