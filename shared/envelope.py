"""The one message envelope every service publishes and consumes."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from pydantic import BaseModel, Field


class MessageType(StrEnum):
    GRAPH_CHANGED = "graph.changed"
    GRAPH_RESYNC = "graph.resync"
    ERP_CHANGED = "erp.changed"
    SYNC_FORCE = "sync.force"
    USER_CHANGED = "user.changed"
    # A journal line reported by a service that does not own the journal (sync-core does).
    JOURNAL_LINE = "journal.line"


class Kind(StrEnum):
    EVENT = "event"
    CONTACT = "contact"
    TASK = "task"
    CALL = "call"


def collection_of(kind: Kind | None) -> str:
    """The Graph collection a kind lives in: tasks and calls share the To Do list."""
    if kind is None:
        return "all"
    return "todo" if kind in (Kind.TASK, Kind.CALL) else kind.value


def shard_of(tenant: str, user: str, kind: Kind | None, shards: int) -> int:
    """Stable shard of a (tenant, user, collection): all its work goes through one queue."""
    key = f"{tenant}|{user.lower()}|{collection_of(kind)}".encode()
    return zlib.crc32(key) % shards


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    """A message on the bus. `id` is the dedupe key: consumers process an id once."""

    id: UUID = Field(default_factory=uuid4)
    type: MessageType
    tenant: str
    user: str
    kind: Kind | None = None
    occurred_at: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(default_factory=dict)

    def serialisation_key(self) -> str:
        """Messages with equal keys are handled one at a time, in order."""
        return f"{self.tenant}|{self.user.lower()}|{collection_of(self.kind)}"

    def routing_key(self, shards: int) -> str:
        return f"{self.type.value}.{shard_of(self.tenant, self.user, self.kind, shards)}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        return cls.model_validate_json(body)
