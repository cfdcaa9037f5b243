"""Reconciliation (R26): both sides of one user compared, each discrepancy listed with its repair.

`compare` is pure. It asks the engine's own decision functions (`sync_core.domain.decide`) what
they would do with each item if it changed now: where they would write something, the sides
disagree and nothing is on its way to fix it. So an item the rules leave out (private, recurring,
outside the window, a switched-off kind, a one-way contact) is never an anomaly, and what counts
as "the same" is exactly the fingerprint of the synced fields (`synced_fields`).

Anomalies:
- `missing_in_outlook` / `missing_in_erp`: an item in scope with no link and no mirror;
- `field_drift`: a linked pair where a change of one side (or of both) was not carried over;
- `broken_link`: a link whose item is gone on one side or both, or an Outlook item that still
  carries an ERP id (R21) whose link was lost;
- `duplicate`: an unlinked item equal in every synced field (chrono aside) to a linked one of the
  same user and kind, or a second Outlook item carrying the ERP id of a linked one.

Repairs go through the normal sync path, so the engine decides and writes with its links and
idempotency keys: ERP → Outlook by an `erp.changed` message, routed like every change of that
collection (ADR 0002); Outlook → ERP by the engine's own entry for one Outlook item
(`Engine.apply_outlook_item`, what a delta round calls for each item it returns). Deleting a
duplicate deletes the unlinked copy; the engine then sees the removal of an item it never linked
and does nothing. See ADR 0051. `Reconciler` reads both sides, stores what `compare`
found, repairs on request and runs on a schedule.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlmodel import col, select

from shared.envelope import Envelope, Kind, MessageType, collection_of
from shared.errors import BrokerUnavailable, SyncError
from sync_core.domain import decide
from sync_core.domain.decide import Action, changed_fields
from sync_core.domain.fingerprint import synced_fields
from sync_core.domain.mapping import erp as erp_map
from sync_core.domain.model import Activity, Contact, Person, UserSettings, kind_of
from sync_core.domain.model import Link as DomainLink
from sync_core.engine import UserUnavailable, erp_ref_on, graph_to_item, kind_of_activity, to_domain_link
from sync_core.models import Anomaly, Link, ReconcileRun
from sync_core.operations.audit import audit
from sync_core.operations.erp_admin import erp_admin
from sync_core.operations.errors import Conflict, Invalid, NotFound, OpsError, Unavailable
from sync_core.state import as_utc, journal_entry, now_utc

if TYPE_CHECKING:
    from sync_core.app import Runtime

log = logging.getLogger(__name__)

Item = Activity | Contact
COLLECTIONS = (Kind.EVENT, Kind.CONTACT, Kind.TASK)


class AnomalyType(StrEnum):
    MISSING_IN_OUTLOOK = "missing_in_outlook"
    MISSING_IN_ERP = "missing_in_erp"
    FIELD_DRIFT = "field_drift"
    BROKEN_LINK = "broken_link"
    DUPLICATE = "duplicate"


class Repair(StrEnum):
    # `erp.changed` for the ERP item: the engine writes it to Outlook (or applies its deletion, R19).
    PUSH_TO_OUTLOOK = "push_to_outlook"
    # The engine applies the Outlook item as if delta had returned it (`Engine.apply_outlook_item`).
    PUSH_TO_ERP = "push_to_erp"
    # The same: meeting an unknown id that carries an ERP id, the engine re-finds the link (R21).
    RELINK = "relink"
    # Drop the dead link, then `erp.changed`: the engine creates the mirror again.
    RECREATE_IN_OUTLOOK = "recreate_in_outlook"
    # Drop the link; both items stay as they are.
    UNLINK = "unlink"
    DELETE_OUTLOOK_DUPLICATE = "delete_outlook_duplicate"
    DELETE_ERP_DUPLICATE = "delete_erp_duplicate"


REPAIR_LABELS = {
    Repair.PUSH_TO_OUTLOOK: "Re-push ERP → Outlook",
    Repair.PUSH_TO_ERP: "Re-push Outlook → ERP",
    Repair.RELINK: "Re-link",
    Repair.RECREATE_IN_OUTLOOK: "Re-create in Outlook",
    Repair.UNLINK: "Unlink (keep both)",
    Repair.DELETE_OUTLOOK_DUPLICATE: "Delete Outlook duplicate",
    Repair.DELETE_ERP_DUPLICATE: "Delete ERP duplicate",
}
OPEN = "open"
REPAIR_REQUESTED = "repair_requested"
_WRITES = frozenset({Action.CREATE, Action.UPDATE, Action.DELETE, Action.CONFLICT, Action.REMOVE_ASSIGNMENT})


# The two sides, as read -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutlookEntry:
    """An item of the user's mailbox; `item` None when it could not be read as canonical."""

    collection: str  # event, contact, todo
    graph_id: str
    item: Item | None
    erp_ref: tuple[Kind, str] | None
    modified_at: datetime | None


@dataclass(frozen=True)
class ErpEntry:
    """An ERP record of the user; `item` None when deleted (tombstone)."""

    kind: Kind
    erp_id: str
    item: Item | None
    modified_at: datetime | None
    version: int | None


@dataclass(frozen=True)
class Found:
    type: AnomalyType
    kind: Kind
    summary: str
    repairs: tuple[Repair, ...]
    erp_id: str | None = None
    graph_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def title(item: Item | None) -> str:
    if isinstance(item, Contact):
        name = " ".join(p for p in (item.given_name, item.surname) if p)
        return name or (item.emails[0] if item.emails else "(unnamed contact)")
    if isinstance(item, Activity):
        return item.subject or item.chrono or "(no subject)"
    return "(unreadable)"


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _dup_key(item: Item) -> str:
    fields = synced_fields(item)
    fields.pop("chrono", None)  # the ERP numbers each record: a copy differs by its chrono alone
    return json.dumps(fields, sort_keys=True, default=str)


def _settled(when: datetime | None, now: datetime, settle: timedelta) -> bool:
    return when is None or now - when >= settle


def _outlook_details(o: OutlookEntry) -> dict[str, Any]:
    return {
        "collection": o.collection,
        "outlook_title": title(o.item),
        "outlook_modified_at": _iso(o.modified_at),
    }


def _erp_details(e: ErpEntry | None) -> dict[str, Any]:
    if e is None:
        return {}
    return {
        "erp_title": title(e.item),
        "erp_modified_at": _iso(e.modified_at),
        "erp_version": e.version,
        "erp_deleted": e.item is None,
    }


def _drift(link: Link, kind: Kind, o: OutlookEntry, e: ErpEntry, settings: UserSettings, now: datetime) -> Found | None:
    dl: DomainLink | None = to_domain_link(link)
    assert o.item is not None and e.item is not None
    d_out = decide.decide_outlook_change(kind=kind, item=o.item, link=dl, erp_item=e.item, settings=settings, now=now)
    d_erp = decide.decide_erp_change(kind=kind, item=e.item, link=dl, graph_item=o.item, settings=settings, now=now)
    out_pending = d_out.action in _WRITES
    erp_pending = d_erp.action in _WRITES
    if not (out_pending or erp_pending):
        return None
    conflict = Action.CONFLICT in (d_out.action, d_erp.action) or (out_pending and erp_pending)
    if conflict:
        winner = d_out.winner or d_erp.winner
        repairs = (
            (Repair.PUSH_TO_ERP,)
            if winner is not None and winner.value == "outlook_to_erp"
            else (Repair.PUSH_TO_OUTLOOK,)
        )
        why = (d_out if d_out.action in _WRITES else d_erp).reason
    elif out_pending:
        repairs, why = (Repair.PUSH_TO_ERP,), f"Outlook side: {d_out.reason}"
    else:
        repairs, why = (Repair.PUSH_TO_OUTLOOK,), f"ERP side: {d_erp.reason}"
    names = changed_fields(o.item, e.item)
    fo, fe = synced_fields(o.item), synced_fields(e.item)
    return Found(
        AnomalyType.FIELD_DRIFT,
        kind,
        f"{title(e.item)}: {', '.join(names) or 'synced fields'} differ — {why}",
        repairs,
        erp_id=link.erp_id,
        graph_id=link.graph_id,
        details={
            **_outlook_details(o),
            **_erp_details(e),
            "fields": {n: {"outlook": fo.get(n), "erp": fe.get(n)} for n in names},
        },
    )


def compare(
    *,
    settings: UserSettings,
    links: list[Link],
    outlook: list[OutlookEntry],
    erp: list[ErpEntry],
    now: datetime,
    settle: timedelta = timedelta(0),
) -> list[Found]:
    """Every discrepancy between the two sides of one user. Items changed less than `settle` ago
    are left out: their change may still be on its way through the queues."""
    found: list[Found] = []
    outlook_by_id = {(o.collection, o.graph_id): o for o in outlook}
    erp_by_id = {(e.kind, e.erp_id): e for e in erp}
    linked_graph: set[tuple[str, str]] = set()
    linked_erp: set[tuple[Kind, str]] = set()
    linked_keys: dict[tuple[str, str], str] = {}  # (collection, dup key) → graph id of a linked item
    linked_erp_keys: dict[tuple[Kind, str], str] = {}  # (kind, dup key) → erp id of a linked item

    for link in links:
        kind = Kind(link.kind)
        o = outlook_by_id.get((link.collection, link.graph_id))
        e = erp_by_id.get((kind, link.erp_id))
        linked_graph.add((link.collection, link.graph_id))
        linked_erp.add((kind, link.erp_id))
        if o is not None and o.item is not None:
            linked_keys[(link.collection, _dup_key(o.item))] = link.graph_id
        if e is not None and e.item is not None:
            linked_erp_keys[(kind, _dup_key(e.item))] = link.erp_id
        if not _settled(as_utc(link.synced_at), now, settle):
            continue
        if (o is not None and not _settled(o.modified_at, now, settle)) or (
            e is not None and not _settled(e.modified_at, now, settle)
        ):
            continue
        erp_alive = e is not None and e.item is not None
        ids = {"erp_id": link.erp_id, "graph_id": link.graph_id}
        if o is None and not erp_alive:
            found.append(
                Found(
                    AnomalyType.BROKEN_LINK,
                    kind,
                    "both items are gone; only the link is left",
                    (Repair.UNLINK,),
                    **ids,
                    details=_erp_details(e),
                )
            )
        elif o is None:
            found.append(
                Found(
                    AnomalyType.BROKEN_LINK,
                    kind,
                    f"{title(e.item if e else None)}: the Outlook mirror is gone, the ERP item is still there",
                    (Repair.RECREATE_IN_OUTLOOK, Repair.UNLINK),
                    **ids,
                    details=_erp_details(e),
                )
            )
        elif not erp_alive:
            state = "deleted" if e is not None else "missing"
            found.append(
                Found(
                    AnomalyType.BROKEN_LINK,
                    kind,
                    f"{title(o.item)}: the ERP item is {state}, its Outlook mirror is still there",
                    (Repair.PUSH_TO_OUTLOOK, Repair.UNLINK) if e is not None else (Repair.UNLINK,),
                    **ids,
                    details={**_outlook_details(o), **_erp_details(e)},
                )
            )
        elif o.item is not None and e is not None:
            drift = _drift(link, kind, o, e, settings, now)
            if drift is not None:
                found.append(drift)

    claimed_erp: set[tuple[Kind, str]] = set()
    for o in outlook:
        if (o.collection, o.graph_id) in linked_graph or o.item is None or not _settled(o.modified_at, now, settle):
            continue
        kind = kind_of(o.item)
        if o.erp_ref is not None:
            ref_kind, ref_id = o.erp_ref
            if (ref_kind, ref_id) in linked_erp:
                found.append(
                    Found(
                        AnomalyType.DUPLICATE,
                        kind,
                        f"{title(o.item)}: another Outlook item already mirrors ERP {ref_kind.value} {ref_id}",
                        (Repair.DELETE_OUTLOOK_DUPLICATE,),
                        erp_id=ref_id,
                        graph_id=o.graph_id,
                        details=_outlook_details(o),
                    )
                )
                continue
            e = erp_by_id.get((ref_kind, ref_id))
            if e is not None and e.item is not None:
                claimed_erp.add((ref_kind, ref_id))
                found.append(
                    Found(
                        AnomalyType.BROKEN_LINK,
                        kind,
                        f"{title(o.item)}: link lost; the Outlook item still carries ERP id {ref_kind.value}:{ref_id}",
                        (Repair.RELINK,),
                        erp_id=ref_id,
                        graph_id=o.graph_id,
                        details={**_outlook_details(o), **_erp_details(e)},
                    )
                )
                continue
        decision = decide.decide_outlook_change(
            kind=kind, item=o.item, link=None, erp_item=None, settings=settings, now=now
        )
        if decision.action is not Action.CREATE:
            continue
        twin = linked_keys.get((o.collection, _dup_key(o.item)))
        if twin is not None:
            found.append(
                Found(
                    AnomalyType.DUPLICATE,
                    kind,
                    f"{title(o.item)}: same synced fields as the linked Outlook item {twin}",
                    (Repair.DELETE_OUTLOOK_DUPLICATE,),
                    graph_id=o.graph_id,
                    details={**_outlook_details(o), "twin_graph_id": twin},
                )
            )
        else:
            found.append(
                Found(
                    AnomalyType.MISSING_IN_ERP,
                    kind,
                    f"{title(o.item)}: in Outlook, not in the ERP",
                    (Repair.PUSH_TO_ERP,),
                    graph_id=o.graph_id,
                    details=_outlook_details(o),
                )
            )

    for e in erp:
        key = (e.kind, e.erp_id)
        if key in linked_erp or key in claimed_erp or e.item is None or not _settled(e.modified_at, now, settle):
            continue
        twin_id = linked_erp_keys.get((e.kind, _dup_key(e.item)))
        if twin_id is not None:
            found.append(
                Found(
                    AnomalyType.DUPLICATE,
                    e.kind,
                    f"{title(e.item)}: same synced fields as the linked ERP {e.kind.value} {twin_id}",
                    (Repair.DELETE_ERP_DUPLICATE,),
                    erp_id=e.erp_id,
                    details={**_erp_details(e), "twin_erp_id": twin_id},
                )
            )
            continue
        decision = decide.decide_erp_change(
            kind=e.kind, item=e.item, link=None, graph_item=None, settings=settings, now=now
        )
        if decision.action is Action.CREATE:
            found.append(
                Found(
                    AnomalyType.MISSING_IN_OUTLOOK,
                    e.kind,
                    f"{title(e.item)}: in the ERP, not in Outlook",
                    (Repair.PUSH_TO_OUTLOOK,),
                    erp_id=e.erp_id,
                    details=_erp_details(e),
                )
            )
    return found


# Reading, storing, repairing ---------------------------------------------------------------------


def _identity(a: Anomaly) -> tuple[str, str, str | None, str | None]:
    return (a.type, a.kind, a.erp_id, a.graph_id)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # Graph writes seven fractional digits; Python reads six
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


class Reconciler:
    """Runs `compare` for a user on demand or on a schedule, keeps its result, repairs."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Lock] = {}

    # Reading -------------------------------------------------------------------------------------

    async def _outlook(self, ctx: Any, links: list[Link]) -> list[OutlookEntry]:
        from sync_core.adapters.mailbox import EXPAND

        entries: list[OutlookEntry] = []
        seen: set[tuple[str, str]] = set()
        for kind in COLLECTIONS:
            collection = collection_of(kind)
            url: str | None = await ctx.mailbox.collection_path(kind)
            params: dict[str, str] | None = {"$top": "100", "$expand": EXPAND[collection]}
            while url:
                page = await self.rt.graph.get_json(url, params=params, mailbox=ctx.email)
                for raw in page.get("value") or []:
                    entries.append(self._outlook_entry(kind, raw))
                    seen.add((collection, str(raw["id"])))
                url, params = page.get("@odata.nextLink"), None
        # A linked item not listed may sit in another folder (R21): ask for it by id before calling it gone.
        for link in links:
            if (link.collection, link.graph_id) not in seen:
                kind = Kind.TASK if link.collection == "todo" else Kind(link.collection)
                raw = await ctx.mailbox.get(kind, link.graph_id)
                if raw is not None:
                    entries.append(self._outlook_entry(kind, raw))
        return entries

    @staticmethod
    def _outlook_entry(kind: Kind, raw: dict[str, Any]) -> OutlookEntry:
        try:
            item: Item | None = graph_to_item(kind, raw)
        except (KeyError, ValueError, TypeError):
            item = None
        return OutlookEntry(
            collection=collection_of(kind),
            graph_id=str(raw["id"]),
            item=item,
            erp_ref=erp_ref_on(raw),
            modified_at=_time(raw.get("lastModifiedDateTime")),
        )

    async def _erp(self, code: str, links: list[Link]) -> list[ErpEntry]:
        erp = self.rt.erp
        contacts: dict[int, Person | None] = {}

        async def person(contact_id: Any) -> Person | None:
            if contact_id is None:
                return None
            cid = int(contact_id)
            if cid not in contacts:
                raw = await erp.get("contacts", str(cid))
                contacts[cid] = erp_map.erp_contact_person(raw) if raw and not raw.get("deleted") else None
            return contacts[cid]

        async def entry(kind: Kind, raw: dict[str, Any]) -> ErpEntry:
            item: Item | None = None
            if not raw.get("deleted"):
                try:
                    if kind is Kind.CONTACT:
                        item = erp_map.erp_contact_to_contact(raw)
                    else:
                        item = erp_map.erp_activity_to_activity(raw, contact=await person(raw.get("contact_id")))
                except (KeyError, ValueError, TypeError):
                    item = None
            return ErpEntry(kind, str(raw["id"]), item, _time(raw.get("updated_at")), raw.get("version"))

        entries: list[ErpEntry] = []
        for raw in await erp.list_all("activities", representative=code):
            entries.append(await entry(kind_of_activity(raw["kind"]), raw))
        for raw in await erp.list_all("contacts", representative=code):
            entries.append(await entry(Kind.CONTACT, raw))
        # Linked records not listed were deleted or moved to another representative: read them by id.
        listed = {(e.kind, e.erp_id) for e in entries}
        for link in links:
            kind = Kind(link.kind)
            if (kind, link.erp_id) not in listed:
                record = await erp.get("contacts" if kind is Kind.CONTACT else "activities", link.erp_id)
                if record is not None:
                    entries.append(await entry(kind, record))
        return entries

    # Running -------------------------------------------------------------------------------------

    async def reconcile(self, ref: str, *, trigger: str) -> ReconcileRun:
        """Compare both sides of one user (code or mailbox) and replace their stored anomalies."""
        async with erp_admin(self.rt) as admin:
            rep = await admin.representative(ref)
        email = str(rep["email"]).lower()
        lock = self._running.setdefault(email, asyncio.Lock())
        async with lock:
            run = await self._reconcile(email, trigger)
        if trigger != "schedule":
            await audit(
                self.rt,
                actor=trigger,
                action="reconcile",
                user=email,
                rule="R26",
                reason=f"reconciliation asked: {run.anomalies} anomaly(ies) found",
                details={"run": run.id},
            )
        return run

    async def _reconcile(self, email: str, trigger: str) -> ReconcileRun:
        rt = self.rt
        run = ReconcileRun(user=email, trigger=trigger, started_at=now_utc())
        try:
            try:
                ctx = await rt.engine.user_context(email)
            except UserUnavailable as exc:
                raise Conflict(f"cannot reconcile {email}: {exc.reason} ({exc.rule})") from None
            links = await rt.state.links_of(email)
            outlook = await self._outlook(ctx, links)
            erp = await self._erp(ctx.code, links)
            found = compare(
                settings=ctx.settings,
                links=links,
                outlook=outlook,
                erp=erp,
                now=rt.engine.clock(),
                settle=timedelta(seconds=rt.settings.reconcile_settle_s),
            )
        except Exception as exc:
            run.finished_at = now_utc()
            run.error = f"{type(exc).__name__}: {exc}"[:500]
            await self._save_run(run)
            if isinstance(exc, Conflict):
                raise
            raise Unavailable(f"reconciliation of {email} failed: {run.error}") from exc
        run.finished_at = now_utc()
        run.anomalies = len(found)
        async with rt.state.sessions() as s:
            # An anomaly found again keeps its id (and a requested repair); one not found is resolved.
            old = {_identity(a): a for a in (await s.exec(select(Anomaly).where(Anomaly.user == email))).all()}
            keep: set[int] = set()
            for f in found:
                row = old.get((f.type.value, f.kind.value, f.erp_id, f.graph_id))
                if row is None:
                    row = Anomaly(
                        user=email,
                        kind=f.kind.value,
                        type=f.type.value,
                        erp_id=f.erp_id,
                        graph_id=f.graph_id,
                        summary="",
                        status=OPEN,
                        detected_at=run.finished_at,
                    )
                row.summary = f.summary[:1000]
                row.details = f.details
                row.repairs = [r.value for r in f.repairs]
                s.add(row)
                if row.id is not None:
                    keep.add(row.id)
            gone = [a.id for a in old.values() if a.id not in keep]
            if gone:
                await s.exec(delete(Anomaly).where(col(Anomaly.id).in_(gone)))  # type: ignore[call-overload]
            s.add(run)
            await s.commit()
            await s.refresh(run)
        return run

    async def _save_run(self, run: ReconcileRun) -> None:
        async with self.rt.state.sessions() as s:
            s.add(run)
            await s.commit()

    # Repairing -----------------------------------------------------------------------------------

    async def repair(self, anomaly_id: int, choice: str | None, *, actor: str) -> Anomaly:
        """Carry out one of the anomaly's repairs (its first by default) through the sync path."""
        rt = self.rt
        async with rt.state.sessions() as s:
            row = await s.get(Anomaly, anomaly_id)
        if row is None:
            raise NotFound(f"no anomaly {anomaly_id} (a newer reconciliation may have replaced it)")
        options = [Repair(r) for r in row.repairs or []]
        try:
            repair = Repair(choice) if choice else options[0]
        except (ValueError, IndexError):
            raise Invalid(f"unknown repair {choice!r}; this anomaly offers {', '.join(options)}") from None
        if repair not in options:
            raise Invalid(f"repair {repair} does not apply to this anomaly; it offers {', '.join(options)}")
        details = row.details or {}
        kind = Kind(row.kind)
        try:
            if repair is Repair.PUSH_TO_OUTLOOK:
                await self._erp_changed(row, kind, deleted=bool(details.get("erp_deleted")))
            elif repair in (Repair.PUSH_TO_ERP, Repair.RELINK):
                await self._from_outlook(row, kind)
            elif repair is Repair.RECREATE_IN_OUTLOOK:
                await self._unlink(row, kind, actor, "dead link dropped to re-create the Outlook mirror (R26)")
                await self._erp_changed(row, kind, deleted=False)
            elif repair is Repair.UNLINK:
                await self._unlink(row, kind, actor, "link dropped by an operator; both items kept (R26)")
            elif repair is Repair.DELETE_OUTLOOK_DUPLICATE:
                ctx = await rt.engine.user_context(row.user)
                await ctx.mailbox.delete(Kind.TASK if details.get("collection") == "todo" else kind, str(row.graph_id))
            elif repair is Repair.DELETE_ERP_DUPLICATE:
                async with erp_admin(rt) as admin:
                    await admin.delete("contacts" if kind is Kind.CONTACT else "activities", str(row.erp_id))
        except BrokerUnavailable as exc:
            raise Unavailable(f"broker: {exc}") from exc
        except UserUnavailable as exc:
            raise Conflict(f"{row.user}: {exc.reason} ({exc.rule})") from None
        except SyncError as exc:
            if isinstance(exc, OpsError):
                raise
            raise Unavailable(f"repair failed: {exc}") from exc
        async with rt.state.sessions() as s:
            current = await s.get(Anomaly, anomaly_id)
            if current is not None:
                current.status = REPAIR_REQUESTED
                current.repair = repair.value
                current.repaired_by = actor
                current.repaired_at = now_utc()
                s.add(current)
                await s.commit()
                await s.refresh(current)
                row = current
        await audit(
            rt,
            actor=actor,
            action=f"anomaly.{repair.value}",
            user=row.user,
            kind=kind,
            rule="R26",
            erp_id=row.erp_id,
            graph_id=row.graph_id,
            reason=f"{REPAIR_LABELS[repair]} for {row.type}: {row.summary}",
            details={"anomaly": anomaly_id},
        )
        return row

    async def _erp_changed(self, row: Anomaly, kind: Kind, *, deleted: bool) -> None:
        details = row.details or {}
        async with erp_admin(self.rt) as admin:
            rep = await admin.representative(row.user)
        await self.rt.bus.publish(
            Envelope(
                type=MessageType.ERP_CHANGED,
                tenant=self.rt.settings.tenant,
                user=row.user,
                kind=kind,
                payload={
                    "erp_id": row.erp_id,
                    "change": "deleted" if deleted else "updated",
                    "version": details.get("erp_version"),
                    "origin": "erp",
                    "representative": rep["code"],
                },
            )
        )

    async def _from_outlook(self, row: Anomaly, kind: Kind) -> None:
        """The engine applies this one Outlook item as if delta had just returned it (R21 re-link included)."""
        ctx = await self.rt.engine.user_context(row.user)
        collection_kind = Kind.TASK if collection_of(kind) == "todo" else kind
        await self.rt.engine.apply_outlook_item(ctx, collection_kind, {"id": str(row.graph_id)})

    async def _unlink(self, row: Anomaly, kind: Kind, actor: str, reason: str) -> None:
        state = self.rt.state
        link = await state.link_by_erp_id(row.user, kind, str(row.erp_id)) if row.erp_id else None
        if link is None and row.graph_id:
            link = await state.link_by_graph_id(row.user, kind, row.graph_id)
        if link is None:
            return
        await state.drop_link(
            link,
            journal_entry(
                user=row.user,
                kind=kind,
                outcome="unlinked",
                rule="R26",
                reason=reason,
                erp_id=link.erp_id,
                graph_id=link.graph_id,
                actor=actor,
            ),
        )

    # Listing -------------------------------------------------------------------------------------

    async def anomalies(
        self, *, user: str | None = None, type: str | None = None, status: str | None = None, limit: int = 500
    ) -> list[Anomaly]:
        query = select(Anomaly)
        if user:
            query = query.where(Anomaly.user == user.lower())
        if type:
            query = query.where(Anomaly.type == type)
        if status:
            query = query.where(Anomaly.status == status)
        query = query.order_by(col(Anomaly.user), col(Anomaly.id)).limit(limit)
        async with self.rt.state.sessions() as s:
            return list((await s.exec(query)).all())

    async def runs(self, *, user: str | None = None, limit: int = 50) -> list[ReconcileRun]:
        query = select(ReconcileRun)
        if user:
            query = query.where(ReconcileRun.user == user.lower())
        query = query.order_by(col(ReconcileRun.id).desc()).limit(limit)
        async with self.rt.state.sessions() as s:
            return list((await s.exec(query)).all())

    # Schedule ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.rt.settings.reconcile_interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._every(self.rt.settings.reconcile_interval_s), name="reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reconcile_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("scheduled reconciliation could not list users: %s", type(exc).__name__)

    async def reconcile_all(self) -> int:
        """Reconcile every enabled user once; returns how many were reconciled."""
        done = 0
        for rep in await self.rt.erp.representatives():
            settings = UserSettings.from_erp(rep)
            if not settings.enabled or not settings.email:
                continue
            try:
                await self.reconcile(settings.email, trigger="schedule")
                done += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The run row keeps the error; the log names the representative code, not the mailbox.
                log.warning("scheduled reconciliation of %s failed: %s", settings.code, type(exc).__name__)
        return done
