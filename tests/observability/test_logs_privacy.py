"""Logs: JSON lines with the trace and span ids; no e-mail, subject or body above debug level."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import trace

from shared.logs import JsonFormatter
from tests.support.system import USER_EMAIL, eventually, running_system

SUBJECT = "Confidential merger talk with Initech"
BODY = "Bring the signed term sheet"


@contextmanager
def every_log_record() -> Iterator[list[tuple[logging.LogRecord, Any]]]:
    """Every record any logger creates meanwhile, with the span context current when it was made.

    A record factory, not a handler: each service's start replaces the root logger's handlers.
    """
    records: list[tuple[logging.LogRecord, Any]] = []
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        records.append((record, trace.get_current_span().get_span_context()))
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield records
    finally:
        logging.setLogRecordFactory(previous)


def as_json_lines(records: list[tuple[logging.LogRecord, Any]], level: int) -> list[str]:
    """The records at `level` or above as the services write them, each with its own span context."""
    formatter = JsonFormatter("test")
    lines = []
    for record, span_context in records:
        if record.levelno >= level:
            with trace.use_span(trace.NonRecordingSpan(span_context)):
                lines.append(formatter.format(record))
    return lines


async def test_info_logs_of_a_round_trip_carry_no_email_subject_or_body(
    common_settings, database_url, tmp_path
) -> None:
    with every_log_record() as records:
        async with running_system(common_settings, database_url, tmp_path) as system:
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
            await system.graph.post_json(
                f"/users/{system.graph_user_id}/events",
                json={
                    "subject": SUBJECT,
                    "body": {"contentType": "text", "content": BODY},
                    "start": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                    "end": {"dateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                },
            )

            async def imported() -> list[dict[str, Any]]:
                return [a for a in await system.erp_items("activities") if a["subject"] == SUBJECT]

            await eventually(imported)
            r = await system.erp.post(
                "/api/v1/activities",
                json={
                    "kind": "meeting",
                    "subject": f"{SUBJECT}, second round",
                    "notes": BODY,
                    "start": (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
                    "end": (start + timedelta(days=1, hours=1)).isoformat().replace("+00:00", "Z"),
                    "representative": "REP01",
                },
            )
            assert r.status_code == 201, r.text

            async def mirrored() -> bool:
                events = await system.sim_items("events")
                return any(e["data"].get("subject") == f"{SUBJECT}, second round" for e in events)

            await eventually(mirrored)

    lines = as_json_lines(records, logging.INFO)
    assert any('"subscription created"' in line for line in lines), "the capture saw the services' info logs"
    secrets = (USER_EMAIL, USER_EMAIL.replace("@", "%40"), USER_EMAIL.split("@")[0], "Initech", "term sheet")
    leaks = [line for line in lines if any(s.lower() in line.lower() for s in secrets)]
    assert not leaks, "personal data above debug level:\n" + "\n".join(leaks[:10])


def test_a_json_log_line_carries_the_trace_and_span_ids(span_exporter) -> None:
    record = logging.LogRecord("sync_core.engine", logging.INFO, __file__, 1, "item synced", None, None)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("apply to erp") as span:
        line = json.loads(JsonFormatter("sync-core").format(record))
        context = span.get_span_context()
    assert line["level"] == "info" and line["service"] == "sync-core" and line["msg"] == "item synced"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
