"""Personal contacts and contact folders, with move (new regular id) and per-folder delta.

https://learn.microsoft.com/graph/api/resources/contact, .../user-list-contacts,
.../contactfolder-list-contacts, .../contact-delta.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph_sim import delta, ids, odata
from graph_sim.errors import GraphError
from graph_sim.etags import bump, check_if_match
from graph_sim.extprops import apply_props, render_props
from graph_sim.routing import GraphRequest, GraphResponse, Router
from graph_sim.store import CONTACT_FOLDER, Container, Item, Mailbox
from graph_sim.timezones import fmt_utc_stamp

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

KIND = "contact"
ODATA_TYPE = "#microsoft.graph.contact"
_STRINGS = [
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "mobilePhone",
    "spouseName",
    "personalNotes",
]
_LISTS = ["categories", "imAddresses", "homePhones", "businessPhones", "children", "emailAddresses"]
_ADDRESSES = ["homeAddress", "businessAddress", "otherAddress"]
_SETTABLE = set(_STRINGS) | set(_LISTS) | set(_ADDRESSES)


def _assign(item: Item, body: dict[str, Any]) -> None:
    for key in _SETTABLE & body.keys():
        value = body[key]
        if key == "emailAddresses":
            value = [{"name": e.get("name") or e.get("address"), "address": e.get("address")} for e in value or []]
        item.data[key] = value


def _display_name(data: dict[str, Any]) -> str:
    parts = [data.get("givenName"), data.get("middleName"), data.get("surname")]
    return " ".join(p for p in parts if p) or (data.get("companyName") or "")


def render(
    sim: Simulator, mb: Mailbox, item: Item, req: GraphRequest, expand: dict[str, list[str] | None] | None = None
) -> dict[str, Any]:
    d = item.data
    immutable = req.use_immutable()
    doc: dict[str, Any] = {
        "@odata.etag": item.etag(),
        "id": item.public_id(immutable),
        "createdDateTime": fmt_utc_stamp(item.created),
        "lastModifiedDateTime": fmt_utc_stamp(item.modified),
        "changeKey": item.change_key,
        "categories": d.get("categories") or [],
        "parentFolderId": item.container_id,
    }
    for key in _STRINGS:
        doc[key] = d.get(key)
    doc["displayName"] = d.get("displayName") or _display_name(d)
    doc["fileAs"] = d.get("fileAs") or ""
    doc["personalNotes"] = d.get("personalNotes") or ""
    for key in _LISTS:
        doc[key] = d.get(key) or []
    for key in _ADDRESSES:
        doc[key] = d.get(key) or {}
    if expand:
        render_props(doc, item, expand)
    return doc


def create(
    sim: Simulator, mb: Mailbox, body: dict[str, Any], folder_id: str | None = None, notify: bool = True
) -> Item:
    fid = folder_id or mb.default_contact_folder
    if fid not in mb.contact_folders:
        raise GraphError(404, "ErrorItemNotFound", "The specified folder was not found in the store.")
    now = sim.clock.now()
    item = Item(KIND, ids.immutable_id(), ids.regular_id(), fid, {}, now, now, ids.change_key())
    _assign(item, body)
    apply_props(item, body.get("singleValueExtendedProperties"))
    sim.store.insert(mb, item, notify=notify)
    return item


def _folder(mb: Mailbox, folder: str | None) -> Container:
    fid = folder or mb.default_contact_folder
    c = mb.contact_folders.get(fid)
    if c is None:
        raise GraphError(404, "ErrorItemNotFound", "The specified folder was not found in the store.")
    return c


async def list_contacts(sim: Simulator, req: GraphRequest, mb: Mailbox, folder: str | None = None) -> Any:
    container = _folder(mb, folder)
    expand = odata.expansions(req)
    size = req.page_size(sim.config.default_page_size)
    flt = odata.ext_filter(req)
    start = int(req.query.get("$skiptoken") or req.query.get("$skip") or 0)
    if flt is not None:
        prop, value = flt
        keys = (
            mb.ext_index.get((KIND, prop, value), set())
            if value is not None
            else {k for (kind, p, _), ks in mb.ext_index.items() if kind == KIND and p == prop for k in ks}
        )
        source: Any = sorted((container.members[k], k) for k in keys if k in container.members)
        source = [(p, k) for p, k in source if p >= start]
    else:
        source = container.live_keys(start)
    values: list[dict[str, Any]] = []
    next_pos = None
    for pos, key in source:
        if len(values) == size:
            next_pos = pos
            break
        values.append(odata.select(render(sim, mb, mb.items[key], req, expand), req))
    params = {k: v for k, v in req.query.items() if k not in ("$skip", "$skiptoken")}
    nxt = odata.link(req, req.path, {**params, "$skiptoken": str(next_pos)}) if next_pos is not None else None
    return odata.page(req, values, f"users('{mb.id}')/contacts", nxt)


async def create_contact(sim: Simulator, req: GraphRequest, mb: Mailbox, folder: str | None = None) -> Any:
    item = create(sim, mb, req.json(), _folder(mb, folder).id)
    return GraphResponse(
        201, {"@odata.context": odata.context(req, f"users('{mb.id}')/contacts/$entity"), **render(sim, mb, item, req)}
    )


def _item(mb: Mailbox, id: str, folder: str | None) -> Item:
    item = mb.resolve(id, KIND)
    if folder is not None and item.container_id != _folder(mb, folder).id:
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    return item


async def get_contact(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str, folder: str | None = None) -> Any:
    item = _item(mb, id, folder)
    doc = odata.select(render(sim, mb, item, req, odata.expansions(req)), req)
    return {"@odata.context": odata.context(req, f"users('{mb.id}')/contacts/$entity"), **doc}


async def update_contact(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str, folder: str | None = None) -> Any:
    item = _item(mb, id, folder)
    check_if_match(req, item)
    body = req.json()
    _assign(item, body)
    mb.index_props(item, False)
    apply_props(item, body.get("singleValueExtendedProperties"))
    mb.index_props(item, True)
    bump(item, sim.clock.now())
    sim.store.changed(mb, item, "updated")
    return render(sim, mb, item, req)


async def delete_contact(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str, folder: str | None = None) -> Any:
    item = _item(mb, id, folder)
    check_if_match(req, item)
    sim.store.delete(mb, item)
    return GraphResponse(204)


async def move_contact(sim: Simulator, req: GraphRequest, mb: Mailbox, id: str) -> Any:
    """Move to another contact folder: a new regular id, the same immutable id. Modelled on message move
    (https://learn.microsoft.com/graph/api/message-move); see https://learn.microsoft.com/graph/outlook-immutable-id."""
    dest = req.json().get("destinationId")
    if not dest:
        raise GraphError(400, "ErrorInvalidRequest", "destinationId is required.")
    item = mb.resolve(id, KIND)
    _folder(mb, dest)
    sim.store.move(mb, item, dest)
    bump(item, sim.clock.now())
    return GraphResponse(201, render(sim, mb, item, req))


def _render_folder(mb: Mailbox, c: Container) -> dict[str, Any]:
    return {
        "id": c.id,
        "displayName": c.data["displayName"],
        "parentFolderId": c.data.get("parentFolderId") or mb.default_contact_folder,
    }


async def list_folders(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    folders = [_render_folder(mb, c) for c in mb.contact_folders.values() if c.id != mb.default_contact_folder]
    return odata.page(req, folders, f"users('{mb.id}')/contactFolders")


async def create_folder(sim: Simulator, req: GraphRequest, mb: Mailbox) -> Any:
    name = req.json().get("displayName")
    if not name:
        raise GraphError(400, "ErrorInvalidRequest", "displayName is required.")
    if any(c.data["displayName"] == name for c in mb.contact_folders.values()):
        raise GraphError(409, "ErrorFolderExists", "A folder with the specified name already exists.")
    c = Container(
        ids.folder_id(), CONTACT_FOLDER, {"displayName": name, "parentFolderId": req.json().get("parentFolderId")}
    )
    mb.contact_folders[c.id] = c
    return GraphResponse(201, _render_folder(mb, c))


async def get_folder(sim: Simulator, req: GraphRequest, mb: Mailbox, folder: str) -> Any:
    return _render_folder(mb, _folder(mb, folder))


async def contacts_delta(sim: Simulator, req: GraphRequest, mb: Mailbox, folder: str | None = None) -> Any:
    container = _folder(mb, folder)
    source = delta.Source(sim, req, mb, container, render)
    source.odata_type = ODATA_TYPE
    body = delta.run(sim, req, mb, container, source)
    body["@odata.context"] = odata.context(req, "Collection(contact)")
    if "$select" in req.query:
        body["value"] = [r if "@removed" in r else odata.select(r, req) for r in body["value"]]
    return body


def register_delta(sim: Simulator, router: Router) -> None:
    u = "/users/{user}"
    router.add("GET", f"{u}/contacts/delta", contacts_delta, "Contacts")
    router.add("GET", f"{u}/contactFolders/{{folder}}/contacts/delta", contacts_delta, "Contacts")


def register(sim: Simulator, router: Router) -> None:
    u = "/users/{user}"
    p = "Contacts"
    router.add("GET", f"{u}/contacts", list_contacts, p)
    router.add("POST", f"{u}/contacts", create_contact, p)
    router.add("POST", f"{u}/contacts/{{id}}/move", move_contact, p)
    router.add("GET", f"{u}/contacts/{{id}}", get_contact, p)
    router.add("PATCH", f"{u}/contacts/{{id}}", update_contact, p)
    router.add("DELETE", f"{u}/contacts/{{id}}", delete_contact, p)
    router.add("GET", f"{u}/contactFolders", list_folders, p)
    router.add("POST", f"{u}/contactFolders", create_folder, p)
    router.add("GET", f"{u}/contactFolders/{{folder}}", get_folder, p)
    router.add("GET", f"{u}/contactFolders/{{folder}}/contacts", list_contacts, p)
    router.add("POST", f"{u}/contactFolders/{{folder}}/contacts", create_contact, p)
    router.add("GET", f"{u}/contactFolders/{{folder}}/contacts/{{id}}", get_contact, p)
    router.add("PATCH", f"{u}/contactFolders/{{folder}}/contacts/{{id}}", update_contact, p)
    router.add("DELETE", f"{u}/contactFolders/{{folder}}/contacts/{{id}}", delete_contact, p)
    router.add("POST", f"{u}/contactFolders/{{folder}}/contacts/{{id}}/move", _move_in, p)


async def _move_in(sim: Simulator, req: GraphRequest, mb: Mailbox, folder: str, id: str) -> Any:
    _item(mb, id, folder)
    return await move_contact(sim, req, mb, id)
