"""Graph `contact` ↔ canonical contact (R04, R11)."""

from __future__ import annotations

from typing import Any

from shared.envelope import Kind

from ..model import Contact
from ..rules import company_code, company_text
from .common import instant, text
from .properties import ERP_ID, erp_ref, parse_erp_ref, property_entry, read_properties

# Outlook holds three e-mail addresses per contact; more would be refused by Graph.
MAX_EMAILS = 3


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(s for s in (text(v) for v in values or ()) if s)


def graph_contact_to_contact(c: dict[str, Any]) -> Contact:
    """A Graph contact (with the ErpId property expanded) as a canonical contact."""
    emails = _strings((e or {}).get("address") for e in c.get("emailAddresses") or ())
    company = text(c.get("companyName"))
    _, erp_id = parse_erp_ref(read_properties(c).get(ERP_ID))
    return Contact(
        given_name=text(c.get("givenName")),
        surname=text(c.get("surname")),
        emails=emails,
        business_phones=_strings(c.get("businessPhones")),
        mobile_phone=text(c.get("mobilePhone")),
        job_title=text(c.get("jobTitle")),
        company=company,
        partner_code=company_code(company),
        modified_at=instant(c.get("lastModifiedDateTime")),
        erp_id=erp_id,
        graph_id=text(c.get("id")),
        graph_change_key=text(c.get("changeKey")),
    )


def display_name(c: Contact) -> str:
    return " ".join(p for p in (c.given_name, c.surname) if p)


def contact_to_graph_contact(c: Contact) -> dict[str, Any]:
    """The POST/PATCH body of a Graph contact; the partner is written `#CODE#` (R11)."""
    name = display_name(c)
    if c.partner_code:
        company: str | None = company_text(c.partner_code)
    else:
        company = c.company if company_code(c.company) is None else None
    body: dict[str, Any] = {
        "givenName": c.given_name or "",
        "surname": c.surname or "",
        "displayName": name,
        "emailAddresses": [{"address": e, "name": name or e} for e in c.emails[:MAX_EMAILS]],
        "businessPhones": list(c.business_phones),
        "mobilePhone": c.mobile_phone or "",
        "jobTitle": c.job_title or "",
        "companyName": company or "",
    }
    if c.erp_id:
        body["singleValueExtendedProperties"] = [property_entry(ERP_ID, erp_ref(Kind.CONTACT, c.erp_id))]
    return body
