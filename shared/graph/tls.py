"""Which certificate authorities sign Graph's TLS certificate: a configured bundle or the system store."""

from __future__ import annotations

import ssl
from pathlib import Path

from shared.settings import GraphSettings


def ca_bundle(settings: GraphSettings) -> str | None:
    """The configured CA bundle path, or None for the system trust store."""
    bundle = (settings.graph_ca_bundle or "").strip()
    return bundle or None


def ssl_context(settings: GraphSettings) -> ssl.SSLContext:
    """A verifying client context trusting only the configured bundle (or the system store)."""
    bundle = ca_bundle(settings)
    if bundle is not None and not Path(bundle).is_file():
        raise FileNotFoundError(f"GRAPH_CA_BUNDLE {bundle!r} does not exist")
    return ssl.create_default_context(cafile=bundle)


def requests_verify(settings: GraphSettings) -> str | bool:
    """`verify=` for a requests session: the bundle, else the system store's CA file when it has one."""
    bundle = ca_bundle(settings)
    if bundle is not None:
        if not Path(bundle).is_file():
            raise FileNotFoundError(f"GRAPH_CA_BUNDLE {bundle!r} does not exist")
        return bundle
    return ssl.get_default_verify_paths().cafile or True
