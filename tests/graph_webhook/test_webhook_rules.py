"""graph-webhook's pure rules, without I/O: payload checks, who is watched, what to do with subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from graph_webhook.directory import Representative
from graph_webhook.models import Subscription, SubscriptionStatus
from graph_webhook.notifications import handshake
from graph_webhook.payloads import PayloadError, parse_collection
from graph_webhook.subscriptions import Create, Delete, Recreate, Renew, plan, wanted_pairs
from shared.envelope import Kind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIFETIME = timedelta(minutes=4230)


def _row(
    email: str = "ann@x.example", kind: Kind = Kind.EVENT, left: timedelta = LIFETIME, **kw: object
) -> Subscription:
    values: dict[str, object] = {
        "id": f"{email}-{kind.value}",
        "user_email": email,
        "graph_user_id": "g-" + email,
        "kind": kind.value,
        "resource": "/users/x/events",
        "client_state": "s",
        "expires_at": NOW + left,
    }
    values.update(kw)
    return Subscription(**values)  # type: ignore[arg-type]


def test_validation_token_is_echoed_as_inert_text() -> None:
    """https://learn.microsoft.com/graph/change-notifications-delivery-webhooks#notificationurl-validation"""
    response = handshake("<script>alert(1)</script>")
    assert response.body == b"<script>alert(1)</script>"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert handshake("").status_code == 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty body"),
        (b"{not json", "not JSON"),
        (b'{"values": []}', "value"),
        (b'{"value": {"a": 1}}', "value"),
        (b'{"value": [{"changeType": "created"}]}', "value.0.subscriptionId"),
        (b'{"value": [{"subscriptionId": 5}]}', "value.0.subscriptionId"),
    ],
)
def test_bodies_that_are_not_a_notification_collection_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_collection(body)
    assert caught.value.status == 400
    assert reason in caught.value.reason


def test_resource_id_comes_from_resource_data_else_from_the_resource_path() -> None:
    [with_data, path_only, odata_key] = parse_collection(
        orjson.dumps(
            {
                "value": [
                    {"subscriptionId": "s", "resource": "Users/u/Events/AAk1", "resourceData": {"id": "AAk2"}},
                    {"subscriptionId": "s", "resource": "Users/u/todo/lists/L/tasks/T9"},
                    {"subscriptionId": "s", "resource": "Users('u')/Messages('M1')"},
                ]
            }
        )
    )
    assert (with_data.resource_id, path_only.resource_id, odata_key.resource_id) == ("AAk2", "T9", "M1")


def test_only_active_switched_on_sales_representatives_with_a_mailbox_are_watched_R13_R16() -> None:
    base = {"code": "A", "email": "Ann@X.example", "active": True, "sync_enabled": True, "sales_role": True}
    ann = Representative.from_api(base)
    assert ann.email == "ann@x.example"
    assert ann.watched_kinds() == {Kind.EVENT, Kind.TASK, Kind.CONTACT}
    for off in ({"active": False}, {"sync_enabled": False}, {"sales_role": False}, {"email": ""}):
        assert Representative.from_api({**base, **off}).watched_kinds() == frozenset()


def test_watched_collections_follow_the_per_user_switches_R16_R17() -> None:
    base = {"code": "A", "email": "a@x.example", "sync_enabled": True, "sales_role": True}
    no_activities_in = Representative.from_api({**base, "activities_outlook_to_erp": False})
    assert no_activities_in.watched_kinds() == {Kind.CONTACT}
    calls_only = Representative.from_api({**base, "sync_tasks": False, "sync_meetings": False})
    assert calls_only.watched_kinds() == {Kind.TASK, Kind.CONTACT}, "calls live in the To Do list too (R03)"
    no_contacts = Representative.from_api({**base, "contacts_outlook_to_erp": False})
    assert Kind.CONTACT not in no_contacts.watched_kinds()
    two_way = Representative.from_api({**base, "contacts_outlook_to_erp": False, "contacts_two_way": True})
    assert Kind.CONTACT in two_way.watched_kinds()


def test_plan_creates_missing_renews_old_recreates_removed_deletes_unwanted() -> None:
    fresh = _row("ann@x.example", Kind.EVENT, left=LIFETIME * 0.9)
    ageing = _row("ann@x.example", Kind.CONTACT, left=LIFETIME * 0.2)
    removed = _row("ann@x.example", Kind.TASK, status=SubscriptionStatus.REMOVED.value)
    expired = _row("bob@x.example", Kind.EVENT, left=-timedelta(minutes=1))
    reauth = _row("bob@x.example", Kind.CONTACT, status=SubscriptionStatus.REAUTHORIZE.value)
    unwanted = _row("cy@x.example", Kind.EVENT)
    wanted = {(e, k) for e in ("ann@x.example", "bob@x.example") for k in (Kind.EVENT, Kind.CONTACT, Kind.TASK)}
    actions = plan([fresh, ageing, removed, expired, reauth, unwanted], wanted, NOW, LIFETIME, 0.25)
    assert Renew(ageing) in actions
    assert Recreate(removed, "subscriptionRemoved") in actions
    assert Recreate(expired, "subscriptionRemoved") in actions
    assert Renew(reauth, "reauthorized") in actions
    assert Delete(unwanted) in actions
    assert Create("bob@x.example", Kind.TASK) in actions
    assert not any(getattr(a, "row", None) is fresh for a in actions)
    assert len(actions) == 6


def test_renewal_starts_when_less_than_a_quarter_of_the_life_is_left() -> None:
    just_over = _row(left=LIFETIME * 0.26)
    just_under = _row(left=LIFETIME * 0.24)
    wanted = {("ann@x.example", Kind.EVENT)}
    assert plan([just_over], wanted, NOW, LIFETIME, 0.25) == []
    assert plan([just_under], wanted, NOW, LIFETIME, 0.25) == [Renew(just_under)]


def test_without_the_user_list_nothing_is_created_or_deleted() -> None:
    ageing = _row(left=timedelta(minutes=10))
    assert plan([ageing], None, NOW, LIFETIME, 0.25) == [Renew(ageing)]


def test_wanted_pairs_only_for_enabled_users() -> None:
    reps = [
        Representative(code="A", email="a@x.example", sync_enabled=True, sales_role=True, sync_contacts=False),
        Representative(code="B", email="b@x.example", sync_enabled=False, sales_role=True),
    ]
    assert wanted_pairs(reps) == {("a@x.example", Kind.EVENT), ("a@x.example", Kind.TASK)}
