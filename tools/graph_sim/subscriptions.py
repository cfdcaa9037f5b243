"""Subscriptions: creation with the validation handshake, renew, delete, list; change and lifecycle
notifications.

- https://learn.microsoft.com/graph/api/subscription-post-subscriptions (201, handshake, 400 on failure)
- https://learn.microsoft.com/graph/api/resources/subscription (max lifetime: 4,230 minutes for
  Outlook events, contacts and To Do tasks)
- https://learn.microsoft.com/graph/change-notifications-delivery-webhooks (validationToken, 10 s)
- https://learn.microsoft.com/graph/api/resources/changenotification (payload fields)
- https://learn.microsoft.com/graph/change-notifications-lifecycle-events (lifecycle payload)
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from graph_sim import events, odata
from graph_sim.errors import GraphError
from graph_sim.routing import GraphRequest, GraphResponse, Router
from graph_sim.store import Item, Mailbox
from graph_sim.timezones import fmt_utc_stamp, parse_instant

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

MAX_MINUTES = 4230
_CHANGE_TYPES = {"created", "updated", "deleted"}
_RESOURCES = [
    (re.compile(r"^/?users/([^/]+)/events/?$", re.I), "event", None),
    (re.compile(r"^/?users/([^/]+)/calendars?/([^/]+)/events/?$", re.I), "event", 2),
    (re.compile(r"^/?users/([^/]+)/contacts/?$", re.I), "contact", None),
    (re.compile(r"^/?users/([^/]+)/contactFolders/([^/]+)/contacts/?$", re.I), "contact", 2),
    (re.compile(r"^/?users/([^/]+)/todo/lists/([^/]+)/tasks/?$", re.I), "task", 2),
]
_ODATA = {
    "event": ("#Microsoft.Graph.Event", "Events"),
    "contact": ("#Microsoft.Graph.Contact", "Contacts"),
}


@dataclass(eq=False)
class Subscription:
    id: str
    resource: str
    change_types: set[str]
    change_type_text: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: datetime
    app_id: str
    tenant_id: str
    user_id: str
    kind: str
    container_id: str | None
    immutable: bool
    reauth_sent: bool = False
    renewed_at: datetime | None = None

    def render(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type_text,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": fmt_utc_stamp(self.expiration),
            "creatorId": self.app_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


class Subscriptions:
    """All subscriptions, indexed by (user id, kind) so a change finds its subscribers in O(1)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.by_id: dict[str, Subscription] = {}
        self.by_target: dict[tuple[str, str], dict[str, Subscription]] = {}
        self._ticker: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.by_id.clear()
        self.by_target.clear()

    def add(self, sub: Subscription) -> None:
        self.by_id[sub.id] = sub
        self.by_target.setdefault((sub.user_id, sub.kind), {})[sub.id] = sub

    def remove(self, sub_id: str) -> Subscription | None:
        sub = self.by_id.pop(sub_id, None)
        if sub is not None:
            self.by_target.get((sub.user_id, sub.kind), {}).pop(sub_id, None)
        return sub

    # change notifications ----------------------------------------------------------------------
    def on_change(self, mb: Mailbox, item: Item, change_type: str, container_id: str, key: str) -> None:
        subs = self.by_target.get((mb.id, item.kind))
        if not subs:
            return
        now = self.sim.clock.now()
        for sub in list(subs.values()):
            if sub.expiration <= now:
                self.remove(sub.id)
                continue
            if change_type not in sub.change_types:
                continue
            if sub.container_id is not None and sub.container_id != container_id:
                continue
            self.sim.notifier.enqueue(
                sub.notification_url,
                self._notification(sub, mb, item, change_type, container_id, key),
                subscription_id=sub.id,
            )

    def _notification(
        self, sub: Subscription, mb: Mailbox, item: Item, change_type: str, container_id: str, key: str
    ) -> dict[str, Any]:
        occ = events.split_occurrence(key)
        if sub.immutable:
            item_id = key
        elif occ is not None:
            item_id = events.occurrence_id(item.regular_id, occ[1])
        else:
            item_id = item.ids_by_container.get(container_id, item.regular_id)
        if item.kind == "task":
            odata_type = "#Microsoft.Graph.todoTask"
            resource = f"Users/{mb.id}/todo/lists/{container_id}/tasks/{item_id}"
        else:
            odata_type, segment = _ODATA[item.kind]
            resource = f"Users/{mb.id}/{segment}/{item_id}"
        data: dict[str, Any] = {"@odata.type": odata_type, "@odata.id": resource}
        if change_type != "deleted":
            data["@odata.etag"] = item.etag()
        data["id"] = item_id
        return {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": fmt_utc_stamp(sub.expiration),
            "changeType": change_type,
            "resource": resource,
            "resourceData": data,
            "clientState": sub.client_state,
            "tenantId": sub.tenant_id,
        }

    # lifecycle ------------------------------------------------------------------------------------
    def send_lifecycle(self, sub_id: str, event: str, sub: Subscription | None = None) -> bool:
        sub = sub or self.by_id.get(sub_id)
        if sub is None or not sub.lifecycle_url:
            return False
        self.sim.notifier.enqueue(
            sub.lifecycle_url,
            {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": fmt_utc_stamp(sub.expiration),
                "tenantId": sub.tenant_id,
                "clientState": sub.client_state,
                "lifecycleEvent": event,
            },
            lifecycle=True,
            subscription_id=sub.id,
        )
        return True

    def lifecycle(self, sub_id: str, event: str) -> None:
        """Send a lifecycle notification on command; subscriptionRemoved also removes it."""
        if event not in {"reauthorizationRequired", "subscriptionRemoved", "missed"}:
            raise GraphError(400, "BadRequest", f"Unknown lifecycleEvent '{event}'.")
        sub = self.by_id.get(sub_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", f"Subscription '{sub_id}' not found.")
        if event == "subscriptionRemoved":
            self.remove(sub_id)
        if event == "reauthorizationRequired":
            sub.reauth_sent = True
        self.send_lifecycle(sub_id, event, sub)

    def tick(self) -> None:
        """Expire subscriptions and send reauthorizationRequired ahead of expiry (on the sim clock)."""
        now = self.sim.clock.now()
        lead = timedelta(minutes=self.sim.config.reauthorization_lead_minutes)
        for sub in list(self.by_id.values()):
            if sub.expiration <= now:
                self.remove(sub.id)
            elif (
                not sub.reauth_sent
                and sub.lifecycle_url
                and sub.expiration - now <= min(lead, (sub.expiration - (sub.renewed_at or now)) / 4)
            ):
                sub.reauth_sent = True
                self.send_lifecycle(sub.id, "reauthorizationRequired", sub)

    def ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while self.by_id:
            self.tick()
            await asyncio.sleep(self.sim.config.lifecycle_tick_seconds)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()

    # handshake ----------------------------------------------------------------------------------
    async def validate_endpoint(self, url: str) -> None:
        """POST url?validationToken=…; the endpoint must echo the token as text/plain within 10 s."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        sep = "&" if "?" in url else "?"
        client = self.sim.notifier.client_for(url)
        failure = GraphError(
            400,
            "ValidationError",
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to "
            "validation request.",
        )
        try:
            resp = await client.post(
                f"{url}{sep}validationToken={quote(token)}",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=self.sim.config.handshake_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise failure from exc
        if (
            resp.status_code != 200
            or resp.text != token
            or not resp.headers.get("content-type", "").startswith("text/plain")
        ):
            raise failure


def _parse_expiry(sim: Simulator, value: Any) -> datetime:
    if not value:
        raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
    try:
        expiry = parse_instant(str(value))
    except GraphError as exc:
        raise GraphError(400, "InvalidRequest", f"Invalid expirationDateTime '{value}'.") from exc
    now = sim.clock.now()
    if expiry <= now:
        raise GraphError(400, "InvalidRequest", "Subscription expiration date must be in the future.")
    if expiry > now + timedelta(minutes=MAX_MINUTES, seconds=30):
        raise GraphError(
            400, "InvalidRequest", f"Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )
    return expiry


def _check_url(url: Any, name: str) -> str:
    parts = urlsplit(str(url or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GraphError(400, "InvalidRequest", f"{name} must be an absolute http(s) URL.")
    return str(url)


async def create_subscription(sim: Simulator, req: GraphRequest) -> Any:
    body = req.json()
    claims = req.claims or {}
    resource = str(body.get("resource") or "")
    if resource.lower().lstrip("/").startswith("me/"):
        raise GraphError(400, "InvalidRequest", "'/me' is not valid with application permissions.")
    found = next(((m, k, g) for regex, k, g in _RESOURCES if (m := regex.match(resource))), None)
    if found is None:
        raise GraphError(400, "InvalidRequest", f"The resource '{resource}' is not supported by the simulator.")
    m, kind, group = found
    mb = sim.store.mailbox(m.group(1))
    container_id = m.group(group) if group else None
    if container_id is not None:
        mb.container(container_id)
    types = [t.strip() for t in str(body.get("changeType") or "").split(",") if t.strip()]
    if not types or not set(types) <= _CHANGE_TYPES:
        raise GraphError(400, "InvalidRequest", "changeType must be a combination of created, updated, deleted.")
    client_state = body.get("clientState")
    if client_state is not None and len(str(client_state)) > 255:
        raise GraphError(400, "InvalidRequest", "clientState must be at most 255 characters.")
    notification_url = _check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url:
        _check_url(lifecycle_url, "lifecycleNotificationUrl")
    expiry = _parse_expiry(sim, body.get("expirationDateTime"))
    await sim.subscriptions.validate_endpoint(notification_url)
    if lifecycle_url:
        await sim.subscriptions.validate_endpoint(lifecycle_url)
    sub = Subscription(
        id=str(uuid.uuid4()),
        resource=resource,
        change_types=set(types),
        change_type_text=",".join(types),
        notification_url=notification_url,
        lifecycle_url=lifecycle_url,
        client_state=client_state,
        expiration=expiry,
        app_id=claims.get("appid", ""),
        tenant_id=claims.get("tid", sim.config.tenant_id),
        user_id=mb.id,
        kind={"event": "event", "contact": "contact", "task": "task"}[kind],
        container_id=container_id,
        immutable=req.use_immutable(),
        renewed_at=sim.clock.now(),
    )
    sim.subscriptions.add(sub)
    sim.subscriptions.ensure_ticker()
    return GraphResponse(201, {"@odata.context": odata.context(req, "subscriptions/$entity"), **sub.render()})


def _own(sim: Simulator, req: GraphRequest, sub_id: str) -> Subscription:
    sub = sim.subscriptions.by_id.get(sub_id)
    if sub is None or sub.expiration <= sim.clock.now() or sub.app_id != (req.claims or {}).get("appid"):
        raise GraphError(404, "ResourceNotFound", f"The object was not found. Subscription '{sub_id}'.")
    return sub


async def list_subscriptions(sim: Simulator, req: GraphRequest) -> Any:
    app = (req.claims or {}).get("appid")
    now = sim.clock.now()
    subs = [s.render() for s in sim.subscriptions.by_id.values() if s.app_id == app and s.expiration > now]
    return odata.page(req, subs, "subscriptions")


async def get_subscription(sim: Simulator, req: GraphRequest, id: str) -> Any:
    return {"@odata.context": odata.context(req, "subscriptions/$entity"), **_own(sim, req, id).render()}


async def update_subscription(sim: Simulator, req: GraphRequest, id: str) -> Any:
    sub = _own(sim, req, id)
    body = req.json()
    if "notificationUrl" in body:
        url = _check_url(body["notificationUrl"], "notificationUrl")
        await sim.subscriptions.validate_endpoint(url)
        sub.notification_url = url
    if "expirationDateTime" in body:
        sub.expiration = _parse_expiry(sim, body["expirationDateTime"])
        sub.renewed_at = sim.clock.now()
        sub.reauth_sent = False
    return {"@odata.context": odata.context(req, "subscriptions/$entity"), **sub.render()}


async def delete_subscription(sim: Simulator, req: GraphRequest, id: str) -> Any:
    _own(sim, req, id)
    sim.subscriptions.remove(id)
    return GraphResponse(204)


async def reauthorize(sim: Simulator, req: GraphRequest, id: str) -> Any:
    _own(sim, req, id)  # reauthorizes without extending the expiry
    return GraphResponse(204)


def register(sim: Simulator, router: Router) -> None:
    router.add("POST", "/subscriptions", create_subscription)
    router.add("GET", "/subscriptions", list_subscriptions)
    router.add("POST", "/subscriptions/{id}/reauthorize", reauthorize)
    router.add("GET", "/subscriptions/{id}", get_subscription)
    router.add("PATCH", "/subscriptions/{id}", update_subscription)
    router.add("DELETE", "/subscriptions/{id}", delete_subscription)
