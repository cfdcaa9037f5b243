"""Reading finished spans as trees: find a span, walk to its ancestors, match a chain of hops."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

Predicate = Callable[[ReadableSpan], bool]


def attr(span: ReadableSpan, *keys: str) -> str:
    """The first of `keys` the span has, as text ('' when none)."""
    attrs = span.attributes or {}
    for key in keys:
        if key in attrs:
            return str(attrs[key])
    return ""


def method(span: ReadableSpan) -> str:
    return attr(span, "http.request.method", "http.method")


def url(span: ReadableSpan) -> str:
    return attr(span, "url.full", "http.url").split("?", 1)[0]


def trace_id(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")  # type: ignore[union-attr]


def server(http_method: str, route: str) -> Predicate:
    return lambda s: s.kind is SpanKind.SERVER and method(s) == http_method and attr(s, "http.route") == route


def client(http_method: str, path_suffix: str) -> Predicate:
    return lambda s: s.kind is SpanKind.CLIENT and method(s) == http_method and url(s).endswith(path_suffix)


def producer(message_type: str) -> Predicate:
    return lambda s: (
        s.kind is SpanKind.PRODUCER
        and attr(s, "messaging.operation.type") == "publish"
        and attr(s, "sync.message_type") == message_type
    )


def consumer(message_type: str) -> Predicate:
    return lambda s: (
        s.kind is SpanKind.CONSUMER
        and attr(s, "messaging.operation.type") == "process"
        and attr(s, "sync.message_type") == message_type
    )


def internal(name: str) -> Predicate:
    return lambda s: s.kind is SpanKind.INTERNAL and s.name == name


@dataclass(frozen=True)
class Hop:
    """One expected span of a chain; `child_of_previous`: its parent must be the previous hop's span."""

    what: str
    matches: Predicate
    child_of_previous: bool = True


class SpanTree:
    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.by_id = {s.context.span_id: s for s in self.spans}  # type: ignore[union-attr]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def path_to_root(self, span: ReadableSpan) -> list[ReadableSpan]:
        """`span` and its ancestors, root first (as far as the captured spans go)."""
        path = [span]
        while (up := self.parent(path[-1])) is not None:
            path.append(up)
        return path[::-1]

    def chain(self, leaf: ReadableSpan, hops: Sequence[Hop]) -> list[ReadableSpan] | str:
        """The spans of `hops` on the path from the root to `leaf`, or why they are not there."""
        path = self.path_to_root(leaf)
        found: list[ReadableSpan] = []
        position = -1
        for hop in hops:
            candidates = [i for i in range(position + 1, len(path)) if hop.matches(path[i])]
            if not candidates:
                return f"no {hop.what} after {found[-1].name if found else 'the root'}"
            index = candidates[0]
            if found and hop.child_of_previous and index != position + 1:
                between = ", ".join(s.name for s in path[position + 1 : index])
                return f"{hop.what} is not a child of {found[-1].name} (in between: {between})"
            found.append(path[index])
            position = index
        return found

    def render(self, trace: str) -> str:
        """The spans of one trace as an indented tree (for failure messages)."""
        spans = [s for s in self.spans if trace_id(s) == trace]
        children: dict[int | None, list[ReadableSpan]] = {}
        for s in spans:
            parent = s.parent.span_id if s.parent is not None and s.parent.span_id in self.by_id else None
            children.setdefault(parent, []).append(s)
        lines: list[str] = []

        def walk(s: ReadableSpan, depth: int) -> None:
            lines.append(f"{'  ' * depth}{s.name} [{s.kind.name}] {url(s) or attr(s, 'http.route')}")
            for c in sorted(children.get(s.context.span_id, []), key=lambda x: x.start_time or 0):  # type: ignore[union-attr]
                walk(c, depth + 1)

        for root in sorted(children.get(None, []), key=lambda x: x.start_time or 0):
            walk(root, 0)
        return "\n".join(lines)
