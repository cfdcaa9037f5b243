"""Force sync (R24): (a) re-send every ERP item of a user to Outlook; (b) re-send every Outlook item
modified since a date to the ERP.

It goes through the normal path: one `sync.force` message per collection, routed like every other
change of that collection (so it is serialised with them, ADR 0002), handled by `Engine.force`,
which writes through links and idempotency keys — hence no duplicates. Progress is read back from
the journal: a row per item handled, then one `forced` row per collection when it is done.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from shared.envelope import Envelope, Kind, MessageType
from shared.errors import BrokerUnavailable
from sync_core.domain.model import UserSettings
from sync_core.operations.audit import audit
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.errors import Conflict, Unavailable
from sync_core.operations.journal import JournalQuery, search, utc

if TYPE_CHECKING:
    from sync_core.app import Runtime

Direction = Literal["erp_to_outlook", "outlook_to_erp"]
# One message per Graph collection: tasks and calls share the To Do list (kind `task`).
COLLECTIONS = (Kind.EVENT, Kind.CONTACT, Kind.TASK)


class ForceRequest(BaseModel):
    direction: Direction
    since: datetime | None = None
    # Collections to re-send (`event`, `contact`, `task` for the To Do list); default: every one
    # whose switches are on for that direction.
    kinds: list[Kind] | None = None


class ForceAccepted(BaseModel):
    user: str
    direction: Direction
    since: datetime | None
    kinds: list[Kind]
    messages: list[str]
    requested_at: datetime
    requested_by: str


class ForceProgress(BaseModel):
    user: str
    direction: Direction
    expected: int
    done: int
    items: int
    failed: int
    finished: bool
    summaries: list[str]


def collections_for(settings: UserSettings, direction: Direction) -> list[Kind]:
    """The collections whose switches let items go that way (R16, R17)."""
    out: list[Kind] = []
    if direction == "erp_to_outlook":
        if settings.activities_erp_to_outlook and settings.sync_meetings:
            out.append(Kind.EVENT)
        if settings.contacts_two_way and settings.sync_contacts:
            out.append(Kind.CONTACT)
        if settings.activities_erp_to_outlook and (settings.sync_tasks or settings.sync_calls):
            out.append(Kind.TASK)
    else:
        if settings.activities_outlook_to_erp and settings.sync_meetings:
            out.append(Kind.EVENT)
        if settings.contacts_outlook_to_erp and settings.sync_contacts:
            out.append(Kind.CONTACT)
        if settings.activities_outlook_to_erp and (settings.sync_tasks or settings.sync_calls):
            out.append(Kind.TASK)
    return out


async def force_sync(rt: Runtime, ref: str, request: ForceRequest, *, actor: str) -> ForceAccepted:
    """Publish the `sync.force` messages; the work happens in the consumers."""
    async with erp_admin(rt) as erp:
        rep = await erp.representative(ref)
    settings = UserSettings.from_erp(rep)
    email = settings.email or str(rep["email"]).lower()
    if not settings.enabled:
        raise Conflict(
            f"user {rep['code']} is not enabled for sync (R13, R16: active, sync switched on, sales role, "
            "mailbox): enable them first"
        )
    allowed = collections_for(settings, request.direction)
    kinds = [k for k in (request.kinds or allowed) if k in allowed]
    if not kinds:
        raise Conflict(f"nothing to re-send: the switches of {rep['code']} let nothing go {request.direction} (R16)")
    since = utc(request.since) if request.since else None
    requested_at = datetime.now(UTC)
    envelopes = [
        Envelope(
            type=MessageType.SYNC_FORCE,
            tenant=rt.settings.tenant,
            user=email,
            kind=kind,
            payload={
                "direction": request.direction,
                "requested_by": actor,
                **({"since": since.isoformat().replace("+00:00", "Z")} if since else {}),
            },
        )
        for kind in kinds
    ]
    try:
        await rt.bus.publish_many(envelopes)
    except BrokerUnavailable as exc:
        raise Unavailable(f"broker: {exc}") from exc
    what = "(a) ERP → Outlook" if request.direction == "erp_to_outlook" else "(b) Outlook → ERP"
    await audit(
        rt,
        actor=actor,
        action="force",
        user=email,
        direction=request.direction,
        rule="R24",
        reason=f"force sync {what} of {', '.join(k.value for k in kinds)}"
        + (f" modified since {since.isoformat()}" if since else ""),
        details={"messages": [str(e.id) for e in envelopes], "since": since.isoformat() if since else None},
    )
    return ForceAccepted(
        user=email,
        direction=request.direction,
        since=since,
        kinds=kinds,
        messages=[str(e.id) for e in envelopes],
        requested_at=requested_at,
        requested_by=actor,
    )


async def progress(
    rt: Runtime, user: str, *, direction: Direction, since: datetime, expected: int, actor: str | None = None
) -> ForceProgress:
    """How far a force sync got: items journaled since it was asked, collections finished."""
    rows = await search(rt, JournalQuery(user=user, direction=direction, since=since, limit=1000))
    forced = [r for r in rows if r.outcome == "forced" and (actor is None or r.actor == actor)]
    items = [r for r in rows if r.outcome not in ("forced", "audit")]
    return ForceProgress(
        user=user.lower(),
        direction=direction,
        expected=expected,
        done=len(forced),
        items=len(items),
        failed=sum(1 for r in items if r.outcome == "failed"),
        finished=len(forced) >= expected,
        summaries=[r.reason or "" for r in forced],
    )
