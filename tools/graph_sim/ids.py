"""Identifiers in the shapes Exchange uses (regular ids, immutable ids, change keys)."""

from __future__ import annotations

import base64
import secrets
import uuid


def _b64(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=")


def regular_id() -> str:
    """A store id that changes when the item moves to another folder (like EWS ids)."""
    return "AAMkAG" + _b64(33)


def immutable_id() -> str:
    """An id that survives moves (https://learn.microsoft.com/graph/outlook-immutable-id)."""
    return "AAkALg" + _b64(33)


def folder_id() -> str:
    return "AAMkAGF" + _b64(24)


def change_key() -> str:
    return "CQAAABYAAA" + _b64(12)


def ical_uid() -> str:
    return "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper()


def todo_id() -> str:
    return "AAMkADI" + _b64(30)


def new_uuid() -> str:
    return str(uuid.uuid4())
