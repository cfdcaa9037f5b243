"""The pure parts of the console and ops API: passwords, sessions, CSRF, reconciliation's comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.envelope import Kind
from sync_core.auth import LoginThrottle, Sessions, csrf_ok, hash_password, verify_password
from sync_core.domain.fingerprint import fingerprint
from sync_core.domain.model import Activity, ActivityKind, Contact, UserSettings
from sync_core.models import Link
from sync_core.operations.journal import trace_url
from sync_core.reconcile import AnomalyType, ErpEntry, OutlookEntry, Repair, compare

NOW = datetime(2026, 5, 4, 12, tzinfo=UTC)
USER = UserSettings(code="REP01", email="ana@contoso.example")


def meeting(subject: str, *, erp_id: str | None = None, days: int = 2, chrono: str | None = None) -> Activity:
    start = NOW + timedelta(days=days)
    return Activity(
        kind=ActivityKind.MEETING,
        subject=subject,
        start=start,
        end=start + timedelta(hours=1),
        representative="REP01",
        erp_id=erp_id,
        chrono=chrono,
        modified_at=NOW - timedelta(hours=1),
    )


def link(graph_id: str, erp_id: str, item: Activity, kind: Kind = Kind.EVENT) -> Link:
    return Link(
        user=USER.email or "",
        kind=kind.value,
        collection="event",
        graph_id=graph_id,
        erp_id=erp_id,
        fingerprint=fingerprint(item),
        synced_at=NOW - timedelta(hours=1),
    )


def outlook(graph_id: str, item: Activity | Contact | None, ref: tuple[Kind, str] | None = None) -> OutlookEntry:
    return OutlookEntry("event", graph_id, item, ref, NOW - timedelta(hours=1))


def erp(erp_id: str, item: Activity | Contact | None, kind: Kind = Kind.EVENT) -> ErpEntry:
    return ErpEntry(kind, erp_id, item, NOW - timedelta(hours=1), 1)


def test_password_hash_verifies_only_the_same_password() -> None:
    stored = hash_password("correct horse", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("Correct horse", stored)
    assert not verify_password("correct horse", "not-a-hash")
    assert hash_password("x", n=2**10) != hash_password("x", n=2**10), "salted"


def test_session_cookie_is_signed_expires_and_carries_csrf() -> None:
    sessions = Sessions("secret", max_age_s=60)
    cookie, session = sessions.issue("admin", "scrypt$…")
    assert sessions.read(cookie) == session
    assert sessions.read(cookie[:-2] + "xx") is None
    assert Sessions("other secret", 60).read(cookie) is None
    assert Sessions("secret", max_age_s=-1).read(cookie) is None
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, None)
    assert not csrf_ok(session, "forged")
    nonce, signed = sessions.login_nonce()
    assert sessions.check_login_nonce(signed, nonce)
    assert not sessions.check_login_nonce(signed, "other")


def test_login_throttle_locks_after_repeated_failures() -> None:
    throttle = LoginThrottle(limit=3, lock_s=60)
    for _ in range(3):
        assert not throttle.locked("user:a")
        throttle.failed("user:a")
    assert throttle.locked("user:a")
    assert not throttle.locked("user:b")
    throttle.succeeded("user:a")
    assert not throttle.locked("user:a")


def test_trace_link_is_built_from_the_template_R25() -> None:
    assert trace_url("http://jaeger/trace/{trace_id}", "abc123") == "http://jaeger/trace/abc123"
    assert trace_url("http://jaeger/trace/{trace_id}", None) is None
    assert trace_url("http://x/{trace_id}", "a/b?c") == "http://x/a%2Fb%3Fc"


def test_sides_in_agreement_have_no_anomaly_R26() -> None:
    m = meeting("Review", erp_id="1")
    found = compare(settings=USER, links=[link("g1", "1", m)], outlook=[outlook("g1", m)], erp=[erp("1", m)], now=NOW)
    assert found == []


def test_each_kind_of_discrepancy_is_found_with_its_repair_R26() -> None:
    linked = meeting("Linked", erp_id="1")
    drifted_erp = meeting("Drift, ERP side", erp_id="2")
    gone = meeting("Mirror gone", erp_id="3")
    only_erp = meeting("Only in the ERP", erp_id="4", days=5)
    only_outlook = meeting("Only in Outlook", days=6)
    lost_link = meeting("Lost link", erp_id="5", days=7)
    copy = meeting("Linked", days=2)  # same synced fields as the linked one
    links = [
        link("g1", "1", linked),
        link("g2", "2", drifted_erp),
        link("g3", "3", gone),
    ]
    changed = meeting("Drift, ERP side — renamed", erp_id="2")
    found = compare(
        settings=USER,
        links=links,
        outlook=[
            outlook("g1", linked),
            outlook("g2", drifted_erp),
            outlook("g6", only_outlook),
            outlook("g7", lost_link, ref=(Kind.EVENT, "5")),
            outlook("g8", copy),
            outlook("g9", linked, ref=(Kind.EVENT, "1")),
        ],
        erp=[erp("1", linked), erp("2", changed), erp("3", gone), erp("4", only_erp), erp("5", lost_link)],
        now=NOW,
    )
    by = {(f.type, f.graph_id, f.erp_id): f for f in found}
    assert by[(AnomalyType.FIELD_DRIFT, "g2", "2")].repairs == (Repair.PUSH_TO_OUTLOOK,)
    assert "subject" in by[(AnomalyType.FIELD_DRIFT, "g2", "2")].details["fields"]
    assert by[(AnomalyType.BROKEN_LINK, "g3", "3")].repairs[0] is Repair.RECREATE_IN_OUTLOOK
    assert by[(AnomalyType.MISSING_IN_OUTLOOK, None, "4")].repairs == (Repair.PUSH_TO_OUTLOOK,)
    assert by[(AnomalyType.MISSING_IN_ERP, "g6", None)].repairs == (Repair.PUSH_TO_ERP,)
    assert by[(AnomalyType.BROKEN_LINK, "g7", "5")].repairs == (Repair.RELINK,)
    assert by[(AnomalyType.DUPLICATE, "g8", None)].repairs == (Repair.DELETE_OUTLOOK_DUPLICATE,)
    assert by[(AnomalyType.DUPLICATE, "g9", "1")].repairs == (Repair.DELETE_OUTLOOK_DUPLICATE,)
    assert len(found) == 7


def test_items_out_of_scope_or_still_settling_are_not_anomalies_R26() -> None:
    private = meeting("Private")
    private = Activity(**{**private.__dict__, "private": True})
    far = meeting("Next decade", days=4000)
    recent = OutlookEntry("event", "g3", meeting("Just now"), None, NOW - timedelta(seconds=5))
    erp_contact = Contact(given_name="Rui", surname="Costa", emails=("rui@acme.example",), representatives=("REP01",))
    found = compare(
        settings=USER,
        links=[],
        outlook=[outlook("g1", private), outlook("g2", far), recent],
        # Contacts go Outlook → ERP only by default (R17): an ERP contact has no Outlook mirror to miss.
        erp=[erp("9", erp_contact, Kind.CONTACT)],
        now=NOW,
        settle=timedelta(minutes=2),
    )
    assert found == []


def test_erp_duplicate_of_a_linked_record_is_found_R26() -> None:
    linked = meeting("Visit", erp_id="1", chrono="MTG1")
    twin = meeting("Visit", erp_id="2", chrono="MTG2")
    found = compare(
        settings=USER,
        links=[link("g1", "1", linked)],
        outlook=[outlook("g1", linked)],
        erp=[erp("1", linked), erp("2", twin)],
        now=NOW,
    )
    [dup] = found
    assert dup.type is AnomalyType.DUPLICATE and dup.erp_id == "2"
    assert dup.repairs == (Repair.DELETE_ERP_DUPLICATE,)
