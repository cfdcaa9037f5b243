"""`python -m erp_connector`: serve the connector on ERP_CONNECTOR_HOST:ERP_CONNECTOR_PORT (127.0.0.1:8002)."""

from __future__ import annotations

import uvicorn

from erp_connector.app import create_app
from erp_connector.settings import get_settings
from shared.memory import limit_malloc_arenas
from shared.serving import KEEP_ALIVE_S


def main() -> None:
    limit_malloc_arenas()
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.erp_connector_host,
        port=settings.erp_connector_port,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=settings.log_level.lower(),
        # Our own JSON logs carry the request traces; uvicorn's access log would repeat them.
        access_log=False,
    )


if __name__ == "__main__":
    main()
