"""Calendar events: CRUD, calendarView, recurrence expansion, move, invitations bookkeeping.

Resource shape: https://learn.microsoft.com/graph/api/resources/event (v1.0).
List: https://learn.microsoft.com/graph/api/user-list-events (default page size 10, Prefer
outlook.timezone); calendarView: https://learn.microsoft.com/graph/api/user-list-calendarview
(occurrences, exceptions and single instances in the window, not series masters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from graph_sim import ids, odata, recurrence
from graph_sim.errors import GraphError
from graph_sim.etags import bump, check_if_match
from graph_sim.extprops import apply_props, render_props
from graph_sim.routing import GraphRequest, GraphResponse, Router
from graph_sim.store import CALENDAR, Item, Mailbox
from graph_sim.timezones import dtz, floating, fmt_utc_stamp, parse_instant, parse_local, to_utc, zone

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

KIND = "event"
ODATA_TYPE = "#microsoft.graph.event"
_OCC = re.compile(r"^(?P<master>.+)_OCC(?P<day>\d{8})$")
_SENSITIVITY = {"normal", "personal", "private", "confidential"}
_SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
_NO_RESPONSE = {"response": "none", "time": "0001-01-01T00:00:00Z"}
_SETTABLE = {
    "subject",
    "body",
    "location",
    "locations",
    "sensitivity",
    "showAs",
    "categories",
    "attendees",
    "importance",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "isOnlineMeeting",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "transactionId",
    "isCancelled",
}
_MEETING_FIELDS = {"start", "end", "subject", "location", "attendees", "recurrence", "isAllDay"}


# ---- reading inputs -------------------------------------------------------------------------------
def _times(body: dict[str, Any], current: Item | None) -> tuple[datetime, datetime, bool, str, str]:
    is_all_day = bool(body.get("isAllDay", current.data.get("isAllDay") if current else False))
    start_in = body.get("start")
    end_in = body.get("end")
    if current is None and (not start_in or not end_in):
        raise GraphError(400, "ErrorInvalidRequest", "The event must have a start and an end.")
    tz_start = (start_in or {}).get("timeZone") if start_in else current.data["originalStartTimeZone"]  # type: ignore[union-attr]
    tz_end = (end_in or {}).get("timeZone") if end_in else current.data["originalEndTimeZone"]  # type: ignore[union-attr]
    tz_start = tz_start or "UTC"
    tz_end = tz_end or "UTC"
    zone(tz_start)
    zone(tz_end)
    if is_all_day:
        start = _all_day_bound(start_in, current.start if current else None, current)
        end = _all_day_bound(end_in, current.end if current else None, current)
        if end <= start:
            raise GraphError(400, "ErrorInvalidRequest", "The end of an all-day event must be after its start.")
        return start, end, True, tz_start, tz_end
    start = to_utc(start_in["dateTime"], tz_start) if start_in else _timed(current, "start")
    end = to_utc(end_in["dateTime"], tz_end) if end_in else _timed(current, "end")
    if end < start:
        raise GraphError(400, "ErrorInvalidRequest", "The start time must be before the end time.")
    return start, end, False, tz_start, tz_end


def _timed(current: Item | None, which: str) -> datetime:
    assert current is not None
    value = current.start if which == "start" else current.end
    assert value is not None
    if value.tzinfo is None:  # was all-day: keep the day boundary, as UTC
        return value.replace(tzinfo=UTC)
    return value


def _all_day_bound(value: dict[str, Any] | None, existing: datetime | None, current: Item | None) -> datetime:
    # https://learn.microsoft.com/graph/api/resources/event: "If true, regardless of whether it's a
    # single-day or multi-day event, start and end time must be set to midnight and be in the same time
    # zone." All-day events float: the day is kept whatever zone they are shown in.
    if value is None:
        assert existing is not None
        return existing.replace(tzinfo=None) if existing.tzinfo is None else datetime.combine(existing.date(), time())
    local = parse_local(value["dateTime"])
    if local.tzinfo is not None:
        local = local.replace(tzinfo=None)
    if local.time() != time():
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "All-day events must start and end at midnight (00:00:00) in the event's time zone.",
        )
    return local


def _validate_fields(body: dict[str, Any]) -> None:
    _check_shapes(body)
    if "sensitivity" in body and body["sensitivity"] not in _SENSITIVITY:
        raise GraphError(400, "ErrorInvalidRequest", f"Invalid sensitivity '{body['sensitivity']}'.")
    if "showAs" in body and body["showAs"] not in _SHOW_AS:
        raise GraphError(400, "ErrorInvalidRequest", f"Invalid showAs '{body['showAs']}'.")
    if body.get("recurrence"):
        recurrence.validate(body["recurrence"])
    for a in body.get("attendees") or []:
        if not (a.get("emailAddress") or {}).get("address"):
            raise GraphError(400, "ErrorInvalidRequest", "An attendee must have an emailAddress.address.")


def _normal_attendees(attendees: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in attendees:
        addr = a.get("emailAddress") or {}
        out.append(
            {
                "type": a.get("type") or "required",
                "status": a.get("status") or dict(_NO_RESPONSE),
                "emailAddress": {"name": addr.get("name") or addr.get("address"), "address": addr.get("address")},
            }
        )
    return out


def _location(value: Any) -> dict[str, Any]:
    value = value or {}
    return {
        "displayName": value.get("displayName", ""),
        "locationType": value.get("locationType", "default"),
        "uniqueId": value.get("uniqueId") or (value.get("displayName") or None),
        "uniqueIdType": value.get("uniqueIdType", "private" if value.get("displayName") else "unknown"),
        **({"address": value["address"]} if value.get("address") else {}),
    }


# Fields whose value is a Graph object or collection: anything else is refused as Graph does (400).
_SHAPES: dict[str, tuple[type, str]] = {
    "location": (dict, "microsoft.graph.location"),
    "body": (dict, "microsoft.graph.itemBody"),
    "start": (dict, "microsoft.graph.dateTimeTimeZone"),
    "end": (dict, "microsoft.graph.dateTimeTimeZone"),
    "attendees": (list, "Collection(microsoft.graph.attendee)"),
    "categories": (list, "Collection(Edm.String)"),
}


def _check_shapes(body: dict[str, Any]) -> None:
    """A primitive where Graph expects an object (or a list), e.g. `"location": "Lisbon"`, is a 400
    `RequestBodyRead`, not a server error."""
    for key, (shape, name) in _SHAPES.items():
        value = body.get(key)
        if value is not None and not isinstance(value, shape):
            raise GraphError(
                400,
                "RequestBodyRead",
                f"Cannot convert the literal '{str(value)[:40]}' of property '{key}' to the expected type '{name}'.",
            )
    attendees = body.get("attendees") or []
    if any(not isinstance(a, dict) or not isinstance(a.get("emailAddress") or {}, dict) for a in attendees):
        raise GraphError(400, "RequestBodyRead", "An attendee must be an object with an emailAddress object.")


def _assign(item: Item, body: dict[str, Any]) -> None:
    for key in _SETTABLE & body.keys():
        value = body[key]
        if key == "attendees":
            value = _normal_attendees(value or [])
        elif key == "location":
            value = _location(value)
        elif key == "body":
            value = {
                "contentType": (value or {}).get("contentType", "text").lower(),
                "content": (value or {}).get("content", ""),
            }
        item.data[key] = value


# ---- rendering ---------------------------------------------------------------------------------
def _bounds(item: Item, tz: str | None) -> tuple[dict[str, str], dict[str, str]]:
    assert item.start is not None and item.end is not None
    if item.data.get("isAllDay"):
        return floating(item.start, tz), floating(item.end, tz)
    return dtz(item.start, tz), dtz(item.end, tz)


def _preview(body: dict[str, Any]) -> str:
    text = re.sub(r"<[^>]+>", "", body.get("content") or "")
    return " ".join(text.split())[:255]


def render(
    sim: Simulator, mb: Mailbox, item: Item, req: GraphRequest, expand: dict[str, list[str] | None] | None = None
) -> dict[str, Any]:
    """The event as Graph returns it (times in UTC unless Prefer: outlook.timezone)."""
    tz = req.prefs.timezone
    if tz:
        req.apply(f'outlook.timezone="{tz}"')
    immutable = req.use_immutable()
    d = item.data
    start, end = _bounds(item, tz)
    body = d.get("body") or {"contentType": "text", "content": ""}
    doc: dict[str, Any] = {
        "@odata.etag": item.etag(),
        "id": item.public_id(immutable),
        "createdDateTime": fmt_utc_stamp(item.created),
        "lastModifiedDateTime": fmt_utc_stamp(item.modified),
        "changeKey": item.change_key,
        "categories": d.get("categories") or [],
        "transactionId": d.get("transactionId"),
        "originalStartTimeZone": d["originalStartTimeZone"],
        "originalEndTimeZone": d["originalEndTimeZone"],
        "iCalUId": d["iCalUId"],
        "uid": d["iCalUId"],
        "reminderMinutesBeforeStart": d.get("reminderMinutesBeforeStart", 15),
        "isReminderOn": d.get("isReminderOn", True),
        "hasAttachments": False,
        "subject": d.get("subject", ""),
        "bodyPreview": _preview(body),
        "importance": d.get("importance", "normal"),
        "sensitivity": d.get("sensitivity", "normal"),
        "isAllDay": bool(d.get("isAllDay")),
        "isCancelled": bool(d.get("isCancelled")),
        "isOrganizer": True,
        "responseRequested": d.get("responseRequested", True),
        "seriesMasterId": None,
        "showAs": d.get("showAs", "busy"),
        "type": "seriesMaster" if d.get("recurrence") else "singleInstance",
        "webLink": f"https://outlook.office365.com/owa/?itemid={item.public_id(immutable)}&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": bool(d.get("isOnlineMeeting")),
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": d.get("allowNewTimeProposals", True),
        "isDraft": False,
        "hideAttendees": d.get("hideAttendees", False),
        "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
        "body": body,
        "start": start,
        "end": end,
        "location": d.get("location") or _location(None),
        "locations": d.get("locations") or ([d["location"]] if (d.get("location") or {}).get("displayName") else []),
        "recurrence": d.get("recurrence"),
        "attendees": d.get("attendees") or [],
        "organizer": d["organizer"],
        "onlineMeeting": None,
    }
    if expand:
        render_props(doc, item, expand)
    return doc


def render_occurrence(
    sim: Simulator,
    mb: Mailbox,
    master: Item,
    day: str,
    req: GraphRequest,
    expand: dict[str, list[str] | None] | None = None,
) -> dict[str, Any]:
    """An occurrence or exception of a series, derived from its master."""
    doc = render(sim, mb, master, req, expand)
    start, end = occurrence_times(master, date.fromisoformat(day))
    override = master.exceptions.get(day)
    tz = req.prefs.timezone
    if override:
        for key, value in override.items():
            if not key.startswith("_"):
                doc[key] = value
        start = override.get("_start", start)
        end = override.get("_end", end)
        doc["changeKey"] = override["_changeKey"]
        doc["@odata.etag"] = f'W/"{override["_changeKey"]}"'
        doc["lastModifiedDateTime"] = fmt_utc_stamp(override["_modified"])
    if master.data.get("isAllDay"):
        doc["start"], doc["end"] = floating(start, tz), floating(end, tz)
    else:
        doc["start"], doc["end"] = dtz(start, tz), dtz(end, tz)
    doc["seriesMasterId"] = doc["id"]
    doc["id"] = occurrence_id(doc["id"], day)
    doc["type"] = "exception" if override else "occurrence"
    doc["recurrence"] = None
    doc["iCalUId"] = doc["iCalUId"][:-8] + day.replace("-", "")
    doc["webLink"] = doc["webLink"].replace(str(doc["seriesMasterId"]), doc["id"])
    return doc


def occurrence_id(master_public_id: str, day: str) -> str:
    return f"{master_public_id}_OCC{day.replace('-', '')}"


def split_occurrence(item_id: str) -> tuple[str, str] | None:
    m = _OCC.match(item_id)
    if not m:
        return None
    d = m.group("day")
    return m.group("master"), f"{d[:4]}-{d[4:6]}-{d[6:]}"


def occurrence_times(master: Item, day: date) -> tuple[datetime, datetime]:
    assert master.start is not None and master.end is not None
    duration = master.end - master.start
    if master.data.get("isAllDay"):
        start = datetime.combine(day, time())
        return start, start + duration
    tz = zone(master.data["originalStartTimeZone"])
    local_start = master.start.astimezone(tz)
    start = datetime.combine(day, local_start.time(), tzinfo=tz).astimezone(UTC)
    return start, start + duration


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def occurrences(master: Item, window_start: datetime, window_end: datetime) -> Iterator[tuple[str, datetime, datetime]]:
    """(day, start, end) of live occurrences overlapping the window."""
    rec = master.data.get("recurrence")
    if not rec:
        return
    until = (window_end + timedelta(days=1)).date()
    for day in recurrence.dates(rec, until):
        key = day.isoformat()
        if key in master.cancelled:
            continue
        start, end = occurrence_times(master, day)
        override = master.exceptions.get(key)
        if override:
            start = override.get("_start", start)
            end = override.get("_end", end)
        if _utc(start) < window_end and _utc(end) > window_start:
            yield key, start, end


def overlaps(item: Item, window_start: datetime, window_end: datetime) -> bool:
    assert item.start is not None and item.end is not None
    s, e = _utc(item.start), _utc(item.end)
    if s == e:
        return window_start <= s < window_end
    return s < window_end and e > window_start


# ---- writes ----------------------------------------------------------------------------------
def create(
    sim: Simulator, mb: Mailbox, body: dict[str, Any], calendar_id: str | None = None, notify: bool = True
) -> Item:
    """Create an event (used by POST and by /_sim seeding)."""
    _validate_fields(body)
    start, end, all_day, tz_start, tz_end = _times(body, None)
    cid = calendar_id or mb.default_calendar
    if mb.container(cid).kind != CALENDAR:
        raise GraphError(404, "ErrorItemNotFound", "The specified calendar was not found.")
    now = sim.clock.now()
    item = Item(KIND, ids.immutable_id(), ids.regular_id(), cid, {}, now, now, ids.change_key())
    item.start, item.end = start, end
    item.data.update(
        {
            "isAllDay": all_day,
            "originalStartTimeZone": tz_start,
            "originalEndTimeZone": tz_end,
            "iCalUId": ids.ical_uid(),
            "organizer": {"emailAddress": {"name": mb.user["displayName"], "address": mb.user["mail"]}},
            "recurrence": body.get("recurrence"),
        }
    )
    _assign(item, body)
    apply_props(item, body.get("singleValueExtendedProperties"))
    sim.store.insert(mb, item, notify=notify)
    if item.data.get("attendees"):
        _send(sim, mb, item, "meetingRequest")
    return item


def update(sim: Simulator, mb: Mailbox, item: Item, body: dict[str, Any]) -> None:
    _validate_fields(body)
    if {"start", "end", "isAllDay"} & body.keys():
        start, end, all_day, tz_start, tz_end = _times(body, item)
        item.prev_start, item.prev_end = item.start, item.end
        item.start, item.end = start, end
        item.data.update(isAllDay=all_day, originalStartTimeZone=tz_start, originalEndTimeZone=tz_end)
    if "recurrence" in body:
        item.data["recurrence"] = body["recurrence"]
        item.exceptions.clear()
        item.cancelled.clear()
    _assign(item, body)
    mb.index_props(item, False)
    apply_props(item, body.get("singleValueExtendedProperties"))
    mb.index_props(item, True)
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    if item.data.get("attendees") and _MEETING_FIELDS & body.keys():
        _send(sim, mb, item, "meetingUpdate")


def _send(sim: Simulator, mb: Mailbox, item: Item, kind: str) -> None:
    """Exchange mails attendees when an organizer creates, changes or cancels a meeting (R31)."""
    mb.outbox.append(
        {
            "type": kind,
            "eventId": item.key,
            "subject": item.data.get("subject", ""),
            "to": [a["emailAddress"]["address"] for a in item.data.get("attendees") or []],
            "sentDateTime": fmt_utc_stamp(sim.clock.now()),
        }
    )


# ---- handlers -----------------------------------------------------------------------------------
def _calendar(mb: Mailbox, calendar_id: str | None) -> str:
    if calendar_id is None:
        return mb.default_calendar
    if calendar_id not in mb.calendars:
        raise GraphError(404, "ErrorItemNotFound", "The specified calendar was not found.")
    return calendar_id


async def list_events(sim: Simulator, req: GraphRequest, mb: Mailbox, cal: str | None = None) -> Any:
    cid = _calendar(mb, cal)
    container = mb.calendars[cid]
    expand = odata.expansions(req)
    size = req.page_size(sim.config.default_page_size)
    flt = odata.ext_filter(req)
    start = int(req.query.get("$skiptoken") or req.query.get("$skip") or 0)
    values: list[dict[str, Any]] = []
    next_pos: int | None = None
    if flt is not None:
        prop, value = flt
        keys = _filtered_keys(mb, prop, value)
        candidates = sorted((container.members[k], k) for k in keys if k in container.members)
        source: Any = ((p, k) for p, k in candidates if p >= start)
    else:
        source = container.live_keys(start)
    for pos, key in source:
        if len(values) == size:
            next_pos = pos
            break
        values.append(odata.select(render(sim, mb, mb.items[key], req, expand), req))
    path = req.path
    params = {k: v for k, v in req.query.items() if k not in ("$skip", "$skiptoken")}
    nxt = odata.link(req, path, {**params, "$skiptoken": str(next_pos)}) if next_pos is not None else None
    return odata.page(req, values, f"users('{mb.id}')/events", nxt)


def _filtered_keys(mb: Mailbox, prop: str, value: str | None) -> set[str]:
    if value is not None:
        return set(mb.ext_index.get((KIND, prop, value), ()))
    out: set[str] = set()
    for (kind, p, _), keys in mb.ext_index.items():
        if kind == KIND and p == prop:
            out |= keys
    return out


async def create_event(sim: Simulator, req: GraphRequest, mb: Mailbox, cal: str | None = None) -> Any:
    item = create(sim, mb, req.json(), _calendar(mb, cal))
    doc = render(sim, mb, item, req, {"singleValueExtendedProperties": None})
    doc.pop("singleValueExtendedProperties", None)
    return GraphResponse(201, {"@odata.context": odata.context(req, f"users('{mb.id}')/events/$entity"), **doc})


async def get_event(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    expand = odata.expansions(req)
    occ = split_occurrence(id)
    if occ is not None:
        master = mb.resolve(occ[0], KIND)
        if occ[1] in master.cancelled or not _is_occurrence(master, occ[1]):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return odata.select(render_occurrence(sim, mb, master, occ[1], req, expand), req)
    item = mb.resolve(id, KIND)
    doc = odata.select(render(sim, mb, item, req, expand), req)
    return {"@odata.context": odata.context(req, f"users('{mb.id}')/events/$entity"), **doc}


def _is_occurrence(master: Item, day: str) -> bool:
    rec = master.data.get("recurrence")
    if not rec:
        return False
    d = date.fromisoformat(day)
    return any(x == d for x in recurrence.dates(rec, d))


async def update_event(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    body = req.json()
    occ = split_occurrence(id)
    if occ is not None:
        master = mb.resolve(occ[0], KIND)
        if occ[1] in master.cancelled or not _is_occurrence(master, occ[1]):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        _update_occurrence(sim, mb, master, occ[1], body, req)
        return render_occurrence(sim, mb, master, occ[1], req)
    item = mb.resolve(id, KIND)
    check_if_match(req, item)
    update(sim, mb, item, body)
    return render(sim, mb, item, req)


def _update_occurrence(
    sim: Simulator, mb: Mailbox, master: Item, day: str, body: dict[str, Any], req: GraphRequest
) -> None:
    """PATCH on an occurrence turns it into an exception of the series."""
    _validate_fields(body)
    override = master.exceptions.setdefault(day, {})
    current = override.get("_changeKey")
    header = req.headers.get("if-match")
    if header and header.strip() != "*" and current and current not in header:
        raise GraphError(412, "ErrorIrresolvableConflict", "The change key does not match.")
    if "start" in body:
        override["_start"] = to_utc(body["start"]["dateTime"], body["start"].get("timeZone"))
    if "end" in body:
        override["_end"] = to_utc(body["end"]["dateTime"], body["end"].get("timeZone"))
    for key in _SETTABLE & body.keys():
        override[key] = body[key]
    override["_changeKey"] = ids.change_key()
    override["_modified"] = sim.clock.now()
    sim.store.changed(mb, master, "updated", resource_key=occurrence_id(master.key, day))


async def delete_event(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    occ = split_occurrence(id)
    if occ is not None:
        master = mb.resolve(occ[0], KIND)
        if occ[1] in master.cancelled or not _is_occurrence(master, occ[1]):
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        master.cancelled.add(occ[1])
        master.exceptions.pop(occ[1], None)
        sim.store.changed(mb, master, "deleted", resource_key=occurrence_id(master.key, occ[1]))
        return GraphResponse(204)
    item = mb.resolve(id, KIND)
    check_if_match(req, item)
    if item.data.get("attendees"):
        _send(sim, mb, item, "meetingCancellation")
    sim.store.delete(mb, item)
    return GraphResponse(204)


async def move_event(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    """Move to another calendar. Not a documented event action in v1.0: modelled on message move
    (https://learn.microsoft.com/graph/api/message-move) to exercise id changes on move (R21)."""
    dest = req.json().get("destinationId")
    if not dest:
        raise GraphError(400, "ErrorInvalidRequest", "destinationId is required.")
    item = mb.resolve(id, KIND)
    _calendar(mb, dest)
    sim.store.move(mb, item, dest)
    bump(item, sim.clock.now())
    return GraphResponse(201, render(sim, mb, item, req))


def _window(req: GraphRequest) -> tuple[datetime, datetime]:
    s = req.query.get("startDateTime") or req.query.get("startdatetime")
    e = req.query.get("endDateTime") or req.query.get("enddatetime")
    if not s or not e:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    return parse_instant(s), parse_instant(e)


def in_window(
    sim: Simulator,
    mb: Mailbox,
    item: Item,
    ws: datetime,
    we: datetime,
    req: GraphRequest,
    expand: dict[str, list[str] | None] | None = None,
) -> list[dict[str, Any]]:
    """The calendarView rows an item contributes: itself, or its occurrences in the window."""
    if item.data.get("recurrence"):
        return [render_occurrence(sim, mb, item, day, req, expand) for day, _, _ in occurrences(item, ws, we)]
    if overlaps(item, ws, we):
        return [render(sim, mb, item, req, expand)]
    return []


async def calendar_view(sim: Simulator, req: GraphRequest, mb: Mailbox, cal: str | None = None) -> Any:
    ws, we = _window(req)
    cid = _calendar(mb, cal)
    container = mb.calendars[cid]
    expand = odata.expansions(req)
    # find and order first, render only the requested page
    hits: list[tuple[datetime, int, Item, str | None]] = []
    for pos, key in container.live_keys():
        item = mb.items[key]
        if item.data.get("recurrence"):
            hits.extend((_utc(s), pos, item, day) for day, s, _ in occurrences(item, ws, we))
        elif overlaps(item, ws, we):
            assert item.start is not None
            hits.append((_utc(item.start), pos, item, None))
    hits.sort(key=lambda h: (h[0], h[1], h[3] or ""))
    size = req.page_size(sim.config.default_page_size)
    skip = int(req.query.get("$skip") or 0)
    chunk = [
        odata.select(
            render_occurrence(sim, mb, item, day, req, expand) if day else render(sim, mb, item, req, expand), req
        )
        for _, _, item, day in hits[skip : skip + size]
    ]
    nxt = None
    if skip + size < len(hits):
        nxt = odata.link(req, req.path, {**req.query, "$skip": str(skip + size)})
    return odata.page(req, chunk, f"users('{mb.id}')/calendarView", nxt)


async def instances(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    ws, we = _window(req)
    item = mb.resolve(id, KIND)
    rows = [render_occurrence(sim, mb, item, day, req) for day, _, _ in occurrences(item, ws, we)]
    return odata.page(req, rows, f"users('{mb.id}')/events('{id}')/instances")


def _render_calendar(mb: Mailbox, cid: str) -> dict[str, Any]:
    c = mb.calendars[cid]
    return {
        "id": cid,
        "name": c.data["name"],
        "color": "auto",
        "isDefaultCalendar": cid == mb.default_calendar,
        "changeKey": "",
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": True,
        "owner": {"name": mb.user["displayName"], "address": mb.user["mail"]},
    }


async def list_calendars(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    return odata.page(req, [_render_calendar(mb, cid) for cid in mb.calendars], f"users('{mb.id}')/calendars")


async def create_calendar(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    from graph_sim.store import Container

    name = req.json().get("name")
    if not name:
        raise GraphError(400, "ErrorInvalidRequest", "name is required.")
    c = Container(ids.folder_id(), CALENDAR, {"name": name})
    mb.calendars[c.id] = c
    return GraphResponse(201, _render_calendar(mb, c.id))


def register(sim: Simulator, router: Router) -> None:
    perm = "Calendars"
    u = "/users/{user}"
    router.add("GET", f"{u}/events", list_events, perm)
    router.add("POST", f"{u}/events", create_event, perm)
    router.add("GET", f"{u}/calendars", list_calendars, perm)
    router.add("POST", f"{u}/calendars", create_calendar, perm)
    router.add("GET", f"{u}/calendars/{{cal}}/events", list_events, perm)
    router.add("POST", f"{u}/calendars/{{cal}}/events", create_event, perm)
    router.add("GET", f"{u}/calendarView", calendar_view, perm)
    router.add("GET", f"{u}/calendars/{{cal}}/calendarView", calendar_view, perm)
    router.add("GET", f"{u}/events/{{id}}/instances", instances, perm)
    router.add("POST", f"{u}/events/{{id}}/move", move_event, perm)
    router.add("GET", f"{u}/events/{{id}}", get_event, perm)
    router.add("PATCH", f"{u}/events/{{id}}", update_event, perm)
    router.add("DELETE", f"{u}/events/{{id}}", delete_event, perm)
    router.add("GET", f"{u}/calendars/{{cal}}/events/{{id}}", _in_calendar(get_event), perm)
    router.add("PATCH", f"{u}/calendars/{{cal}}/events/{{id}}", _in_calendar(update_event), perm)
    router.add("DELETE", f"{u}/calendars/{{cal}}/events/{{id}}", _in_calendar(delete_event), perm)


def _in_calendar(handler: Any) -> Any:
    async def wrapped(sim: Simulator, req: GraphRequest, mb: Mailbox, cal: str, id: str) -> Any:
        _calendar(mb, cal)
        return await handler(sim, req, mb, id)

    return wrapped
