"""Users in telemetry: an opaque, stable, salted hash; e-mails in span attributes are replaced by it."""

from __future__ import annotations

import re

from shared.telemetry import redact_emails, user_hash


def test_a_user_hash_is_12_hex_digits_stable_case_blind_and_salted() -> None:
    h = user_hash("Ana.Silva@Contoso.example", salt="s1")
    assert re.fullmatch(r"[0-9a-f]{12}", h)
    assert h == user_hash(" ana.silva@contoso.example ", salt="s1")
    assert h != user_hash("ana.silva@contoso.example", salt="s2")
    assert h != user_hash("bruno@contoso.example", salt="s1")


def test_emails_in_urls_are_replaced_by_the_users_hash() -> None:
    tag = f"user:{user_hash('ana.silva@contoso.example')}"
    assert (
        redact_emails("http://erp:8002/api/v1/representatives/by-email/ana.silva@contoso.example")
        == f"http://erp:8002/api/v1/representatives/by-email/{tag}"
    )
    assert redact_emails("/v1.0/users/ana.silva%40contoso.example/events?$top=2") == f"/v1.0/users/{tag}/events?$top=2"
    assert redact_emails("/v1.0/users/0f3c2a9e-1111/events") == "/v1.0/users/0f3c2a9e-1111/events"
