"""`syncctl` against the running system: each command, and errors as one line with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from sync_core.cli import app
from tests.support.system import OPS_TOKEN, USER_EMAIL, System


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def syncctl(system: System, *args: str, token: str = OPS_TOKEN, url: str | None = None, cwd: Path) -> Run:
    """Run one command in-process, in a thread (the services share this event loop)."""
    env = {"SYNC_CORE_URL": url or system.sync_url, "OPS_API_TOKEN": token, "COLUMNS": "200", "NO_COLOR": "1"}
    async with _one_at_a_time:  # the runner swaps sys.stdout: one command at a time
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return Run(result.exit_code, result.stdout, result.stderr)


_one_at_a_time = asyncio.Lock()


def one_error_line(run: Run, text: str) -> None:
    assert run.code == 1, run
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], run.err


async def test_syncctl_reads(ops_system: System, tmp_path: Path) -> None:
    """users list, test-connection, journal, anomalies, reconcile, queues, dlq list, subscriptions list."""
    runs = await asyncio.gather(
        syncctl(ops_system, "--json", "users", "list", cwd=tmp_path),
        syncctl(ops_system, "test-connection", "REP01", cwd=tmp_path),
        syncctl(ops_system, "reconcile", "REP01", cwd=tmp_path),
        syncctl(ops_system, "--json", "queues", cwd=tmp_path),
        syncctl(ops_system, "--json", "dlq", "list", cwd=tmp_path),
        syncctl(ops_system, "--json", "subscriptions", "list", "--user", USER_EMAIL, cwd=tmp_path),
    )
    users, connection, reconcile, queues, dlq, subs = runs
    assert all(r.code == 0 for r in runs), [r for r in runs if r.code]
    assert any(u["code"] == "REP01" and u["enabled"] for u in users.json())
    assert "Broker reachable" in connection.out and "FAIL" not in connection.out
    assert "anomaly(ies)" in reconcile.out
    assert any(q["role"] == "work" and q["consumers"] == 1 for q in queues.json())
    assert isinstance(dlq.json(), list)
    assert sorted(s["kind"] for s in subs.json()) == ["contact", "event", "task"]
    anomalies, journal = await asyncio.gather(
        syncctl(ops_system, "anomalies", "--user", USER_EMAIL, cwd=tmp_path),
        syncctl(
            ops_system, "--json", "journal", "--user", USER_EMAIL, "--outcome", "audit", "--limit", "5", cwd=tmp_path
        ),
    )
    assert anomalies.code == 0
    # test-connection above left its audit line, under the local user's name
    assert journal.json() and all(r["outcome"] == "audit" for r in journal.json())
    assert any(r["rule"] == "R28" and r["actor"].startswith("ops-api:") for r in journal.json())


async def test_syncctl_actions(ops_system: System, tmp_path: Path) -> None:
    """users set/disable/enable, force-sync with progress, subscriptions renew — audited as the local user."""
    run = await syncctl(
        ops_system, "--json", "users", "set", "REP01", "--off", "sync_calls", "--days-ahead", "200", cwd=tmp_path
    )
    assert run.code == 0, run
    [user] = [run.json()] if isinstance(run.json(), dict) else run.json()
    assert user["switches"]["sync_calls"] is False and user["window_days_ahead"] == 200
    run = await syncctl(ops_system, "users", "set", "REP01", "--on", "sync_calls", "--days-ahead", "365", cwd=tmp_path)
    assert run.code == 0, run
    rep = await ops_system.erp_write("GET", "representatives/REP01")
    assert rep["sync_calls"] is True and rep["window_days_ahead"] == 365
    [audit, *_] = await ops_system.journal(outcome="audit", rule="R16")
    assert audit["actor"].startswith("ops-api:") and audit["actor"] != "ops-api:tests"

    await ops_system.erp_write(
        "POST",
        "representatives",
        {"code": "CLI1", "name": "Cli User", "email": "cli@contoso.example", "sales_role": True},
    )
    assert (await syncctl(ops_system, "users", "enable", "CLI1", cwd=tmp_path)).code == 0
    assert (await ops_system.erp_write("GET", "representatives/CLI1"))["sync_enabled"] is True
    assert (await syncctl(ops_system, "users", "disable", "cli@contoso.example", cwd=tmp_path)).code == 0
    assert (await ops_system.erp_write("GET", "representatives/CLI1"))["sync_enabled"] is False

    run = await syncctl(ops_system, "force-sync", "REP01", "--kind", "event", cwd=tmp_path)
    assert run.code == 0, run
    assert "done:" in run.out and "re-sent" in run.out

    run = await syncctl(ops_system, "resync", "REP01", "--since", "2020-01-01", "--kind", "event", cwd=tmp_path)
    assert run.code == 0, run
    assert "done:" in run.out and "0 failed" in run.out

    run = await syncctl(ops_system, "subscriptions", "renew", "REP01", cwd=tmp_path)
    assert run.code == 0 and "renewal requested" in run.out


async def test_syncctl_errors_are_one_line_and_exit_non_zero(ops_system: System, tmp_path: Path) -> None:
    runs = await asyncio.gather(
        syncctl(ops_system, "users", "list", token="wrong", cwd=tmp_path),
        syncctl(ops_system, "users", "list", url="http://127.0.0.1:9", cwd=tmp_path),
        syncctl(ops_system, "users", "enable", "NOBODY", cwd=tmp_path),
        syncctl(ops_system, "users", "set", "REP01", "--off", "sync_everything", cwd=tmp_path),
        syncctl(ops_system, "users", "set", "REP01", cwd=tmp_path),
        syncctl(ops_system, "resync", "REP01", "--since", "last tuesday", cwd=tmp_path),
        syncctl(ops_system, "dlq", "replay", cwd=tmp_path),
        syncctl(ops_system, "dlq", "replay", "no-such-message", cwd=tmp_path),
        syncctl(ops_system, "test-connection", "ghost2@contoso.example", cwd=tmp_path),
    )
    token, unreachable, nobody, switch, nothing, since, replay, missing, ghost = runs
    one_error_line(token, "refused the token; check OPS_API_TOKEN")
    one_error_line(unreachable, "cannot reach sync-core at http://127.0.0.1:9")
    one_error_line(nobody, "no ERP representative with code or mailbox 'NOBODY' (HTTP 404)")
    one_error_line(switch, "unknown switch 'sync_everything'")
    one_error_line(nothing, "nothing to change")
    one_error_line(since, "is not a date")
    one_error_line(replay, "give one message id, or --all")
    one_error_line(missing, "no dead letter no-such-message")
    one_error_line(ghost, "no ERP representative")
    usage = await syncctl(ops_system, "users", "frobnicate", cwd=tmp_path)
    assert usage.code == 2


async def test_syncctl_is_installed_and_talks_to_the_ops_api(ops_system: System, tmp_path: Path) -> None:
    """The `syncctl` script of the virtualenv (pyproject entry point), as a separate process."""
    script = Path(sys.executable).parent / "syncctl"
    proc = await asyncio.create_subprocess_exec(
        str(script),
        "--json",
        "users",
        "list",
        env={**os.environ, "SYNC_CORE_URL": ops_system.sync_url, "OPS_API_TOKEN": OPS_TOKEN},
        cwd=tmp_path,  # not the repository's .env
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert any(u["code"] == "REP01" for u in json.loads(out))
