"""Fixtures of the end-to-end tests: the whole system, started per test (about two seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.system import System, running_system


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "representative(**fields): overrides of the seeded representative REP01 for the `system` fixture"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def system(request: pytest.FixtureRequest, common_settings, database_url, tmp_path) -> AsyncIterator[System]:  # type: ignore[no-untyped-def]
    """The running system with REP01 seeded (override its fields with `@pytest.mark.representative(...)`).

    When the test fails, sync-core's journal is printed: it usually says why.
    """
    marker = request.node.get_closest_marker("representative")
    async with running_system(
        common_settings, database_url, tmp_path, representative=dict(marker.kwargs) if marker else None
    ) as s:
        yield s
        if request.node.stash.get(_FAILED, False):
            print("--- sync-core journal, oldest first ---")
            for row in reversed(await s.journal()):
                fields = ("user", "kind", "direction", "outcome", "rule", "reason", "erp_id", "graph_id")
                print({k: row.get(k) for k in fields})
