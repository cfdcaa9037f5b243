"""Units of work on the embedded ERP: reads, and writes that are idempotent by key.

A write runs in one transaction with its outbox rows and, when the request had an
`Idempotency-Key`, with the record of its answer: either all of it commits or none of it. A retry
with the same key gets the stored answer back; the same key with another request is refused.
Only successful answers are stored: a refused write changed nothing, so retrying it (after
re-reading, for a 412) must be allowed to succeed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from erp_connector.database import Database
from erp_connector.errors import AlreadyExists, ErpError, IdempotencyKeyReused
from erp_connector.models import IdempotencyRecord, Origin, utcnow
from erp_connector.store import ErpStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# Idempotency records as rows, with statements built once: a write with a key reads and writes one
# every time, and the ORM's object for it cost several times the statement (ADR 0054).
_RECORDS = IdempotencyRecord.__table__  # type: ignore[attr-defined]
_PRIOR = select(_RECORDS.c.fingerprint, _RECORDS.c.status_code, _RECORDS.c.body).where(
    _RECORDS.c.key == bindparam("of_key")
)
_REMEMBER = insert(_RECORDS)


def fingerprint(*parts: str | bytes) -> str:
    """A digest of what makes two requests the same request (method, path, body, preconditions)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class WriteRequest:
    """How a write was asked for: its idempotency key, expected version and origin."""

    idempotency_key: str | None = None
    fingerprint: str = ""
    expected_version: int | None = None
    origin: Origin = Origin.ERP


@dataclass(frozen=True)
class WriteResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class UnitOfWork:
    """Opens an `ErpStore` on a session for each read or write, and wakes the outbox relay after writes."""

    def __init__(self, db: Database, *, refuse_overlaps: bool = True, on_commit: Callable[[], None] | None = None):
        self.db = db
        self.refuse_overlaps = refuse_overlaps
        self.on_commit = on_commit

    async def read(self, fn: Callable[[ErpStore], Awaitable[T]]) -> T:
        return await self.db.run_read(lambda session: fn(ErpStore(session, refuse_overlaps=self.refuse_overlaps)))

    async def write(
        self, request: WriteRequest, fn: Callable[[ErpStore], Awaitable[BaseModel]], *, status_code: int = 200
    ) -> WriteResult:
        """Run `fn` in one transaction; with an idempotency key, at most once."""
        key = request.idempotency_key

        async def transaction(session: AsyncSession) -> WriteResult:
            if key and (prior := await self._prior(session, key, request)) is not None:
                return prior
            model = await fn(ErpStore(session, refuse_overlaps=self.refuse_overlaps, origin=request.origin))
            body = model.model_dump(mode="json")
            if key:
                record = {
                    "key": key,
                    "fingerprint": request.fingerprint,
                    "status_code": status_code,
                    "body": body,
                    "created_at": utcnow(),
                }
                await session.exec(_REMEMBER, params=record)  # type: ignore[call-overload]
            return WriteResult(status_code, body)

        try:
            result = await self.db.run_write(transaction, keyed=True)
        except (ErpError, IntegrityError) as exc:
            # A concurrent request with the same key may have won the race (unique key, or R15
            # seeing the winner's meeting): then answer as it did.
            if key and (prior := await self.db.run_read(lambda session: self._prior(session, key, request))):
                return prior
            if isinstance(exc, IntegrityError):
                # debug only: the constraint message may quote an e-mail address
                log.debug("write refused by a database constraint", extra={"error": str(exc.orig)[:200]})
                raise AlreadyExists("a concurrent write took the same code, chrono or e-mail; read and retry") from exc
            raise
        if not result.replayed and self.on_commit is not None:
            self.on_commit()
        return result

    @staticmethod
    async def _prior(session: AsyncSession, key: str, request: WriteRequest) -> WriteResult | None:
        record = (await session.exec(_PRIOR, params={"of_key": key})).first()  # type: ignore[call-overload]
        if record is None:
            return None
        if record.fingerprint != request.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for another request: use a new key per distinct write"
            )
        return WriteResult(record.status_code, dict(record.body), replayed=True)
