"""Request bodies used across the simulator's tests."""

from __future__ import annotations

from typing import Any

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
ERP_ID = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name ErpId"


def event_body(
    subject: str = "Visit",
    start: str = "2030-03-04T10:00:00",
    end: str = "2030-03-04T11:00:00",
    tz: str = "W. Europe Standard Time",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": tz},
        "end": {"dateTime": end, "timeZone": tz},
        **extra,
    }
