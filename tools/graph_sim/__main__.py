"""`python -m graph_sim` / `graph-sim`: serve the simulator over HTTPS (default 127.0.0.1:8010)."""

from __future__ import annotations

import logging

import uvicorn

from graph_sim.app import create_app
from graph_sim.config import SimConfig
from graph_sim.tls import ensure_certificates


def main() -> None:
    config = SimConfig()
    tls = ensure_certificates(config.ca_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("graph_sim").info(
        "Graph simulator on https://%s:%s/v1.0 (authority https://%s:%s/%s); CA bundle: %s",
        config.host,
        config.port,
        config.host,
        config.port,
        config.tenant_id,
        tls.ca_path,
    )
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        log_level="warning",
        access_log=False,
        http="httptools",
        timeout_keep_alive=75,  # longer than the Graph client's keep-alive expiry (30 s)
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
