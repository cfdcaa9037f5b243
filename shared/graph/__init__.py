"""Microsoft Graph client shared by graph-webhook and sync-core: msal tokens, httpx, retries, errors."""

from shared.graph.auth import TokenProvider, TokenSource
from shared.graph.client import GraphClient, mailbox_of
from shared.graph.errors import (
    GraphAuthError,
    GraphAuthUnavailable,
    GraphBadRequest,
    GraphError,
    GraphNotFound,
    GraphPreconditionFailed,
    GraphSyncStateNotFound,
    GraphThrottled,
    GraphUnavailable,
)

__all__ = [
    "GraphAuthError",
    "GraphAuthUnavailable",
    "GraphBadRequest",
    "GraphClient",
    "GraphError",
    "GraphNotFound",
    "GraphPreconditionFailed",
    "GraphSyncStateNotFound",
    "GraphThrottled",
    "GraphUnavailable",
    "TokenProvider",
    "TokenSource",
    "mailbox_of",
]
