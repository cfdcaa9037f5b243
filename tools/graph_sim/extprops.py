"""Single-value extended properties and open extensions on items.

https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty and
https://learn.microsoft.com/graph/api/resources/opentypeextension.
"""

from __future__ import annotations

from typing import Any

from graph_sim.errors import GraphError
from graph_sim.store import Item


def apply_props(item: Item, props: Any) -> None:
    """Set (create or overwrite) the given properties; ids compare case-insensitively."""
    if not props:
        return
    if not isinstance(props, list):
        raise GraphError(400, "ErrorInvalidRequest", "singleValueExtendedProperties must be an array.")
    for prop in props:
        pid = (prop or {}).get("id")
        if not pid or "value" not in prop:
            raise GraphError(400, "ErrorInvalidExtendedPropertyValue", "An extended property needs an id and a value.")
        if pid.split(" ", 1)[0] not in {
            "String",
            "Integer",
            "Boolean",
            "SystemTime",
            "Long",
            "Double",
            "Binary",
            "Guid",
            "Short",
            "Float",
            "Currency",
            "Object",
            "ApplicationTime",
        }:
            raise GraphError(400, "ErrorInvalidExtendedProperty", f"The extended property id '{pid}' is not valid.")
        item.ext_props[pid.lower()] = (pid, str(prop["value"]))


def render_props(doc: dict[str, Any], item: Item, expand: dict[str, list[str] | None]) -> None:
    """Add the expanded extended properties (only those asked for) and open extensions."""
    if "singleValueExtendedProperties" in expand:
        wanted = expand["singleValueExtendedProperties"]
        props = [
            {"id": pid, "value": value}
            for low, (pid, value) in item.ext_props.items()
            if wanted is None or low in wanted
        ]
        if props:
            doc["singleValueExtendedProperties"] = props
    if "extensions" in expand:
        doc["extensions"] = [render_extension(e) for e in item.extensions.values()]


def render_extension(ext: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.openTypeExtension", **ext}


def add_extension(item: Item, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("extensionName")
    if not name:
        raise GraphError(400, "InvalidRequest", "extensionName is required.")
    if name in item.extensions:
        raise GraphError(409, "NameAlreadyExists", f"An extension named '{name}' already exists.")
    ext = {k: v for k, v in body.items() if not k.startswith("@")}
    ext["id"] = name
    item.extensions[name] = ext
    return ext
