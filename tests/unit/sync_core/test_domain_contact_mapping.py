"""Graph contact ↔ canonical contact: R04 fields, R11 `#CODE#`, R21 ErpId."""

from __future__ import annotations

from typing import Any

from domain_builders import contact, graph_echo

from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.mapping.contact import contact_to_graph_contact, graph_contact_to_contact
from sync_core.domain.mapping.properties import ERP_ID


def outlook_contact(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "AAMkADh=",
        "changeKey": "EQAAABY",
        "lastModifiedDateTime": "2024-06-01T10:00:00Z",
        "givenName": "Bob",
        "surname": "Buyer",
        "displayName": "Bob Buyer",
        "emailAddresses": [{"name": "Bob Buyer", "address": "bob@acme.com"}, {"name": "b", "address": "b@home.org"}],
        "businessPhones": ["+33 1 23 45 67 89"],
        "mobilePhone": "+33 6 00 00 00 00",
        "jobTitle": "Buyer",
        "companyName": "#ACME#",
    }
    base.update(kw)
    return base


def test_outlook_contact_fields_map_R04() -> None:
    c = graph_contact_to_contact(outlook_contact())
    assert (c.given_name, c.surname) == ("Bob", "Buyer")
    assert c.emails == ("bob@acme.com", "b@home.org")
    assert c.business_phones == ("+33 1 23 45 67 89",)
    assert c.mobile_phone == "+33 6 00 00 00 00"
    assert c.job_title == "Buyer"
    assert c.graph_id == "AAMkADh=" and c.graph_change_key == "EQAAABY"


def test_company_code_names_the_partner_R11() -> None:
    c = graph_contact_to_contact(outlook_contact(companyName="#ACME#"))
    assert c.partner_code == "ACME" and c.company == "#ACME#"


def test_plain_company_text_has_no_partner_R11() -> None:
    c = graph_contact_to_contact(outlook_contact(companyName="Acme Corporation"))
    assert c.partner_code is None and c.company == "Acme Corporation"


def test_partner_is_written_as_code_R11() -> None:
    assert contact_to_graph_contact(contact(partner_code="ACME"))["companyName"] == "#ACME#"


def test_company_text_is_kept_when_there_is_no_partner_R11() -> None:
    body = contact_to_graph_contact(contact(partner_code=None, company="Acme Corporation"))
    assert body["companyName"] == "Acme Corporation"
    # A stale code without a partner is not written back.
    assert contact_to_graph_contact(contact(partner_code=None, company="#OLD#"))["companyName"] == ""


def test_contact_body_carries_r04_fields_and_erp_id_R04_R21() -> None:
    body = contact_to_graph_contact(contact(erp_id="7"))
    assert body["givenName"] == "Bob" and body["surname"] == "Buyer" and body["displayName"] == "Bob Buyer"
    assert body["emailAddresses"] == [{"address": "bob@acme.com", "name": "Bob Buyer"}]
    assert body["businessPhones"] == ["+33 1 23 45 67 89"]
    assert body["mobilePhone"] == "+33 6 00 00 00 00" and body["jobTitle"] == "Buyer"
    assert body["singleValueExtendedProperties"] == [{"id": ERP_ID, "value": "contact:7"}]
    assert "singleValueExtendedProperties" not in contact_to_graph_contact(contact(erp_id=None))


def test_outlook_holds_at_most_three_addresses_R04() -> None:
    body = contact_to_graph_contact(contact(emails=("a@x.com", "b@x.com", "c@x.com", "d@x.com")))
    assert [e["address"] for e in body["emailAddresses"]] == ["a@x.com", "b@x.com", "c@x.com"]


def test_erp_id_is_read_back_R21() -> None:
    back = graph_contact_to_contact(graph_echo(contact_to_graph_contact(contact(erp_id="7"))))
    assert back.erp_id == "7"


def test_blank_fields_read_as_missing_R09() -> None:
    c = graph_contact_to_contact(outlook_contact(givenName="  ", emailAddresses=[{"address": ""}], jobTitle=None))
    assert c.given_name is None and c.emails == () and c.job_title is None


def test_contact_round_trips_through_graph_R04() -> None:
    c = contact(erp_id="7")
    back = graph_contact_to_contact(graph_echo(contact_to_graph_contact(c)))
    assert fingerprint(back) == fingerprint(c)
