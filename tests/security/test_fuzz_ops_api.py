"""Schemathesis against sync-core's ops API (bearer OPS_API_TOKEN) and graph-webhook's HTTP surface,
both running in the whole system: no 5xx, answers as documented, no data without the token."""

from __future__ import annotations

import schemathesis

from graph_webhook.app import create_app as create_webhook_app
from graph_webhook.settings import GraphWebhookSettings
from sync_core.app import create_app as create_sync_app
from sync_core.settings import SyncCoreSettings
from tests.security.fuzzing import BOUNDED, CHECKS
from tests.support.system import OPS_TOKEN, System

ops_schema = schemathesis.openapi.from_dict(create_sync_app(SyncCoreSettings()).openapi())
webhook_schema = schemathesis.openapi.from_dict(create_webhook_app(GraphWebhookSettings()).openapi())


@ops_schema.parametrize()
@BOUNDED
def test_ops_api(case: schemathesis.Case, system_in_background: System) -> None:
    case.call_and_validate(
        base_url=system_in_background.sync_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, checks=CHECKS
    )


@webhook_schema.parametrize()
@BOUNDED
def test_graph_webhook(case: schemathesis.Case, system_in_background: System) -> None:
    case.call_and_validate(
        base_url=system_in_background.webhook_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, checks=CHECKS
    )
