"""OData query options the product uses: $top/$skiptoken paging, $select, and extended properties.

Extended-property $filter/$expand syntax from
https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from graph_sim.errors import GraphError
from graph_sim.routing import GraphRequest

_EXT_FILTER = re.compile(
    r"^\s*singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id\s+eq\s+'((?:[^']|'')*)'"
    r"(?:\s+and\s+\1/value\s+eq\s+'((?:[^']|'')*)')?\s*\)\s*$",
    re.IGNORECASE,
)
_EXT_EXPAND = re.compile(r"singleValueExtendedProperties(?:\(\s*\$filter\s*=\s*(.*)\))?$", re.IGNORECASE)
_SAFE = "$'(),:"
_ID_EQ = re.compile(r"\s*id\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def ext_filter(req: GraphRequest) -> tuple[str, str | None] | None:
    """(property id lower-cased, value or None) from a singleValueExtendedProperties/Any filter."""
    text = req.query.get("$filter")
    if text is None:
        return None
    m = _EXT_FILTER.match(text)
    if m is None:
        raise GraphError(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The simulator supports only $filter=singleValueExtendedProperties/Any(ep: ep/id eq "
            f"'...' and ep/value eq '...'); got: {text}",
        )
    value = m.group(3)
    return m.group(2).replace("''", "'").lower(), value.replace("''", "'") if value is not None else None


def expansions(req: GraphRequest) -> dict[str, list[str] | None]:
    """$expand items: name → list of requested extended-property ids (lower) or None for all."""
    text = req.query.get("$expand")
    out: dict[str, list[str] | None] = {}
    if not text:
        return out
    for part in _split_top(text):
        part = part.strip()
        m = _EXT_EXPAND.match(part)
        if m:
            flt = m.group(1)
            if flt is None:
                out["singleValueExtendedProperties"] = None
            else:
                wanted = [
                    x.group(1).replace("''", "'").lower()
                    for x in (_ID_EQ.fullmatch(p) for p in re.split(r"\s+or\s+", flt, flags=re.I))
                    if x
                ]
                if not wanted:
                    raise GraphError(400, "BadRequest", f"Unsupported $expand filter: {flt}")
                out["singleValueExtendedProperties"] = wanted
        else:
            out[part.split("(")[0]] = None
    return out


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        parts.append(cur)
    return parts


def select(doc: dict[str, Any], req: GraphRequest) -> dict[str, Any]:
    text = req.query.get("$select")
    if not text:
        return doc
    keep = {f.strip().lower() for f in text.split(",")} | {"id"}
    return {k: v for k, v in doc.items() if k.startswith("@") or k.lower() in keep}


def link(req: GraphRequest, path: str, params: dict[str, str]) -> str:
    query = urlencode(params, quote_via=quote, safe=_SAFE)
    return f"{req.base_url}{quote(path)}?{query}"


def context(req: GraphRequest, fragment: str) -> str:
    return f"{req.base_url}/$metadata#{fragment}"


def page(
    req: GraphRequest, values: list[dict[str, Any]], fragment: str, next_link: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.context": context(req, fragment), "value": values}
    if next_link:
        body["@odata.nextLink"] = next_link
    return body
