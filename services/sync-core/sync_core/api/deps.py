"""Dependencies of the ops API: the runtime and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

if TYPE_CHECKING:
    from sync_core.app import Runtime

_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.rt  # type: ignore[no-any-return]


def require_operator(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The caller's identity; 401 unless it shows the ops API token."""
    rt = get_runtime(request)
    expected = rt.settings.ops_api_token.get_secret_value()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(401, "a valid ops API bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return "ops-api"


RuntimeDep = Annotated["Runtime", Depends(get_runtime)]
Operator = Annotated[str, Depends(require_operator)]
