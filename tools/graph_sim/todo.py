"""Microsoft To Do: task lists (a default "Tasks" list per user), tasks, linkedResources, open
extensions and tasks delta.

https://learn.microsoft.com/graph/api/resources/todotasklist, .../resources/todotask,
.../resources/linkedresource, .../todotask-delta, .../opentypeextension-post-opentypeextension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph_sim import delta, ids, odata
from graph_sim.errors import GraphError
from graph_sim.etags import bump, check_if_match
from graph_sim.extprops import add_extension, render_extension, render_props
from graph_sim.routing import GraphRequest, GraphResponse, Router
from graph_sim.store import TODO_LIST, Container, Item, Mailbox
from graph_sim.timezones import dtz, fmt_utc_stamp, to_utc

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

KIND = "task"
ODATA_TYPE = "#microsoft.graph.todoTask"
_STATUS = {"notStarted", "inProgress", "completed", "waitingOnOthers", "deferred"}
_IMPORTANCE = {"low", "normal", "high"}
_DATES = ("startDateTime", "dueDateTime", "completedDateTime", "reminderDateTime")


def _assign(sim: Simulator, item: Item, body: dict[str, Any]) -> None:
    if "status" in body and body["status"] not in _STATUS:
        raise GraphError(400, "invalidRequest", f"Invalid status '{body['status']}'.")
    if "importance" in body and body["importance"] not in _IMPORTANCE:
        raise GraphError(400, "invalidRequest", f"Invalid importance '{body['importance']}'.")
    for key in ("title", "status", "importance", "isReminderOn", "categories", "recurrence"):
        if key in body:
            item.data[key] = body[key]
    if "body" in body:
        b = body["body"] or {}
        item.data["body"] = {"content": b.get("content", ""), "contentType": b.get("contentType", "text").lower()}
        item.data["bodyLastModifiedDateTime"] = sim.clock.now()
    for key in _DATES:
        if key in body:
            v = body[key]
            item.data[key] = None if v is None else to_utc(v["dateTime"], v.get("timeZone"))
    if body.get("status") == "completed" and "completedDateTime" not in body:
        item.data["completedDateTime"] = sim.clock.now()
    elif "status" in body and body["status"] != "completed":
        item.data["completedDateTime"] = None


def render(
    sim: Simulator, mb: Mailbox, item: Item, req: GraphRequest, expand: dict[str, list[str] | None] | None = None
) -> dict[str, Any]:
    d = item.data
    tz = req.prefs.timezone
    doc: dict[str, Any] = {
        "@odata.etag": item.etag(),
        "importance": d.get("importance", "normal"),
        "isReminderOn": bool(d.get("isReminderOn", False)),
        "status": d.get("status", "notStarted"),
        "title": d.get("title", ""),
        "createdDateTime": fmt_utc_stamp(item.created),
        "lastModifiedDateTime": fmt_utc_stamp(item.modified),
        "hasAttachments": False,
        "categories": d.get("categories") or [],
        "id": item.key,
        "body": d.get("body") or {"content": "", "contentType": "text"},
    }
    if d.get("bodyLastModifiedDateTime"):
        doc["bodyLastModifiedDateTime"] = fmt_utc_stamp(d["bodyLastModifiedDateTime"])
    for key in _DATES:
        if d.get(key) is not None:
            doc[key] = dtz(d[key], tz)
    if d.get("recurrence"):
        doc["recurrence"] = d["recurrence"]
    if expand:
        if "linkedResources" in expand:
            doc["linkedResources"] = list(item.linked_resources.values())
        render_props(doc, item, expand)
    return doc


def _list(mb: Mailbox, list_id: str) -> Container:
    c = mb.todo_lists.get(list_id)
    if c is None:
        raise GraphError(404, "NotFound", "The requested list was not found.")
    return c


def _task(mb: Mailbox, list_id: str, task_id: str) -> Item:
    _list(mb, list_id)
    item = mb.items.get(task_id)
    if item is None or item.deleted or item.kind != KIND or item.container_id != list_id:
        raise GraphError(404, "NotFound", "The requested task was not found.")
    return item


def create(sim: Simulator, mb: Mailbox, body: dict[str, Any], list_id: str | None = None, notify: bool = True) -> Item:
    lid = list_id or mb.default_todo_list
    _list(mb, lid)
    if not body.get("title"):
        raise GraphError(400, "invalidRequest", "title is required.")
    now = sim.clock.now()
    key = ids.todo_id()
    item = Item(KIND, key, key, lid, {}, now, now, ids.change_key())
    _assign(sim, item, body)
    for lr in body.get("linkedResources") or []:
        _add_linked(item, lr)
    for ext in body.get("extensions") or []:
        add_extension(item, ext)
    sim.store.insert(mb, item, notify=notify)
    return item


def _add_linked(item: Item, body: dict[str, Any]) -> dict[str, Any]:
    lr = {
        "id": ids.new_uuid(),
        "webUrl": body.get("webUrl"),
        "applicationName": body.get("applicationName"),
        "displayName": body.get("displayName"),
        "externalId": body.get("externalId"),
    }
    item.linked_resources[lr["id"]] = lr
    return lr


def _render_list(mb: Mailbox, c: Container) -> dict[str, Any]:
    return {
        "@odata.etag": f'W/"{c.id[-12:]}"',
        "displayName": c.data["displayName"],
        "isOwner": True,
        "isShared": False,
        "wellknownListName": c.data.get("wellknownListName", "none"),
        "id": c.id,
    }


async def list_lists(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    return odata.page(req, [_render_list(mb, c) for c in mb.todo_lists.values()], f"users('{mb.id}')/todo/lists")


async def create_list(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    name = req.json().get("displayName")
    if not name:
        raise GraphError(400, "invalidRequest", "displayName is required.")
    c = Container(ids.todo_id(), TODO_LIST, {"displayName": name, "wellknownListName": "none"})
    mb.todo_lists[c.id] = c
    return GraphResponse(201, _render_list(mb, c))


async def get_list(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str) -> Any:
    return _render_list(mb, _list(mb, lid))


async def list_tasks(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str) -> Any:
    c = _list(mb, lid)
    expand = odata.expansions(req)
    size = req.page_size(sim.config.default_page_size)
    start = int(req.query.get("$skiptoken") or 0)
    values: list[dict[str, Any]] = []
    next_pos = None
    for pos, key in c.live_keys(start):
        if len(values) == size:
            next_pos = pos
            break
        values.append(odata.select(render(sim, mb, mb.items[key], req, expand), req))
    nxt = odata.link(req, req.path, {**req.query, "$skiptoken": str(next_pos)}) if next_pos is not None else None
    return odata.page(req, values, f"users('{mb.id}')/todo/lists('{lid}')/tasks", nxt)


async def create_task(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str) -> Any:
    item = create(sim, mb, req.json(), lid)
    context = odata.context(req, f"users('{mb.id}')/todo/lists('{lid}')/tasks/$entity")
    return GraphResponse(201, {"@odata.context": context, **render(sim, mb, item, req)})


async def get_task(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    return odata.select(render(sim, mb, _task(mb, lid, id), req, odata.expansions(req)), req)


async def update_task(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    item = _task(mb, lid, id)
    check_if_match(req, item)
    _assign(sim, item, req.json())
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return render(sim, mb, item, req)


async def delete_task(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    item = _task(mb, lid, id)
    check_if_match(req, item)
    sim.store.delete(mb, item)
    return GraphResponse(204)


async def list_linked(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    return odata.page(req, list(_task(mb, lid, id).linked_resources.values()), "linkedResources")


async def create_linked(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    item = _task(mb, lid, id)
    lr = _add_linked(item, req.json())
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return GraphResponse(201, lr)


async def delete_linked(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str, lrid: str) -> Any:
    item = _task(mb, lid, id)
    if item.linked_resources.pop(lrid, None) is None:
        raise GraphError(404, "NotFound", "The linked resource was not found.")
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return GraphResponse(204)


async def list_extensions(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    return odata.page(req, [render_extension(e) for e in _task(mb, lid, id).extensions.values()], "extensions")


async def create_extension(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str) -> Any:
    item = _task(mb, lid, id)
    ext = add_extension(item, req.json())
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return GraphResponse(201, render_extension(ext))


async def get_extension(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str, name: str) -> Any:
    ext = _task(mb, lid, id).extensions.get(name)
    if ext is None:
        raise GraphError(404, "NotFound", f"Extension '{name}' not found.")
    return render_extension(ext)


async def update_extension(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str, name: str) -> Any:
    item = _task(mb, lid, id)
    ext = item.extensions.get(name)
    if ext is None:
        raise GraphError(404, "NotFound", f"Extension '{name}' not found.")
    ext.update({k: v for k, v in req.json().items() if not k.startswith("@") and k not in ("id", "extensionName")})
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return GraphResponse(204)


async def delete_extension(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str, id: str, name: str) -> Any:
    item = _task(mb, lid, id)
    if item.extensions.pop(name, None) is None:
        raise GraphError(404, "NotFound", f"Extension '{name}' not found.")
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return GraphResponse(204)


async def tasks_delta(sim: Simulator, req: GraphRequest, mb: Mailbox, lid: str) -> Any:
    container = _list(mb, lid)
    source = delta.Source(sim, req, mb, container, render)
    source.odata_type = ODATA_TYPE
    body = delta.run(sim, req, mb, container, source)
    body["@odata.context"] = odata.context(req, "Collection(todoTask)")
    return body


def register_delta(sim: Simulator, router: Router) -> None:
    router.add("GET", "/users/{user}/todo/lists/{lid}/tasks/delta", tasks_delta, "Tasks")


def register(sim: Simulator, router: Router) -> None:
    t = "/users/{user}/todo/lists"
    p = "Tasks"
    router.add("GET", t, list_lists, p)
    router.add("POST", t, create_list, p)
    router.add("GET", f"{t}/{{lid}}", get_list, p)
    router.add("GET", f"{t}/{{lid}}/tasks", list_tasks, p)
    router.add("POST", f"{t}/{{lid}}/tasks", create_task, p)
    router.add("GET", f"{t}/{{lid}}/tasks/{{id}}", get_task, p)
    router.add("PATCH", f"{t}/{{lid}}/tasks/{{id}}", update_task, p)
    router.add("DELETE", f"{t}/{{lid}}/tasks/{{id}}", delete_task, p)
    router.add("GET", f"{t}/{{lid}}/tasks/{{id}}/linkedResources", list_linked, p)
    router.add("POST", f"{t}/{{lid}}/tasks/{{id}}/linkedResources", create_linked, p)
    router.add("DELETE", f"{t}/{{lid}}/tasks/{{id}}/linkedResources/{{lrid}}", delete_linked, p)
    router.add("GET", f"{t}/{{lid}}/tasks/{{id}}/extensions", list_extensions, p)
    router.add("POST", f"{t}/{{lid}}/tasks/{{id}}/extensions", create_extension, p)
    router.add("GET", f"{t}/{{lid}}/tasks/{{id}}/extensions/{{name}}", get_extension, p)
    router.add("PATCH", f"{t}/{{lid}}/tasks/{{id}}/extensions/{{name}}", update_extension, p)
    router.add("DELETE", f"{t}/{{lid}}/tasks/{{id}}/extensions/{{name}}", delete_extension, p)
