"""Expansion of a patternedRecurrence into occurrence dates.

Pattern and range semantics from https://learn.microsoft.com/graph/api/resources/recurrencepattern
and https://learn.microsoft.com/graph/api/resources/recurrencerange.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from graph_sim.errors import GraphError

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
INDEXES = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}
_HARD_LIMIT = 5000


def _weekday(name: str) -> int:
    try:
        return WEEKDAYS.index(name.lower())
    except ValueError as exc:
        raise GraphError(400, "ErrorInvalidRequest", f"Invalid day of week '{name}'.") from exc


def validate(recurrence: dict[str, Any]) -> None:
    """Reject what Graph rejects (missing pattern/range, unknown types)."""
    pattern = recurrence.get("pattern") or {}
    rng = recurrence.get("range") or {}
    if pattern.get("type") not in {
        "daily",
        "weekly",
        "absoluteMonthly",
        "relativeMonthly",
        "absoluteYearly",
        "relativeYearly",
    }:
        raise GraphError(400, "ErrorInvalidRequest", "Recurrence pattern type is missing or invalid.")
    if rng.get("type") not in {"endDate", "noEnd", "numbered"} or not rng.get("startDate"):
        raise GraphError(400, "ErrorInvalidRequest", "Recurrence range is missing or invalid.")
    if pattern["type"] in {"weekly", "relativeMonthly", "relativeYearly"} and not pattern.get("daysOfWeek"):
        raise GraphError(400, "ErrorInvalidRequest", "daysOfWeek is required for this pattern.")
    for name in pattern.get("daysOfWeek") or []:
        _weekday(name)


def _add_months(d: date, months: int) -> tuple[int, int]:
    m = d.month - 1 + months
    return d.year + m // 12, m % 12 + 1


def _relative_day(year: int, month: int, days: list[int], index: int) -> date | None:
    last = calendar.monthrange(year, month)[1]
    matches = [date(year, month, day) for day in range(1, last + 1) if date(year, month, day).weekday() in days]
    if not matches:
        return None
    if index == -1:
        return matches[-1]
    return matches[index] if index < len(matches) else None


def _candidates(pattern: dict[str, Any], start: date) -> Iterator[date]:
    kind = pattern["type"]
    interval = max(int(pattern.get("interval") or 1), 1)
    if kind == "daily":
        d = start
        while True:
            yield d
            d += timedelta(days=interval)
    elif kind == "weekly":
        first = _weekday(pattern.get("firstDayOfWeek") or "sunday")
        days = sorted({(_weekday(n) - first) % 7 for n in pattern["daysOfWeek"]})
        week_start = start - timedelta(days=(start.weekday() - first) % 7)
        while True:
            for offset in days:
                d = week_start + timedelta(days=offset)
                if d >= start:
                    yield d
            week_start += timedelta(weeks=interval)
    elif kind in {"absoluteMonthly", "relativeMonthly"}:
        k = 0
        while True:
            y, m = _add_months(start.replace(day=1), k)
            k += interval
            if kind == "absoluteMonthly":
                day = int(pattern.get("dayOfMonth") or start.day)
                if day <= calendar.monthrange(y, m)[1]:
                    d = date(y, m, day)
                    if d >= start:
                        yield d
            else:
                days = [_weekday(n) for n in pattern["daysOfWeek"]]
                rd = _relative_day(y, m, days, INDEXES.get(pattern.get("index") or "first", 0))
                if rd and rd >= start:
                    yield rd
    else:
        month = int(pattern.get("month") or start.month)
        y = start.year
        while True:
            if kind == "absoluteYearly":
                day = int(pattern.get("dayOfMonth") or start.day)
                if day <= calendar.monthrange(y, month)[1] and date(y, month, day) >= start:
                    yield date(y, month, day)
            else:
                days = [_weekday(n) for n in pattern["daysOfWeek"]]
                rd = _relative_day(y, month, days, INDEXES.get(pattern.get("index") or "first", 0))
                if rd and rd >= start:
                    yield rd
            y += interval


def dates(recurrence: dict[str, Any], until: date) -> Iterator[date]:
    """Occurrence dates of the series, in order, not after `until`."""
    pattern = recurrence["pattern"]
    rng = recurrence["range"]
    start = date.fromisoformat(rng["startDate"])
    end = date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" and rng.get("endDate") else None
    count = int(rng.get("numberOfOccurrences") or 0) if rng["type"] == "numbered" else 0
    for n, d in enumerate(_candidates(pattern, start)):
        if d > until or (end is not None and d > end) or (count and n >= count) or n >= _HARD_LIMIT:
            return
        yield d
