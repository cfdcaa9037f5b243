"""The bus messages graph-webhook publishes, built as contracts.md describes them."""

from __future__ import annotations

from typing import Any

from shared.envelope import Envelope, Kind, MessageType
from shared.telemetry import current_trace_id


class ResyncReason:
    MISSED = "missed"
    SUBSCRIPTION_REMOVED = "subscriptionRemoved"
    SUBSCRIPTION_CREATED = "subscriptionCreated"
    REAUTHORIZED = "reauthorized"


def graph_changed(
    *,
    tenant: str,
    user_email: str,
    kind: Kind,
    graph_user_id: str,
    subscription_id: str,
    change_type: str,
    resource: str | None,
    resource_id: str | None,
    list_id: str | None,
    etag: str | None = None,
) -> Envelope:
    """`graph.changed`: something changed in one user's collection; sync-core runs its delta.
    `etag`: the version the item changed to (`resourceData.@odata.etag`), when Graph sent it."""
    return Envelope(
        type=MessageType.GRAPH_CHANGED,
        tenant=tenant,
        user=user_email.lower(),
        kind=kind,
        payload={
            "graph_user_id": graph_user_id,
            "subscription_id": subscription_id,
            "change_type": change_type,
            "resource": resource,
            "resource_id": resource_id,
            "list_id": list_id,
            "etag": etag,
        },
    )


def graph_resync(
    *, tenant: str, user_email: str, kind: Kind, graph_user_id: str, reason: str, list_id: str | None = None
) -> Envelope:
    """`graph.resync`: notifications may have been lost (new subscription, removed, missed); delta heals it."""
    payload: dict[str, Any] = {"graph_user_id": graph_user_id, "reason": reason}
    if list_id:
        payload["list_id"] = list_id
    return Envelope(type=MessageType.GRAPH_RESYNC, tenant=tenant, user=user_email.lower(), kind=kind, payload=payload)


def journal_line(
    *,
    tenant: str,
    user_email: str,
    kind: Kind | None,
    outcome: str,
    rule: str | None,
    reason: str,
    graph_id: str | None = None,
) -> Envelope:
    """`journal.line`: a row for the journal that sync-core keeps (R25)."""
    return Envelope(
        type=MessageType.JOURNAL_LINE,
        tenant=tenant,
        user=user_email.lower(),
        kind=kind,
        payload={
            "direction": "outlook_to_erp",
            "outcome": outcome,
            "rule": rule,
            "reason": reason,
            "graph_id": graph_id,
            "erp_id": None,
            "trace_id": current_trace_id(),
        },
    )
