"""Time zones as Graph speaks them: Windows names and IANA names, dateTimeTimeZone values.

Graph returns times in UTC unless the request says `Prefer: outlook.timezone="..."`
(https://learn.microsoft.com/graph/api/resources/datetimetimezone and
https://learn.microsoft.com/graph/api/user-list-events#request-headers).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from graph_sim.errors import GraphError

_ALIASES = {"utc": "UTC", "etc/utc": "UTC", "gmt": "UTC", "tzone://microsoft/utc": "UTC", "z": "UTC"}
_WIN_LOWER = {k.lower(): v for k, v in win_tz.items()}


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    key = name.strip()
    low = key.lower()
    if low in _ALIASES:
        return UTC
    if low in _WIN_LOWER:
        return ZoneInfo(_WIN_LOWER[low])
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def zone(name: str | None) -> tzinfo:
    """The tzinfo for a Windows or IANA name; unknown names are Graph's 400."""
    if not name:
        return UTC
    tz = _zone(name)
    if tz is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'.",
        )
    return tz


def parse_local(value: str) -> datetime:
    """Parse Graph's `dateTime` (up to 7 fractional digits, optional Z/offset) as naive or aware."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            digits += rest[i]
            i += 1
        text = head + "." + (digits[:6].ljust(6, "0")) + rest[i:]
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidRequest", f"Cannot convert the literal '{value}' to DateTime.") from exc


def to_utc(value: str, tz_name: str | None) -> datetime:
    """A dateTimeTimeZone pair as an aware UTC datetime."""
    dt = parse_local(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz_name))
    return dt.astimezone(UTC)


def parse_instant(value: str) -> datetime:
    """A query-string instant (calendarView startDateTime); no offset means UTC."""
    dt = parse_local(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def fmt_local(dt: datetime) -> str:
    """Graph's 7-digit local dateTime text."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0"


def fmt_utc_stamp(dt: datetime) -> str:
    """createdDateTime-style UTC stamp with 7 fractional digits and Z."""
    return fmt_local(dt.astimezone(UTC)) + "Z"


def dtz(dt_utc: datetime, tz_name: str | None) -> dict[str, str]:
    """A dateTimeTimeZone value for `dt_utc` shown in `tz_name` (UTC when absent)."""
    if not tz_name:
        return {"dateTime": fmt_local(dt_utc.astimezone(UTC)), "timeZone": "UTC"}
    return {"dateTime": fmt_local(dt_utc.astimezone(zone(tz_name))), "timeZone": tz_name}


def floating(dt_naive: datetime, tz_name: str | None) -> dict[str, str]:
    """An all-day boundary: the same midnight whatever zone it is shown in."""
    return {"dateTime": fmt_local(dt_naive), "timeZone": tz_name or "UTC"}
