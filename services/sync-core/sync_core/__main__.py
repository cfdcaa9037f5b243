"""`python -m sync_core`: serve sync-core on its port (8003 by default)."""

import uvicorn

from sync_core.app import create_app
from sync_core.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.sync_core_host, port=settings.sync_core_port, log_level="warning")


if __name__ == "__main__":
    main()
