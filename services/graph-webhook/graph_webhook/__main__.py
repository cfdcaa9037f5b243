"""Run graph-webhook: `python -m graph_webhook` (127.0.0.1:8001 unless WEBHOOK_HOST/WEBHOOK_PORT say otherwise)."""

from __future__ import annotations

import uvicorn

from graph_webhook.app import create_app
from graph_webhook.settings import get_settings
from shared.memory import limit_malloc_arenas
from shared.serving import KEEP_ALIVE_S


def main() -> None:
    limit_malloc_arenas()
    settings = get_settings()
    # Several workers need an import string: each process builds its own app.
    app: object = "graph_webhook.app:create_app" if settings.webhook_workers > 1 else create_app(settings)
    uvicorn.run(
        app,  # type: ignore[arg-type]
        factory=settings.webhook_workers > 1,
        workers=settings.webhook_workers,
        host=settings.webhook_host,
        port=settings.webhook_port,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_level=settings.log_level.lower(),
        # One line per request would cost more than handling a notification; traces and metrics cover it.
        access_log=False,
        # Graph's notifications arrive over few keep-alive connections; drain them on shutdown.
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
