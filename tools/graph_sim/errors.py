"""Graph's error responses: `{"error": {"code", "message", "innerError"}}`.

Shape from https://learn.microsoft.com/graph/errors and the 429 sample in
https://learn.microsoft.com/graph/throttling.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


class GraphError(Exception):
    """Raised by handlers; turned into Graph's JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        inner_message: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.inner_message = inner_message

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.inner_message)


def error_body(status: int, code: str, message: str, inner_message: str | None = None) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()),
        "client-request-id": str(uuid.uuid4()),
    }
    if status == 429:
        inner = {"code": "429", **inner, "message": inner_message or "Please retry after", "status": "429"}
    return {"error": {"code": code, "message": message, "innerError": inner}}


def invalid_user(user: str) -> GraphError:
    return GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
