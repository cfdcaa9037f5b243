"""Demo data, loaded through the REST API like any ERP client would: `python -m erp_connector.demo`.

Idempotent: what exists already is left as it is, so it can run at every start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from erp_connector.settings import get_settings

REPRESENTATIVES: list[dict[str, Any]] = [
    {
        "code": "REP01",
        "name": "Ana Silva",
        "email": "ana.silva@contoso.example",
        "sales_role": True,
        "active": True,
        "sync_enabled": True,
        "contacts_outlook_to_erp": True,
        "activities_outlook_to_erp": True,
        "activities_erp_to_outlook": True,
        "sync_meetings": True,
        "sync_tasks": True,
        "sync_calls": True,
        "sync_contacts": True,
        "contacts_two_way": True,
    },
    # No sales role: cannot be enabled for sync (R13).
    {"code": "REP02", "name": "Bruno Costa", "email": "bruno.costa@contoso.example", "sales_role": False},
]

PARTNERS: list[dict[str, Any]] = [
    {"code": "ACME", "name": "Acme Corporation", "type": "customer", "domains": ["acme.example"]},
    {"code": "GLOBEX", "name": "Globex Ltd", "type": "customer", "domains": ["globex.example"]},
    {"code": "INITECH", "name": "Initech", "type": "customer", "domains": ["initech.example"]},
    {"code": "UMBRELLA", "name": "Umbrella Trading", "type": "prospect", "domains": ["umbrella.example"]},
    # Shares a domain with a supplier: resolution picks the prospect (R10).
    {"code": "HOOLI", "name": "Hooli", "type": "prospect", "domains": ["hooli.example"]},
    {"code": "VANDELAY", "name": "Vandelay Industries", "type": "supplier", "domains": ["vandelay.example"]},
    {"code": "TYRELL", "name": "Tyrell Supplies", "type": "supplier", "domains": ["tyrell.example", "hooli.example"]},
]

CONTACTS: list[dict[str, Any]] = [
    {
        "given_name": "John",
        "surname": "Smith",
        "emails": ["john.smith@acme.example"],
        "business_phones": ["+1 555 0100"],
        "job_title": "Purchasing manager",
        "partner_code": "ACME",
        "representatives": ["REP01"],
    },
    {
        "given_name": "Maria",
        "surname": "Garcia",
        "emails": ["maria.garcia@globex.example"],
        "job_title": "CFO",
        "partner_code": "GLOBEX",
        "representatives": ["REP01"],
    },
    {
        "given_name": "Peter",
        "surname": "Gibbons",
        "emails": ["peter.gibbons@initech.example"],
        "mobile_phone": "+1 555 0199",
        "partner_code": "INITECH",
        "representatives": ["REP01", "REP02"],
    },
    {
        "given_name": "Art",
        "surname": "Vandelay",
        "emails": ["art@vandelay.example"],
        "job_title": "Importer/exporter",
        "partner_code": "VANDELAY",
        "representatives": ["REP02"],
    },
]


async def _ensure(client: httpx.AsyncClient, path: str, key: str, body: dict[str, Any]) -> None:
    """Create `body` at `path` unless `path/key` exists."""
    found = await client.get(f"{path}/{key}")
    if found.status_code == 200:
        return
    if found.status_code != 404:
        found.raise_for_status()
    created = await client.post(path, json=body, headers={"Idempotency-Key": f"demo:{path}:{key}"})
    created.raise_for_status()


async def load_demo(base_url: str, token: str) -> None:
    """Seed the demo representatives, partners and contacts through the API; safe to repeat."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        for rep in REPRESENTATIVES:
            await _ensure(client, "/api/v1/representatives", rep["code"], rep)
        for partner in PARTNERS:
            await _ensure(client, "/api/v1/partners", partner["code"], partner)
        for contact in CONTACTS:
            email = contact["emails"][0]
            found = await client.get("/api/v1/contacts", params={"email": email, "include_deleted": "true"})
            found.raise_for_status()
            if found.json()["total"]:
                continue
            created = await client.post(
                "/api/v1/contacts", json=contact, headers={"Idempotency-Key": f"demo:contact:{email}"}
            )
            created.raise_for_status()


def main() -> None:
    settings = get_settings()
    url = f"http://{settings.erp_connector_host}:{settings.erp_connector_port}"
    asyncio.run(load_demo(url, settings.erp_api_token.get_secret_value()))


if __name__ == "__main__":
    main()
