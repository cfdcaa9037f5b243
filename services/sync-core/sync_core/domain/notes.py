"""Notes ↔ Graph `itemBody`: Outlook turns a text body into HTML, the ERP keeps plain text.

Only text crosses over; `html_to_text` reads what Outlook wrote, `normalise` is what the
fingerprint compares, so an HTML-wrapped echo of our own text body is not a change (R22).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from typing import Any

_BLOCK = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre"}
)
_HIDDEN = frozenset({"head", "style", "script", "title", "xml"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_WHITESPACE = re.compile(r"\s+")


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCK and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an Outlook HTML body: block elements become line breaks."""
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    text = unescape("".join(parser.parts))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def body_text(body: dict[str, Any] | None) -> str | None:
    """The text of a Graph `itemBody` (text or HTML); empty is None."""
    if not body:
        return None
    content = body.get("content") or ""
    if str(body.get("contentType", "text")).lower() == "html":
        content = html_to_text(content)
    content = content.replace("\r\n", "\n").strip()
    return content or None


def text_body(notes: str | None) -> dict[str, str]:
    """A Graph `itemBody` carrying plain text."""
    return {"contentType": "text", "content": notes or ""}


def normalise(notes: str | None) -> str:
    """What two notes must share to be the same: the words, whitespace collapsed."""
    if not notes:
        return ""
    return _WHITESPACE.sub(" ", notes.replace("\u00a0", " ").replace("\u200b", "")).strip()
