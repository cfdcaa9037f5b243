"""The simulator's `/_sim` control API (not Graph), for the webhook tests."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from graph_sim.testing import SimServer


class WebhookSim:
    """Seed users and items, drive lifecycle events and the clock, inspect subscriptions."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=f"{server.root_url}/_sim", verify=ssl.create_default_context(cafile=server.ca_path), timeout=20
        )

    def reset(self) -> None:
        self.http.post("/reset").raise_for_status()

    def add_user(self, email: str) -> dict[str, Any]:
        response = self.http.post("/users", json={"mail": email, "userPrincipalName": email})
        response.raise_for_status()
        return dict(response.json())

    def seed(self, user: str, kind: str, item: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"/users/{user}/{kind}", json=item)
        response.raise_for_status()
        return dict(response.json())

    def items(self, user: str, kind: str) -> list[dict[str, Any]]:
        return list(self.http.get(f"/users/{user}/{kind}", params={"deleted": False}).json())

    def subscriptions(self) -> list[dict[str, Any]]:
        return list(self.http.get("/subscriptions").json())

    def lifecycle(self, subscription_id: str, event: str) -> None:
        self.http.post(f"/subscriptions/{subscription_id}/lifecycle", json={"lifecycleEvent": event}).raise_for_status()

    def advance_clock(self, seconds: float) -> float:
        response = self.http.post("/clock", json={"advance_seconds": seconds})
        response.raise_for_status()
        return float(response.json()["offset_seconds"])

    def flush(self) -> dict[str, Any]:
        return dict(self.http.post("/notifications/flush").json())
