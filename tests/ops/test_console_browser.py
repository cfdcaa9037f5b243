"""The console in a real browser (Debian's Chromium, headless): log in, save a switch, test connection,
force a sync and watch the journal, replay a dead letter. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from shared.envelope import Kind, MessageType
from tests.ops.ops_support import ADMIN, PASSWORD, erp_meeting, mirrored
from tests.support.system import System, eventually

# The console's behaviour does not depend on the database: the browser runs once, on SQLite
# (the API tests cover PostgreSQL).
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("ops_system", ["sqlite"], indirect=True)]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install -y chromium (.ci/run does it)"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, ops_system: System) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=ops_system.sync_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    tab = await context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # the console asks before re-sending everything
    yield tab
    await context.close()


async def log_in(page: Page) -> None:
    await page.goto("/admin/users")
    await expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    await page.fill("input[name=username]", ADMIN)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button:has-text('Log in')")
    await expect(page).to_have_url(re.compile(r"/admin/users$"))


async def test_browser_log_in_toggle_a_switch_and_see_it_saved(page: Page, ops_system: System, artifacts: Path) -> None:
    await page.goto("/admin/login")
    await page.fill("input[name=username]", ADMIN)
    await page.fill("input[name=password]", "not the password")
    await page.click("button:has-text('Log in')")
    await expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")

    await log_in(page)
    await expect(page.get_by_test_id("users")).to_contain_text("ana.silva@contoso.example")
    await page.screenshot(path=artifacts / "console-users.png", full_page=True)

    await page.click("a:has-text('REP01')")
    calls = page.get_by_test_id("switch-sync_calls")
    await expect(calls).to_be_checked()
    try:
        await calls.uncheck()
        await page.click("[data-testid=settings] button:has-text('Save')")
        await expect(page.get_by_test_id("flash")).to_have_text("Saved.")
        await page.reload()
        await expect(page.get_by_test_id("switch-sync_calls")).not_to_be_checked()
        await page.screenshot(path=artifacts / "console-switch-saved.png", full_page=True)
        assert (await ops_system.erp_write("GET", "representatives/REP01"))["sync_calls"] is False
        [audit] = await ops_system.journal(outcome="audit", actor="admin:admin", rule="R16", limit=1)
        assert "sync_calls True → False" in audit["reason"]
    finally:
        await ops_system.set_representative(sync_calls=True)


async def test_browser_test_connection_shows_each_part(page: Page, artifacts: Path) -> None:
    await log_in(page)
    await page.goto("/admin/users/REP01")
    await page.click("button:has-text('Test connection')")
    table = page.get_by_test_id("connection")
    for part in ("graph_token", "mailbox", "subscriptions", "erp", "broker"):
        await expect(table.locator(f"tr[data-check={part}]")).to_have_attribute("data-ok", "true")
    await expect(table).to_contain_text("Broker reachable")
    await page.screenshot(path=artifacts / "console-test-connection.png", full_page=True)


async def test_browser_force_sync_and_see_the_journal_rows_appear(
    page: Page, ops_system: System, artifacts: Path
) -> None:
    await erp_meeting(ops_system, "Browser force sync meeting")
    await mirrored(ops_system, "Browser force sync meeting")
    await log_in(page)
    await page.goto("/admin/users/REP01")
    await page.click("[data-testid=force-erp]")
    await expect(page).to_have_url(re.compile(r"/admin/users/REP01/force\?"))
    await expect(page.get_by_test_id("flash")).to_contain_text("Force sync requested")
    # The page refreshes itself until both collections are done.
    await expect(page.get_by_test_id("progress")).to_have_attribute("data-finished", "true", timeout=30_000)
    journal = page.get_by_test_id("journal")
    await expect(journal.locator("tr[data-outcome=forced]")).to_have_count(2)
    await expect(journal.locator("tr[data-outcome=updated]").first).to_be_visible()
    await page.screenshot(path=artifacts / "console-force-sync.png", full_page=True)
    events = [
        e for e in await ops_system.sim_items("events") if e["data"].get("subject") == "Browser force sync meeting"
    ]
    assert len(events) == 1, "re-sent, not duplicated (R24)"


async def test_browser_replay_a_dead_letter(
    page: Page, ops_system: System, ops: httpx.AsyncClient, artifacts: Path
) -> None:
    rep = {"code": "REP06", "name": "Hugo Reis", "email": "hugo.reis@contoso.example", "sync_enabled": False}
    await ops_system.add_user(rep)
    await ops_system.publish(
        MessageType.SYNC_FORCE, kind=Kind.EVENT, user=rep["email"], direction="erp_to_outlook", requested_by="browser"
    )

    async def dead() -> list[dict]:
        return [d for d in (await ops.get("/api/v1/ops/dead-letters/sync-core")).json() if d["user"] == rep["email"]]

    [letter] = await eventually(dead, timeout=15)
    await ops.post("/api/v1/ops/users/REP06/enable")

    await log_in(page)
    await page.goto("/admin/queues")
    row = page.locator(f"tr[data-key='{letter['key']}']")
    await expect(row).to_contain_text("UserUnavailable")
    await expect(row).to_contain_text("4")
    await page.screenshot(path=artifacts / "console-dead-letter.png", full_page=True)
    await row.get_by_test_id("replay").click()
    await expect(page.get_by_test_id("flash")).to_contain_text(f"Replayed {letter['key']}")
    await expect(page.locator(f"tr[data-key='{letter['key']}']")).to_have_count(0)

    async def forced() -> list[dict]:
        return await ops_system.journal(user=rep["email"], outcome="forced", actor="browser")

    await eventually(forced, timeout=15)
    await page.goto(f"/admin/journal?user={rep['email']}")
    await expect(page.get_by_test_id("journal").locator("tr[data-outcome=forced]")).to_have_count(1)
    await page.screenshot(path=artifacts / "console-replayed.png", full_page=True)


async def test_browser_every_page_renders(page: Page, artifacts: Path) -> None:
    await log_in(page)
    for path, heading in (
        ("/admin/journal", "Journal"),
        ("/admin/anomalies", "Anomalies"),
        ("/admin/imported", "Imported from Outlook"),
        ("/admin/queues", "Queues"),
    ):
        await page.goto(path)
        await expect(page.locator("h1")).to_contain_text(heading)
        await page.screenshot(path=artifacts / f"console-{path.rsplit('/', 1)[1]}.png", full_page=True)
    await page.click("button:has-text('Log out')")
    await expect(page).to_have_url(re.compile(r"/admin/login"))
