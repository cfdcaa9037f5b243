"""In-memory mailboxes: users, folders, items, extended-property index and per-folder change logs.

Every change gets a sequence number and is appended to its folder's change log, so a delta round
after k changes reads k log entries (bisect to the token's position), not the whole folder.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graph_sim import ids
from graph_sim.clock import SimClock
from graph_sim.errors import GraphError, invalid_user

CALENDAR = "calendar"
CONTACT_FOLDER = "contactFolder"
TODO_LIST = "todoList"


@dataclass(slots=True, eq=False)
class Item:
    """An event, contact or To Do task. `key` is the immutable id; `regular_id` changes on move."""

    kind: str
    key: str
    regular_id: str
    container_id: str
    data: dict[str, Any]
    created: datetime
    modified: datetime
    change_key: str
    seq: int = 0
    created_seq: int = 0
    deleted: bool = False
    ext_props: dict[str, tuple[str, str]] = field(default_factory=dict)
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    linked_resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    ids_by_container: dict[str, str] = field(default_factory=dict)
    # events only: UTC instants, or naive midnights for all-day events
    start: datetime | None = None
    end: datetime | None = None
    prev_start: datetime | None = None
    prev_end: datetime | None = None
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)

    def public_id(self, immutable: bool) -> str:
        return self.key if immutable else self.regular_id

    def etag(self) -> str:
        return f'W/"{self.change_key}"'


@dataclass(slots=True, eq=False)
class Container:
    """A calendar, contact folder or To Do list with its members and change log."""

    id: str
    kind: str
    data: dict[str, Any]
    order: list[str] = field(default_factory=list)
    members: dict[str, int] = field(default_factory=dict)
    log_seq: list[int] = field(default_factory=list)
    log_key: list[str] = field(default_factory=list)
    last: dict[str, int] = field(default_factory=dict)

    def add(self, key: str) -> None:
        self.members[key] = len(self.order)
        self.order.append(key)

    def discard(self, key: str) -> None:
        self.members.pop(key, None)

    def record(self, key: str, seq: int) -> None:
        self.log_seq.append(seq)
        self.log_key.append(key)
        self.last[key] = seq

    def log_index_after(self, seq: int) -> int:
        """Index of the first log entry newer than `seq` (O(log n))."""
        return bisect.bisect_right(self.log_seq, seq)

    def live_keys(self, start: int = 0) -> Iterator[tuple[int, str]]:
        """(position, key) of current members in arrival order, from `start`."""
        order = self.order
        members = self.members
        for pos in range(start, len(order)):
            key = order[pos]
            if members.get(key) == pos:
                yield pos, key


@dataclass(eq=False)
class Mailbox:
    """One user's mailbox and directory entry."""

    user: dict[str, Any]
    calendars: dict[str, Container] = field(default_factory=dict)
    contact_folders: dict[str, Container] = field(default_factory=dict)
    todo_lists: dict[str, Container] = field(default_factory=dict)
    default_calendar: str = ""
    default_contact_folder: str = ""
    default_todo_list: str = ""
    items: dict[str, Item] = field(default_factory=dict)
    regular: dict[str, str] = field(default_factory=dict)
    ext_index: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    epoch: int = 0
    enabled: bool = True
    outbox: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.user["id"])

    def container(self, container_id: str) -> Container:
        for group in (self.calendars, self.contact_folders, self.todo_lists):
            if container_id in group:
                return group[container_id]
        raise GraphError(404, "ErrorItemNotFound", "The specified folder was not found in the store.")

    def resolve(self, item_id: str, kind: str | None = None) -> Item:
        """Find a live item by regular or immutable id."""
        key = item_id if item_id in self.items else self.regular.get(item_id)
        item = self.items.get(key) if key else None
        if item is None or item.deleted or (kind is not None and item.kind != kind):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return item

    def index_props(self, item: Item, add: bool) -> None:
        for low, (_, value) in item.ext_props.items():
            k = (item.kind, low, value)
            if add:
                self.ext_index.setdefault(k, set()).add(item.key)
            else:
                keys = self.ext_index.get(k)
                if keys is not None:
                    keys.discard(item.key)
                    if not keys:
                        del self.ext_index[k]


ChangeListener = Callable[["Mailbox", Item, str, str, str], None]
"""(mailbox, item, change_type, container_id, resource_key) — resource_key is the id the change is about."""


class Store:
    """All mailboxes of the simulated tenant."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.mailboxes: dict[str, Mailbox] = {}
        self.by_name: dict[str, str] = {}
        self.seq = 0
        self.listeners: list[ChangeListener] = []

    # users -------------------------------------------------------------------------------------
    def add_user(self, user: dict[str, Any]) -> Mailbox:
        uid = str(user.get("id") or ids.new_uuid())
        upn = user.get("userPrincipalName") or user.get("mail") or f"{uid}@contoso.example"
        display = user.get("displayName") or upn.split("@")[0]
        doc: dict[str, Any] = {
            "businessPhones": user.get("businessPhones") or [],
            "displayName": display,
            "givenName": user.get("givenName"),
            "jobTitle": user.get("jobTitle"),
            "mail": user.get("mail") or upn,
            "mobilePhone": user.get("mobilePhone"),
            "officeLocation": user.get("officeLocation"),
            "preferredLanguage": user.get("preferredLanguage"),
            "surname": user.get("surname"),
            "userPrincipalName": upn,
            "id": uid,
        }
        if uid in self.mailboxes:
            mb = self.mailboxes[uid]
            mb.user.update(doc)
        else:
            mb = Mailbox(user=doc)
            self._provision(mb)
            self.mailboxes[uid] = mb
        self.by_name[upn.lower()] = uid
        if doc["mail"]:
            self.by_name[str(doc["mail"]).lower()] = uid
        return mb

    def _provision(self, mb: Mailbox) -> None:
        cal = Container(ids.folder_id(), CALENDAR, {"name": "Calendar", "isDefaultCalendar": True})
        mb.calendars[cal.id] = cal
        mb.default_calendar = cal.id
        folder = Container(ids.folder_id(), CONTACT_FOLDER, {"displayName": "Contacts", "parentFolderId": None})
        mb.contact_folders[folder.id] = folder
        mb.default_contact_folder = folder.id
        tasks = Container(
            ids.todo_id(),
            TODO_LIST,
            {
                "displayName": "Tasks",
                "isOwner": True,
                "isShared": False,
                "wellknownListName": "defaultList",
            },
        )
        mb.todo_lists[tasks.id] = tasks
        mb.default_todo_list = tasks.id

    def mailbox(self, user: str) -> Mailbox:
        """Look a mailbox up by id, userPrincipalName or mail (case-insensitive)."""
        mb = self.mailboxes.get(user)
        if mb is None:
            uid = self.by_name.get(user.lower())
            mb = self.mailboxes.get(uid) if uid else None
        if mb is None:
            raise invalid_user(user)
        if not mb.enabled:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return mb

    def user(self, user: str) -> Mailbox:
        """Directory lookup (works even when the mailbox is disabled)."""
        mb = self.mailboxes.get(user)
        if mb is None:
            uid = self.by_name.get(user.lower())
            mb = self.mailboxes.get(uid) if uid else None
        if mb is None:
            raise GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{user}' does not exist or one of its queried reference-property objects are not present.",
            )
        return mb

    # changes -----------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def insert(self, mb: Mailbox, item: Item, notify: bool = True) -> None:
        mb.items[item.key] = item
        mb.regular[item.regular_id] = item.key
        item.ids_by_container[item.container_id] = item.regular_id
        mb.container(item.container_id).add(item.key)
        mb.index_props(item, True)
        self.changed(mb, item, "created", notify=notify)
        item.created_seq = item.seq

    def changed(
        self,
        mb: Mailbox,
        item: Item,
        change_type: str,
        notify: bool = True,
        resource_key: str | None = None,
        container_id: str | None = None,
    ) -> None:
        """Record a change in the folder's log and tell listeners (subscriptions)."""
        seq = self.next_seq()
        item.seq = seq
        cid = container_id or item.container_id
        key = resource_key or item.key
        mb.container(cid).record(key, seq)
        if notify:
            for listener in self.listeners:
                listener(mb, item, change_type, cid, key)

    def delete(self, mb: Mailbox, item: Item, notify: bool = True) -> None:
        item.deleted = True
        mb.index_props(item, False)
        mb.regular.pop(item.regular_id, None)
        mb.container(item.container_id).discard(item.key)
        self.changed(mb, item, "deleted", notify=notify)

    def move(self, mb: Mailbox, item: Item, destination: str, notify: bool = True) -> None:
        """Move to another folder: a new regular id, the same immutable id (as Exchange does)."""
        dest = mb.container(destination)
        if dest.kind != mb.container(item.container_id).kind:
            raise GraphError(400, "ErrorInvalidRequest", "The destination folder is of the wrong kind.")
        if destination == item.container_id:
            return
        source = item.container_id
        mb.container(source).discard(item.key)
        # the source folder sees the item go; its old regular id stops resolving
        self.changed(mb, item, "deleted", notify=notify, container_id=source)
        mb.regular.pop(item.regular_id, None)
        item.regular_id = ids.regular_id()
        item.container_id = destination
        item.ids_by_container[destination] = item.regular_id
        mb.regular[item.regular_id] = item.key
        dest.add(item.key)
        self.changed(mb, item, "created", notify=notify)
