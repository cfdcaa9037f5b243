"""Dependencies of the ops API: the runtime and the bearer-token check that names the caller."""

from __future__ import annotations

import hmac
import re
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sync_core.operations.errors import Invalid

if TYPE_CHECKING:
    from sync_core.app import Runtime

_bearer = HTTPBearer(auto_error=False, description="OPS_API_TOKEN")
_ACTOR = re.compile(r"[^A-Za-z0-9@._:+-]")
TOKEN_ACTOR = "ops-api"


def get_runtime(request: Request) -> Runtime:
    return request.app.state.rt  # type: ignore[no-any-return]


async def require_operator(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_ops_actor: Annotated[
        str | None,
        Header(
            max_length=100,
            description="Who is behind the token (syncctl sends the local user); recorded in the journal as "
            "`ops-api:<value>`. Informative: the token is what authorises.",
        ),
    ] = None,
) -> str:
    """The caller's name for the journal; 401 unless it shows the ops API token."""
    rt = get_runtime(request)
    expected = rt.settings.ops_api_token.get_secret_value()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(401, "a valid ops API bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    refuse_nul(request)
    claimed = _ACTOR.sub("", x_ops_actor or "")[:100]
    return f"{TOKEN_ACTOR}:{claimed}" if claimed else TOKEN_ACTOR


def refuse_nul(request: Request) -> None:
    """`Invalid` (422) for a NUL character in the path or query: no database text holds one
    (PostgreSQL refuses it), so it would otherwise fail as a 500 deep in a query."""
    values = [*request.path_params.values(), *request.query_params.values()]
    if any(isinstance(v, str) and "\x00" in v for v in values):
        raise Invalid("the path or query contains a NUL character (U+0000)")


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
Operator = Annotated[str, Depends(require_operator)]
