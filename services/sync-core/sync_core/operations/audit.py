"""Audit lines: every action of an operator is a journal row naming who did it (R25)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.envelope import Kind
from sync_core.state import journal_entry

if TYPE_CHECKING:
    from sync_core.app import Runtime

AUDIT = "audit"
# Journal rows must name a user; actions on no user in particular (a dead-letter queue) use this.
NO_USER = "*"


async def audit(
    rt: Runtime,
    *,
    actor: str,
    action: str,
    reason: str,
    user: str | None = None,
    kind: Kind | str | None = None,
    direction: str | None = None,
    rule: str | None = None,
    erp_id: str | None = None,
    graph_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit row: `outcome` is `audit`, `details.action` names the action."""
    await rt.state.journal(
        journal_entry(
            user=user or NO_USER,
            kind=kind,
            direction=direction,
            outcome=AUDIT,
            rule=rule,
            reason=reason,
            erp_id=erp_id,
            graph_id=graph_id,
            actor=actor,
            details={"action": action, **(details or {})},
        )
    )
