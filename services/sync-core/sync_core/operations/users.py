"""Users: every ERP representative with a mailbox, their switches (R16), sync times (R23), health (R35).

The switches live in the ERP; a change is written through erp-connector's API (with the version
read, so a concurrent change is a conflict, not a silent overwrite) and audited here. erp-connector
then publishes `user.changed`, on which graph-webhook adds or drops the user's subscriptions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from sync_core.domain.model import UserSettings
from sync_core.models import Anomaly, DeltaCursor, UserState
from sync_core.operations.audit import audit
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.errors import Invalid, OpsError
from sync_core.operations.subscriptions import SubscriptionInfo, subscriptions
from sync_core.state import as_utc

if TYPE_CHECKING:
    from sync_core.app import Runtime

# R16: per direction (PX) and per object kind (X3); R17: two-way contacts.
SWITCHES: dict[str, str] = {
    "sync_enabled": "Sync enabled",
    "contacts_outlook_to_erp": "Contacts Outlook → ERP",
    "activities_outlook_to_erp": "Activities Outlook → ERP",
    "activities_erp_to_outlook": "Activities ERP → Outlook",
    "sync_meetings": "Meetings",
    "sync_tasks": "Tasks",
    "sync_calls": "Calls",
    "sync_contacts": "Contacts",
    "contacts_two_way": "Contacts both ways",
}
CONFLICT_POLICIES = ("last_modified", "erp_wins", "outlook_wins")


class UserOverview(BaseModel):
    """One representative as the console shows them."""

    code: str
    name: str
    email: str
    active: bool
    sales_role: bool
    # R13/R16: active, switched on, sales role and mailbox: the sync runs for them.
    enabled: bool
    switches: dict[str, bool]
    conflict_policy: str
    window_days_back: int
    window_days_ahead: int
    # R23: last successful sync per direction.
    last_sync_outlook_to_erp: datetime | None
    last_sync_erp_to_outlook: datetime | None
    # R35: false when the mailbox or credentials failed, or a subscription is failing.
    healthy: bool
    problems: list[str]
    last_error: str | None
    last_error_at: datetime | None
    subscriptions: list[SubscriptionInfo]
    # Set when graph-webhook could not be asked: the subscription column is unknown, not empty.
    subscriptions_error: str | None = None
    delta_collections: list[str]
    open_anomalies: int
    version: int


class UserUpdate(BaseModel):
    """Fields to change; those left out keep their value. `version`: the one read (else last write wins)."""

    sync_enabled: bool | None = None
    contacts_outlook_to_erp: bool | None = None
    activities_outlook_to_erp: bool | None = None
    activities_erp_to_outlook: bool | None = None
    sync_meetings: bool | None = None
    sync_tasks: bool | None = None
    sync_calls: bool | None = None
    sync_contacts: bool | None = None
    contacts_two_way: bool | None = None
    conflict_policy: Literal["last_modified", "erp_wins", "outlook_wins"] | None = None
    window_days_back: int | None = Field(default=None, ge=0, le=3650)
    window_days_ahead: int | None = Field(default=None, ge=0, le=3650)
    version: int | None = None

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude={"version"}).items() if v is not None}


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


async def _local_state(rt: Runtime) -> tuple[dict[str, UserState], dict[str, list[str]], dict[str, int]]:
    async with rt.state.sessions() as s:
        states = {st.user: st for st in (await s.exec(select(UserState))).all()}
        held: dict[str, list[str]] = {}
        for cursor in (await s.exec(select(DeltaCursor))).all():
            held.setdefault(cursor.user, []).append(cursor.collection)
        counts = (
            await s.exec(
                select(Anomaly.user, func.count(col(Anomaly.id)))
                .where(Anomaly.status == "open")
                .group_by(col(Anomaly.user))
            )
        ).all()
    return states, held, {user: int(n) for user, n in counts}


def overview(
    rep: dict[str, Any],
    state: UserState | None,
    held: list[str],
    subs: list[SubscriptionInfo] | None,
    subs_error: str | None,
    open_anomalies: int,
) -> UserOverview:
    """Join what the ERP, sync-core and graph-webhook know of one user."""
    email = str(rep.get("email") or "").lower()
    settings = UserSettings.from_erp(rep)
    problems: list[str] = []
    if state is not None and not state.healthy:
        problems.append(state.last_error or "the last sync failed")
    mine = [s for s in (subs or []) if s.user.lower() == email]
    problems.extend(
        f"{s.kind} subscription {s.status}: {s.last_error or 'no detail'}" for s in mine if s.status == "failed"
    )
    return UserOverview(
        code=str(rep["code"]),
        name=str(rep.get("name") or ""),
        email=email,
        active=bool(rep.get("active")),
        sales_role=bool(rep.get("sales_role")),
        enabled=settings.enabled,
        switches={name: bool(rep.get(name)) for name in SWITCHES},
        conflict_policy=str(rep.get("conflict_policy") or "last_modified"),
        window_days_back=int(rep.get("window_days_back") or 0),
        window_days_ahead=int(rep.get("window_days_ahead") or 0),
        last_sync_outlook_to_erp=(state.last_sync_outlook_to_erp if state else None)
        or _time(rep.get("last_sync_outlook_to_erp")),
        last_sync_erp_to_outlook=(state.last_sync_erp_to_outlook if state else None)
        or _time(rep.get("last_sync_erp_to_outlook")),
        healthy=not problems,
        problems=problems,
        last_error=state.last_error if state else None,
        last_error_at=state.last_error_at if state else None,
        subscriptions=mine,
        subscriptions_error=subs_error,
        delta_collections=sorted(held),
        open_anomalies=open_anomalies,
        version=int(rep.get("version") or 0),
    )


async def _subscriptions(rt: Runtime, user: str | None = None) -> tuple[list[SubscriptionInfo] | None, str | None]:
    try:
        return await subscriptions(rt, user), None
    except OpsError as exc:
        return None, str(exc)


async def list_users(rt: Runtime) -> list[UserOverview]:
    """Every representative that has a mailbox address, by code."""
    async with erp_admin(rt) as erp:
        reps = await erp.all("representatives")
    states, held, counts = await _local_state(rt)
    subs, subs_error = await _subscriptions(rt)
    out = []
    for rep in sorted(reps, key=lambda r: str(r["code"])):
        email = str(rep.get("email") or "").lower()
        if not email:
            continue
        out.append(overview(rep, _state(states, email), held.get(email, []), subs, subs_error, counts.get(email, 0)))
    return out


def _state(states: dict[str, UserState], email: str) -> UserState | None:
    st = states.get(email)
    if st is not None:
        st.last_sync_erp_to_outlook = as_utc(st.last_sync_erp_to_outlook)
        st.last_sync_outlook_to_erp = as_utc(st.last_sync_outlook_to_erp)
        st.last_error_at = as_utc(st.last_error_at)
    return st


async def get_user(rt: Runtime, ref: str) -> UserOverview:
    """One user by representative code or mailbox address."""
    async with erp_admin(rt) as erp:
        rep = await erp.representative(ref)
    email = str(rep["email"]).lower()
    states, held, counts = await _local_state(rt)
    subs, subs_error = await _subscriptions(rt, email)
    return overview(rep, _state(states, email), held.get(email, []), subs, subs_error, counts.get(email, 0))


async def update_user(rt: Runtime, ref: str, update: UserUpdate, *, actor: str) -> UserOverview:
    """Change switches, conflict policy or sync window in the ERP; audited with the before/after values."""
    changes = update.changes()
    if not changes:
        raise Invalid("nothing to change: name at least one switch, the conflict policy or the sync window")
    async with erp_admin(rt) as erp:
        rep = await erp.representative(ref)
        before = {k: rep.get(k) for k in changes}
        if before == changes:
            return await get_user(rt, ref)
        version = update.version if update.version is not None else rep.get("version")
        rep = await erp.update_representative(str(rep["code"]), changes, version=version)
    email = str(rep["email"]).lower()
    # The engine caches representative settings: the change applies from the next message on.
    rt.engine.forget_user(email)
    changed = {k: {"from": before[k], "to": rep.get(k)} for k in changes if before[k] != rep.get(k)}
    await audit(
        rt,
        actor=actor,
        action="user.update",
        user=email,
        rule="R16",
        reason="changed " + ", ".join(f"{k} {v['from']} → {v['to']}" for k, v in changed.items()),
        details={"code": rep["code"], "changes": changed},
    )
    return await get_user(rt, email)
