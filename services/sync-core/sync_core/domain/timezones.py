"""Graph `dateTimeTimeZone` values ↔ aware UTC datetimes (R33).

Graph names zones the Windows way ("W. Europe Standard Time") or the IANA way ("Europe/Paris"), and
sends `dateTime` as local wall time with up to seven fractional digits. Conversion goes through
zoneinfo, so daylight-saving changes are exact. A wall time that falls in a DST gap or fold is read
with `fold=0` (the offset in force before the change), which is what Exchange does too.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz

from .errors import MappingError


class UnknownTimeZone(MappingError):
    """A time-zone name that is neither a Windows nor an IANA name."""


_UTC_NAMES = frozenset({"utc", "etc/utc", "etc/gmt", "gmt", "z", "tzone://microsoft/utc", "coordinated universal time"})
_WINDOWS = {name.lower(): iana for name, iana in win_tz.items()}
_FRACTION = re.compile(r"\.(\d+)")


@lru_cache(maxsize=512)
def zone(name: str | None) -> tzinfo:
    """The tzinfo for a Windows or IANA zone name; empty means UTC."""
    key = (name or "").strip()
    low = key.lower()
    if not key or low in _UTC_NAMES:
        return UTC
    if low in _WINDOWS:
        return ZoneInfo(_WINDOWS[low])
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(f"time zone {name!r} is neither a Windows nor an IANA name") from exc


def windows_name(iana: str) -> str | None:
    """The Windows name of an IANA zone, when there is one (for `Prefer: outlook.timezone`)."""
    return tz_win.get(iana)


def parse_date_time(value: str) -> datetime:
    """Graph's `dateTime` text (up to 7 fractional digits, maybe an offset or Z) as a datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python reads at most 6 fractional digits; Graph sends 7.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MappingError(f"not a Graph dateTime: {value!r}") from exc


def to_utc(date_time: str, time_zone: str | None) -> datetime:
    """A Graph `dateTimeTimeZone` pair as an aware UTC datetime (R33)."""
    local = parse_date_time(date_time)
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(time_zone))
    return local.astimezone(UTC)


def format_date_time(local: datetime) -> str:
    """Graph's wall-time text: seconds and seven fractional digits, no offset."""
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0"


def from_utc(dt: datetime, time_zone: str = "UTC") -> dict[str, str]:
    """A `dateTimeTimeZone` value for an aware datetime, shown in `time_zone` (Windows or IANA)."""
    if dt.tzinfo is None:
        raise MappingError("from_utc needs an aware datetime")
    return {"dateTime": format_date_time(dt.astimezone(zone(time_zone))), "timeZone": time_zone}


def local_date(date_time: str) -> date:
    """The calendar day of a Graph wall time as written, with no zone shift (R07 all-day days)."""
    return parse_date_time(date_time).date()


def due_day(date_time: str, time_zone: str | None) -> date:
    """The day of a To Do `dueDateTime` (R02, R07, R33).

    Written in a named zone, the day is the wall date as written. Graph answers in UTC, though: a
    due day set at local midnight east of UTC comes back as the evening before (midnight
    W. Europe = 23:00 UTC), west of UTC as the morning of the day. A due day is a midnight in some
    zone, so the nearest UTC midnight is the day that was meant (exact for offsets of -12 h to +12 h).
    """
    if zone(time_zone) is not UTC:
        return local_date(date_time)
    instant = parse_date_time(date_time)
    if instant.tzinfo is not None:
        instant = instant.astimezone(UTC).replace(tzinfo=None)
    return (instant + timedelta(hours=12)).date()


def floating_midnight(day: date, time_zone: str = "UTC") -> dict[str, str]:
    """An all-day boundary: midnight of `day`, whatever zone it is shown in (R07)."""
    return {"dateTime": format_date_time(datetime.combine(day, time())), "timeZone": time_zone}


def utc_midnight(day: date) -> datetime:
    """Midnight UTC starting `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)
