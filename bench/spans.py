"""A span sink for `--trace`: the services export their spans (OTLP/HTTP) here, the bench breaks latency down.

Only for diagnosis: exporting costs the services CPU, so the suite's figures are measured without it.
`breakdown()` gives, per span name, how long spans of that name took (p50, p99, count), which is
where a change's time goes between the notification and the ERP row.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.stats import summary

_PREFIX = re.compile(r"^bench-[0-9a-f]{8}\.")
_SHARD = re.compile(r"\.s\d+$")


@dataclass(frozen=True, slots=True)
class SpanRecord:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


class SpanSink:
    """OTLP/HTTP (protobuf) receiver on 127.0.0.1; set OTEL_EXPORTER_OTLP_ENDPOINT to `endpoint`."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink._ingest(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="span-sink", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Settings that make a service export every span here, promptly and without dropping any."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "500",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "2048",
        }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _ingest(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        out: list[SpanRecord] = []
        for rs in request.resource_spans:
            service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "unknown")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append(
                        SpanRecord(
                            service,
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.start_time_unix_nano,
                            s.end_time_unix_nano,
                        )
                    )
        with self._lock:
            self.spans.extend(out)

    def breakdown(self, since_ns: int = 0) -> list[dict[str, Any]]:
        """Per (service, span name): count, p50, p99 and total milliseconds, by total time."""
        groups: dict[tuple[str, str], list[float]] = defaultdict(list)
        with self._lock:
            spans = [s for s in self.spans if s.start_ns >= since_ns]
        for s in spans:
            groups[(s.service, _generic(s.name))].append(s.ms)
        rows = [
            {"service": svc, "span": name, **summary(v), "total_ms": round(sum(v), 1)}
            for (svc, name), v in groups.items()
        ]
        return sorted(rows, key=lambda r: -float(r["total_ms"]))


def _generic(name: str) -> str:
    """Span names with ids, the stack's AMQP prefix and shard numbers folded, so like spans group."""
    parts = []
    for token in name.split(" "):
        token = _SHARD.sub(".s{n}", _PREFIX.sub("", token))
        if token.startswith(("https://", "http://")) or token.count("/") > 1:
            token = "/".join("{id}" if (len(seg) > 20 or seg.isdigit()) else seg for seg in token.split("/"))
        parts.append(token)
    return " ".join(parts)
