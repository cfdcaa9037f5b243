"""Helpers of the erp-connector tests: a tap on the bus, the running app, seed data."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

TOKEN = "test-erp-token"

# For tests of the HTTP layer only (auth, validation, signatures): the database adds nothing, so
# they run on SQLite alone to keep the suite fast. Everything that touches storage runs on both.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@dataclass
class Tap:
    """Every message published on the test's exchange, in arrival order."""

    messages: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def bodies(self, type_: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(m.body) for m in self.messages]
        return [b for b in out if type_ is None or b["type"] == type_]

    async def wait_for(self, count: int, type_: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.bodies(type_)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"expected {count} {type_ or ''} message(s), got {self.bodies(type_)}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.1)
        return self.bodies(type_)


@dataclass
class Running:
    url: str
    app: FastAPI
    client: httpx.AsyncClient


async def wait_ready(client: httpx.AsyncClient, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (await client.get("/readyz")).status_code != 200:
        if loop.time() > deadline:
            raise AssertionError((await client.get("/readyz")).json())
        await asyncio.sleep(0.05)


async def seed(client: httpx.AsyncClient) -> None:
    """Two representatives and partners of each type: the ground most API tests stand on."""
    reps = [
        {"code": "REP01", "name": "Ana Silva", "email": "Ana.Silva@contoso.example", "sales_role": True},
        {"code": "REP02", "name": "Bruno Costa", "email": "bruno.costa@contoso.example", "sales_role": True},
    ]
    for rep in reps:
        assert (await client.post("/api/v1/representatives", json=rep)).status_code == 201
    partners = [
        {"code": "ACME", "name": "Acme", "type": "customer", "domains": ["acme.example"]},
        {"code": "PROS", "name": "Prospect", "type": "prospect", "domains": ["shared.example"]},
        {"code": "SUPP", "name": "Supplier", "type": "supplier", "domains": ["shared.example", "supp.example"]},
    ]
    for partner in partners:
        assert (await client.post("/api/v1/partners", json=partner)).status_code == 201
