"""The errors the pure core raises; the adapters turn them into journal lines (R25)."""

from __future__ import annotations


class DomainError(ValueError):
    """Base of every error of `sync_core.domain`."""


class MappingError(DomainError):
    """An item cannot be mapped: the message names the field and what is wrong with it."""
