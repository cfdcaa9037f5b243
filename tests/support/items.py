"""Times and Graph/ERP bodies the end-to-end tests build their items from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def at(days: int = 2, hour: int = 10, minute: int = 0) -> datetime:
    """A UTC instant `days` from today at hour:minute (inside the default sync window, R34)."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=days, hours=hour, minutes=minute)


def z(dt: datetime) -> str:
    """The ERP's ISO 8601 UTC text."""
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def dtz(dt: datetime, zone: str = "UTC") -> dict[str, str]:
    """A Graph dateTimeTimeZone; `dt` is taken as wall time in `zone` when naive."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return {"dateTime": dt.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone}


def event_body(subject: str, start: datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    """A Graph event as a user would create it in Outlook (UTC times)."""
    return {"subject": subject, "start": dtz(start), "end": dtz(start + timedelta(minutes=minutes)), **extra}


def meeting_body(subject: str, start: datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    """An ERP meeting of REP01."""
    return {
        "kind": "meeting",
        "subject": subject,
        "start": z(start),
        "end": z(start + timedelta(minutes=minutes)),
        "representative": "REP01",
        **extra,
    }


def ext_value(item: dict[str, Any], name: str) -> str | None:
    """One of our single-value extended properties on a Graph item (by its Name)."""
    for prop in item.get("singleValueExtendedProperties") or ():
        if str(prop.get("id", "")).endswith(f"Name {name}"):
            return str(prop.get("value"))
    return None
