"""Test connection (R28): one action that checks each part a user's sync needs and says which fails.

Parts: a Graph token (a fresh one, not the cached one), the mailbox (calendar, contacts, To Do
readable), the user's Graph subscriptions (graph-webhook), the ERP, and the broker with a consumer
on the user's queues. They run concurrently, each bounded by OPS_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from shared.envelope import Kind, shard_of
from shared.graph.auth import TokenProvider
from sync_core.operations.audit import audit
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.queues import dead_letter_queues
from sync_core.operations.subscriptions import subscriptions

if TYPE_CHECKING:
    from sync_core.app import Runtime

LABELS = {
    "graph_token": "Graph token",
    "mailbox": "Mailbox readable",
    "subscriptions": "Subscriptions alive",
    "erp": "ERP reachable",
    "broker": "Broker reachable",
}


class Check(BaseModel):
    name: str
    label: str
    ok: bool
    detail: str | None = None
    error: str | None = None
    duration_ms: int


class ConnectionReport(BaseModel):
    user: str
    ok: bool
    at: datetime
    checks: list[Check]

    @property
    def failing(self) -> list[str]:
        return [c.label for c in self.checks if not c.ok]


class CheckFailed(Exception):
    """A check's own verdict: what is wrong, in words for the operator."""


async def _run(name: str, timeout: float, fn: Callable[[], Awaitable[str]]) -> Check:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(fn(), timeout)
        ok, error = True, None
    except TimeoutError:
        detail, ok, error = None, False, f"no answer within {timeout:g} s"
    except CheckFailed as exc:
        detail, ok, error = None, False, str(exc)
    except Exception as exc:
        detail, ok, error = None, False, f"{type(exc).__name__}: {exc}"[:500]
    return Check(
        name=name,
        label=LABELS[name],
        ok=ok,
        detail=detail,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


async def test_connection(rt: Runtime, ref: str, *, actor: str) -> ConnectionReport:
    """Check every part for one user (code or mailbox address) and audit the result."""
    s = rt.settings
    async with erp_admin(rt) as erp:
        rep = await erp.representative(ref)
    email = str(rep["email"]).lower()

    async def graph_token() -> str:
        provider = TokenProvider(s)
        await provider.token()
        return f"token issued by {provider.authority} for client {s.graph_client_id}"

    async def mailbox() -> str:
        user = await rt.graph.find_user(email)
        uid = str(user["id"])
        for what in ("events", "contacts", "todo/lists"):
            await rt.graph.get_json(f"/users/{uid}/{what}", params={"$top": "1"}, mailbox=email)
        return f"calendar, contacts and To Do lists of Graph user {uid} readable"

    async def subs() -> str:
        mine = await subscriptions(rt, email)
        if not mine:
            raise CheckFailed(
                "no subscription: graph-webhook creates them for enabled users at its next check "
                "(or run `syncctl subscriptions renew`)"
            )
        now = datetime.now(UTC)
        bad = [x for x in mine if x.status != "active" or x.expires_at <= now]
        if bad:
            raise CheckFailed(
                "; ".join(
                    f"{x.kind}: {x.status}, expires {x.expires_at:%Y-%m-%d %H:%M} UTC {x.last_error or ''}" for x in bad
                )
            )
        return ", ".join(
            f"{x.kind} until {x.expires_at:%Y-%m-%d %H:%M} UTC" for x in sorted(mine, key=lambda x: x.kind)
        )

    async def erp_check() -> str:
        async with erp_admin(rt) as admin:
            found = await admin.representative(email)
        return f"representative {found['code']} read (version {found.get('version')})"

    async def broker() -> str:
        await rt.bus.ping()
        topo = rt.bus.topology
        names = sorted(
            {
                topo.sync_core_queue(shard_of(s.tenant, email, kind, s.sync_shards))
                for kind in (Kind.EVENT, Kind.CONTACT, Kind.TASK)
            }
        )
        stats = {q.name: q for q in await dead_letter_queues(rt).stats()}
        missing = [n for n in names if stats.get(n) is None or stats[n].consumers in (None, 0)]
        if missing:
            raise CheckFailed(f"connected, but no consumer on {', '.join(missing)}: is sync-core consuming?")
        return f"connected; {', '.join(f'{n} ({stats[n].consumers} consumer)' for n in names)}"

    t = s.ops_timeout_s
    checks = list(
        await asyncio.gather(
            _run("graph_token", t, graph_token),
            _run("mailbox", t, mailbox),
            _run("subscriptions", t, subs),
            _run("erp", t, erp_check),
            _run("broker", t, broker),
        )
    )
    report = ConnectionReport(user=email, ok=all(c.ok for c in checks), at=datetime.now(UTC), checks=checks)
    await audit(
        rt,
        actor=actor,
        action="test-connection",
        user=email,
        rule="R28",
        reason="test connection: all parts answer"
        if report.ok
        else "test connection failed: " + "; ".join(f"{c.label}: {c.error}" for c in checks if not c.ok),
        details={"checks": {c.name: c.ok for c in checks}},
    )
    return report
