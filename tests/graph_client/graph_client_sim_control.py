"""The simulator's `/_sim` control API, for the Graph client tests."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from graph_sim.testing import SimServer


class SimControl:
    """The simulator's `/_sim` control API (not Graph)."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=f"{server.root_url}/_sim", verify=ssl.create_default_context(cafile=server.ca_path)
        )

    def reset(self) -> None:
        self.http.post("/reset").raise_for_status()

    def add_user(self, email: str, **extra: Any) -> dict[str, Any]:
        response = self.http.post("/users", json={"mail": email, "userPrincipalName": email, **extra})
        response.raise_for_status()
        return dict(response.json())

    def seed(self, user: str, kind: str, items: list[dict[str, Any]], notify: bool = False) -> list[dict[str, Any]]:
        response = self.http.post(f"/users/{user}/{kind}", json={"items": items, "notify": notify})
        response.raise_for_status()
        return list(response.json())

    def faults(self, **patch: Any) -> dict[str, Any]:
        response = self.http.post("/faults", json=patch)
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/stats").json())

    def expire_delta(self, user: str) -> None:
        self.http.post("/delta/expire", json={"user": user}).raise_for_status()
