"""Delta queries: initial enumeration, then O(changes) rounds from per-folder change logs.

- https://learn.microsoft.com/graph/delta-query-overview (state tokens, @odata.nextLink then
  @odata.deltaLink, @removed with reason, 410 Gone / syncStateNotFound when a token is unknown)
- https://learn.microsoft.com/graph/delta-query-events (calendarView delta: window in the token, no
  $select, Prefer: odata.maxpagesize)
- https://learn.microsoft.com/graph/api/contact-delta, https://learn.microsoft.com/graph/api/todotask-delta

Tokens are opaque to clients: base64 of the folder, the mailbox epoch, the change sequence the round
starts from and, while paging, the position reached. `POST /_sim/delta/expire` bumps the epoch.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from graph_sim import events, odata
from graph_sim.errors import GraphError
from graph_sim.routing import GraphRequest
from graph_sim.store import Container, Item, Mailbox
from graph_sim.timezones import parse_instant

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

MAX_PAGE = 1000
Renderer = Callable[["Simulator", Mailbox, Item, GraphRequest], dict[str, Any]]


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def _gone() -> GraphError:
    return GraphError(
        410,
        "syncStateNotFound",
        "The sync state is not found or has expired. Restart the synchronization with an initial "
        "delta request (no token).",
    )


def _decode(token: str, mb: Mailbox, container: Container) -> dict[str, Any]:
    try:
        state = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise _gone() from exc
    if (
        not isinstance(state, dict)
        or state.get("u") != mb.id
        or state.get("c") != container.id
        or state.get("ep") != mb.epoch
    ):
        raise _gone()
    return state


def removed(odata_type: str, item_id: str, reason: str) -> dict[str, Any]:
    return {"@odata.type": odata_type, "id": item_id, "@removed": {"reason": reason}}


class Source:
    """What a delta round enumerates for one folder: rows for an item, initially and after a change."""

    odata_type = ""

    def __init__(
        self, sim: Simulator, req: GraphRequest, mb: Mailbox, container: Container, render: Renderer | None = None
    ) -> None:
        self.sim, self.req, self.mb, self.container = sim, req, mb, container
        self.render = render
        self.immutable = req.use_immutable()
        self.since = 0  # sequence number the current round starts from

    def _id(self, item: Item) -> str:
        if self.immutable:
            return item.key
        return item.ids_by_container.get(self.container.id, item.regular_id)

    def initial(self, item: Item) -> list[dict[str, Any]]:
        assert self.render is not None
        return [self.render(self.sim, self.mb, item, self.req)]

    def changed(self, key: str) -> list[dict[str, Any]]:
        item = self.mb.items.get(key)
        if item is None:
            return []
        if item.deleted:
            return [removed(self.odata_type, self._id(item), "deleted")]
        if item.container_id != self.container.id:
            return [removed(self.odata_type, self._id(item), "changed")]
        return self.initial(item)


class EventSource(Source):
    """calendarView delta: single instances, series masters and their occurrences in the window."""

    odata_type = "#microsoft.graph.event"

    def __init__(
        self, sim: Simulator, req: GraphRequest, mb: Mailbox, container: Container, window: tuple[datetime, datetime]
    ) -> None:
        super().__init__(sim, req, mb, container)
        self.ws, self.we = window

    def initial(self, item: Item) -> list[dict[str, Any]]:
        rows = events.in_window(self.sim, self.mb, item, self.ws, self.we, self.req)
        if rows and item.data.get("recurrence"):
            rows.insert(0, events.render(self.sim, self.mb, item, self.req))
        return rows

    def _occurrence_removals(self, item: Item, reason: str) -> list[dict[str, Any]]:
        base = self._id(item)
        return [
            removed(self.odata_type, events.occurrence_id(base, day), reason)
            for day, _, _ in events.occurrences(item, self.ws, self.we)
        ]

    def changed(self, key: str) -> list[dict[str, Any]]:
        occ = events.split_occurrence(key)
        if occ is not None:
            master = self.mb.items.get(occ[0])
            if master is None:
                return []
            oid = events.occurrence_id(self._id(master), occ[1])
            if master.deleted or master.container_id != self.container.id or occ[1] in master.cancelled:
                return [removed(self.odata_type, oid, "deleted")]
            for day, _, _ in events.occurrences(master, self.ws, self.we):
                if day == occ[1]:
                    return [events.render_occurrence(self.sim, self.mb, master, day, self.req)]
            return [removed(self.odata_type, oid, "changed")]
        item = self.mb.items.get(key)
        if item is None:
            return []
        if item.deleted or item.container_id != self.container.id:
            reason = "deleted" if item.deleted else "changed"
            rows = self._occurrence_removals(item, reason) if item.data.get("recurrence") else []
            return [*rows, removed(self.odata_type, self._id(item), reason)]
        rows = self.initial(item)
        if rows:
            return rows
        # An item that left the window is gone from this calendar view; one the client can't have
        # seen in it (created this round, or outside before and after the change) is not reported.
        if item.created_seq > self.since or (
            item.prev_start is not None
            and not item.data.get("recurrence")
            and not _overlaps(item.prev_start, item.prev_end, self.ws, self.we)
        ):
            return []
        return [removed(self.odata_type, self._id(item), "changed")]


def _overlaps(start: datetime, end: datetime | None, ws: datetime, we: datetime) -> bool:
    s = start if start.tzinfo else start.replace(tzinfo=UTC)
    e = (end if end.tzinfo else end.replace(tzinfo=UTC)) if end else s
    return s < we and e > ws if s != e else ws <= s < we


def _page_size(sim: Simulator, req: GraphRequest) -> int:
    size = sim.config.delta_page_size
    if req.prefs.max_page_size:
        req.apply(f"odata.maxpagesize={req.prefs.max_page_size}")
        size = req.prefs.max_page_size
    return min(size, MAX_PAGE)


def run(
    sim: Simulator,
    req: GraphRequest,
    mb: Mailbox,
    container: Container,
    source: Source,
    extra_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One delta page: rows, then @odata.nextLink (more pages) or @odata.deltaLink (round done)."""
    size = _page_size(sim, req)
    skip = req.query.get("$skiptoken")
    delta = req.query.get("$deltatoken")
    if skip is not None:
        state = _decode(skip, mb, container)
    elif delta is not None:
        state = _decode(delta, mb, container)
        state = {**state, "ph": "c", "e": sim.store.seq, "pos": container.log_index_after(state["s"])}
    else:
        state = {
            "u": mb.id,
            "c": container.id,
            "ep": mb.epoch,
            "ph": "i",
            "s": sim.store.seq,
            "pos": 0,
            **(extra_state or {}),
        }
    rows: list[dict[str, Any]] = []
    more = False
    if state["ph"] == "i":
        pos = state["pos"]
        for p, key in container.live_keys(pos):
            if len(rows) >= size:
                more, pos = True, p
                break
            rows.extend(source.initial(mb.items[key]))
        next_state = {**state, "pos": pos}
        final_state = {k: v for k, v in state.items() if k != "pos"} | {"ph": "c"}
    else:
        source.since = state["s"]
        idx, end = state["pos"], state["e"]
        seqs, keys, last = container.log_seq, container.log_key, container.last
        seen: set[str] = set()
        while idx < len(seqs) and seqs[idx] <= end:
            if len(rows) >= size:
                more = True
                break
            key, seq = keys[idx], seqs[idx]
            idx += 1
            # only the newest change of an item within this round is reported
            if key in seen or (last.get(key, seq) != seq and last.get(key, seq) <= end):
                continue
            seen.add(key)
            rows.extend(source.changed(key))
        next_state = {**state, "pos": idx}
        final_state = {k: v for k, v in state.items() if k not in ("pos", "e")} | {"s": end}
    path = req.path
    body: dict[str, Any] = {"@odata.context": odata.context(req, "Collection(event)"), "value": rows}
    if more:
        body["@odata.nextLink"] = odata.link(req, path, {"$skiptoken": _encode(next_state)})
    else:
        body["@odata.deltaLink"] = odata.link(req, path, {"$deltatoken": _encode(final_state)})
    return body


def calendar_view_delta(sim: Simulator, req: GraphRequest, mb: Mailbox, container: Container) -> dict[str, Any]:
    for banned in ("$select", "$filter", "$orderby", "$search", "$expand"):
        if banned in req.query:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", f"The query parameter '{banned}' is not supported with calendarView delta."
            )
    token = req.query.get("$skiptoken") or req.query.get("$deltatoken")
    if token:
        state = _decode(token, mb, container)
        window = (parse_instant(state["ws"]), parse_instant(state["we"]))
        extra = None
    else:
        s = req.query.get("startDateTime") or req.query.get("startdatetime")
        e = req.query.get("endDateTime") or req.query.get("enddatetime")
        if not s or not e:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        window = (parse_instant(s), parse_instant(e))
        extra = {"ws": window[0].isoformat(), "we": window[1].isoformat()}
    source = EventSource(sim, req, mb, container, window)
    body = run(sim, req, mb, container, source, extra)
    body["@odata.context"] = odata.context(req, "Collection(event)")
    return body


async def _calendar_view_delta(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    return calendar_view_delta(sim, req, mb, mb.calendars[mb.default_calendar])


async def _calendar_view_delta_in(sim: Simulator, req: GraphRequest, mb: Mailbox, cal: str) -> Any:
    if cal not in mb.calendars:
        raise GraphError(404, "ErrorItemNotFound", "The specified calendar was not found.")
    return calendar_view_delta(sim, req, mb, mb.calendars[cal])


def register(sim: Simulator, router: Any) -> None:
    u = "/users/{user}"
    router.add("GET", f"{u}/calendarView/delta", _calendar_view_delta, "Calendars")
    router.add("GET", f"{u}/calendars/{{cal}}/calendarView/delta", _calendar_view_delta_in, "Calendars")
