"""`python -m sync_core.worker`: one consumer process of a sync-core replica, started by its main
process when `SYNC_CORE_WORKERS` > 1 (see `sync_core.workers`). It consumes its own shards and
serves no HTTP; SIGTERM (or the main process going away) stops it after its running handlers end."""

from __future__ import annotations

import asyncio
import os
import signal

import uvloop

from shared.logs import setup_logging
from shared.memory import limit_malloc_arenas
from shared.telemetry import setup_telemetry
from sync_core.app import SERVICE, Runtime
from sync_core.settings import get_settings
from sync_core.workers import INDEX_ENV


async def serve() -> None:
    settings = get_settings()
    setup_logging(SERVICE, settings.log_level, settings.log_json)
    setup_telemetry(
        SERVICE, settings.otel_exporter_otlp_endpoint, user_salt=settings.telemetry_user_salt.get_secret_value()
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()

    async def orphaned() -> None:
        # Polled once a second: cheap, and it needs nothing shared with the main process.
        while os.getppid() == parent:  # noqa: ASYNC110
            await asyncio.sleep(1.0)
        stop.set()  # the main process is gone (killed): do not consume on alone

    watch = asyncio.create_task(orphaned())
    rt = Runtime(settings, worker_index=int(os.environ[INDEX_ENV]))
    await rt.start()
    try:
        await stop.wait()
    finally:
        watch.cancel()
        await rt.stop()


def main() -> None:
    limit_malloc_arenas()
    uvloop.run(serve())


if __name__ == "__main__":
    main()
