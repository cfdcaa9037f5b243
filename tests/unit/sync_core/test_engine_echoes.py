"""Which Outlook change notifications start no delta round (R22): the echo of sync-core's own write,
and a user's version a delta round already carried over to the ERP before its notification came."""

from __future__ import annotations

from typing import Any

from shared.bus import delivered_before
from shared.envelope import Envelope, Kind, MessageType
from sync_core.engine import OWN_KEYS_PER_ITEM, Engine

USER = "ana.silva@contoso.example"


def engine() -> Engine:
    return Engine(state=None, erp=None, graph=None, tenant="t")  # type: ignore[arg-type]


def notification(etag: str | None, change: str = "updated", item: str = "g1", kind: Kind = Kind.EVENT) -> Envelope:
    payload: dict[str, Any] = {"change_type": change, "resource_id": item}
    if etag is not None:
        payload["etag"] = f'W/"{etag}"'
    return Envelope(type=MessageType.GRAPH_CHANGED, tenant="t", user=USER, kind=kind, payload=payload)


def test_the_echo_of_a_version_written_or_carried_over_runs_no_round_R22() -> None:
    e = engine()
    e._remember_own_version(USER, Kind.EVENT, "g1", "read-by-delta")  # the user's version, now in the ERP
    e._remember_own_version(USER, Kind.EVENT, "g1", "stamped")  # our R21 stamp over it
    assert e._own_echo(notification("read-by-delta", change="created"))  # came after the round
    assert e._own_echo(notification("stamped"))


def test_any_other_version_deletion_or_item_runs_the_round_R22() -> None:
    e = engine()
    e._remember_own_version(USER, Kind.EVENT, "g1", "stamped")
    assert not e._own_echo(notification("the-users-next-edit"))
    assert not e._own_echo(notification(None))
    assert not e._own_echo(notification("stamped", change="deleted"))
    assert not e._own_echo(notification("stamped", item="g2"))
    assert not e._own_echo(notification("stamped", kind=Kind.CONTACT))


def test_a_redelivered_notification_runs_its_round_again_R22() -> None:
    """Its first round may have carried this version over and then failed on another item, whose own
    notification it had covered: skipping the retry would leave that item unsynced."""
    e = engine()
    e._remember_own_version(USER, Kind.EVENT, "g1", "read-by-delta")
    token = delivered_before.set(True)
    try:
        assert not e._own_echo(notification("read-by-delta"))
    finally:
        delivered_before.reset(token)


def test_only_the_last_few_versions_of_an_item_are_kept() -> None:
    e = engine()
    keys = [f"v{i}" for i in range(OWN_KEYS_PER_ITEM + 2)]
    for k in keys:
        e._remember_own_version(USER, Kind.EVENT, "g1", k)
    assert not e._own_echo(notification(keys[0]))
    assert all(e._own_echo(notification(k)) for k in keys[-OWN_KEYS_PER_ITEM:])
