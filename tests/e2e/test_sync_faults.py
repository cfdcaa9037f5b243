"""Graph's failure modes ridden out: 429/503 storms, expired delta tokens, notification bursts and
missed notifications (R29, R30, R35) — without duplicates."""

from __future__ import annotations

from datetime import timedelta

from tests.support.items import at, event_body, meeting_body
from tests.support.system import System, eventually


async def subjects(system: System) -> tuple[list[str], list[str]]:
    """(ERP activity subjects, Outlook event subjects), sorted."""
    erp = sorted(a["subject"] for a in await system.erp_items("activities"))
    outlook = sorted(e["data"].get("subject") for e in await system.sim_items("events"))
    return erp, outlook


async def all_synced(system: System, expected: list[str]) -> bool:
    erp, outlook = await subjects(system)
    return erp == sorted(expected) and outlook == sorted(expected)


async def test_a_429_and_503_storm_is_ridden_out_without_duplicates_or_failures_R35(system: System) -> None:
    await system.sim_control(
        "POST",
        "faults",
        {"force_429": {"count": 20, "retry_after": 0.2}, "force_503": {"count": 8, "retry_after": 0.2}},
    )
    names = []
    for n in range(3):
        names.append(f"ERP storm {n}")
        await system.erp_write("POST", "activities", meeting_body(names[-1], at(days=3 + n)), expect=201)
    for n in range(3):
        names.append(f"Outlook storm {n}")
        # Made through the simulator's control API (as the user in Outlook), which the faults spare.
        await system.sim_control("POST", f"users/{system.graph_user_id}/events", event_body(names[-1], at(days=8 + n)))

    await eventually(lambda: all_synced(system, names), timeout=30)
    stats = await system.sim_control("GET", "stats")
    assert stats["by_status"].get("429", 0) >= 20 and stats["by_status"].get("503", 0) >= 8
    faults = await system.sim_control("GET", "faults")
    assert faults["force_429"]["count"] == 0 and faults["force_503"]["count"] == 0  # the storm really happened
    assert not await system.journal(outcome="failed")


async def test_an_expired_delta_token_restarts_the_delta_without_duplicates_R30(system: System) -> None:
    tasks = await system.tasks_path()
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Before expiry", at(days=2)))
    await system.erp_write("POST", "activities", meeting_body("ERP before expiry", at(days=4)), expect=201)
    await system.graph.post_json(tasks, json={"title": "Task before expiry"})
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Pre", "surname": "Expiry", "emailAddresses": [{"address": "pre@acme.example"}]},
    )
    await eventually(lambda: _erp_subjects(system, ["Before expiry", "ERP before expiry", "Task before expiry"]))
    await eventually(lambda: _erp_count(system, "contacts", 1))

    await system.sim_control("POST", "delta/expire", {"user": system.graph_user_id})
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("After expiry", at(days=6)))
    await system.graph.post_json(tasks, json={"title": "Task after expiry"})
    await system.graph.post_json(
        f"{system.user_path()}/contacts",
        json={"givenName": "Post", "surname": "Expiry", "emailAddresses": [{"address": "post@acme.example"}]},
    )

    expected = ["Before expiry", "ERP before expiry", "After expiry", "Task before expiry", "Task after expiry"]
    await eventually(lambda: _erp_subjects(system, expected))
    await eventually(lambda: _erp_count(system, "contacts", 2))
    stats = await system.sim_control("GET", "stats")
    gone = sum(n for path, by in stats["requests"].items() if "/delta" in path for s, n in by.items() if s == "410")
    assert gone >= 3  # each collection met the expired token and started over
    _, outlook = await subjects(system)
    assert sorted(outlook) == ["After expiry", "Before expiry", "ERP before expiry"]
    assert len(await system.sim_items("tasks")) == 2


async def _erp_subjects(system: System, expected: list[str]) -> bool:
    return sorted(a["subject"] for a in await system.erp_items("activities")) == sorted(expected)


async def _erp_count(system: System, collection: str, n: int) -> bool:
    return len(await system.erp_items(collection)) == n


async def test_a_burst_of_notifications_collapses_into_few_delta_rounds_R29_R30(system: System) -> None:
    before = await system.delta_requests()
    names = [f"Burst {n:02d}" for n in range(20)]
    for n, name in enumerate(names):
        start = at(days=2) + timedelta(hours=n)
        await system.graph.post_json(f"{system.user_path()}/events", json=event_body(name, start, 30))
    await eventually(lambda: _erp_subjects(system, names), timeout=30)
    await system.sim_control("POST", "notifications/flush")
    stats = await system.sim_control("GET", "stats")
    assert stats["notifications"]["delivered"] >= 20
    rounds = await system.delta_requests() - before
    # One round per notification would be 20 or more delta pages; the burst collapses.
    assert rounds <= 10, rounds


async def test_missed_notifications_are_healed_by_a_resync_R29(system: System) -> None:
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 1.0}})
    await system.graph.post_json(f"{system.user_path()}/events", json=event_body("Never notified", at(days=3)))
    await system.sim_control("POST", "notifications/flush")
    await system.sim_control("POST", "faults", {"notifications": {"drop_ratio": 0.0}})
    [sub] = [s for s in await system.subscriptions() if s["resource"].endswith("/events")]
    await system.sim_control("POST", f"subscriptions/{sub['id']}/lifecycle", {"lifecycleEvent": "missed"})
    await eventually(lambda: _erp_subjects(system, ["Never notified"]))
