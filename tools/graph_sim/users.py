"""Directory users: GET /users and /users/{id | userPrincipalName}.

https://learn.microsoft.com/graph/api/user-list and https://learn.microsoft.com/graph/api/user-get
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from graph_sim import odata
from graph_sim.errors import GraphError
from graph_sim.routing import GraphRequest, Router

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

_EQ = re.compile(r"^\s*(mail|userPrincipalName|id|displayName)\s+eq\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)


async def list_users(sim: Simulator, req: GraphRequest) -> Any:
    users = [mb.user for mb in sim.store.mailboxes.values()]
    flt = req.query.get("$filter")
    if flt:
        m = _EQ.match(flt)
        if not m:
            raise GraphError(400, "Request_UnsupportedQuery", f"Unsupported query: {flt}")
        field = {"mail": "mail", "userprincipalname": "userPrincipalName", "id": "id", "displayname": "displayName"}[
            m.group(1).lower()
        ]
        value = m.group(2).replace("''", "'").lower()
        users = [u for u in users if str(u.get(field) or "").lower() == value]
    size = req.page_size(100)
    skip = int(req.query.get("$skiptoken") or 0)
    chunk = [odata.select(dict(u), req) for u in users[skip : skip + size]]
    nxt = None
    if skip + size < len(users):
        nxt = odata.link(req, req.path, {**req.query, "$skiptoken": str(skip + size)})
    return odata.page(req, chunk, "users", nxt)


async def get_user(sim: Simulator, req: GraphRequest, user: str) -> Any:
    mb = sim.store.user(user)
    return {"@odata.context": odata.context(req, "users/$entity"), **odata.select(mb.user, req)}


def register(sim: Simulator, router: Router) -> None:
    router.add("GET", "/users", list_users, "User.")
    router.add("GET", "/users/{user}", get_user, "User.")
