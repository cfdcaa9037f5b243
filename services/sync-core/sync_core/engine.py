"""The sync engine: turns bus messages into reads, decisions and writes on both sides.

The decisions are the pure functions of `sync_core.domain`; this module does the I/O around
them: delta reads, ERP and Graph writes with idempotency keys, links and journal lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from opentelemetry import trace

from shared.bus import delivered_before
from shared.envelope import Envelope, Kind, MessageType, collection_of
from shared.graph.client import GraphClient
from shared.graph.errors import GraphAuthError, GraphError, GraphPreconditionFailed, GraphSyncStateNotFound
from shared.telemetry import meter, user_hash
from sync_core.adapters.erp import ErpClient, ErpConflict, ErpError, ErpRefused
from sync_core.adapters.mailbox import Mailbox, erp_ref
from sync_core.domain import decide as decisions
from sync_core.domain import merge
from sync_core.domain.decide import Action, Decision
from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping import contact as contact_map
from sync_core.domain.mapping import erp as erp_map
from sync_core.domain.mapping import event as event_map
from sync_core.domain.mapping import todo as todo_map
from sync_core.domain.mapping.properties import ERP_ID, parse_erp_ref, read_properties
from sync_core.domain.mapping.todo import erp_linked_resource
from sync_core.domain.model import Activity, ActivityKind, Contact, Direction, UserSettings
from sync_core.domain.model import Link as DomainLink
from sync_core.domain.rules import company_code, email_domain, first_contact
from sync_core.models import Link, PendingCreate
from sync_core.state import State, as_utc, journal_entry, now_utc

log = logging.getLogger(__name__)
tracer = trace.get_tracer("sync_core.engine")
_meter = meter("sync_core")
items_synced = _meter.create_counter("sync_items", description="Items handled, by kind, direction and outcome")
echoes_skipped = _meter.create_counter(
    "sync_echoes_skipped", description="Outlook items a delta round reported unchanged since sync-core last synced them"
)
echo_notifications_skipped = _meter.create_counter(
    "sync_echo_notifications_skipped",
    description="Change notifications of a version sync-core wrote itself: no delta round was run for them",
)
e2e_latency = _meter.create_histogram(
    "sync_e2e_latency_seconds", unit="s", description="Change at source to applied on the other side"
)

Item = Activity | Contact
OWN_VERSIONS_KEPT = 50_000  # Outlook items whose versions this process wrote or read, for skipping notifications
OWN_KEYS_PER_ITEM = 3  # the last versions kept per item
OUTLOOK_TO_ERP = Direction.OUTLOOK_TO_ERP.value
ERP_TO_OUTLOOK = Direction.ERP_TO_OUTLOOK.value


def kind_of_activity(kind: ActivityKind | str) -> Kind:
    return {"meeting": Kind.EVENT, "task": Kind.TASK, "call": Kind.CALL}[str(kind)]


def erp_collection(kind: Kind) -> str:
    return "contacts" if kind is Kind.CONTACT else "activities"


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def graph_to_item(collection_kind: Kind, raw: dict[str, Any]) -> Item:
    collection = collection_of(collection_kind)
    if collection == "event":
        return event_map.graph_event_to_activity(raw)
    if collection == "contact":
        return contact_map.graph_contact_to_contact(raw)
    return todo_map.graph_todo_to_activity(raw)


def item_to_graph(item: Item, *, quiet: bool = False) -> dict[str, Any]:
    if isinstance(item, Contact):
        return contact_map.contact_to_graph_contact(item)
    if item.kind == ActivityKind.MEETING:
        return event_map.activity_to_graph_event(item, quiet=quiet)
    return todo_map.activity_to_graph_todo(item)


def kind_of_item(item: Item) -> Kind:
    return Kind.CONTACT if isinstance(item, Contact) else kind_of_activity(item.kind)


def erp_ref_on(raw: dict[str, Any]) -> tuple[Kind, str] | None:
    """The ERP id an Outlook item carries (extended property, or To Do linked resource), R21."""
    value = read_properties(raw).get(ERP_ID) or (erp_linked_resource(raw) or {}).get("externalId")
    kind, erp_id = parse_erp_ref(value)
    return (kind, erp_id) if kind is not None and erp_id else None


def _apply_span(name: str, email: str, kind: Kind, direction: str, decision: Decision) -> Any:
    """The span of one decision being carried out; the user only as a hash."""
    return tracer.start_as_current_span(
        name,
        attributes={
            "sync.user_hash": user_hash(email),
            "sync.kind": kind.value,
            "sync.direction": direction,
            "sync.action": decision.action.value,
            "sync.rule": decision.rule or "",
        },
    )


def to_domain_link(row: Link | None) -> DomainLink | None:
    if row is None:
        return None
    return DomainLink(
        kind=Kind(row.kind),
        user=row.user,
        graph_id=row.graph_id,
        erp_id=row.erp_id,
        fingerprint=row.fingerprint,
        graph_change_key=row.graph_change_key,
        erp_version=row.erp_version,
        graph_modified_at=as_utc(row.graph_modified_at),
        erp_modified_at=as_utc(row.erp_modified_at),
        synced_at=as_utc(row.synced_at),
    )


@dataclass(frozen=True)
class Known:
    """What a delta page already read of one item: its link, the item itself when `has_item` (None
    then means gone), and whether it has pending creates (ERP creates that got no answer)."""

    row: Link | None
    item: dict[str, Any] | None
    has_item: bool
    pending: bool = True


@dataclass
class UserContext:
    """What the engine knows of one user during one message."""

    email: str
    settings: UserSettings
    mailbox: Mailbox

    @property
    def code(self) -> str:
        """The representative code (an enabled user always has one, R13)."""
        return self.settings.code or ""


class UserUnavailable(Exception):
    """The user is unknown, disabled or has no mailbox: nothing to sync (journaled)."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


class Engine:
    """Handles every message type of sync-core."""

    def __init__(
        self, *, state: State, erp: ErpClient, graph: GraphClient, tenant: str, clock: Callable[[], datetime] = now_utc
    ) -> None:
        self.state = state
        self.erp = erp
        self.graph = graph
        self.tenant = tenant
        self.clock = clock
        self._settings_cache: dict[str, tuple[float, UserSettings | None]] = {}
        self._mailboxes: dict[str, Mailbox] = {}
        # When the last delta round of a (user, collection) started: notifications that arrived
        # before it are already covered by it, so a burst collapses into one round.
        self._delta_started: dict[str, float] = {}
        self.settings_cache_s = 30.0
        self.delta_page_size = 100
        self.delta_apply_concurrency = 20
        # A user's last-sync times (R23) are written at most this often, the latest always (write-behind):
        # one write per user per interval instead of one per message. Health regained is written at once.
        self.sync_times_interval_s = 1.0
        self._sync_times_pending: dict[str, dict[str, Any]] = {}
        self._sync_times_written: dict[str, float] = {}
        self._sync_times_flush: dict[str, asyncio.Task[None]] = {}
        self._known_healthy: set[str] = set()
        # ... and kept on the ERP representative (R23) at most this often.
        self.erp_sync_times_interval_s = 30.0
        self._erp_times_pending: dict[str, dict[str, datetime]] = {}
        self._erp_times_written: dict[str, float] = {}
        self._erp_times_flush: dict[str, asyncio.Task[None]] = {}
        self._erp_times_known: set[tuple[str, str]] = set()  # (user, field) written once: later ones wait
        # (user, collection, Graph id) → the change keys of the latest versions this process wrote
        # there, or read and carried over to the ERP: their notifications stand for no change left.
        self._own_versions: OrderedDict[tuple[str, str, str], tuple[str, ...]] = OrderedDict()
        # Publishes follow-up messages (a force sync split per collection); set by the runtime.
        self.publish: Callable[[Envelope], Awaitable[None]] | None = None

    # Entry point ---------------------------------------------------------------------------------

    async def handle(self, env: Envelope, received_at: float | None = None) -> None:
        # Only a message delivered before (redelivered, retried, replayed) can have been processed
        # already, or one whose handler is not idempotent by itself (journal lines, force syncs; their
        # publishers' outboxes may send one twice). Every other handler tolerates a duplicate.
        check = delivered_before.get() or env.type in (MessageType.JOURNAL_LINE, MessageType.SYNC_FORCE)
        if check and await self.state.seen(str(env.id)):
            return
        if env.type is MessageType.JOURNAL_LINE:
            await self._store_reported_journal(env)
        elif env.type in (MessageType.GRAPH_CHANGED, MessageType.GRAPH_RESYNC):
            await self.sync_mailbox(env, received_at)
        elif env.type is MessageType.ERP_CHANGED:
            await self.apply_erp_change(env)
        elif env.type is MessageType.SYNC_FORCE:
            await self.force(env)
        await self.state.mark_seen(str(env.id))

    async def _store_reported_journal(self, env: Envelope) -> None:
        p = env.payload
        await self.state.journal(
            journal_entry(
                user=env.user,
                kind=env.kind,
                direction=p.get("direction"),
                outcome=str(p.get("outcome", "info")),
                rule=p.get("rule"),
                reason=p.get("reason"),
                erp_id=p.get("erp_id"),
                graph_id=p.get("graph_id"),
            )
        )

    # Users ---------------------------------------------------------------------------------------

    async def user_settings(self, email: str) -> UserSettings | None:
        cached = self._settings_cache.get(email)
        if cached and time.monotonic() - cached[0] < self.settings_cache_s:
            return cached[1]
        rep = await self.erp.representative_by_email(email)
        settings = UserSettings.from_erp(rep) if rep else None
        self._settings_cache[email] = (time.monotonic(), settings)
        return settings

    def forget_user(self, email: str) -> None:
        self._settings_cache.pop(email, None)

    async def user_context(self, email: str, graph_user_id: str | None = None) -> UserContext:
        settings = await self.user_settings(email)
        if settings is None:
            raise UserUnavailable("R16", "no ERP representative has this mailbox address")
        if not settings.enabled:
            raise UserUnavailable("R13", "user not enabled for sync (inactive, switched off or no sales role)")
        mailbox = self._mailboxes.get(email)
        if mailbox is None:
            if graph_user_id is None:
                state = await self.state.user_state(email)
                graph_user_id = state.graph_user_id if state else None
            if graph_user_id is None:
                user = await self.graph.find_user(email)
                graph_user_id = str(user["id"])
                await self.state.update_user_state(email, graph_user_id=graph_user_id)
            mailbox = Mailbox(self.graph, email, graph_user_id)
            self._mailboxes[email] = mailbox
        return UserContext(email, settings, mailbox)

    async def _note_synced(self, email: str, field: str, **fields: Any) -> None:
        """R23: a user's last successful sync in one direction (and health, R35), written behind."""
        pending = self._sync_times_pending.setdefault(email, {})
        pending[field] = now_utc()
        pending.update(fields)
        wait = self.sync_times_interval_s - (time.monotonic() - self._sync_times_written.get(email, float("-inf")))
        if wait <= 0 or (fields.get("healthy") and email not in self._known_healthy):
            await self._write_sync_times(email)
        elif email not in self._sync_times_flush:
            self._sync_times_flush[email] = asyncio.create_task(self._write_sync_times_later(email, wait))

    async def _write_sync_times_later(self, email: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._sync_times_flush.pop(email, None)
        try:
            await self._write_sync_times(email)
        except Exception:
            log.warning("last sync times of a user not written", exc_info=True)

    async def _write_sync_times(self, email: str) -> None:
        fields = self._sync_times_pending.pop(email, None)
        if not fields:
            return
        now = time.monotonic()
        self._sync_times_written[email] = now
        await self.state.update_user_state(email, **fields)
        if fields.get("healthy"):
            self._known_healthy.add(email)
        times = {k: v for k, v in fields.items() if k.startswith("last_sync_")}
        self._erp_times_pending.setdefault(email, {}).update(times)
        wait = self.erp_sync_times_interval_s - (now - self._erp_times_written.get(email, float("-inf")))
        first = any((email, field) not in self._erp_times_known for field in times)
        if wait <= 0 or first:
            await self._write_erp_sync_times(email, now)
        elif email not in self._erp_times_flush:
            self._erp_times_flush[email] = asyncio.create_task(self._write_erp_sync_times_later(email, wait))

    async def _write_erp_sync_times_later(self, email: str, wait: float) -> None:
        await asyncio.sleep(wait)
        self._erp_times_flush.pop(email, None)
        await self._write_erp_sync_times(email, time.monotonic())

    async def _write_erp_sync_times(self, email: str, now: float) -> None:
        """R23 in the ERP too (the representative's last sync fields), at most every half minute."""
        cached = self._settings_cache.get(email)
        code = cached[1].code if cached and cached[1] else None
        times = self._erp_times_pending.pop(email, None)
        if not code or not times:
            return
        self._erp_times_written[email] = now
        self._erp_times_known.update((email, field) for field in times)
        try:
            await self.erp.set_last_sync_times(code, {k: v.isoformat() for k, v in times.items()})
        except ErpError as exc:
            log.warning("last sync times not written to the ERP: %s", type(exc).__name__)

    async def aclose(self) -> None:
        """Write what is still pending (last sync times)."""
        tasks = [*self._sync_times_flush.values(), *self._erp_times_flush.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sync_times_flush.clear()
        self._erp_times_flush.clear()
        for email in list(self._sync_times_pending):
            await self._write_sync_times(email)
        for email in list(self._erp_times_pending):
            await self._write_erp_sync_times(email, time.monotonic())
        await self.state.aclose()

    async def _mark_failure(self, email: str, exc: Exception) -> None:
        """R35: a user whose mailbox or credentials fail is flagged at once."""
        self._known_healthy.discard(email)
        pending = self._sync_times_pending.get(email)
        if pending:  # a success noted before this failure must not mark the user healthy again later
            pending.pop("healthy", None)
            pending.pop("last_error", None)
        await self.state.update_user_state(
            email, healthy=False, last_error=f"{type(exc).__name__}: {exc}"[:500], last_error_at=now_utc()
        )

    async def erp_item(self, kind: Kind, raw: dict[str, Any] | None) -> Item | None:
        """An ERP record as canonical (None when deleted); an activity's contact is read for its e-mail (R08)."""
        if raw is None or raw.get("deleted"):
            return None
        if kind is Kind.CONTACT:
            return erp_map.erp_contact_to_contact(raw)
        person = None
        if raw.get("contact_id") is not None:
            contact = await self.erp.get("contacts", str(raw["contact_id"]))
            person = erp_map.erp_contact_person(contact) if contact else None
        return erp_map.erp_activity_to_activity(raw, contact=person)

    # Outlook → ERP -------------------------------------------------------------------------------

    async def sync_mailbox(self, env: Envelope, received_at: float | None) -> None:
        """Run the delta query of one user's collection and apply each item (R29, R30)."""
        kind = env.kind or Kind.EVENT
        collection = collection_of(kind)
        key = env.serialisation_key()
        if self._own_echo(env):
            echo_notifications_skipped.add(1, {"kind": kind.value})
            return
        if (
            env.type is MessageType.GRAPH_CHANGED
            and received_at is not None
            and received_at < self._delta_started.get(key, float("-inf"))
        ):
            return  # already covered by a delta round that started after this notification arrived
        try:
            ctx = await self.user_context(env.user, env.payload.get("graph_user_id"))
        except UserUnavailable as exc:
            await self.state.journal(
                journal_entry(
                    user=env.user,
                    kind=kind,
                    direction=OUTLOOK_TO_ERP,
                    outcome="skipped",
                    rule=exc.rule,
                    reason=exc.reason,
                )
            )
            return
        if collection == "todo" and env.payload.get("list_id"):
            ctx.mailbox.todo_list_id = ctx.mailbox.todo_list_id or str(env.payload["list_id"])
        self._delta_started[key] = time.monotonic()
        with tracer.start_as_current_span(
            "delta read",
            attributes={
                "sync.kind": kind.value,
                "sync.collection": collection,
                "sync.direction": OUTLOOK_TO_ERP,
                "sync.user_hash": user_hash(ctx.email),
            },
        ):
            try:
                await self._run_delta(ctx, kind, collection)
            except GraphSyncStateNotFound:
                log.info("delta token no longer valid; restarting the %s delta", collection)
                await self.state.set_cursor(ctx.email, collection, None)
                await self._run_delta(ctx, kind, collection)
            except GraphAuthError as exc:
                await self._mark_failure(ctx.email, exc)
                raise
        await self._note_synced(ctx.email, "last_sync_outlook_to_erp", healthy=True, last_error=None)

    def _remember_own_version(self, user: str, kind: Kind, graph_id: str, change_key: str | None) -> None:
        """Record a version of an Outlook item (its change key) that sync-core wrote there, or read
        and has carried over to the ERP, link saved. The last few are kept per item."""
        collection = collection_of(kind)
        if not change_key or collection == "todo":
            return  # To Do: notifications are not matched to versions (ADR 0060 is about delta rounds)
        key = (user.lower(), collection, graph_id)
        known = tuple(k for k in self._own_versions.get(key, ()) if k != change_key)
        self._own_versions[key] = (*known[-(OWN_KEYS_PER_ITEM - 1) :], change_key)
        self._own_versions.move_to_end(key)
        if len(self._own_versions) > OWN_VERSIONS_KEPT:
            self._own_versions.popitem(last=False)

    def _own_echo(self, env: Envelope) -> bool:
        """A change notification naming exactly a version sync-core wrote to that item (the echo of
        its own write), or one it has already read and carried over to the ERP (a user's change a
        delta round took before its notification came). It stands for no change left to do (another
        change, even of the same item, has a version of its own and a notification of its own), so no
        delta round is run for it (R22). Anything else — no etag, another version, a deletion, To Do —
        runs the round, and so does a message delivered before: the round it started may have failed
        after carrying this version over, leaving other items (whose notifications it covered) undone."""
        p = env.payload
        if env.type is not MessageType.GRAPH_CHANGED or p.get("change_type") not in ("created", "updated"):
            return False
        if delivered_before.get():
            return False
        etag, graph_id = p.get("etag"), p.get("resource_id")
        if not etag or not graph_id:
            return False
        known = self._own_versions.get((env.user.lower(), collection_of(env.kind or Kind.EVENT), str(graph_id)), ())
        return _change_key_of(str(etag)) in known

    async def _run_delta(self, ctx: UserContext, kind: Kind, collection: str) -> set[str]:
        """One delta round from the stored cursor (or the start); returns the ids it reported.

        A round from the start (a new user, a lost token) reports live items only: linked items it
        did not report are then swept (`_sweep_unseen`), and only after that is its cursor saved —
        a sweep that fails (the ERP down) is retried with the message, never skipped by a cursor
        that already moved on.
        """
        seen: set[str] = set()
        cursor = await self.state.cursor(ctx.email, collection)
        from_start = not cursor
        final: str | None = None
        if cursor:
            url, params = cursor, None
        else:
            s = ctx.settings
            url, params = await ctx.mailbox.initial_delta(
                kind, now=self.clock(), days_back=s.window_days_back, days_ahead=s.window_days_ahead
            )
        async for items, delta_link in ctx.mailbox.delta(url, params, self.delta_page_size):
            page = {str(raw["id"]): raw for raw in items}  # an item listed twice: its last state wins
            seen.update(page)
            await self._apply_page(ctx, kind, list(page.values()))
            if delta_link and from_start:
                final = delta_link
            elif delta_link:
                await self.state.set_cursor(ctx.email, collection, delta_link)
        if from_start:
            await self._sweep_unseen(ctx, kind, collection, seen)
            if final:
                await self.state.set_cursor(ctx.email, collection, final)
        return seen

    async def _apply_page(self, ctx: UserContext, kind: Kind, items: list[dict[str, Any]]) -> None:
        """Apply one delta page: the links in one query, the changed items read through `$batch`,
        then the items applied several at once (R30: the work still grows with the changes only).

        Items that could meet in the ERP go one after the other, in delta order, in one lane: those
        carrying the same ERP id (a copied event), contacts sharing an e-mail address (one ERP
        contact per person). Distinct lanes run concurrently, at most `delta_apply_concurrency`.
        """
        rows, pending = await self.state.links_by_graph_ids(ctx.email, kind, [str(r["id"]) for r in items])
        wanted = [
            str(raw["id"]) for raw in items if "@removed" not in raw and not _unchanged(raw, rows.get(str(raw["id"])))
        ]
        fulls = await ctx.mailbox.get_many(kind, wanted) if len(wanted) > 1 else {}
        lanes = _lanes(items, fulls)

        async def run(lane: list[dict[str, Any]], gate: asyncio.Semaphore) -> None:
            async with gate:
                for raw in lane:
                    item_id = str(raw["id"])
                    known = Known(rows.get(item_id), fulls.get(item_id), item_id in fulls, item_id in pending)
                    await self.apply_outlook_item(ctx, kind, raw, known=known)

        if len(lanes) == 1 or self.delta_apply_concurrency == 1:
            for lane in lanes:
                await run(lane, asyncio.Semaphore(1))
            return
        gate = asyncio.Semaphore(self.delta_apply_concurrency)
        # Every lane runs to its end (a lane stopped half-way would only be redone); the first
        # failure is then raised, so the page is not committed and the message is retried.
        results = await asyncio.gather(*(run(lane, gate) for lane in lanes), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _sweep_unseen(self, ctx: UserContext, kind: Kind, collection: str, seen: set[str]) -> None:
        """After a restarted delta: it reports live items only, so a linked item it did not return may
        have been deleted while the old token was lost. Each is looked up; only one really gone is
        decided as a removal (R20), the others as an ordinary change. Items with an ERP create that got
        no answer (no link yet) are looked up too: one gone has that create undone (R20)."""
        for graph_id in await self.state.linked_graph_ids(ctx.email, collection):
            if graph_id not in seen:
                await self.apply_outlook_item(ctx, kind, {"id": graph_id, "@removed": {"reason": "deleted"}})
        pending = {p.graph_id for p in await self.state.pending_creates(ctx.email, collection)}
        for graph_id in sorted(pending - seen):
            if await ctx.mailbox.get(kind, graph_id) is None:
                await self._settle_pending_creates(ctx, kind, graph_id, gone=True)

    async def apply_outlook_item(
        self,
        ctx: UserContext,
        collection_kind: Kind,
        raw: dict[str, Any],
        *,
        force: bool = False,
        known: Known | None = None,
    ) -> None:
        """Decide and apply one Outlook item (from delta, or a forced re-send).

        Outlook writes are made over the version read (`If-Match`); when the user edited the item in
        between (412), it is read again and decided again (R18), never overwritten.
        """
        for attempt in range(1, 4):
            try:
                await self._apply_outlook_item(ctx, collection_kind, raw, force=force, known=known)
                return
            except GraphPreconditionFailed:
                if attempt == 3:
                    raise
                raw, known = {"id": raw["id"]}, None

    async def _apply_outlook_item(
        self,
        ctx: UserContext,
        collection_kind: Kind,
        raw: dict[str, Any],
        *,
        force: bool,
        known: Known | None,
    ) -> None:
        """`known`: the link and the item as already read (a delta page read through `$batch`)."""
        graph_id = str(raw["id"])
        if known is not None:
            row = known.row
        else:
            row = await self.state.link_by_graph_id(ctx.email, collection_kind, graph_id)
        # Pending creates of this item: none when its delta page found none (only this item's own
        # handling adds one, and it runs in this (user, collection) order); otherwise read them.
        pending = known is None or known.pending
        removed = "@removed" in raw
        if removed and row is None:
            await self._settle_pending_creates(ctx, collection_kind, graph_id, gone=True, pending=pending)
            return
        if not force and not removed and _unchanged(raw, row):
            # R22: the version sync-core last read or wrote itself — typically the echo of its own
            # write. Keys are recorded only for versions sync-core knows in full: its writes over a
            # version it read carry `If-Match`, so a user's edit in between cannot hide behind one.
            echoes_skipped.add(1, {"kind": collection_kind.value})
            return
        # Delta pages carry no extended properties, linked resources or extensions: read the item
        # whole (one GET per changed item, so the cost still grows with changes only, R30).
        # Delta also says "removed" for an item that left the synced folder (moved, R21) or the
        # window (R34): the immutable id still finds it, and it is handled as a change of that item.
        # Only an item that is really gone is decided as a removal.
        if known is not None and known.has_item:
            full = known.item
        else:
            full = await ctx.mailbox.get(collection_kind, graph_id)
        if full is None:
            if row is None:
                await self._settle_pending_creates(ctx, collection_kind, graph_id, gone=True, pending=pending)
                return
            kind = Kind(row.kind)
            erp_item = await self.erp_item(kind, await self.erp.get(erp_collection(kind), row.erp_id))
            decision = decisions.decide_outlook_change(
                kind=kind,
                item=None,
                link=to_domain_link(row),
                erp_item=erp_item,
                settings=ctx.settings,
                now=self.clock(),
            )
            await self._apply_to_erp(ctx, kind, decision, None, {"id": graph_id}, row, erp_item)
            return
        raw = {k: v for k, v in {**raw, **full}.items() if k != "@removed"}
        if row is None:
            # Unknown id: an Outlook creation, or one of ours whose link was lost (R21).
            row = await self._relink(ctx, collection_kind, raw)
        try:
            item = graph_to_item(collection_kind, raw)
        except (KeyError, ValueError, TypeError) as exc:
            await self.state.journal(
                journal_entry(
                    user=ctx.email,
                    kind=collection_kind,
                    direction=OUTLOOK_TO_ERP,
                    outcome="failed",
                    reason=f"unreadable Outlook item: {type(exc).__name__}: {exc}",
                    graph_id=graph_id,
                )
            )
            return
        kind = kind_of_item(item)
        for attempt in range(1, 4):
            erp_raw = await self.erp.get(erp_collection(kind), row.erp_id) if row else None
            erp_item = await self.erp_item(kind, erp_raw)
            _adopt_pending_write(row, outlook=item, erp=erp_item)
            decision = decisions.decide_outlook_change(
                kind=kind,
                item=item,
                link=to_domain_link(row),
                erp_item=erp_item,
                settings=ctx.settings,
                now=self.clock(),
            )
            if force and decision.action is Action.NOOP and row is not None and erp_item is not None:
                decision = replace(decision, action=Action.UPDATE, rule="R24", reason="forced re-send (R24)")
            try:
                await self._apply_to_erp(ctx, kind, decision, item, raw, row, erp_item, erp_raw, pending=pending)
                return
            except ErpConflict:
                # The ERP record changed between our read and our write (412): read and decide again.
                if attempt == 3:
                    raise
                row = await self.state.link_by_graph_id(ctx.email, collection_kind, graph_id)
                pending = True  # the attempt may have left one

    async def _relink(self, ctx: UserContext, collection_kind: Kind, raw: dict[str, Any]) -> Link | None:
        """An Outlook item unknown by its id but carrying an ERP id (R21): its link, restored."""
        ref = erp_ref_on(raw)
        if ref is None:
            return None
        kind, erp_id = ref
        row = await self.state.link_by_erp_id(ctx.email, kind, erp_id)
        erp_raw = await self.erp.get(erp_collection(kind), erp_id)
        if erp_raw is None or erp_raw.get("deleted"):
            return row
        return await self._restore_link(ctx, kind, erp_id, erp_raw, raw, row, OUTLOOK_TO_ERP)

    async def _restore_link(
        self,
        ctx: UserContext,
        kind: Kind,
        erp_id: str,
        erp_raw: dict[str, Any],
        graph_raw: dict[str, Any],
        row: Link | None,
        direction: str,
    ) -> Link:
        """Record a link re-found through the ERP id (R21).

        What was last synced is unknown: the fingerprint matches neither side, so the decision sees
        "both changed" — equal sides relink quietly (R22), different ones go by the user's policy
        (R18, last modified wins by default). Assuming one side changed would let a stale side
        overwrite a newer edit made while the link was lost.
        """
        link = row or Link(
            user=ctx.email,
            kind=kind.value,
            collection=collection_of(kind),
            graph_id="",
            erp_id=erp_id,
            fingerprint="",
            synced_at=now_utc(),
        )
        link.graph_id = str(graph_raw["id"])
        link.erp_version = erp_raw.get("version")
        link.erp_modified_at = _parse_time(erp_raw.get("updated_at"))
        link.graph_change_key = _graph_version(graph_raw)
        link.graph_modified_at = _parse_time(graph_raw.get("lastModifiedDateTime"))
        link.synced_at = now_utc()
        return await self.state.save_link(
            link,
            journal_entry(
                user=ctx.email,
                kind=kind,
                direction=direction,
                outcome="relinked",
                rule="R21",
                reason="link re-found through the ERP id kept on the Outlook item",
                erp_id=erp_id,
                graph_id=link.graph_id,
            ),
        )

    async def _resolve_partner_and_contact(
        self, ctx: UserContext, item: Item
    ) -> tuple[str | None, int | None, str | None]:
        """Partner code (R11, R10) and contact id (R08, R14) for an Outlook item; third value: group."""
        if isinstance(item, Contact):
            code = item.partner_code or company_code(item.company)
            if code:
                if await self.erp.partner(code) is None:
                    raise ErpRefused(
                        422, "unknown_partner", f"company code #{code}# is not an ERP business partner (R11)"
                    )
                return code, None, None
            for email in item.emails:
                partner = await self.erp.partner_for_domain(email_domain(email))
                if partner:
                    return str(partner["code"]), None, None
            return None, None, "EXCHANGE"
        code = item.partner_code
        if code and await self.erp.partner(code) is None:
            raise ErpRefused(422, "unknown_partner", f"company code #{code}# is not an ERP business partner (R11)")
        person = first_contact(item)
        contact_id: int | None = None
        if person and person.email:
            found = await self.erp.contacts_by_email(person.email)
            if found:
                contact_id = int(found[0]["id"])
                code = code or found[0].get("partner_code")
            elif item.kind in (ActivityKind.TASK, ActivityKind.CALL):
                # R14: the task's unknown contact is created in the ERP too.
                given, _, surname = (person.name or person.email.split("@")[0]).partition(" ")
                new = Contact(
                    given_name=given,
                    surname=surname or given,
                    emails=(person.email,),
                    business_phones=(),
                    mobile_phone=None,
                    job_title=None,
                    company=None,
                    partner_code=None,
                    group=None,
                    modified_at=None,
                    erp_id=None,
                    graph_id=None,
                )
                p_code, _, group = await self._resolve_partner_and_contact(ctx, new)
                body = erp_map.contact_to_erp(new, representative=ctx.code, partner_code=p_code, group=group)
                created = await self.erp.create("contacts", body, key=f"{ctx.email}:contact-for:{person.email.lower()}")
                contact_id = int(created["id"])
                code = code or p_code
        return code, contact_id, None

    async def _apply_to_erp(
        self,
        ctx: UserContext,
        kind: Kind,
        decision: Decision,
        item: Item | None,
        raw: dict[str, Any],
        row: Link | None,
        erp_item: Item | None,
        erp_raw: dict[str, Any] | None = None,
        *,
        pending: bool = True,
    ) -> None:
        """`pending`: False when the item is known to have no pending creates (see `Known`)."""
        graph_id = str(raw["id"])
        erp_id = row.erp_id if row else None
        base: dict[str, Any] = {
            "user": ctx.email,
            "kind": kind,
            "direction": OUTLOOK_TO_ERP,
            "graph_id": graph_id,
            "erp_id": erp_id,
        }
        action = decision.action
        with _apply_span("apply to erp", ctx.email, kind, OUTLOOK_TO_ERP, decision):
            try:
                if action is Action.SKIP:
                    await self.state.journal(
                        journal_entry(**base, outcome="skipped", rule=decision.rule, reason=decision.reason)
                    )
                elif action is Action.NOOP:
                    if row is not None:
                        await self._touch_link(
                            row,
                            change_key=raw.get("changeKey"),
                            fingerprint=decision.fingerprint if decision.relink else None,
                        )
                elif action is Action.UNLINK and row is not None:
                    await self.state.drop_link(
                        row, journal_entry(**base, outcome="unlinked", rule=decision.rule, reason=decision.reason)
                    )
                elif action is Action.DELETE and row is not None:
                    await self.erp.delete(
                        erp_collection(kind), row.erp_id, key=f"{ctx.email}:del:{kind.value}:{row.erp_id}"
                    )
                    await self.state.drop_link(
                        row,
                        journal_entry(**base, outcome="deleted", rule=decision.rule or "R20", reason=decision.reason),
                    )
                elif action is Action.REMOVE_ASSIGNMENT and row is not None:
                    # The link's ERP version is in the key: a contact assigned again later and removed
                    # again is a new write, not a replay of the first removal.
                    key = f"{ctx.email}:unassign:{row.erp_id}:{row.erp_version}"
                    await self.erp.remove_assignment(row.erp_id, ctx.code, key=key)
                    await self.state.drop_link(
                        row, journal_entry(**base, outcome="unassigned", rule="R20", reason=decision.reason)
                    )
                elif action in (Action.CREATE, Action.UPDATE) and item is not None:
                    await self._write_erp(ctx, kind, decision, item, raw, row, erp_item, base, pending=pending)
                elif action is Action.CONFLICT and row is not None and erp_item is None:
                    # Deleted in the ERP, and the ERP won (R18, R19): the Outlook item goes too.
                    await ctx.mailbox.delete(kind, row.graph_id)
                    # Unchanged in Outlook (e.g. the notification of our own write arrived after the
                    # ERP deletion): a plain R19 deletion, not a conflict, for whoever reads the journal.
                    unchanged = item is not None and fingerprint(item) == row.fingerprint
                    await self.state.drop_link(
                        row,
                        journal_entry(
                            **base,
                            outcome="deleted" if unchanged else "conflict",
                            rule=decision.rule or "R19",
                            reason="deleted in the ERP: deleted in Outlook" if unchanged else decision.reason,
                            details={"winner": "erp", "applied": "deleted in Outlook"},
                        ),
                    )
                elif action is Action.CONFLICT and row is not None and erp_item is not None:
                    # The ERP side won (R18): Outlook gets the ERP's version back.
                    body = item_to_graph(
                        merge.for_outlook(replace(erp_item, erp_id=row.erp_id), item),  # type: ignore[type-var, arg-type]
                        quiet=decision.quiet,
                    )
                    async with self._unknown_outcome(row, "outlook", fingerprint(erp_item)):
                        updated = await ctx.mailbox.update(kind, row.graph_id, body, over=raw)
                    row.fingerprint = fingerprint(erp_item)
                    row.graph_change_key = updated.get("changeKey")
                    self._remember_own_version(ctx.email, kind, row.graph_id, row.graph_change_key)
                    row.synced_at = now_utc()
                    await self.state.save_link(
                        row,
                        journal_entry(
                            **base, outcome="conflict", rule="R18", reason=decision.reason, details={"winner": "erp"}
                        ),
                    )
                elif action is Action.FAIL:
                    await self.state.journal(
                        journal_entry(**base, outcome="failed", rule=decision.rule, reason=decision.reason)
                    )
                else:
                    return
            except ErpRefused as exc:
                # R15: one refused item is journaled with the ERP's error; the rest of the sync goes on.
                await self.state.journal(journal_entry(**base, outcome="failed", rule=_rule_of(exc), reason=str(exc)))
                action = Action.FAIL
            trace.get_current_span().set_attribute("sync.outcome", action.value)
        items_synced.add(1, {"kind": kind.value, "direction": OUTLOOK_TO_ERP, "outcome": action.value})

    async def _write_erp(
        self,
        ctx: UserContext,
        kind: Kind,
        decision: Decision,
        item: Item,
        raw: dict[str, Any],
        row: Link | None,
        erp_item: Item | None,
        base: dict[str, Any],
        *,
        pending: bool = True,
    ) -> None:
        graph_id = str(raw["id"])
        item = merge.for_erp(item, erp_item)  # type: ignore[type-var, arg-type]
        partner_code, contact_id, group = await self._resolve_partner_and_contact(ctx, item)
        creating = row is None
        settled: list[int] = []  # pending creates the saved link makes moot
        if isinstance(item, Contact):
            body = erp_map.contact_to_erp(
                item, representative=ctx.code, partner_code=partner_code, group=group, create=creating
            )
        else:
            body = erp_map.activity_to_erp(
                item, representative=ctx.code, contact_id=contact_id, partner_code=partner_code, create=creating
            )
        collection = erp_collection(kind)
        fp = decision.fingerprint or fingerprint(item)
        key = f"{ctx.email}:{kind.value}:{graph_id}:{fp}"
        if row is None and isinstance(item, Contact):
            # One ERP contact per person: an existing one with this e-mail is assigned, not duplicated.
            for email in item.emails:
                found = await self.erp.contacts_by_email(email)
                if found:
                    existing = found[0]
                    reps = sorted({str(r) for r in existing.get("representatives") or []} | {ctx.code})
                    body.pop("origin", None)
                    result = await self._erp_update(
                        collection,
                        str(existing["id"]),
                        {**body, "representatives": reps},
                        key=key,
                        version=existing.get("version"),
                    )
                    break
            else:
                result = await self.erp.create(collection, body, key=key)
            outcome = "created"
        elif row is None:
            earlier = await self._settle_pending_creates(
                ctx, kind, graph_id, gone=False, settled=settled, pending=pending
            )
            if earlier is not None:
                # An earlier create of this item was applied (its answer lost): updated, not made twice.
                body = erp_map.activity_to_erp(
                    item, representative=ctx.code, contact_id=contact_id, partner_code=partner_code, create=False
                )
                version = earlier.get("version")
                result = await self._erp_update(collection, str(earlier["id"]), body, key=key, version=version)
            else:
                # Remembered until the link is saved: a create applied whose answer was lost (the ERP
                # down, this process stopped or killed) is then found again by its key, so neither a
                # retry after an edit nor a deletion meanwhile leaves a record behind (R20, R22).
                # Its key is its own: a later create of the same item with the same content (after
                # the ERP record was deleted) is a new record, not a replay; retries replay the intent.
                create_key = f"{key}:{uuid.uuid4().hex[:12]}"
                intent = PendingCreate(
                    user=ctx.email,
                    collection=collection_of(kind),
                    graph_id=graph_id,
                    erp_collection=collection,
                    key=create_key,
                    body=body,
                    created_at=now_utc(),
                )
                with tracer.start_as_current_span("remember create"):
                    await self.state.add_pending_create(intent)
                try:
                    with tracer.start_as_current_span("erp create"):
                        result = await self.erp.create(collection, body, key=create_key)
                except ErpRefused:
                    await self.state.drop_pending_creates([intent.id] if intent.id is not None else [])
                    raise
                settled = [intent.id] if intent.id is not None else []
            outcome = "created"
        else:
            # Only over the version this decision read: an ERP edit made since then must be decided
            # on (R18), never overwritten — a 412 makes the caller read and decide again.
            version = erp_item.erp_version if erp_item is not None else row.erp_version
            async with self._unknown_outcome(row, "erp", fp):
                result = await self._erp_update(collection, row.erp_id, body, key=key, version=version)
            outcome = "updated"
        erp_id = str(result["id"])
        link = row or Link(
            user=ctx.email,
            kind=kind.value,
            collection=collection_of(kind),
            graph_id=graph_id,
            erp_id=erp_id,
            fingerprint=fp,
            synced_at=now_utc(),
        )
        link.erp_id = erp_id
        link.fingerprint = fp
        link.erp_version = result.get("version")
        link.erp_modified_at = _parse_time(result.get("updated_at"))
        link.graph_change_key = raw.get("changeKey")
        link.graph_modified_at = _parse_time(raw.get("lastModifiedDateTime"))
        link.synced_at = now_utc()
        if row is None and erp_ref_on(raw) is None:
            # R21: keep the ERP id on the Outlook item, so the link can be found again from it.
            chrono = result.get("chrono") if isinstance(result, dict) else None
            with tracer.start_as_current_span("stamp erp id"):
                change_key = await ctx.mailbox.stamp_erp_ref(kind, graph_id, erp_ref(kind, erp_id), chrono, over=raw)
            link.graph_change_key = change_key or link.graph_change_key
            self._remember_own_version(ctx.email, kind, graph_id, change_key)
            if chrono and isinstance(item, Activity) and not item.chrono:
                # Both sides now hold the ERP's chrono: the link's fingerprint says so (R22).
                link.fingerprint = fingerprint(replace(item, chrono=str(chrono)))
        base = {**base, "erp_id": erp_id}
        details = {"winner": decision.winner.value} if decision.winner else None
        with tracer.start_as_current_span("save link"):
            await self.state.save_link(
                link,
                journal_entry(**base, outcome=outcome, rule=decision.rule, reason=decision.reason, details=details),
                settled=settled,
            )
        # The version read is now in the ERP and linked: its own notification, if it comes after this
        # round, has nothing left to do (only now: a failure above must leave it to be retried).
        self._remember_own_version(ctx.email, kind, graph_id, raw.get("changeKey"))
        self._observe_latency(item, OUTLOOK_TO_ERP, kind)

    async def _settle_pending_creates(
        self,
        ctx: UserContext,
        kind: Kind,
        graph_id: str,
        *,
        gone: bool,
        settled: list[int] | None = None,
        pending: bool = True,
    ) -> dict[str, Any] | None:
        """ERP creates of this Outlook item that got no answer, replayed with their idempotency keys:
        the ERP answers with the record the first attempt made (or makes it now). When the item is
        gone from Outlook they are deleted (R20) and forgotten; otherwise the first is returned, to be
        updated and linked, any other deleted (one ERP record per item), and their ids are added to
        `settled`: they are forgotten with the link, in its transaction (a crash before it replays
        them again). `pending` False: the item's delta page found none (`Known`), nothing to read."""
        if not pending:
            return None
        entries = await self.state.pending_creates(ctx.email, collection_of(kind), graph_id)
        if not entries:
            return None
        kept: dict[str, Any] | None = None
        for entry in entries:
            try:
                record = await self.erp.create(entry.erp_collection, entry.body, key=entry.key)
            except ErpRefused:
                continue  # refused now: that attempt made nothing either
            if not gone and kept is None:
                kept = record
                continue
            erp_id = str(record["id"])
            record_kind = kind_of_activity(record["kind"]) if entry.erp_collection == "activities" else Kind.CONTACT
            await self.erp.delete(entry.erp_collection, erp_id, key=f"{ctx.email}:del:{record_kind.value}:{erp_id}")
            await self.state.journal(
                journal_entry(
                    user=ctx.email,
                    kind=record_kind,
                    direction=OUTLOOK_TO_ERP,
                    outcome="deleted",
                    rule="R20",
                    reason="an ERP create whose answer was lost: its Outlook item is gone"
                    if gone
                    else "an ERP create whose answer was lost: the item already has its ERP record",
                    erp_id=erp_id,
                    graph_id=graph_id,
                )
            )
        ids = [e.id for e in entries if e.id is not None]
        if gone or settled is None:
            await self.state.drop_pending_creates(ids)
        else:
            settled.extend(ids)
        return kept

    async def _erp_update(
        self, collection: str, erp_id: str, body: dict[str, Any], *, key: str, version: int | None
    ) -> dict[str, Any]:
        """An ERP update with its idempotency key. The key names the Outlook version being written (its
        fingerprint): when the ERP says it was used for another body, an earlier attempt of this write
        was applied and its answer lost (a create, then this retry found the record it made), and
        the record as it is now is that write's result."""
        try:
            return await self.erp.update(collection, erp_id, body, key=key, version=version)
        except ErpRefused as exc:
            if exc.code != "idempotency_key_reused":
                raise
            current = await self.erp.get(collection, erp_id)
            if current is None or current.get("deleted"):
                raise
            return current

    @asynccontextmanager
    async def _unknown_outcome(self, row: Link | None, side: str, fp: str) -> AsyncIterator[None]:
        """A write of `fp` to one side of a linked item: when it fails in a way that does not say
        whether it was applied (an answer lost, a To Do update whose later steps failed, the task
        cancelled), the link remembers it, so that side holding `fp` later is known as our write and
        not taken for a user's edit that conflicts with the other side (ADR 0025)."""
        try:
            yield
        except (GraphPreconditionFailed, ErpConflict, ErpRefused):
            raise  # refused as a whole: nothing was written
        except BaseException:
            if row is not None and row.id is not None:
                try:
                    await asyncio.shield(self.state.note_pending_write(row, f"{side}:{fp}"))
                except Exception:
                    log.warning("could not remember a write of unknown outcome on link %s", row.id, exc_info=True)
            raise

    async def _touch_link(self, row: Link, *, change_key: str | None, fingerprint: str | None = None) -> None:
        """Nothing to write: keep the link's view of the item current (R22 stays cheap next time)."""
        changed = False
        if change_key and change_key != row.graph_change_key:
            row.graph_change_key = change_key
            changed = True
        if fingerprint and fingerprint != row.fingerprint:
            row.fingerprint = fingerprint
            changed = True
        if changed:
            await self.state.save_link(row)

    def _observe_latency(self, item: Item, direction: str, kind: Kind) -> None:
        modified = getattr(item, "modified_at", None)
        if modified is not None:
            lag = max(0.0, (now_utc() - modified).total_seconds())
            e2e_latency.record(lag, {"direction": direction, "kind": kind.value})

    # ERP → Outlook -------------------------------------------------------------------------------

    async def apply_erp_change(self, env: Envelope, *, force: bool = False) -> None:
        p = env.payload
        kind = env.kind or Kind.EVENT
        erp_id = str(p["erp_id"])
        base: dict[str, Any] = {"user": env.user, "kind": kind, "direction": ERP_TO_OUTLOOK, "erp_id": erp_id}
        try:
            ctx = await self.user_context(env.user)
        except UserUnavailable as exc:
            await self.state.journal(journal_entry(**base, outcome="skipped", rule=exc.rule, reason=exc.reason))
            return
        row = await self.state.link_by_erp_id(ctx.email, kind, erp_id)
        if (
            not force
            and row is not None
            and p.get("origin") == "outlook"
            and p.get("version") is not None
            and p.get("version") == row.erp_version
        ):
            return  # our own write coming back (R22)
        if not force and row is None and p.get("origin") == "outlook" and kind is not Kind.CONTACT:
            # An activity sync-core wrote from an Outlook item: that item is its source, and linking
            # them is the Outlook → ERP path's job (it may still be on its way, e.g. a repair run
            # beside the queue). Never a new Outlook item (R22). A contact may also be assigned to
            # other representatives, whose mailboxes do get it.
            return
        snapshot = _snapshot(p)
        if snapshot is not None and row is not None and int(row.erp_version or 0) > int(snapshot["version"]):
            snapshot = None  # older than what is linked (a retried message): read the ERP's current record
        erp_raw = snapshot or await self.erp.get(erp_collection(kind), erp_id)
        await self.apply_erp_item(
            ctx,
            kind,
            erp_id,
            erp_raw,
            row,
            force=force,
            reassigned_from=p.get("previous_representative"),
            created=p.get("change") == "created",
        )

    async def apply_erp_item(
        self,
        ctx: UserContext,
        kind: Kind,
        erp_id: str,
        erp_raw: dict[str, Any] | None,
        row: Link | None,
        *,
        force: bool = False,
        reassigned_from: str | None = None,
        created: bool = False,
    ) -> None:
        """Decide and apply one ERP record (`created`: announced by the ERP as its creation). The
        Outlook item is updated only over the version read (`If-Match`): a user's edit made in
        between (412) is read and decided on (R18)."""
        for attempt in range(1, 4):
            try:
                await self._apply_erp_item(
                    ctx, kind, erp_id, erp_raw, row, force=force, reassigned_from=reassigned_from, created=created
                )
                return
            except GraphPreconditionFailed:
                if attempt == 3:
                    raise
                row = await self.state.link_by_erp_id(ctx.email, kind, erp_id)

    async def _apply_erp_item(
        self,
        ctx: UserContext,
        kind: Kind,
        erp_id: str,
        erp_raw: dict[str, Any] | None,
        row: Link | None,
        *,
        force: bool,
        reassigned_from: str | None,
        created: bool = False,
    ) -> None:
        item = await self.erp_item(kind, erp_raw)
        graph_raw = await ctx.mailbox.get(kind, row.graph_id) if row else None
        graph_item = graph_to_item(kind, graph_raw) if graph_raw else None
        _adopt_pending_write(row, outlook=graph_item, erp=item)
        decision = decisions.decide_erp_change(
            kind=kind,
            item=item,
            link=to_domain_link(row),
            graph_item=graph_item,
            settings=ctx.settings,
            now=self.clock(),
        )
        if row is None and decision.action is Action.CREATE and erp_raw is not None:
            # R21: no link, but a mirror may exist (lost link, a crash before the link was saved):
            # re-found through the ERP id on it, it is updated, never duplicated.
            found = await self._find_mirror(ctx, kind, erp_id, erp_raw, force=force, created=created)
            if found is not None:
                row = await self._restore_link(ctx, kind, erp_id, erp_raw, found, None, ERP_TO_OUTLOOK)
                graph_raw, graph_item = found, graph_to_item(kind, found)
                decision = decisions.decide_erp_change(
                    kind=kind,
                    item=item,
                    link=to_domain_link(row),
                    graph_item=graph_item,
                    settings=ctx.settings,
                    now=self.clock(),
                )
        if force and item is not None and decision.action is Action.NOOP:
            decision = replace(
                decision,
                action=Action.UPDATE if graph_raw else Action.CREATE,
                rule="R24",
                reason="forced re-send (R24)",
            )
        base: dict[str, Any] = {
            "user": ctx.email,
            "kind": kind,
            "direction": ERP_TO_OUTLOOK,
            "erp_id": erp_id,
            "graph_id": row.graph_id if row else None,
        }
        action = decision.action
        with _apply_span("apply to outlook", ctx.email, kind, ERP_TO_OUTLOOK, decision):
            try:
                if action is Action.SKIP:
                    await self.state.journal(
                        journal_entry(**base, outcome="skipped", rule=decision.rule, reason=decision.reason)
                    )
                elif action is Action.NOOP:
                    if row is not None and decision.relink and decision.fingerprint and erp_raw is not None:
                        # Both sides agree (a re-found link, R21): the link records it (R22).
                        row.fingerprint = decision.fingerprint
                        row.erp_version = erp_raw.get("version")
                        row.erp_modified_at = _parse_time(erp_raw.get("updated_at"))
                        await self.state.save_link(row)
                elif action is Action.UNLINK and row is not None:
                    if reassigned_from == ctx.code:
                        # R32: reassigned to another representative — the mirror moves to the new owner's mailbox.
                        await ctx.mailbox.delete(kind, row.graph_id)
                        await self.state.drop_link(
                            row,
                            journal_entry(
                                **base, outcome="moved", rule="R32", reason="reassigned to another representative"
                            ),
                        )
                    else:
                        await self.state.drop_link(
                            row, journal_entry(**base, outcome="unlinked", rule=decision.rule, reason=decision.reason)
                        )
                elif action is Action.DELETE and row is not None:
                    await ctx.mailbox.delete(kind, row.graph_id)
                    await self.state.drop_link(
                        row,
                        journal_entry(**base, outcome="deleted", rule=decision.rule or "R19", reason=decision.reason),
                    )
                elif action in (Action.CREATE, Action.UPDATE) and item is not None and erp_raw is not None:
                    await self._write_graph(
                        ctx, kind, decision, item, erp_raw, row if graph_raw else None, row, base, graph_item, graph_raw
                    )
                elif action is Action.CONFLICT and row is not None and graph_item is None:
                    # Removed in Outlook, and Outlook won (R18, R20): the removal reaches the ERP.
                    removal = Action.REMOVE_ASSIGNMENT if kind is Kind.CONTACT else Action.DELETE
                    await self._apply_to_erp(
                        ctx, kind, replace(decision, action=removal), None, {"id": row.graph_id}, row, item
                    )
                elif action is Action.CONFLICT and row is not None and graph_item is not None and graph_raw is not None:
                    # Outlook won (R18): the ERP gets Outlook's version back.
                    await self._apply_to_erp(
                        ctx, kind, replace(decision, action=Action.UPDATE), graph_item, graph_raw, row, item
                    )
                    await self.state.journal(
                        journal_entry(
                            **base,
                            outcome="conflict",
                            rule="R18",
                            reason=decision.reason,
                            details={"winner": "outlook"},
                        )
                    )
                elif action is Action.FAIL:
                    await self.state.journal(
                        journal_entry(**base, outcome="failed", rule=decision.rule, reason=decision.reason)
                    )
            except GraphError as exc:
                if isinstance(exc, GraphAuthError):
                    await self._mark_failure(ctx.email, exc)
                if getattr(exc, "status", 500) in (400, 403, 404, 409, 422):
                    await self.state.journal(journal_entry(**base, outcome="failed", reason=f"Graph: {exc}"))
                    action = Action.FAIL
                else:
                    raise
            trace.get_current_span().set_attribute("sync.outcome", action.value)
        if action is not Action.FAIL:
            await self._note_synced(ctx.email, "last_sync_erp_to_outlook")
        items_synced.add(1, {"kind": kind.value, "direction": ERP_TO_OUTLOOK, "outcome": action.value})

    async def _find_mirror(
        self, ctx: UserContext, kind: Kind, erp_id: str, erp_raw: dict[str, Any], *, force: bool, created: bool
    ) -> dict[str, Any] | None:
        """The Outlook item carrying this ERP id, if any (R21).

        Not searched only for the first delivery of the ERP's own announcement that it created this
        activity (`created`, version 1, from the ERP, not a force sync): no mirror can exist yet —
        a first attempt that created one and died before saving its link makes this message a
        redelivery. Every other case is searched (a repair, a force sync re-sending it, R24, R30;
        a changed or reassigned record). That saves a Graph request per creation: an indexed
        filter for events, a read through the list for To Do (no filter on linked resources).
        Contacts are always searched: one ERP contact may be assigned to several representatives.
        """
        if (
            kind is not Kind.CONTACT
            and created
            and not force
            and int(erp_raw.get("version") or 1) <= 1
            and erp_raw.get("origin") != "outlook"
            and not delivered_before.get()
        ):
            return None
        return await ctx.mailbox.find_by_erp_ref(kind, erp_ref(kind, erp_id))

    async def _write_graph(
        self,
        ctx: UserContext,
        kind: Kind,
        decision: Decision,
        item: Item,
        erp_raw: dict[str, Any],
        target: Link | None,
        old_row: Link | None,
        base: dict[str, Any],
        graph_item: Item | None = None,
        graph_raw: dict[str, Any] | None = None,
    ) -> None:
        erp_id = str(erp_raw["id"])
        current = graph_item if target is not None else None
        merged = merge.for_outlook(replace(item, erp_id=erp_id), current)  # type: ignore[type-var, arg-type]
        body = item_to_graph(merged, quiet=decision.quiet)
        graph_id = target.graph_id if target else None
        fp = decision.fingerprint or fingerprint(item)
        if graph_id is None:
            written = await ctx.mailbox.create(kind, body)
            outcome = "created"
        else:
            async with self._unknown_outcome(target, "outlook", fp):
                written = await ctx.mailbox.update(kind, graph_id, body, over=graph_raw)
            outcome = "updated"
        link = old_row or Link(
            user=ctx.email,
            kind=kind.value,
            collection=collection_of(kind),
            graph_id="",
            erp_id=erp_id,
            fingerprint=fp,
            synced_at=now_utc(),
        )
        link.graph_id = str(written["id"])
        link.fingerprint = fp
        link.graph_change_key = _written_version(kind, written, created=graph_id is None)
        self._remember_own_version(ctx.email, kind, link.graph_id, link.graph_change_key)
        link.graph_modified_at = _parse_time(written.get("lastModifiedDateTime"))
        link.erp_version = erp_raw.get("version")
        link.erp_modified_at = _parse_time(erp_raw.get("updated_at"))
        link.synced_at = now_utc()
        base = {**base, "graph_id": link.graph_id}
        details = {"winner": decision.winner.value} if decision.winner else None
        await self.state.save_link(
            link, journal_entry(**base, outcome=outcome, rule=decision.rule, reason=decision.reason, details=details)
        )
        self._observe_latency(item, ERP_TO_OUTLOOK, kind)

    # Force sync (R24) ----------------------------------------------------------------------------

    async def force(self, env: Envelope) -> None:
        """R24: re-send a user's ERP items to Outlook, or the Outlook items modified since a date to the ERP."""
        if env.kind is None and self.publish is not None:
            # One message per collection: each runs in its (user, collection) order (ADR 0002),
            # never beside that collection's delta rounds and ERP changes.
            for kind in (Kind.EVENT, Kind.TASK, Kind.CONTACT):
                await self.publish(
                    Envelope(
                        type=MessageType.SYNC_FORCE, tenant=env.tenant, user=env.user, kind=kind, payload=env.payload
                    )
                )
            return
        direction = env.payload.get("direction")
        ctx = await self.user_context(env.user)
        actor = env.payload.get("requested_by")
        collections = [collection_of(env.kind)] if env.kind else ["event", "todo", "contact"]
        count = 0
        if direction == ERP_TO_OUTLOOK:
            for collection in collections:
                erp_collection_name = "contacts" if collection == "contact" else "activities"
                for raw in await self.erp.list_all(erp_collection_name, representative=ctx.code):
                    kind = Kind.CONTACT if collection == "contact" else kind_of_activity(raw["kind"])
                    if collection_of(kind) != collection:
                        continue
                    row = await self.state.link_by_erp_id(ctx.email, kind, str(raw["id"]))
                    await self.apply_erp_item(ctx, kind, str(raw["id"]), raw, row, force=True)
                    count += 1
        else:
            since = _parse_time(env.payload.get("since"))
            s = ctx.settings
            for collection in collections:
                kind = {"event": Kind.EVENT, "todo": Kind.TASK, "contact": Kind.CONTACT}[collection]
                pages = ctx.mailbox.items_since(
                    kind, since, now=self.clock(), days_back=s.window_days_back, days_ahead=s.window_days_ahead
                )
                async for items in pages:
                    for raw in items:
                        await self.apply_outlook_item(ctx, kind, raw, force=True)
                        count += 1
        await self.state.journal(
            journal_entry(
                user=ctx.email,
                kind=env.kind,
                direction=direction,
                outcome="forced",
                rule="R24",
                actor=actor,
                reason=f"force sync re-sent {count} item(s)",
            )
        )


def _adopt_pending_write(row: Link | None, *, outlook: Item | None, erp: Item | None) -> None:
    """ADR 0025: when the side a write of ours of unknown outcome went to holds what it wrote, that
    write was applied: both sides agreed on it (the other side was its source), so it is what the
    link records. An edit made since on the source side is then a plain change, not a conflict with
    our own copy of an older version of it (which last-modified could let win)."""
    if row is None or not row.pending_write:
        return
    side, _, fp = row.pending_write.partition(":")
    held = erp if side == "erp" else outlook
    if held is not None and fingerprint(held) == fp:
        row.fingerprint = fp


def _change_key_of(etag: str) -> str:
    """`W/"abc"` → `abc`: an Outlook item's etag carries its change key."""
    return etag.strip().removeprefix("W/").strip('"')


def _unchanged(raw: dict[str, Any], row: Link | None) -> bool:
    """The delta item is at the version the link records (R22: nothing new to read). To Do tasks
    have no change key: their etag stands for it (recorded only as `_written_version` says)."""
    change_key = _graph_version(raw)
    return row is not None and bool(change_key) and change_key == row.graph_change_key


def _graph_version(raw: dict[str, Any]) -> str | None:
    """An Outlook item's version as a link records it: its change key, or its etag when it has none."""
    return raw.get("changeKey") or raw.get("@odata.etag")


def _written_version(kind: Kind, written: dict[str, Any], *, created: bool) -> str | None:
    """The version of an Outlook item that one write of sync-core left: its change key. A To Do task
    has none; its etag is that version only after a creation, made in one request (`Mailbox.create`):
    an update is several writes, and the last one's answer is not the task (`Mailbox.update`)."""
    if collection_of(kind) != "todo":
        return written.get("changeKey")  # type: ignore[no-any-return]
    return written.get("@odata.etag") if created else None


def _lanes(items: list[dict[str, Any]], fulls: dict[str, dict[str, Any] | None]) -> list[list[dict[str, Any]]]:
    """Items of a delta page grouped so that those which could meet in the ERP stay in order in one
    lane: the same ERP id on them, or (contacts) a shared e-mail address."""
    lane_of: dict[str, int] = {}
    lanes: list[list[dict[str, Any]]] = []
    for raw in items:
        full = fulls.get(str(raw["id"])) or raw
        keys = []
        ref = erp_ref_on(full)
        if ref is not None:
            keys.append(f"erp:{ref[0].value}:{ref[1]}")
        for address in full.get("emailAddresses") or ():
            if isinstance(address, dict) and address.get("address"):
                keys.append(f"mail:{str(address['address']).lower()}")
        joined = sorted({lane_of[k] for k in keys if k in lane_of})
        if not joined:
            index = len(lanes)
            lanes.append([])
        else:
            index = joined[0]
            for other in joined[1:]:  # this item ties lanes together: one lane, in page order
                lanes[index].extend(lanes[other])
                lanes[other] = []
                for key, value in lane_of.items():
                    if value == other:
                        lane_of[key] = index
        lanes[index].append(raw)
        for key in keys:
            lane_of[key] = index
    return [lane for lane in lanes if lane]


def _snapshot(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The record an `erp.changed` from erp-connector's own store carries (`data`), when it is the
    version the message announces; None otherwise (then the ERP is read). A signed ERP event's
    `data` (it has an `event_id`) is the ERP developer's and is not trusted to be complete."""
    data = payload.get("data")
    if (
        isinstance(data, dict)
        and "event_id" not in payload
        and payload.get("version") is not None
        and data.get("version") == payload.get("version")
        and str(data.get("id")) == str(payload.get("erp_id"))
    ):
        return data
    return None


def _rule_of(exc: ErpError) -> str | None:
    return {"overlap": "R15", "unknown_partner": "R11"}.get(exc.code or "")
