"""Schemathesis against erp-connector's OpenAPI (with its API token): no 5xx, answers as documented."""

from __future__ import annotations

import schemathesis

from erp_connector.app import create_app
from erp_connector.settings import ErpConnectorSettings
from tests.security.conftest import Erp
from tests.security.fuzzing import BOUNDED, CHECKS
from tests.support.system import ERP_TOKEN

schema = schemathesis.openapi.from_dict(create_app(ErpConnectorSettings()).openapi())


@schema.parametrize()
@BOUNDED
def test_erp_api(case: schemathesis.Case, erp_in_background: Erp) -> None:
    case.call_and_validate(
        base_url=erp_in_background.url, headers={"Authorization": f"Bearer {ERP_TOKEN}"}, checks=CHECKS
    )
