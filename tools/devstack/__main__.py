"""`make run`: RabbitMQ check, migrations, the Graph simulator and the three services, demo data,
a short demo of both directions, then the URLs. Ctrl-C or SIGTERM stops every process it started."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from devstack.demo import run_demo
from devstack.processes import Supervisor, ensure_rabbitmq
from erp_connector.app import migrate as migrate_erp
from erp_connector.demo import REPRESENTATIVES, load_demo
from erp_connector.settings import ErpConnectorSettings
from graph_webhook.app import migrate as migrate_webhook
from graph_webhook.settings import GraphWebhookSettings
from sync_core.db import migrate as migrate_sync
from sync_core.settings import SyncCoreSettings


def say(text: str) -> None:
    print(f"» {text}", flush=True)


def main() -> int:
    erp = ErpConnectorSettings()
    hook = GraphWebhookSettings()
    core = SyncCoreSettings()
    sup = Supervisor()

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        ensure_rabbitmq(core.amqp_url.get_secret_value())
        say("RabbitMQ is up")
        migrate_erp(erp.erp_database_url)
        migrate_webhook(hook)
        migrate_sync(core.sync_database_url)
        say("database migrations applied (var/*.db by default)")

        sim_url = core.graph_authority_host
        ca = core.graph_ca_bundle or ""
        if ca and Path(ca).exists():
            Path(ca).unlink()  # the simulator writes a fresh CA at start; never trust a stale one
        sup.start("graph-sim", "graph_sim")
        for _ in range(200):
            sup.check_alive()
            if ca and Path(ca).exists():
                break
            time.sleep(0.05)
        sup.wait_ready("graph-sim", f"{sim_url}/_sim/stats", verify=ca or True)
        say(f"Graph simulator on {sim_url} (CA {ca})")

        erp_url = f"http://{erp.erp_connector_host}:{erp.erp_connector_port}"
        sup.start("erp-connector", "erp_connector")
        sup.wait_ready("erp-connector", f"{erp_url}/readyz")
        asyncio.run(load_demo(erp_url, erp.erp_api_token.get_secret_value()))
        rep = REPRESENTATIVES[0]
        httpx.post(
            f"{sim_url}/_sim/users",
            json={"userPrincipalName": rep["email"], "mail": rep["email"], "displayName": rep["name"]},
            verify=ca or True,
        ).raise_for_status()
        say(f"demo data loaded: representative {rep['code']} <{rep['email']}> with every switch on, partners, contacts")

        sync_url = f"http://{core.sync_core_host}:{core.sync_core_port}"
        sup.start("sync-core", "sync_core")
        sup.wait_ready("sync-core", f"{sync_url}/readyz")
        hook_url = f"http://{hook.webhook_host}:{hook.webhook_port}"
        sup.start("graph-webhook", "graph_webhook")
        sup.wait_ready("graph-webhook", f"{hook_url}/readyz")
        say("erp-connector, sync-core and graph-webhook are ready")
        _wait_caught_up(sync_url, core.ops_api_token.get_secret_value(), rep["email"])

        ok = asyncio.run(
            run_demo(
                erp_url=erp_url,
                erp_token=erp.erp_api_token.get_secret_value(),
                graph=core,
                email=rep["email"],
                say=say,
            )
        )
        print(
            "\nRunning. Open:\n"
            f"  console          {sync_url}/admin/   (user {core.admin_username})\n"
            f"  ops API docs     {sync_url}/docs\n"
            f"  ERP API docs     {erp_url}/docs\n"
            f"  webhook docs     {hook_url}/docs\n"
            f"  metrics          {sync_url}/metrics  {erp_url}/metrics  {hook_url}/metrics\n"
            f"  Graph simulator  {sim_url}/_sim/stats\n"
            "  logs             var/logs/*.log\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        if not ok and os.environ.get("DEVSTACK_EXIT_AFTER_DEMO"):
            return 1
        if os.environ.get("DEVSTACK_EXIT_AFTER_DEMO"):
            return 0
        while True:
            sup.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    except SystemExit as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop()


def _wait_caught_up(sync_url: str, token: str, email: str, timeout: float = 60.0) -> None:
    """The first sync of the demo user is done when sync-core holds a delta cursor per collection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{sync_url}/api/v1/ops/users/state", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200:
            for user in r.json():
                if user["user"] == email and {"event", "contact", "todo"} <= set(user["delta_collections"]):
                    say("first sync of the demo mailbox done")
                    return
        time.sleep(0.2)
    say("first sync not confirmed within 60 s; continuing")


if __name__ == "__main__":
    sys.exit(main())
