"""Spans are recorded only while something exports them (ADR 0053, `RecordWhenExported`)."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.telemetry import RecordWhenExported, RedactingSpanProcessor, SpanProcessors


def provider() -> tuple[TracerProvider, SpanProcessors]:
    processors = SpanProcessors()
    tp = TracerProvider(sampler=RecordWhenExported(processors), active_span_processor=processors)
    tp.add_span_processor(RedactingSpanProcessor())
    return tp, processors


def test_unexported_spans_are_not_recorded_but_keep_their_ids_for_logs_and_callees() -> None:
    tp, processors = provider()
    assert not processors.exporting  # the redaction alone exports nothing
    with tp.get_tracer("t").start_as_current_span("work") as span:
        assert not span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid and ctx.trace_id != 0  # log lines and journal lines still carry it
        with tp.get_tracer("t").start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == ctx.trace_id  # and it propagates


def test_once_an_exporter_is_added_spans_are_recorded_even_under_an_unsampled_caller() -> None:
    tp, processors = provider()
    exporter = InMemorySpanExporter()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    assert processors.exporting
    caller = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    parent = trace.set_span_in_context(NonRecordingSpan(caller))
    with tp.get_tracer("t").start_as_current_span("work", context=parent) as span:
        assert span.is_recording()
    [finished] = exporter.get_finished_spans()
    assert finished.context is not None and finished.context.trace_id == 0xABC  # the caller's trace goes on
    assert finished.parent is not None and finished.parent.span_id == 0xDEF
