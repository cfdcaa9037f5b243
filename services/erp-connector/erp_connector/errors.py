"""What the ERP refuses, and why: each error carries an HTTP status, a stable code and a message.

The REST API answers them as `{"detail": {"code": …, "message": …, …}}` (contracts.md).
"""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentError


class ErpError(PermanentError):
    """Base of the ERP's refusals; `extra` goes into the error body next to code and message."""

    status_code = 400
    code = "erp_error"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def detail(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class NotFound(ErpError):
    status_code = 404
    code = "not_found"


class AlreadyExists(ErpError):
    status_code = 409
    code = "already_exists"


class Deleted(ErpError):
    """The record is a tombstone: it can be read, not changed (409, a refusal not worth retrying)."""

    status_code = 409
    code = "deleted"


class Overlap(ErpError):
    """R15: the representative already has a meeting at that time."""

    status_code = 409
    code = "overlap"


class VersionConflict(ErpError):
    """`If-Match` named another version than the current one; `current` is the record as it is."""

    status_code = 412
    code = "version_conflict"


class InvalidData(ErpError):
    status_code = 422
    code = "invalid"


class UnknownReference(InvalidData):
    """A code or id that names nothing (representative, contact, group)."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.code = code


class UnknownPartner(InvalidData):
    """R11: a business partner code that does not exist."""

    code = "unknown_partner"


class SalesRoleRequired(InvalidData):
    """R13: only a representative with a sales role can be enabled for sync."""

    code = "sales_role_required"


class IdempotencyKeyReused(InvalidData):
    """The same `Idempotency-Key` came with another request."""

    code = "idempotency_key_reused"
