"""App-only access tokens for Graph through msal's client-credentials flow.

msal is blocking (it uses `requests`), so every msal call runs in a worker thread. msal's own
cache already serves a valid token without a network call; on top of it we keep the current token
in memory so that a Graph request costs no thread hop at all until the token nears expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import msal
import requests

from shared.graph.errors import GraphAuthError, GraphAuthUnavailable
from shared.graph.tls import requests_verify
from shared.settings import GraphSettings

log = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# msal treats a cached token with less than 5 minutes left as expired; refreshing at the same point
# means the first call after it gets a fresh token from the identity provider, not the old one again.
REFRESH_MARGIN_S = 300.0


class TokenSource(Protocol):
    """What GraphClient needs of a token provider (a fake in unit tests)."""

    async def token(self) -> str: ...

    async def invalidate(self, token: str) -> None: ...


class _TokenSession(requests.Session):
    """A requests session with a default timeout (msal passes none on its own calls)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def token_http_client(settings: GraphSettings, timeout_s: float | None = None) -> requests.Session:
    """The requests session msal uses, trusting exactly `GRAPH_CA_BUNDLE` (or the system store).

    `trust_env=False` matters: with it on, requests lets `REQUESTS_CA_BUNDLE` (set on these machines)
    replace the session's `verify`, and msal would then reject the simulator's certificate.
    """
    session = _TokenSession(timeout_s if timeout_s is not None else settings.graph_timeout_s)
    session.trust_env = False
    session.verify = requests_verify(settings)
    return session


class TokenProvider:
    """Bearer tokens for Graph, acquired once and reused until shortly before they expire."""

    def __init__(self, settings: GraphSettings, scopes: list[str] | None = None) -> None:
        self.settings = settings
        self.scopes = scopes or [GRAPH_SCOPE]
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.acquired = 0  # tokens msal fetched from the identity provider (not from its cache)

    @property
    def authority(self) -> str:
        return f"{self.settings.graph_authority_host.rstrip('/')}/{self.settings.graph_tenant_id}"

    async def token(self) -> str:
        """A valid access token; only calls msal (in a thread) when the cached one nears expiry."""
        if self._token is not None and time.monotonic() < self._refresh_at:
            return self._token
        async with self._lock:
            # Another task may have refreshed it while this one waited for the lock.
            if self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            token, expires_in = await asyncio.to_thread(self._acquire)
            self._token = token
            self._refresh_at = time.monotonic() + max(expires_in - REFRESH_MARGIN_S, 0.0)
            return token

    async def invalidate(self, token: str) -> None:
        """Forget `token` (Graph refused it): the next `token()` asks the identity provider again."""
        async with self._lock:
            if self._token == token:
                self._token = None
                self._refresh_at = 0.0
            if self._app is not None:
                await asyncio.to_thread(self._app.remove_tokens_for_client)

    def _client(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            # Building the app fetches the authority's OpenID configuration: network, hence in the thread.
            self._app = msal.ConfidentialClientApplication(
                self.settings.graph_client_id,
                client_credential=self.settings.graph_client_secret.get_secret_value(),
                authority=self.authority,
                instance_discovery=False,
                http_client=token_http_client(self.settings),
            )
        return self._app

    def _acquire(self) -> tuple[str, float]:
        try:
            result = self._client().acquire_token_for_client(scopes=self.scopes)
        except (requests.RequestException, OSError) as exc:
            raise GraphAuthUnavailable(
                f"token endpoint of {self.authority} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        except ValueError as exc:  # msal: bad authority, unexpected discovery document
            raise GraphAuthError(f"cannot use authority {self.authority}: {exc}") from exc
        if not isinstance(result, dict) or "access_token" not in result:
            result = result if isinstance(result, dict) else {}
            code = str(result.get("error") or "no_token")
            description = str(result.get("error_description") or "no access token in the reply").splitlines()[0]
            if code in ("temporarily_unavailable", "server_error"):
                raise GraphAuthUnavailable(description, code=code)
            raise GraphAuthError(
                f"{description} (client {self.settings.graph_client_id}, tenant {self.settings.graph_tenant_id})",
                code=code,
            )
        if result.get("token_source") != "cache":
            self.acquired += 1
            log.info("Graph access token acquired", extra={"expires_in": result.get("expires_in")})
        return str(result["access_token"]), float(result.get("expires_in") or 0)
