"""Optimistic concurrency: `If-Match` against an item's @odata.etag / changeKey (412 when stale)."""

from __future__ import annotations

from graph_sim import ids
from graph_sim.errors import GraphError
from graph_sim.routing import GraphRequest
from graph_sim.store import Item


def check_if_match(req: GraphRequest, item: Item) -> None:
    """Graph answers 412 ErrorIrresolvableConflict when the change key is stale."""
    header = req.headers.get("if-match")
    if not header or header.strip() == "*":
        return
    wanted = {v.strip().removeprefix("W/").strip('"') for v in header.split(",")}
    if item.change_key not in wanted:
        raise GraphError(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed in the "
            "request does not match the current change key for the item.",
        )


def bump(item: Item, now: object) -> None:
    """A new changeKey (hence etag) on every update."""
    item.change_key = ids.change_key()
    item.modified = now  # type: ignore[assignment]
