"""`python -m sync_core`: serve sync-core on its port (8003 by default)."""

import uvicorn

from shared.memory import limit_malloc_arenas
from shared.serving import KEEP_ALIVE_S
from sync_core.app import create_app
from sync_core.settings import get_settings


def main() -> None:
    limit_malloc_arenas()
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.sync_core_host,
        port=settings.sync_core_port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_S,
    )


if __name__ == "__main__":
    main()
