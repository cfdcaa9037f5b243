"""Notes ↔ Graph `itemBody`: Outlook turns a text body into HTML, the ERP keeps plain text.

Only text crosses over; `html_to_text` reads what Outlook wrote, `normalise` is what the
fingerprint compares, so an HTML-wrapped echo of our own text body is not a change (R22).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

_BLOCK = frozenset(
    {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre"}
)
_HIDDEN = frozenset({"head", "style", "script", "title", "xml"})
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_WHITESPACE = re.compile(r"\s+")
_BLOCK_MARK = "\x00"
_BREAK_MARK = "\x01"
_BREAKS = re.compile(r"[\x00\x01]+")


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append(_BREAK_MARK)
        elif tag in _BLOCK:
            self.parts.append(_BLOCK_MARK)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append(_BREAK_MARK)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCK:
            self.parts.append(_BLOCK_MARK)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            # In HTML, source line breaks are spaces; only <br> and blocks break lines.
            self.parts.append(_SPACES.sub(" ", data))


def _breaks(match: re.Match[str]) -> str:
    # Block edges between two texts make one line break; each <br> inside them one more, so
    # Outlook's "<div>a</div><div><br></div><div>b</div>" reads back as "a\n\nb".
    run = match.group(0)
    brs = run.count(_BREAK_MARK)
    return "\n" * (brs + 1 if _BLOCK_MARK in run else brs)


def html_to_text(html: str) -> str:
    """The visible text of an Outlook HTML body: blocks and <br> become line breaks."""
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    # Spaces around break marks don't separate anything.
    text = re.sub(r" *([\x00\x01]) *", r"\1", text)
    text = _BREAKS.sub(_breaks, text.strip(" " + _BLOCK_MARK))
    return "\n".join(line.strip() for line in text.split("\n")).strip()


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
