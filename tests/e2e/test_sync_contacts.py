"""Contacts: Outlook → ERP by default, two-way on request; completeness, partners by domain and code
(R04, R09, R10, R11, R16, R17)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.envelope import Kind, MessageType
from tests.support.items import ext_value
from tests.support.system import System, eventually


def outlook_contact(given: str | None, surname: str | None, *emails: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"emailAddresses": [{"address": e, "name": f"{given} {surname}"} for e in emails], **extra}
    if given is not None:
        body["givenName"] = given
    if surname is not None:
        body["surname"] = surname
    return body


async def erp_contacts(system: System, email: str) -> list[dict]:
    return [c for c in await system.erp_items("contacts") if email in [e.lower() for e in c["emails"]]]


async def outlook_contacts(system: System, email: str) -> list[dict]:
    return [
        c
        for c in await system.sim_items("contacts")
        if email in [a.get("address", "").lower() for a in c["data"].get("emailAddresses") or ()]
    ]


async def test_outlook_contact_reaches_the_erp_with_its_fields_R04_R10(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json=outlook_contact(
            "Maria",
            "Santos",
            "Maria.Santos@Acme.example",
            "maria@home.example",
            businessPhones=["+351 21 000 0000"],
            mobilePhone="+351 91 000 0000",
            jobTitle="Buyer",
            companyName="Acme Corporation",
        ),
    )
    [c] = await eventually(lambda: erp_contacts(system, "maria.santos@acme.example"))
    assert (c["given_name"], c["surname"]) == ("Maria", "Santos")
    assert [e.lower() for e in c["emails"]] == ["maria.santos@acme.example", "maria@home.example"]
    assert c["business_phones"] == ["+351 21 000 0000"] and c["mobile_phone"] == "+351 91 000 0000"
    assert c["job_title"] == "Buyer"
    assert c["partner_code"] == "ACME" and c["group"] is None  # R10: the domain names the customer
    assert c["representatives"] == ["REP01"] and c["origin"] == "outlook"

    async def stamped() -> bool:
        item = await system.sim_item("contacts", created["id"])
        return bool(item) and ext_value(item, "ErpId") == f"contact:{c['id']}"

    await eventually(stamped)  # R21


async def test_contact_domain_resolves_customer_then_prospect_then_supplier_else_exchange_R10(system: System) -> None:
    for code, kind, domains in (
        ("SUPX", "supplier", ["shared.example", "ps.example"]),
        ("PROX", "prospect", ["shared.example", "ps.example"]),
        ("CUSX", "customer", ["shared.example"]),
    ):
        await system.erp_write("POST", "partners", {"code": code, "name": code, "type": kind, "domains": domains})
    cases = {
        "a@shared.example": ("CUSX", None),
        "b@ps.example": ("PROX", None),
        "c@vandelay.example": ("VANDELAY", None),
        "d@nowhere.example": (None, "EXCHANGE"),
    }
    for email in cases:
        await system.graph.post_json(
            f"{system.user_path()}/contacts", json=outlook_contact("Given", email[0].upper(), email)
        )
    for email, (partner, group) in cases.items():
        [c] = await eventually(lambda email=email: erp_contacts(system, email))
        assert (c["partner_code"], c["group"]) == (partner, group), email


async def test_company_code_names_the_partner_and_an_unknown_code_is_a_journal_error_R11(system: System) -> None:
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json=outlook_contact("Ines", "Lopes", "ines@gmail.example", companyName="#umbrella#"),
    )
    unknown = await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json=outlook_contact("Tom", "Tell", "tom@acme.example", companyName="#NOPE#"),
    )
    [c] = await eventually(lambda: erp_contacts(system, "ines@gmail.example"))
    assert c["partner_code"] == "UMBRELLA"  # R11 outranks the domain (R10)
    [row] = await eventually(lambda: system.journal(rule="R11", outcome="failed"))
    assert row["graph_id"] == unknown["id"] and "NOPE" in row["reason"] and row["trace_id"]
    assert await erp_contacts(system, "tom@acme.example") == []  # not silently created under the domain's partner


async def test_incomplete_contact_is_not_synced_and_the_journal_says_why_R09(system: System) -> None:
    no_surname = await system.graph.post_json(
        f"{system.user_path()}/contacts", json=outlook_contact("Solo", None, "solo@acme.example")
    )
    no_email = await system.graph.post_json(f"{system.user_path()}/contacts", json=outlook_contact("No", "Mail"))
    await system.graph.post_json(
        f"{system.user_path()}/contacts", json=outlook_contact("Full", "Person", "full@acme.example")
    )
    await eventually(lambda: erp_contacts(system, "full@acme.example"))
    rows = await eventually(lambda: system.journal(rule="R09"))
    reasons = {r["graph_id"]: r["reason"] for r in rows}
    assert "surname" in reasons[no_surname["id"]]
    assert "e-mail" in reasons[no_email["id"]]
    assert await erp_contacts(system, "solo@acme.example") == []

    # Completing the contact resumes its sync.
    await system.graph.patch_json(f"{system.user_path()}/contacts/{no_surname['id']}", json={"surname": "Mio"})
    [c] = await eventually(lambda: erp_contacts(system, "solo@acme.example"))
    assert c["surname"] == "Mio"


async def test_outlook_contact_with_a_known_email_is_assigned_not_duplicated_R04(system: System) -> None:
    existing = await system.erp_write(
        "POST",
        "contacts",
        {"given_name": "Jane", "surname": "Roe", "emails": ["jane@acme.example"], "representatives": []},
        expect=201,
    )
    await system.graph.post_json(
        f"{system.user_path()}/contacts", json=outlook_contact("Jane", "Roe", "jane@acme.example")
    )

    async def assigned() -> list[dict]:
        return [c for c in await erp_contacts(system, "jane@acme.example") if "REP01" in c["representatives"]]

    [c] = await eventually(assigned)
    assert c["id"] == existing["id"]
    assert len(await erp_contacts(system, "jane@acme.example")) == 1


async def test_contacts_flow_outlook_to_erp_only_by_default_R17(system: System) -> None:
    erp_contact = await system.erp_write(
        "POST",
        "contacts",
        {"given_name": "Erp", "surname": "Only", "emails": ["erp.only@acme.example"], "representatives": ["REP01"]},
        expect=201,
    )
    [row] = await eventually(lambda: system.journal(rule="R17"))
    assert row["erp_id"] == str(erp_contact["id"]) and row["outcome"] == "skipped"

    # An Outlook contact changed in the ERP does not flow back either.
    created = await system.graph.post_json(
        f"{system.user_path()}/contacts", json=outlook_contact("Out", "Look", "out.look@acme.example")
    )
    [c] = await eventually(lambda: erp_contacts(system, "out.look@acme.example"))
    await system.erp_write("PUT", f"contacts/{c['id']}", {"job_title": "Changed in the ERP"})
    await eventually(lambda: _r17_for(system, c["id"]))
    assert await outlook_contacts(system, "erp.only@acme.example") == []
    contact = await system.sim_item("contacts", created["id"])
    assert contact is not None and not contact["data"].get("jobTitle")


async def _r17_for(system: System, erp_id: int) -> list[dict]:
    return [r for r in await system.journal(rule="R17") if r["erp_id"] == str(erp_id)]


@pytest.mark.representative(contacts_two_way=True)
async def test_two_way_contacts_reach_outlook_with_the_partner_code_R17_R11(system: System) -> None:
    c = await system.erp_write(
        "POST",
        "contacts",
        {
            "given_name": "Two",
            "surname": "Way",
            "emails": ["two.way@umbrella.example"],
            "job_title": "CFO",
            "representatives": ["REP01"],
        },
        expect=201,
    )
    [record] = await eventually(lambda: outlook_contacts(system, "two.way@umbrella.example"))
    assert record["data"]["givenName"] == "Two" and record["data"]["jobTitle"] == "CFO"
    assert record["data"]["companyName"] == "#UMBRELLA#"  # R11
    assert ext_value(record, "ErpId") == f"contact:{c['id']}"

    await system.erp_write("PUT", f"contacts/{c['id']}", {"job_title": "CEO"})

    async def updated() -> list[dict]:
        return [r for r in await outlook_contacts(system, "two.way@umbrella.example") if r["data"]["jobTitle"] == "CEO"]

    [after] = await eventually(updated)
    assert after["immutableId"] == record["immutableId"]
    # A contact of another representative does not reach this mailbox (R13).
    await system.erp_write(
        "POST",
        "contacts",
        {"given_name": "Not", "surname": "Mine", "emails": ["not.mine@acme.example"], "representatives": []},
        expect=201,
    )
    assert await outlook_contacts(system, "not.mine@acme.example") == []


@pytest.mark.representative(sync_contacts=False)
async def test_contacts_switch_off_keeps_outlook_contacts_out_R16(system: System) -> None:
    created = await system.graph.post_json(
        f"{system.user_path()}/contacts", json=outlook_contact("Off", "Switch", "off@acme.example")
    )
    await system.publish(MessageType.GRAPH_RESYNC, kind=Kind.CONTACT, reason="manual")
    [row] = await eventually(lambda: system.journal(rule="R16", kind="contact"))
    assert row["graph_id"] == created["id"] and row["outcome"] == "skipped"
    assert await erp_contacts(system, "off@acme.example") == []
