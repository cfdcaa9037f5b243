"""Fixtures of the reliability tests: the whole system (as in tests/e2e) plus a `Harness` that can
stop and start sync-core and drop this process's own broker connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import AsyncExitStack

import pytest

from tests.reliability.support import Harness
from tests.support.http_fault_proxy import HttpFaultProxy, http_fault_proxy
from tests.support.system import System, running_system

_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


async def print_journal(system: System) -> None:
    print("--- sync-core journal, oldest first ---")
    try:
        rows = await system.journal()
    except Exception as exc:  # sync-core may be stopped by the test
        rows = []
        print(f"(journal unavailable: {exc!r})")
    for row in reversed(rows):
        fields = ("kind", "direction", "outcome", "rule", "reason", "erp_id", "graph_id")
        print({k: row.get(k) for k in fields})


@pytest.fixture
async def system(request: pytest.FixtureRequest, common_settings, database_url, tmp_path) -> AsyncIterator[System]:  # type: ignore[no-untyped-def]
    """The running system with REP01 seeded; sync-core's journal is printed when the test fails."""
    async with running_system(common_settings, database_url, tmp_path) as s:
        yield s
        if request.node.stash.get(_FAILED, False) and not s.extra.get("journal_printed"):
            await print_journal(s)


@pytest.fixture
async def harness(request: pytest.FixtureRequest, system: System) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(system, stack)
        if request.node.stash.get(_FAILED, False):
            # Before the replicas the harness started are stopped.
            await print_journal(system)
            system.extra["journal_printed"] = True


@pytest.fixture
async def erp_faults(harness: Harness) -> HttpFaultProxy:
    """sync-core talks to erp-connector through an HTTP proxy whose writes can be made to fail."""
    # On the harness's stack, before the replica that uses it: closed after that replica stopped.
    proxy, url = await harness.stack.enter_async_context(http_fault_proxy(harness.system.erp_url))
    await harness.route_erp_through(proxy, url)
    return proxy
