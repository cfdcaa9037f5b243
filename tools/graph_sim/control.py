"""The /_sim control API (not Graph, no auth): seed, inspect, inject faults, drive the clock."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request

from graph_sim import contacts, events, todo
from graph_sim.errors import GraphError
from graph_sim.responses import JsonResponse
from graph_sim.simulator import Simulator
from graph_sim.store import Item, Mailbox
from graph_sim.timezones import fmt_utc_stamp

router = APIRouter(prefix="/_sim", include_in_schema=False)
_CREATORS = {"events": events.create, "contacts": contacts.create, "tasks": todo.create}
_KINDS = {"events": "event", "contacts": "contact", "tasks": "task"}


def _sim(request: Request) -> Simulator:
    return request.app.state.sim  # type: ignore[no-any-return]


def _mailbox(sim: Simulator, user: str) -> Mailbox:
    try:
        return sim.store.user(user)
    except GraphError as exc:
        raise HTTPException(404, exc.message) from exc


def _internal(item: Item) -> dict[str, Any]:
    return {
        "immutableId": item.key,
        "regularId": item.regular_id,
        "kind": item.kind,
        "containerId": item.container_id,
        "deleted": item.deleted,
        "changeKey": item.change_key,
        "seq": item.seq,
        "createdDateTime": fmt_utc_stamp(item.created),
        "lastModifiedDateTime": fmt_utc_stamp(item.modified),
        "start": item.start.isoformat() if item.start else None,
        "end": item.end.isoformat() if item.end else None,
        "data": item.data,
        "singleValueExtendedProperties": [{"id": i, "value": v} for i, v in item.ext_props.values()],
        "extensions": list(item.extensions.values()),
        "linkedResources": list(item.linked_resources.values()),
        "exceptions": {
            k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in item.exceptions.items()
        },
        "cancelledOccurrences": sorted(item.cancelled),
    }


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    _sim(request).reset()
    return {"ok": True}


@router.post("/users")
async def add_user(request: Request, body: dict[str, Any] = Body(...)) -> JsonResponse:
    sim = _sim(request)
    mb = sim.store.add_user(body)
    if "mailboxEnabled" in body:
        mb.enabled = bool(body["mailboxEnabled"])
    return JsonResponse(_user(mb), status_code=201)


def _user(mb: Mailbox) -> dict[str, Any]:
    return {
        **mb.user,
        "mailboxEnabled": mb.enabled,
        "defaultCalendarId": mb.default_calendar,
        "defaultContactFolderId": mb.default_contact_folder,
        "defaultTodoListId": mb.default_todo_list,
    }


@router.get("/users")
async def list_users(request: Request) -> JsonResponse:
    return JsonResponse([_user(mb) for mb in _sim(request).store.mailboxes.values()])


@router.patch("/users/{user}")
async def patch_user(user: str, request: Request, body: dict[str, Any] = Body(...)) -> JsonResponse:
    """{"mailboxEnabled": false} makes Graph answer MailboxNotEnabledForRESTAPI for that mailbox."""
    mb = _mailbox(_sim(request), user)
    if "mailboxEnabled" in body:
        mb.enabled = bool(body["mailboxEnabled"])
    return JsonResponse(_user(mb))


@router.post("/users/{user}/{kind}")
async def seed_items(user: str, kind: str, request: Request, body: Any = Body(...)) -> JsonResponse:
    """Create items as if the user made them in Outlook: one object, a list, or
    {"items": [...], "containerId": ..., "notify": bool}. Answers the internal records."""
    sim = _sim(request)
    if kind not in _CREATORS:
        raise HTTPException(404, f"unknown kind {kind}")
    mb = _mailbox(sim, user)
    notify = True
    container = None
    if isinstance(body, dict) and "items" in body:
        items, notify, container = body["items"], bool(body.get("notify", True)), body.get("containerId")
    else:
        items = body if isinstance(body, list) else [body]
    try:
        created = [_CREATORS[kind](sim, mb, dict(x), container, notify) for x in items]
    except GraphError as exc:
        return JsonResponse(exc.body(), status_code=exc.status)
    out = [_internal(i) for i in created]
    return JsonResponse(out if isinstance(body, list) or "items" in body else out[0], status_code=201)


@router.get("/users/{user}/{kind}")
async def inspect_items(
    user: str, kind: str, request: Request, deleted: bool = True, subject_prefix: str | None = None
) -> JsonResponse:
    """Every item of a kind with its internal state (both ids, folder, seq, tombstones); with
    `subject_prefix`, only those whose subject (or a contact's display name) starts with it."""
    if kind == "outbox":
        return JsonResponse(_mailbox(_sim(request), user).outbox)
    if kind not in _KINDS:
        raise HTTPException(404, f"unknown kind {kind}")
    mb = _mailbox(_sim(request), user)
    return JsonResponse(
        [
            _internal(i)
            for i in mb.items.values()
            if i.kind == _KINDS[kind]
            and (deleted or not i.deleted)
            and (subject_prefix is None or _title(i).startswith(subject_prefix))
        ]
    )


def _title(item: Item) -> str:
    return str(item.data.get("subject") or item.data.get("title") or item.data.get("displayName") or "")


@router.post("/apps/{client_id}")
async def change_app(client_id: str, request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """{"client_secret": "..."} rotates the secret; {"revoked": true} also fails tokens already issued
    (401 InvalidAuthenticationToken), as when an admin removes the app's consent."""
    auth = _sim(request).auth
    app = auth.apps.get(client_id)
    if app is None:
        raise HTTPException(404, f"unknown app {client_id}")
    if "client_secret" in body:
        app.client_secret = str(body["client_secret"])
    if "revoked" in body:
        (auth.revoked_apps.add if body["revoked"] else auth.revoked_apps.discard)(client_id)
    return {"client_id": client_id, "revoked": client_id in auth.revoked_apps}


@router.get("/faults")
async def get_faults(request: Request) -> JsonResponse:
    return JsonResponse(_sim(request).faults.settings.model_dump())


@router.post("/faults")
async def set_faults(request: Request, body: dict[str, Any] = Body(...)) -> JsonResponse:
    return JsonResponse(_sim(request).faults.update(body).model_dump())


@router.post("/delta/expire")
async def expire_delta(request: Request, body: dict[str, Any] | None = Body(None)) -> dict[str, Any]:
    """Make existing delta tokens unknown (410 syncStateNotFound); {"user": id} limits it to one mailbox."""
    sim = _sim(request)
    user = (body or {}).get("user")
    boxes = [_mailbox(sim, user)] if user else list(sim.store.mailboxes.values())
    for mb in boxes:
        mb.epoch += 1
    return {"expired": [mb.id for mb in boxes]}


@router.post("/clock")
async def clock(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    sim = _sim(request)
    sim.clock.advance(float(body.get("advance_seconds", 0)))
    sim.subscriptions.tick()
    return {"now": fmt_utc_stamp(sim.clock.now()), "offset_seconds": sim.clock.offset}


@router.get("/clock")
async def get_clock(request: Request) -> dict[str, Any]:
    sim = _sim(request)
    return {"now": fmt_utc_stamp(sim.clock.now()), "offset_seconds": sim.clock.offset}


@router.get("/subscriptions")
async def list_subscriptions(request: Request) -> JsonResponse:
    sim = _sim(request)
    return JsonResponse(
        [
            {**s.render(), "immutableIds": s.immutable, "reauthorizationSent": s.reauth_sent}
            for s in sim.subscriptions.by_id.values()
        ]
    )


@router.post("/subscriptions/{sub_id}/lifecycle")
async def lifecycle(sub_id: str, request: Request, body: dict[str, Any] = Body(...)) -> JsonResponse:
    try:
        _sim(request).subscriptions.lifecycle(sub_id, str(body.get("lifecycleEvent")))
    except GraphError as exc:
        return JsonResponse(exc.body(), status_code=exc.status)
    return JsonResponse({"ok": True})


@router.post("/notifications/flush")
async def flush(request: Request, timeout: float = 10.0) -> JsonResponse:
    """Wait until every queued, held or retrying notification is delivered or given up."""
    sim = _sim(request)
    done = await sim.notifier.flush(timeout)
    return JsonResponse({"done": done, **sim.notifier.counters.as_dict()}, status_code=200 if done else 504)


@router.get("/notifications")
async def notifications(request: Request) -> JsonResponse:
    """The last delivery attempts (`notification_history_size`, 1,000 by default): url, attempt, status,
    `sent_at` (epoch seconds of the POST) and the notifications."""
    return JsonResponse(list(_sim(request).notifier.history))


@router.get("/stats")
async def stats(request: Request) -> JsonResponse:
    sim = _sim(request)
    return JsonResponse(
        {
            **sim.stats.snapshot(),
            "notifications": sim.notifier.counters.as_dict(),
            "subscriptions": len(sim.subscriptions.by_id),
        }
    )
