"""The /v1.0 front door: a plain ASGI layer (fast path) that authenticates, applies faults, routes
and encodes Graph responses. $batch reuses `dispatch` for each sub-request."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import orjson

from graph_sim.errors import GraphError, error_body
from graph_sim.routing import GraphRequest, GraphResponse, Prefs

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from graph_sim.simulator import Simulator

log = logging.getLogger("graph_sim")
PREFIX = "/v1.0"
JSON_TYPE = b"application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"


async def dispatch(sim: Simulator, req: GraphRequest) -> GraphResponse:
    """Run one Graph request through auth, faults, routing and the handler."""
    template = "?"
    slot = None
    try:
        claims = sim.auth.validate(req.headers.get("authorization"))
        req.claims = claims
        route, params = sim.router.match(req.method, req.path)
        template = route.template
        req.prefs = Prefs.parse(req.headers.get("prefer"))
        if route.permission and not any(r.startswith(route.permission) for r in claims.get("roles", ())):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if route.mailbox:
            mb = sim.store.mailbox(params.pop("user"))
            slot = sim.faults.before(claims["appid"], mb.id)
            await sim.faults.delay()
            result = await route.handler(sim, req, mb, **params)
        else:
            slot = sim.faults.before(claims["appid"], None)
            await sim.faults.delay()
            result = await route.handler(sim, req, **params)
        resp = result if isinstance(result, GraphResponse) else GraphResponse(200, result)
    except GraphError as exc:
        resp = GraphResponse(exc.status, exc.body(), dict(exc.headers))
    except Exception:
        log.exception("graph_sim: unhandled error on %s %s", req.method, req.path)
        resp = GraphResponse(500, error_body(500, "InternalServerError", "The simulator failed; see its log."))
    finally:
        sim.faults.release(slot)
    if req.applied and resp.status < 400:
        resp.headers["Preference-Applied"] = ", ".join(req.applied)
    sim.stats.count(req.method, template, resp.status, in_batch=req.in_batch)
    return resp


class GraphGateway:
    """The ASGI endpoint for /v1.0/*."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        server = scope.get("server") or ("127.0.0.1", 8010)
        host = headers.get("host") or f"{server[0]}:{server[1]}"
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        req = GraphRequest(
            method=scope["method"],
            path=scope["path"][len(PREFIX) :],
            query=query,
            headers=headers,
            body=body,
            base_url=f"{scope['scheme']}://{host}{PREFIX}",
        )
        resp = await dispatch(self.sim, req)
        await send_response(send, resp, headers.get("client-request-id"))


async def send_response(send: Send, resp: GraphResponse, client_request_id: str | None) -> None:
    out: list[tuple[bytes, bytes]] = [(b"request-id", str(uuid.uuid4()).encode())]
    if client_request_id:
        out.append((b"client-request-id", client_request_id.encode("latin-1")))
    payload: bytes
    if resp.raw is not None:
        payload = resp.raw
    elif resp.body is None:
        payload = b""
    else:
        payload = orjson.dumps(resp.body)
        out.append((b"content-type", JSON_TYPE))
    for k, v in resp.headers.items():
        out.append((k.lower().encode("latin-1"), str(v).encode("latin-1")))
    out.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": out})
    await send({"type": "http.response.body", "body": payload})
