"""Errors of the operations, each with the HTTP status the ops API answers with."""

from __future__ import annotations

from shared.errors import SyncError


class OpsError(SyncError):
    """An operation could not be done; the message says what and what to do."""

    status = 500


class NotFound(OpsError):
    status = 404


class Conflict(OpsError):
    """The request collides with the current state (stale version, user not enabled)."""

    status = 409


class Invalid(OpsError):
    """The request is wrong, or the ERP refused it by one of its rules."""

    status = 422


class Unavailable(OpsError):
    """Another part (ERP, graph-webhook, broker, Graph) did not answer."""

    status = 503
