"""JSON batching: POST /$batch with at most 20 requests; `dependsOn` orders them and a failed
dependency yields 424 (https://learn.microsoft.com/graph/json-batching)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from graph_sim.errors import GraphError, error_body
from graph_sim.routing import GraphRequest, Router

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

MAX_REQUESTS = 20


async def run_batch(sim: Simulator, req: GraphRequest) -> Any:
    from graph_sim.gateway import dispatch

    items = req.json().get("requests")
    if not isinstance(items, list) or not items:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if len(items) > MAX_REQUESTS:
        raise GraphError(400, "BadRequest", f"The number of batch requests exceeds the limit of {MAX_REQUESTS}.")
    ids = [str(r.get("id")) for r in items]
    if len(set(ids)) != len(ids) or any(not r.get("id") or not r.get("method") or not r.get("url") for r in items):
        raise GraphError(400, "BadRequest", "Each batch request needs a unique id, a method and a url.")
    for r in items:
        for dep in r.get("dependsOn") or []:
            if str(dep) not in ids:
                raise GraphError(400, "BadRequest", f"dependsOn refers to an unknown request id '{dep}'.")
    status: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    for r in items:
        rid = str(r["id"])
        deps = [str(d) for d in r.get("dependsOn") or []]
        if any(not 200 <= status.get(d, 0) < 300 for d in deps):
            status[rid] = 424
            responses.append(
                {"id": rid, "status": 424, "body": error_body(424, "FailedDependency", "The dependent request failed.")}
            )
            continue
        url = urlsplit(str(r["url"]))
        path = "/" + url.path.lstrip("/")
        if path.lower().startswith("/v1.0/"):
            path = path[5:]
        headers = {k.lower(): str(v) for k, v in (r.get("headers") or {}).items()}
        headers["authorization"] = req.headers.get("authorization", "")
        sub = GraphRequest(
            method=str(r["method"]).upper(),
            path=path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body=orjson.dumps(r["body"]) if r.get("body") is not None else b"",
            base_url=req.base_url,
            in_batch=True,
        )
        resp = await dispatch(sim, sub)
        status[rid] = resp.status
        out: dict[str, Any] = {"id": rid, "status": resp.status, "headers": dict(resp.headers)}
        if resp.body is not None:
            out["headers"].setdefault("Content-Type", "application/json")
            out["body"] = resp.body
        responses.append(out)
    return {"responses": responses}


def register(sim: Simulator, router: Router) -> None:
    router.add("POST", "/$batch", run_batch)
