"""Fixtures of the reliability tests: the whole system (as in tests/e2e) plus a `Harness` that can
stop and start sync-core and drop this process's own broker connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import AsyncExitStack

import pytest

from tests.reliability.support import Harness
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


@pytest.fixture
async def system(request: pytest.FixtureRequest, common_settings, database_url, tmp_path) -> AsyncIterator[System]:  # type: ignore[no-untyped-def]
    """The running system with REP01 seeded; sync-core's journal is printed when the test fails."""
    async with running_system(common_settings, database_url, tmp_path) as s:
        yield s
        if request.node.stash.get(_FAILED, False):
            print("--- sync-core journal, oldest first ---")
            try:
                rows = await s.journal()
            except Exception as exc:  # sync-core may be stopped by the test
                rows = []
                print(f"(journal unavailable: {exc!r})")
            for row in reversed(rows):
                fields = ("kind", "direction", "outcome", "rule", "reason", "erp_id", "graph_id")
                print({k: row.get(k) for k in fields})


@pytest.fixture
async def harness(system: System) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(system, stack)
