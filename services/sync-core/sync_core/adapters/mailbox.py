"""One user's mailbox on Graph, as sync-core reads and writes it: events, contacts, To Do tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from shared.envelope import Kind, collection_of
from shared.gather import Call, Gather, answer_with, settle
from shared.graph.client import BATCH_LIMIT, GraphClient
from shared.graph.errors import GraphNotFound, GraphPreconditionFailed, GraphUnavailable
from sync_core.domain.mapping.common import instant
from sync_core.domain.mapping.properties import CHRONO as CHRONO_PROPERTY
from sync_core.domain.mapping.properties import (
    CONTACT_PROPERTIES,
    EVENT_PROPERTIES,
    LINKED_APPLICATION,
    TODO_EXTENSION,
    expand_clause,
)
from sync_core.domain.mapping.properties import ERP_ID as ERP_ID_PROPERTY
from sync_core.domain.mapping.properties import erp_ref as erp_ref
from sync_core.domain.mapping.todo import split_todo_body

EXPAND = {
    "event": expand_clause(EVENT_PROPERTIES),
    "contact": expand_clause(CONTACT_PROPERTIES),
    "todo": f"linkedResources,extensions($filter=id eq '{TODO_EXTENSION}')",
}


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def if_match(raw: dict[str, Any] | None) -> dict[str, str] | None:
    """`If-Match` for a write over the version of an Outlook item we read (its etag or changeKey).

    A To Do task's update is several writes (its fields, then linked resources and extensions one by
    one): the first carries it. So no version of an updated task is sync-core's own; only a creation,
    made in one request, is (ADR 0060).
    """
    if not raw:
        return None
    etag = raw.get("@odata.etag") or (f'W/"{raw["changeKey"]}"' if raw.get("changeKey") else None)
    return {"If-Match": str(etag)} if etag else None


def _modified(item: dict[str, Any]) -> datetime:
    """An item's `lastModifiedDateTime` as aware UTC; the earliest time when it has none."""
    return instant(item.get("lastModifiedDateTime")) or datetime.min.replace(tzinfo=UTC)


@dataclass
class _Patch(Call):
    path: str
    body: dict[str, Any]
    headers: dict[str, str] | None


class _Patches(Gather[_Patch]):
    """One mailbox's R21 stamps, sent together through `$batch` when they queue up (`shared.gather`):
    a delta page's new items are stamped in one request instead of one each. A sub-request answered
    anything but 200 (a 412, a throttle Graph kept up) is sent again alone, so it gets the client's own
    retries and raises its own error, as if it had never been batched."""

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(max_batch=BATCH_LIMIT, in_flight=2)
        self._mailbox = mailbox

    async def _alone(self, call: _Patch) -> None:
        m = self._mailbox
        await answer_with(call, m.graph.patch_json(call.path, json=call.body, mailbox=m.email, headers=call.headers))

    async def _together(self, calls: list[_Patch]) -> None:
        m = self._mailbox
        requests: list[dict[str, Any]] = []
        for n, c in enumerate(calls):
            request: dict[str, Any] = {"id": str(n), "method": "PATCH", "url": c.path, "body": c.body}
            if c.headers:
                request["headers"] = c.headers
            requests.append(request)
        try:
            answers = await m.graph.batch(requests, mailbox=m.email)
        except Exception:
            answers = [{} for _ in calls]  # the batch itself failed: each goes alone
        again: list[_Patch] = []
        for call, answer in zip(calls, answers, strict=True):
            if int(answer.get("status") or 0) == 200 and isinstance(answer.get("body"), dict):
                settle(call, answer["body"])
            else:
                again.append(call)
        await asyncio.gather(*(self._alone(call) for call in again))

    def _stopped(self, reason: str) -> BaseException:
        return GraphUnavailable(f"sync-core's Graph writes {reason}")


class Mailbox:
    """Paths and calls for one user; Graph ids are immutable ids (Prefer: IdType="ImmutableId")."""

    def __init__(self, graph: GraphClient, email: str, graph_user_id: str, todo_list_id: str | None = None) -> None:
        self.graph = graph
        self.email = email
        self.user_id = graph_user_id
        self.todo_list_id = todo_list_id
        self._stamps = _Patches(self)

    async def ensure_todo_list(self) -> str:
        if self.todo_list_id is None:
            lists = await self.graph.get_json(f"/users/{self.user_id}/todo/lists", mailbox=self.email)
            items = lists.get("value", [])
            default = next((x for x in items if x.get("wellknownListName") == "defaultList"), None)
            chosen = default or (items[0] if items else None)
            if chosen is None:
                raise GraphNotFound("the mailbox has no To Do list", status=404, code="ErrorItemNotFound")
            self.todo_list_id = str(chosen["id"])
        return self.todo_list_id

    async def collection_path(self, kind: Kind) -> str:
        collection = collection_of(kind)
        if collection == "event":
            return f"/users/{self.user_id}/events"
        if collection == "contact":
            return f"/users/{self.user_id}/contacts"
        return f"/users/{self.user_id}/todo/lists/{await self.ensure_todo_list()}/tasks"

    async def initial_delta(self, kind: Kind, *, now: datetime, days_back: int, days_ahead: int) -> tuple[str, dict]:
        """The first delta request of a collection; events are bounded by the sync window (R34)."""
        collection = collection_of(kind)
        if collection == "event":
            params = {
                "startDateTime": _iso(now - timedelta(days=days_back)),
                "endDateTime": _iso(now + timedelta(days=days_ahead)),
            }
            return f"/users/{self.user_id}/calendarView/delta", params
        return f"{await self.collection_path(kind)}/delta", {}

    async def delta(
        self, url: str, params: dict | None = None, page_size: int | None = None
    ) -> AsyncIterator[tuple[list[dict], str | None]]:
        async for page in self.graph.delta(url, params=params, max_page_size=page_size, mailbox=self.email):
            yield page

    async def items_since(
        self, kind: Kind, since: datetime | None, *, now: datetime, days_back: int, days_ahead: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of a collection's items modified since `since` (all when None), for a force sync (R24).

        Events are read through the calendar view of the sync window (R34). The date is applied
        here rather than as a `$filter`, which not every collection (nor the simulator) supports.
        """
        url: str | None
        if collection_of(kind) == "event":
            url = f"/users/{self.user_id}/calendarView"
            params: dict[str, Any] | None = {
                "startDateTime": _iso(now - timedelta(days=days_back)),
                "endDateTime": _iso(now + timedelta(days=days_ahead)),
                "$top": "100",
            }
        else:
            url, params = await self.collection_path(kind), {"$top": "100"}
        while url:
            page = await self.graph.get_json(url, params=params, mailbox=self.email)
            items = [i for i in page.get("value") or () if since is None or _modified(i) >= since]
            if items:
                yield items
            next_link = page.get("@odata.nextLink")
            url, params = (str(next_link), None) if next_link else (None, None)

    async def get(self, kind: Kind, item_id: str) -> dict[str, Any] | None:
        """The item with our extended property (or linked resources), None when it is gone."""
        path = f"{await self.collection_path(kind)}/{item_id}"
        params = {"$expand": EXPAND[collection_of(kind)]}
        try:
            return await self.graph.get_json(path, params=params, mailbox=self.email)  # type: ignore[no-any-return]
        except GraphNotFound:
            return None

    async def get_many(self, kind: Kind, item_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """Several items as `get` reads them, through `$batch` (20 per request): id → item, None when
        gone. An item Graph did not answer for (throttled for too long, an error) is left out; the
        caller reads it alone, with the client's own retries and errors."""
        if not item_ids:
            return {}
        path = await self.collection_path(kind)
        expand = quote(EXPAND[collection_of(kind)], safe="(),='$")
        requests = [
            {"id": str(i), "method": "GET", "url": f"{path}/{item_id}?$expand={expand}"}
            for i, item_id in enumerate(item_ids)
        ]
        found: dict[str, dict[str, Any] | None] = {}
        for item_id, answer in zip(item_ids, await self.graph.batch(requests, mailbox=self.email), strict=True):
            status = int(answer.get("status") or 0)
            if status == 200 and isinstance(answer.get("body"), dict):
                found[item_id] = answer["body"]
            elif status == 404:
                found[item_id] = None
        return found

    async def find_by_erp_ref(self, kind: Kind, ref: str) -> dict[str, Any] | None:
        """Re-find an item by the ERP id kept on it (R21), e.g. after a lost link or a move."""
        if collection_of(kind) == "todo":
            return await self._find_task(kind, ref)
        path = await self.collection_path(kind)
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{ERP_ID_PROPERTY}' and ep/value eq '{ref}')"
        page = await self.graph.get_json(
            path, params={"$filter": flt, "$expand": EXPAND[collection_of(kind)], "$top": "2"}, mailbox=self.email
        )
        items = page.get("value", [])
        return items[0] if items else None

    async def _find_task(self, kind: Kind, ref: str) -> dict[str, Any] | None:
        """The To Do task whose ERP linked resource says `ref`.

        To Do cannot filter on linked resources: this reads the list, 200 tasks a page. Callers use
        it only when a mirror may exist without a link (a lost link, an ERP item seen before).
        """
        url: str | None = await self.collection_path(kind)
        params: dict[str, Any] | None = {"$expand": "linkedResources", "$top": "200"}
        while url:
            page = await self.graph.get_json(url, params=params, mailbox=self.email)
            for task in page.get("value") or ():
                for res in task.get("linkedResources") or ():
                    if str(res.get("applicationName") or "").lower() == LINKED_APPLICATION.lower() and (
                        res.get("externalId") == ref
                    ):
                        return await self.get(kind, str(task["id"]))
            next_link = page.get("@odata.nextLink")
            url, params = (str(next_link), None) if next_link else (None, None)
        return None

    async def create(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]:
        path = await self.collection_path(kind)
        if collection_of(kind) != "todo":
            return await self.graph.post_json(path, json=body, mailbox=self.email)
        props, links, extensions = split_todo_body(body)
        # A new task takes its linked resources and its open extensions inline: one request, one
        # version of the task, one notification (Graph creates an open extension "in a resource
        # instance ... all in the same operation", todoTask included).
        inline: dict[str, Any] = {**props, "linkedResources": links}
        if extensions:
            inline["extensions"] = extensions
        return await self.graph.post_json(path, json=inline, mailbox=self.email)

    async def update(
        self, kind: Kind, item_id: str, body: dict[str, Any], *, over: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Update an item; with `over` (the item as read), only over that version: a user's edit made
        since raises `GraphPreconditionFailed` (412) instead of being overwritten."""
        path = f"{await self.collection_path(kind)}/{item_id}"
        if collection_of(kind) != "todo":
            return await self.graph.patch_json(path, json=body, mailbox=self.email, headers=if_match(over))
        props, links, extensions = split_todo_body(body)
        # Only the task's own fields are written over the version read; its linked resources and
        # extensions follow as part of the same change of ours.
        updated = await self.graph.patch_json(path, json=props, mailbox=self.email, headers=if_match(over))
        # To Do updates its linked resources and extensions one by one, not inline.
        current = await self.graph.get_json(path, params={"$expand": EXPAND["todo"]}, mailbox=self.email)
        existing = {r.get("applicationName"): r for r in current.get("linkedResources") or []}
        for link in links:
            old = existing.get(link.get("applicationName"))
            if old is None:
                await self.graph.post_json(f"{path}/linkedResources", json=link, mailbox=self.email)
            elif any(old.get(k) != v for k, v in link.items() if not k.startswith("@")):
                await self.graph.patch_json(f"{path}/linkedResources/{old['id']}", json=link, mailbox=self.email)
        have = {e.get("extensionName") or e.get("id") for e in current.get("extensions") or []}
        for ext in extensions:
            name = ext.get("extensionName")
            if name in have:
                await self.graph.patch_json(f"{path}/extensions/{name}", json=ext, mailbox=self.email)
            else:
                await self.graph.post_json(f"{path}/extensions", json=ext, mailbox=self.email)
        return updated

    async def delete(self, kind: Kind, item_id: str) -> None:
        try:
            await self.graph.delete(f"{await self.collection_path(kind)}/{item_id}", mailbox=self.email)
        except GraphNotFound:
            return

    async def stamp_erp_ref(
        self,
        kind: Kind,
        item_id: str,
        ref: str,
        display_name: str | None = None,
        *,
        over: dict[str, Any] | None = None,
    ) -> str | None:
        """Write the ERP id (and an event's chrono) onto an Outlook-created item (R21).

        Returns the new changeKey only when the write was made over the version read (`over`,
        `If-Match`): that key then stands for content sync-core knows, and the next delta round may
        skip the item by it (R22). When the user edited the item meanwhile (412), the stamp is
        written anyway and None is returned: the edit is still to be synced.
        """
        try:
            try:
                return await self._stamp_erp_ref(kind, item_id, ref, display_name, if_match(over))
            except GraphPreconditionFailed:
                await self._stamp_erp_ref(kind, item_id, ref, display_name, None)
                return None
        except GraphNotFound:
            # Deleted in Outlook while its creation was being carried over: the link stays, and the
            # next delta round reports the removal (R20). Not a reason to dead-letter the whole round.
            return None

    async def _stamp_erp_ref(
        self, kind: Kind, item_id: str, ref: str, display_name: str | None, headers: dict[str, str] | None
    ) -> str | None:
        path = f"{await self.collection_path(kind)}/{item_id}"
        if collection_of(kind) == "todo":
            # To Do keeps it in a linked resource, created through its own collection.
            await self.graph.post_json(
                f"{path}/linkedResources",
                json={
                    "applicationName": LINKED_APPLICATION,
                    "externalId": ref,
                    "displayName": display_name or ref,
                    "webUrl": None,
                },
                mailbox=self.email,
            )
            return None  # To Do items are never skipped by a change key (see `if_match`)
        props = [{"id": ERP_ID_PROPERTY, "value": ref}]
        if display_name and collection_of(kind) == "event":
            # R01: the ERP's chrono ("Chrono X3") is shown on the Outlook event too.
            props.append({"id": CHRONO_PROPERTY, "value": display_name})
        body = {"singleValueExtendedProperties": props}
        updated = await self._stamps.submit(_Patch(path, body, headers))
        return updated.get("changeKey") if headers else None
