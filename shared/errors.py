"""Errors shared across service boundaries."""


class SyncError(Exception):
    """Base of every error raised by our code."""


class PermanentError(SyncError):
    """Retrying cannot help (bad input, a rule refusal): the message goes to the dead-letter queue."""


class TransientError(SyncError):
    """Worth retrying later (remote unavailable, throttled, lock contention)."""


class BrokerUnavailable(TransientError):
    """The broker did not confirm a publish."""
