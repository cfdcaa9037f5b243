"""Graph's failures as one exception hierarchy, mapped from `{"error": {"code", "message"}}` bodies.

Error body shape: https://learn.microsoft.com/graph/errors
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.errors import PermanentError, SyncError, TransientError


class GraphError(SyncError):
    """A Graph call failed: the HTTP status, Graph's error code and message, and its request id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.method = method
        self.url = url
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"Graph {self.status}" if self.status else "Graph"]
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        where = f" on {self.method} {self.url}" if self.method and self.url else ""
        rid = f" (request-id {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{where}{rid}"


class GraphBadRequest(GraphError, PermanentError):
    """400: the request itself is wrong; retrying the same request cannot help."""


class GraphAuthError(GraphError):
    """401/403, or the token endpoint refused our credentials: check the app registration and its consent."""


class GraphAuthUnavailable(GraphAuthError, TransientError):
    """The token endpoint could not be reached or failed (network, 5xx): worth retrying later."""


class GraphNotFound(GraphError, PermanentError):
    """404: the user or item does not exist (or no longer does)."""


class GraphPreconditionFailed(GraphError):
    """412: the item changed since it was read (`If-Match` / changeKey); re-read and decide again."""


class GraphSyncStateNotFound(GraphError):
    """410 on a delta query: the delta token is unknown or expired; restart the delta from scratch."""


class GraphThrottled(GraphError, TransientError):
    """429 that outlasted our retries (or asked for a longer wait than we hold a request for)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class GraphUnavailable(GraphError, TransientError):
    """5xx or a network failure that outlasted our retries."""


def error_body(response: httpx.Response) -> tuple[str | None, str]:
    """Graph's error code and message from a response body, tolerating non-JSON bodies."""
    try:
        data = response.json()
    except ValueError:
        return None, (response.text[:200] or response.reason_phrase)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message") or response.reason_phrase
        return (str(code) if code else None), str(message)
    if isinstance(error, str):  # the token endpoint's OAuth shape: {"error": "...", "error_description": "..."}
        return error, str(data.get("error_description") or error)
    return None, response.reason_phrase


def request_id_of(response: httpx.Response) -> str | None:
    rid = response.headers.get("request-id") or response.headers.get("client-request-id")
    if rid:
        return rid
    try:
        inner = response.json()["error"]["innerError"]
        return str(inner.get("request-id") or inner.get("client-request-id") or "") or None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def error_from_response(response: httpx.Response, *, retry_after: float | None = None) -> GraphError:
    """The exception for a final, non-2xx Graph response."""
    code, message = error_body(response)
    status = response.status_code
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": request_id_of(response),
        "method": response.request.method,
        "url": _redacted_url(response.request.url),
    }
    if status == 400:
        return GraphBadRequest(message, **kwargs)
    if status in (401, 403):
        return GraphAuthError(message, **kwargs)
    if status == 404:
        return GraphNotFound(message, **kwargs)
    if status == 410:
        return GraphSyncStateNotFound(message, **kwargs)
    if status == 412:
        return GraphPreconditionFailed(message, **kwargs)
    if status == 429:
        return GraphThrottled(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        return GraphUnavailable(message, **kwargs)
    return GraphError(message, **kwargs)


def _redacted_url(url: httpx.URL) -> str:
    # Delta and skip tokens are credentials of a sort and make log lines unreadable: keep the path only.
    return str(url.copy_with(query=None))
