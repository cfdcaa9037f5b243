"""Graph requests, responses and the URL router for /v1.0 (shared by direct calls and $batch)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from graph_sim.errors import GraphError

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

_PREF_RE = re.compile(r'\s*([A-Za-z.\-]+)\s*(?:=\s*("([^"]*)"|[^,;]*))?')


@dataclass(slots=True)
class Prefs:
    """The `Prefer` header values Graph understands for Outlook resources."""

    timezone: str | None = None
    immutable: bool = False
    max_page_size: int | None = None
    body_content_type: str | None = None

    @classmethod
    def parse(cls, header: str | None) -> Prefs:
        prefs = cls()
        if not header:
            return prefs
        for part in header.split(","):
            m = _PREF_RE.match(part)
            if not m:
                continue
            name = m.group(1).lower()
            value = (m.group(3) if m.group(3) is not None else (m.group(2) or "")).strip()
            if name == "outlook.timezone":
                prefs.timezone = value
            elif name == "idtype":
                prefs.immutable = value.lower() == "immutableid"
            elif name == "odata.maxpagesize":
                with contextlib.suppress(ValueError):
                    prefs.max_page_size = max(int(value), 1)
            elif name == "outlook.body-content-type":
                prefs.body_content_type = value.lower()
        return prefs


@dataclass(slots=True)
class GraphRequest:
    """One Graph call, direct or from a $batch."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    claims: dict[str, Any] | None = None
    # A sub-request of a $batch: served as any other, counted apart (it is not an HTTP request of its own).
    in_batch: bool = False
    prefs: Prefs = field(default_factory=Prefs)
    applied: list[str] = field(default_factory=list)
    _json: Any = None

    def json(self) -> dict[str, Any]:
        if self._json is None:
            if not self.body:
                self._json = {}
            else:
                try:
                    self._json = orjson.loads(self.body)
                except orjson.JSONDecodeError as exc:
                    raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc
            if not isinstance(self._json, dict):
                raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
        return self._json  # type: ignore[no-any-return]

    def apply(self, preference: str) -> None:
        if preference not in self.applied:
            self.applied.append(preference)

    def use_immutable(self) -> bool:
        if self.prefs.immutable:
            self.apply('IdType="ImmutableId"')
        return self.prefs.immutable

    def page_size(self, default: int) -> int:
        """$top wins, then Prefer: odata.maxpagesize, then the default."""
        top = self.query.get("$top")
        if top is not None:
            try:
                return min(max(int(top), 1), 1000)
            except ValueError as exc:
                raise GraphError(400, "BadRequest", f"Invalid $top value '{top}'.") from exc
        if self.prefs.max_page_size:
            self.apply(f"odata.maxpagesize={self.prefs.max_page_size}")
            return self.prefs.max_page_size
        return default


@dataclass(slots=True)
class GraphResponse:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handler = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler
    permission: str | None
    mailbox: bool


class Router:
    """Case-insensitive path templates (`/users/{user}/events/{id}`) → async handlers."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.by_first: dict[str, list[Route]] = {}

    def add(self, method: str, template: str, handler: Handler, permission: str | None = None) -> None:
        parts = re.split(r"\{(\w+)\}", template.rstrip("/"))
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        route = Route(
            method,
            template,
            re.compile(f"^{pattern}/?$", re.IGNORECASE),
            handler,
            permission,
            template.startswith("/users/{user}/"),
        )
        self.routes.append(route)
        first = template.strip("/").split("/")[0].lower()
        self.by_first.setdefault(first, []).append(route)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        first = path.strip("/").split("/", 1)[0].lower()
        allowed = False
        for route in self.by_first.get(first, ()):
            m = route.regex.match(path)
            if m is None:
                continue
            if route.method != method:
                allowed = True
                continue
            return route, m.groupdict()
        if allowed:
            raise GraphError(405, "Request_BadRequest", f"The HTTP method '{method}' is not supported.")
        if first == "me":
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{first}'.")


RouteTable = Callable[["Simulator", Router], None]
