"""Graph subscriptions kept alive for every enabled user and watched collection.

Rules (https://learn.microsoft.com/graph/change-notifications-delivery-webhooks,
https://learn.microsoft.com/graph/change-notifications-lifecycle-events,
https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime):
- one subscription per (user, collection): `/users/{id}/events`, `/users/{id}/contacts`,
  `/users/{id}/todo/lists/{defaultList}/tasks`; with a lifecycle URL, a random `clientState`,
  immutable ids, and the longest lifetime Graph allows (4,230 minutes);
- renewed once less than a quarter of its life is left, or when Graph asks for reauthorization;
- recreated when renewal fails or Graph removed it; deleted when the user or the kind is switched off
  (R32: only the subscription goes, never an item);
- after any gap (new, recreated, missed) a `graph.resync` makes sync-core run its delta;
- notifications we had to refuse (the broker was away) owe one too (`owe_resync`): Graph retries
  them only for a while, and its `missed` notice may be refused as well, so we don't count on either.

The decisions are a pure function (`plan`) of the stored rows, the wanted (user, kind) pairs and
Graph's clock; `SubscriptionManager` carries them out under a database lease, so with several
replicas only one changes subscriptions at a time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from graph_webhook.cache import SubscriptionCache
from graph_webhook.directory import DirectoryUnavailable, Representative, UserDirectory
from graph_webhook.lease import DbLease
from graph_webhook.messages import ResyncReason, graph_resync, journal_line
from graph_webhook.models import Subscription, SubscriptionStatus, utcnow
from graph_webhook.settings import GraphWebhookSettings
from shared.envelope import Envelope, Kind
from shared.errors import TransientError
from shared.graph import GraphClient, GraphError, GraphNotFound
from shared.telemetry import meter, user_hash

log = logging.getLogger(__name__)
_meter = meter("graph_webhook.subscriptions")
operations = _meter.create_counter(
    "webhook_subscription_operations", description="Subscription creates, renewals, recreations, deletions"
)
failures = _meter.create_counter(
    "webhook_subscription_failures", description="Subscription operations that failed, by operation and kind"
)

CHANGE_TYPES = "created,updated,deleted"
OWED_RESYNC_RETRY_S = 5.0
LEASE_NAME = "subscriptions"


class Publisher(Protocol):
    async def publish_many(self, envelopes: list[Envelope], *, timeout: float = 5.0) -> None: ...


# ---- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    email: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Renew:
    row: Subscription
    reason: str | None = None  # `reauthorized` when Graph asked for it


@dataclass(frozen=True, slots=True)
class Recreate:
    row: Subscription
    reason: str


@dataclass(frozen=True, slots=True)
class Delete:
    row: Subscription


Action = Create | Renew | Recreate | Delete


def plan(
    rows: Iterable[Subscription],
    wanted: set[tuple[str, Kind]] | None,
    now: datetime,
    lifetime: timedelta,
    renew_fraction: float,
) -> list[Action]:
    """What to do so that exactly the wanted (user, kind) pairs have a live subscription.

    `wanted` None means the user list is unknown this time: nothing is created or deleted, existing
    subscriptions are only kept alive.
    """
    actions: list[Action] = []
    have: set[tuple[str, Kind]] = set()
    for row in rows:
        key = (row.user_email, Kind(row.kind))
        have.add(key)
        if wanted is not None and key not in wanted:
            actions.append(Delete(row))
        elif row.status == SubscriptionStatus.REMOVED:
            actions.append(Recreate(row, ResyncReason.SUBSCRIPTION_REMOVED))
        elif row.status == SubscriptionStatus.FAILED or row.expires_at <= now:
            # Gone, or in an unknown state: start afresh; the gap is healed by the resync.
            actions.append(Recreate(row, ResyncReason.SUBSCRIPTION_REMOVED))
        elif row.status == SubscriptionStatus.REAUTHORIZE:
            actions.append(Renew(row, ResyncReason.REAUTHORIZED))
        elif row.expires_at - now < lifetime * renew_fraction:
            actions.append(Renew(row))
    if wanted is not None:
        actions.extend(Create(email, kind) for email, kind in sorted(wanted - have))
    return actions


def wanted_pairs(representatives: Iterable[Representative]) -> set[tuple[str, Kind]]:
    return {(rep.email, kind) for rep in representatives for kind in rep.watched_kinds()}


# ---- execution -------------------------------------------------------------------------------


@dataclass
class Report:
    """What one run did."""

    full: bool
    skipped: str | None = None
    users_read: bool = False
    created: int = 0
    renewed: int = 0
    recreated: int = 0
    deleted: int = 0
    failed: int = 0
    resyncs: int = 0
    orphans_deleted: int = 0
    errors: list[str] = field(default_factory=list)


class SubscriptionManager:
    """Creates, renews, recreates and deletes the Graph subscriptions; one run at a time, under a lease."""

    def __init__(
        self,
        settings: GraphWebhookSettings,
        graph: GraphClient,
        directory: UserDirectory,
        engine: AsyncEngine,
        cache: SubscriptionCache,
        publisher: Publisher,
        *,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.graph = graph
        self.directory = directory
        self.cache = cache
        self.publisher = publisher
        self.sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self.lease = DbLease(engine, LEASE_NAME, self.owner, settings.lease_ttl_s)
        self.lifetime = timedelta(minutes=settings.subscription_lifetime_minutes)
        self._run_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._full_due = True
        self._user_ids: dict[str, str] = {}
        self._todo_lists: dict[str, str] = {}
        self._reported: dict[tuple[str, str], str] = {}
        self._lease_taken_at = 0.0
        self.last_report: Report | None = None
        # Subscriptions whose refused notifications owe a resync, not yet published (skip rewriting them).
        self._owed: set[str] = set()

    # -- scheduling --

    def wake(self, *, full: bool = False) -> None:
        """Run soon (a lifecycle notification marked a row; a user changed)."""
        if full:
            self._full_due = True
        self._wake.set()

    async def run_forever(self) -> None:
        """The background loop: a full reconcile every interval, a keep-alive check in between."""
        next_full = 0.0
        while True:
            full = self._full_due or time.monotonic() >= next_full
            self._wake.clear()
            try:
                if full:
                    self._full_due = False
                    report = await self.reconcile()
                    if report.users_read:
                        next_full = time.monotonic() + self.settings.subscription_reconcile_interval_s
                else:
                    await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("subscription run failed; retried at the next interval")
            # Owed resyncs are retried soon: the broker's return also wakes the loop, but a publish
            # can fail without the connection dropping (a blocked broker).
            wait_s = self.settings.subscription_check_interval_s
            if self._owed:
                wait_s = min(wait_s, OWED_RESYNC_RETRY_S)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    async def reconcile_now(self, timeout_s: float = 60.0) -> Report:
        """Run a full reconcile that starts after this call, waiting for the lease if another replica holds it."""
        deadline = time.monotonic() + timeout_s
        while True:
            report = await self.reconcile()
            if report.skipped is None or time.monotonic() >= deadline:
                return report
            await asyncio.sleep(0.5)

    # -- runs --

    async def reconcile(self) -> Report:
        """Match subscriptions to the ERP's enabled users, then keep the rest alive."""
        report = Report(full=True)
        async with self._run_lock, self._leased(report):
            if report.skipped:
                return report
            try:
                reps = await self.directory.representatives()
            except DirectoryUnavailable as exc:
                # Without the user list nothing is created or deleted; renewals still happen.
                log.warning("user list unavailable, keeping subscriptions as they are: %s", exc)
                report.errors.append(str(exc))
                await self._execute(None, report)
                return report
            report.users_read = True
            enabled = {rep.email for rep in reps if rep.enabled}
            wanted = wanted_pairs(reps)
            await self._delete_orphans(report)
            await self._execute(wanted, report, enabled=enabled)
        self.last_report = report
        return report

    async def check(self) -> Report:
        """Renew what nears expiry, recreate what Graph removed, publish pending resyncs (no user list)."""
        report = Report(full=False)
        async with self._run_lock, self._leased(report):
            if report.skipped:
                return report
            await self._execute(None, report)
        return report

    @asynccontextmanager
    async def _leased(self, report: Report) -> AsyncIterator[None]:
        if not await self.lease.acquire():
            report.skipped = "lease held by another replica"
            yield
            return
        self._lease_taken_at = time.monotonic()
        try:
            yield
        finally:
            try:
                await self.lease.release()
            except Exception:
                log.warning("could not release the subscription lease; it expires by itself", exc_info=True)

    async def _keep_lease(self) -> None:
        if time.monotonic() - self._lease_taken_at > self.settings.lease_ttl_s / 3:
            if not await self.lease.acquire():
                raise TransientError("subscription lease lost to another replica")
            self._lease_taken_at = time.monotonic()

    async def _rows(self) -> list[Subscription]:
        async with self.sessions() as session:
            return list((await session.exec(select(Subscription))).scalars().all())  # type: ignore[call-overload]

    async def _execute(
        self, wanted: set[tuple[str, Kind]] | None, report: Report, *, enabled: set[str] | None = None
    ) -> None:
        rows = await self._rows()
        if enabled is not None:
            # Users with subscriptions who are no longer enabled: refuse their notifications at once,
            # even before their subscriptions are gone.
            self.cache.set_blocked({row.user_email for row in rows if row.user_email not in enabled})
        actions = plan(rows, wanted, self.graph.now(), self.lifetime, self.settings.subscription_renew_fraction)
        limit = asyncio.Semaphore(max(self.settings.subscription_parallelism, 1))

        async def run(action: Action) -> None:
            async with limit:
                await self._keep_lease()
                await self._apply(action, report)

        await asyncio.gather(*(run(a) for a in actions))
        await self._publish_pending_resyncs(report)

    async def _apply(self, action: Action, report: Report) -> None:
        try:
            if isinstance(action, Create):
                await self._create(action.email, action.kind, ResyncReason.SUBSCRIPTION_CREATED)
                report.created += 1
            elif isinstance(action, Renew):
                if await self._renew(action.row, action.reason):
                    report.renewed += 1
                else:
                    await self._recreate(action.row, ResyncReason.SUBSCRIPTION_REMOVED)
                    report.recreated += 1
            elif isinstance(action, Recreate):
                await self._recreate(action.row, action.reason)
                report.recreated += 1
            else:
                await self._delete(action.row)
                report.deleted += 1
        except (GraphError, TransientError) as exc:
            report.failed += 1
            report.errors.append(str(exc))
            await self._failed(action, exc)

    # -- single operations --

    async def _create(self, email: str, kind: Kind, reason: str, *, replacing: Subscription | None = None) -> None:
        graph_user_id = await self._graph_user_id(email)
        list_id = await self._todo_list_id(graph_user_id) if kind == Kind.TASK else None
        resource = _resource(graph_user_id, kind, list_id)
        client_state = secrets.token_urlsafe(32)
        expires = self.graph.now() + self.lifetime - timedelta(minutes=1)
        created = await self.graph.post_json(
            "/subscriptions",
            {
                "changeType": CHANGE_TYPES,
                "notificationUrl": self.settings.notification_url,
                "lifecycleNotificationUrl": self.settings.lifecycle_url,
                "resource": resource,
                "expirationDateTime": _iso(expires),
                "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2",
            },
        )
        row = Subscription(
            id=str(created["id"]),
            user_email=email,
            graph_user_id=graph_user_id,
            kind=kind.value,
            resource=resource,
            list_id=list_id,
            client_state=client_state,
            expires_at=_parse_time(created.get("expirationDateTime")) or expires,
            status=SubscriptionStatus.ACTIVE.value,
            resync_reason=reason,
        )
        # Known to the notification path before the database write: Graph may notify at once.
        self.cache.put(row)
        async with self.sessions() as session:
            if replacing is not None:
                await session.exec(delete(Subscription).where(Subscription.id == replacing.id))  # type: ignore[call-overload, arg-type]
            await session.exec(  # type: ignore[call-overload]
                delete(Subscription).where(Subscription.user_email == email, Subscription.kind == kind.value)  # type: ignore[arg-type]
            )
            session.add(row)
            await session.commit()
        if replacing is not None:
            self.cache.drop(replacing.id)
        self._reported.pop((email, kind.value), None)
        operations.add(1, {"operation": "create", "kind": kind.value})
        log.info(
            "subscription created", extra={"user_hash": user_hash(email), "kind": kind.value, "subscription_id": row.id}
        )

    async def _renew(self, row: Subscription, reason: str | None) -> bool:
        """PATCH a later expiry; False when Graph no longer knows the subscription (recreate it)."""
        expires = self.graph.now() + self.lifetime - timedelta(minutes=1)
        try:
            renewed = await self.graph.patch_json(f"/subscriptions/{row.id}", {"expirationDateTime": _iso(expires)})
        except GraphNotFound:
            return False
        except GraphError as exc:
            if isinstance(exc, TransientError):
                raise
            # Refused (e.g. permissions changed): a new subscription is the documented way out.
            log.warning("renewal refused, recreating", extra={"subscription_id": row.id, "error": str(exc)[:200]})
            return False
        async with self.sessions() as session:
            current = await session.get(Subscription, row.id)
            if current is None:
                return True
            current.expires_at = _parse_time(renewed.get("expirationDateTime")) or expires
            current.renewed_at = utcnow()
            current.status = SubscriptionStatus.ACTIVE.value
            current.last_error = None
            if reason:
                current.resync_reason = reason
            session.add(current)
            await session.commit()
        self._reported.pop((row.user_email, row.kind), None)
        operations.add(1, {"operation": "renew", "kind": row.kind})
        return True

    async def _recreate(self, row: Subscription, reason: str) -> None:
        try:
            await self.graph.delete(f"/subscriptions/{row.id}", missing_ok=True)
        except GraphError as exc:
            if isinstance(exc, TransientError):
                raise
            log.info("old subscription not deleted", extra={"subscription_id": row.id, "error": str(exc)[:200]})
        await self._create(row.user_email, Kind(row.kind), reason, replacing=row)
        operations.add(1, {"operation": "recreate", "kind": row.kind})

    async def _delete(self, row: Subscription) -> None:
        await self.graph.delete(f"/subscriptions/{row.id}", missing_ok=True)
        async with self.sessions() as session:
            await session.exec(delete(Subscription).where(Subscription.id == row.id))  # type: ignore[call-overload, arg-type]
            await session.commit()
        self.cache.drop(row.id)
        operations.add(1, {"operation": "delete", "kind": row.kind})
        log.info(
            "subscription deleted",
            extra={"user_hash": user_hash(row.user_email), "kind": row.kind, "subscription_id": row.id},
        )

    async def _failed(self, action: Action, exc: Exception) -> None:
        """Record a failed operation: on the row, in metrics, and once per distinct error in the journal (R35)."""
        if isinstance(action, Create):
            email, kind, row = action.email, action.kind.value, None
        else:
            row = action.row
            email, kind = row.user_email, row.kind
        operation = type(action).__name__.lower()
        failures.add(1, {"operation": operation, "kind": kind})
        message = f"{operation} of the {kind} subscription failed: {exc}"[:500]
        log.warning(
            "subscription %s failed",
            operation,
            extra={"user_hash": user_hash(email), "kind": kind, "error": str(exc)[:300]},
        )
        if row is not None and not isinstance(exc, TransientError):
            async with self.sessions() as session:
                current = await session.get(Subscription, row.id)
                if current is not None:
                    current.status = SubscriptionStatus.FAILED.value
                    current.last_error = message
                    session.add(current)
                    await session.commit()
        if self._reported.get((email, kind)) == str(exc):
            return
        line = journal_line(
            tenant=self.settings.tenant,
            user_email=email,
            kind=Kind(kind),
            outcome="failed",
            rule="R35",
            reason=f"{message}. Check the mailbox and the app's Graph permissions; retried automatically.",
        )
        try:
            await self.publisher.publish_many([line], timeout=self.settings.publish_timeout_s)
        except Exception as publish_error:
            # Not marked as reported: the next failed attempt tries again.
            log.warning("journal line about a subscription failure not published: %s", publish_error)
            return
        self._reported[(email, kind)] = str(exc)

    async def _publish_pending_resyncs(self, report: Report) -> None:
        async with self.sessions() as session:
            rows = (
                (await session.exec(select(Subscription).where(Subscription.resync_reason.is_not(None))))  # type: ignore[call-overload, union-attr]
                .scalars()
                .all()
            )
        if not rows:
            self._owed.clear()
            return
        envelopes = [
            graph_resync(
                tenant=self.settings.tenant,
                user_email=row.user_email,
                kind=Kind(row.kind),
                graph_user_id=row.graph_user_id,
                reason=row.resync_reason or ResyncReason.SUBSCRIPTION_CREATED,
                list_id=row.list_id,
            )
            for row in rows
        ]
        try:
            await self.publisher.publish_many(envelopes, timeout=self.settings.publish_timeout_s)
        except Exception as exc:
            # Kept in the rows: published at the next run.
            report.errors.append(f"resync not published: {exc}")
            log.warning("graph.resync not published; retried at the next run: %s", exc)
            return
        async with self.sessions() as session:
            for row in rows:
                current = await session.get(Subscription, row.id)
                if current is not None and current.resync_reason == row.resync_reason:
                    current.resync_reason = None
                    session.add(current)
            await session.commit()
        report.resyncs += len(envelopes)
        self._owed.difference_update(row.id for row in rows)

    async def _delete_orphans(self, report: Report) -> None:
        """Delete Graph subscriptions to our URL that we have no row for (a crash between create and store)."""
        known = {row.id for row in await self._rows()}
        url: str | None = "/subscriptions"
        while url:
            try:
                page = await self.graph.get_json(url)
            except (GraphError, TransientError) as exc:
                report.errors.append(f"listing subscriptions failed: {exc}")
                log.warning("could not list Graph subscriptions to clean up orphans: %s", exc)
                return
            for sub in page.get("value") or []:
                if sub.get("notificationUrl") == self.settings.notification_url and sub.get("id") not in known:
                    try:
                        await self.graph.delete(f"/subscriptions/{sub['id']}", missing_ok=True)
                        report.orphans_deleted += 1
                    except GraphError as exc:
                        log.info("orphan subscription not deleted: %s", exc)
            url = page.get("@odata.nextLink")

    async def _graph_user_id(self, email: str) -> str:
        cached = self._user_ids.get(email)
        if cached is None:
            user = await self.graph.find_user(email)
            cached = self._user_ids[email] = str(user["id"])
        return cached

    async def _todo_list_id(self, graph_user_id: str) -> str:
        cached = self._todo_lists.get(graph_user_id)
        if cached is None:
            lists = (await self.graph.get_json(f"/users/{graph_user_id}/todo/lists")).get("value") or []
            default = next((x for x in lists if x.get("wellknownListName") == "defaultList"), None)
            if default is None:
                raise GraphNotFound(f"user {graph_user_id} has no default To Do list", status=404)
            cached = self._todo_lists[graph_user_id] = str(default["id"])
        return cached

    # -- lifecycle and control messages --

    async def owe_resync(self, subscription_ids: Iterable[str]) -> None:
        """Notifications of these subscriptions were refused: note durably that a resync is owed.

        Graph redelivers a refused notification only for a while and then may send `missed`, which
        we may have to refuse too; the mark on the row (published by the next run once the broker is
        back) makes the gap heal whatever Graph does. One UPDATE per newly owing subscription.
        """
        new = set(subscription_ids) - self._owed
        if not new:
            return
        async with self.sessions() as session:
            await session.exec(
                update(Subscription)
                .where(Subscription.id.in_(new), Subscription.resync_reason.is_(None))  # type: ignore[attr-defined, union-attr]
                .values(resync_reason=ResyncReason.MISSED)
            )
            await session.commit()
        self._owed |= new

    async def mark(self, subscription_id: str, status: SubscriptionStatus) -> bool:
        """Record what a lifecycle notification said, durably, and wake the loop to act on it."""
        async with self.sessions() as session:
            row = await session.get(Subscription, subscription_id)
            if row is None:
                return False
            # `removed` wins over `reauthorize`: a removed subscription can't be renewed.
            if not (row.status == SubscriptionStatus.REMOVED and status == SubscriptionStatus.REAUTHORIZE):
                row.status = status.value
                session.add(row)
                await session.commit()
        self.wake()
        return True

    async def on_user_changed(self, envelope: Envelope) -> None:
        """`user.changed`: refuse a switched-off user's notifications at once, then reconcile."""
        payload: dict[str, Any] = envelope.payload
        email = str(payload.get("email") or envelope.user).lower()
        if payload.get("enabled") is False:
            self.cache.block_user(email)
        self._user_ids.pop(email, None)
        report = await self.reconcile_now(timeout_s=self.settings.lease_ttl_s)
        if report.skipped:
            self.wake(full=True)


def _resource(graph_user_id: str, kind: Kind, list_id: str | None) -> str:
    if kind == Kind.EVENT:
        return f"/users/{graph_user_id}/events"
    if kind == Kind.CONTACT:
        return f"/users/{graph_user_id}/contacts"
    if kind == Kind.TASK:
        return f"/users/{graph_user_id}/todo/lists/{list_id}/tasks"
    raise ValueError(f"no Graph subscription for kind {kind}")


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Graph writes seven fractional digits; Python reads at most six.
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
