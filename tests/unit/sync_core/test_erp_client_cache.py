"""sync-core's ERP client reads business partners (R10, R11) at most once per cache period."""

from __future__ import annotations

import httpx
import respx

from sync_core.adapters.erp import ErpClient


@respx.mock(using="httpx", base_url="http://erp.test/api/v1")
async def test_partners_are_cached_for_the_period_and_misses_too_R10(respx_mock: respx.MockRouter) -> None:
    by_domain = respx_mock.get("/partners/resolve").mock(return_value=httpx.Response(200, json={"code": "ACME"}))
    by_code = respx_mock.get("/partners/NOPE").mock(return_value=httpx.Response(404, json={"detail": {}}))
    erp = ErpClient("http://erp.test", "t")
    try:
        erp.partners_cache_s = 60.0
        for domain in ("acme.example", "ACME.example", "acme.example"):
            assert (await erp.partner_for_domain(domain) or {}).get("code") == "ACME"
        assert await erp.partner("NOPE") is None and await erp.partner("NOPE") is None
        assert by_domain.call_count == 1 and by_code.call_count == 1
        erp.partners_cache_s = 0.0  # off (the tests' default): every lookup reads the ERP
        await erp.partner_for_domain("acme.example")
        assert by_domain.call_count == 2
    finally:
        await erp.close()
