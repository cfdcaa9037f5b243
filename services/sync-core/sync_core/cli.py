"""`syncctl`: the ops API from a terminal (SYNC_CORE_URL, OPS_API_TOKEN).

    syncctl users list
    syncctl users set REP01 --off sync_calls --policy erp_wins
    syncctl test-connection ana.silva@contoso.example
    syncctl resync REP01 --since 2024-05-01
    syncctl dlq replay --all

A user is named by representative code or mailbox address. Errors are one line on stderr and a
non-zero exit status (1; 2 for a wrong command line).
"""

from __future__ import annotations

import getpass
import json
import socket
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SWITCHES = (
    "sync_enabled",
    "contacts_outlook_to_erp",
    "activities_outlook_to_erp",
    "activities_erp_to_outlook",
    "sync_meetings",
    "sync_tasks",
    "sync_calls",
    "sync_contacts",
    "contacts_two_way",
)

out = Console()
err = Console(stderr=True)


class CliSettings(BaseSettings):
    """Where the ops API is and its token (environment or `.env`)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    sync_core_url: str = "http://127.0.0.1:8003"
    ops_api_token: SecretStr = SecretStr("demo-ops-token")
    syncctl_timeout_s: float = 60.0


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 1."""
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


class Ops:
    """The ops API over HTTP; every non-2xx answer ends the command with the server's words."""

    def __init__(self, settings: CliSettings) -> None:
        self.url = settings.sync_core_url.rstrip("/")
        actor = f"{getpass.getuser()}@{socket.gethostname()}"
        self.http = httpx.Client(
            base_url=f"{self.url}/api/v1/ops",
            headers={
                "Authorization": f"Bearer {settings.ops_api_token.get_secret_value()}",
                "X-Ops-Actor": actor,
                "User-Agent": "syncctl",
            },
            timeout=settings.syncctl_timeout_s,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach sync-core at {self.url} ({type(exc).__name__}); check SYNC_CORE_URL")
        if resp.status_code == 401:
            fail("sync-core refused the token; check OPS_API_TOKEN")
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text[:300]
            if isinstance(detail, list):  # request validation errors
                detail = "; ".join(f"{'.'.join(map(str, d.get('loc', [])[1:]))}: {d.get('msg')}" for d in detail)
            fail(f"{detail} (HTTP {resp.status_code})")
        return resp.json() if resp.content else None


def user_path(user: str) -> str:
    return quote(user.strip(), safe="@")


def state(ctx: typer.Context) -> tuple[Ops, bool]:
    obj = ctx.ensure_object(dict)
    if "ops" not in obj:
        obj["ops"] = Ops(CliSettings())
    return obj["ops"], bool(obj.get("json"))


def dump(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def when(value: str | None) -> str:
    if not value:
        return "never"
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_since(value: str) -> datetime:
    """A day (`2024-05-01`, midnight UTC) or an ISO 8601 instant (naive means UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


app = typer.Typer(
    name="syncctl",
    help="Operate the Outlook ↔ ERP sync: users, test connection, force sync, anomalies, journal, dead letters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Representatives: list, enable, disable, switches (R16).", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter queues: list, replay, discard.", no_args_is_help=True)
subs_app = typer.Typer(help="Graph subscriptions (graph-webhook): list, renew.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(dlq_app, name="dlq")
app.add_typer(subs_app, name="subscriptions")


@app.callback()
def main(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of tables.")] = False,
) -> None:
    ctx.ensure_object(dict)["json"] = as_json


# users ---------------------------------------------------------------------------------------


def _user_table(users: list[dict[str, Any]]) -> Table:
    table = Table("code", "mailbox", "sync", "health", "last O→E", "last E→O", "switches off", "policy", "subs")
    for u in users:
        off = [name for name, on in u["switches"].items() if not on and name != "sync_enabled"]
        subs = (
            "?" if u.get("subscriptions_error") else ",".join(f"{s['kind']}:{s['status']}" for s in u["subscriptions"])
        )
        table.add_row(
            u["code"],
            u["email"],
            "[green]enabled[/]" if u["enabled"] else "[yellow]off[/]",
            "[green]ok[/]" if u["healthy"] else f"[red]failing[/] {'; '.join(u['problems'])}",
            when(u["last_sync_outlook_to_erp"]),
            when(u["last_sync_erp_to_outlook"]),
            ", ".join(off) or "-",
            u["conflict_policy"],
            subs or "none",
        )
    return table


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every representative with a mailbox: switches, last sync per direction (R23), health (R35)."""
    ops, as_json = state(ctx)
    users = ops.call("GET", "/users")
    if as_json:
        dump(users)
    else:
        out.print(_user_table(users))


@users_app.command("enable")
def users_enable(ctx: typer.Context, user: str) -> None:
    """Switch sync on (refused without a sales role, R13)."""
    ops, as_json = state(ctx)
    u = ops.call("POST", f"/users/{user_path(user)}/enable")
    dump(u) if as_json else out.print(f"{u['code']}: sync enabled")


@users_app.command("disable")
def users_disable(ctx: typer.Context, user: str) -> None:
    """Switch sync off: links stay, nothing is deleted (R32)."""
    ops, as_json = state(ctx)
    u = ops.call("POST", f"/users/{user_path(user)}/disable")
    dump(u) if as_json else out.print(f"{u['code']}: sync disabled")


class Policy(StrEnum):
    last_modified = "last_modified"
    erp_wins = "erp_wins"
    outlook_wins = "outlook_wins"


@users_app.command("set")
def users_set(
    ctx: typer.Context,
    user: str,
    on: Annotated[list[str] | None, typer.Option("--on", help=f"Switch on: {', '.join(SWITCHES)}")] = None,
    off: Annotated[list[str] | None, typer.Option("--off", help="Switch off (same names)")] = None,
    policy: Annotated[Policy | None, typer.Option("--policy", help="Conflict policy (R18)")] = None,
    days_back: Annotated[int | None, typer.Option("--days-back", min=0, max=3650, help="Sync window (R34)")] = None,
    days_ahead: Annotated[int | None, typer.Option("--days-ahead", min=0, max=3650)] = None,
) -> None:
    """Change switches, conflict policy or sync window."""
    ops, as_json = state(ctx)
    body: dict[str, Any] = {}
    for names, value in ((on or [], True), (off or [], False)):
        for name in names:
            if name not in SWITCHES:
                fail(f"unknown switch {name!r}; switches: {', '.join(SWITCHES)}")
            body[name] = value
    if policy is not None:
        body["conflict_policy"] = policy.value
    if days_back is not None:
        body["window_days_back"] = days_back
    if days_ahead is not None:
        body["window_days_ahead"] = days_ahead
    if not body:
        fail("nothing to change: give --on/--off SWITCH, --policy, --days-back or --days-ahead")
    u = ops.call("PATCH", f"/users/{user_path(user)}", json=body)
    if as_json:
        dump(u)
    else:
        out.print(_user_table([u]))


# test connection, force sync, reconcile --------------------------------------------------------


@app.command("test-connection")
def test_connection(ctx: typer.Context, user: str) -> None:
    """Check Graph token, mailbox, subscriptions, ERP and broker for a user (R28); exit 1 if a part fails."""
    ops, as_json = state(ctx)
    report = ops.call("POST", f"/users/{user_path(user)}/test-connection")
    if as_json:
        dump(report)
    else:
        table = Table("", "part", "result", "ms", title=f"Test connection of {report['user']}")
        for c in report["checks"]:
            mark = "[green]OK[/]" if c["ok"] else "[red]FAIL[/]"
            table.add_row(mark, c["label"], c["detail"] if c["ok"] else c["error"], str(c["duration_ms"]))
        out.print(table)
    failing = [c["label"] for c in report["checks"] if not c["ok"]]
    if failing:
        fail(f"test connection failed: {', '.join(failing)}")


def _force(ctx: typer.Context, user: str, body: dict[str, Any], wait: bool, timeout: float) -> None:
    ops, as_json = state(ctx)
    accepted = ops.call("POST", f"/users/{user_path(user)}/force", json=body)
    if not wait:
        dump(accepted) if as_json else out.print(f"force sync requested: {len(accepted['messages'])} collection(s)")
        return
    params = {
        "direction": accepted["direction"],
        "since": accepted["requested_at"],
        "expected": len(accepted["messages"]),
        "requested_by": accepted["requested_by"],
    }
    deadline = time.monotonic() + timeout
    progress: dict[str, Any] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=as_json,
    ) as bar:
        task = bar.add_task(f"{accepted['direction']}: 0 item(s)", total=params["expected"])
        while time.monotonic() < deadline:
            progress = ops.call("GET", f"/users/{user_path(user)}/force/progress", params=params)
            bar.update(
                task, completed=progress["done"], description=f"{accepted['direction']}: {progress['items']} item(s)"
            )
            if progress["finished"]:
                break
            time.sleep(0.5)
    if as_json:
        dump(progress)
    elif progress.get("finished"):
        for summary in progress["summaries"]:
            out.print(summary)
        out.print(f"done: {progress['items']} item(s) handled, {progress['failed']} failed")
    if not progress.get("finished"):
        fail(f"not finished after {timeout:g} s; follow it with `syncctl journal --user {user}`")
    if progress.get("failed"):
        fail(f"{progress['failed']} item(s) failed; see `syncctl journal --user {user} --outcome failed`")


@app.command("force-sync")
def force_sync(
    ctx: typer.Context,
    user: str,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="event, contact or task (To Do)")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the progress until done")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 300.0,
) -> None:
    """R24 (a): re-send every ERP item of a user to Outlook (no duplicates)."""
    _force(ctx, user, {"direction": "erp_to_outlook", "kinds": kind or None}, wait, timeout)


@app.command("resync")
def resync(
    ctx: typer.Context,
    user: str,
    since: Annotated[str, typer.Option("--since", help="YYYY-MM-DD (UTC midnight) or ISO 8601 time")],
    kind: Annotated[list[str] | None, typer.Option("--kind", help="event, contact or task (To Do)")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the progress until done")] = True,
    timeout: Annotated[float, typer.Option(help="Give up waiting after this many seconds")] = 300.0,
) -> None:
    """R24 (b): re-send every Outlook item modified since a date to the ERP, with a progress bar."""
    body = {"direction": "outlook_to_erp", "since": parse_since(since).isoformat(), "kinds": kind or None}
    _force(ctx, user, body, wait, timeout)


def _anomaly_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("id", "user", "kind", "type", "what", "repairs", "status")
    for a in rows:
        table.add_row(
            str(a["id"]), a["user"], a["kind"], a["type"], a["summary"], ", ".join(a["repairs"] or []), a["status"]
        )
    return table


@app.command("reconcile")
def reconcile(ctx: typer.Context, user: str) -> None:
    """Compare both sides of a user now and list the anomalies found (R26)."""
    ops, as_json = state(ctx)
    run = ops.call("POST", f"/users/{user_path(user)}/reconcile")
    rows = ops.call("GET", "/anomalies", params={"user": run["user"]})
    if as_json:
        dump({"run": run, "anomalies": rows})
        return
    out.print(f"{run['user']}: {run['anomalies']} anomaly(ies)")
    if rows:
        out.print(_anomaly_table(rows))


@app.command("anomalies")
def anomalies(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user")] = None,
    type: Annotated[str | None, typer.Option("--type", help="missing_in_outlook, field_drift, …")] = None,
) -> None:
    """Anomalies of the last reconciliation (R26), each with its repairs."""
    ops, as_json = state(ctx)
    rows = ops.call("GET", "/anomalies", params={k: v for k, v in {"user": user, "type": type}.items() if v})
    dump(rows) if as_json else out.print(_anomaly_table(rows))


@app.command("repair")
def repair(
    ctx: typer.Context,
    anomaly: int,
    action: Annotated[
        str | None, typer.Option("--action", help="One of the anomaly's repairs (default: first)")
    ] = None,
) -> None:
    """Repair one anomaly through the normal sync path."""
    ops, as_json = state(ctx)
    row = ops.call("POST", f"/anomalies/{anomaly}/repair", json={"repair": action})
    dump(row) if as_json else out.print(f"anomaly {row['id']}: {row['repair']} requested")


# journal -----------------------------------------------------------------------------------------


@app.command("journal")
def journal(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user")] = None,
    outcome: Annotated[
        str | None, typer.Option("--outcome", help="created, updated, skipped, failed, audit, …")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    direction: Annotated[str | None, typer.Option("--direction", help="outlook_to_erp or erp_to_outlook")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="R05, R15, …")] = None,
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD or ISO 8601 time")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
) -> None:
    """The journal (R25), newest first."""
    ops, as_json = state(ctx)
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("user", user), ("outcome", outcome), ("kind", kind), ("direction", direction), ("rule", rule)):
        if value:
            params[name] = value
    if since:
        params["since"] = parse_since(since).isoformat()
    rows = ops.call("GET", "/journal", params=params)
    if as_json:
        dump(rows)
        return
    table = Table("when", "user", "kind", "direction", "outcome", "rule", "reason", "by", "trace")
    for r in rows:
        table.add_row(
            when(r["at"]),
            r["user"],
            r["kind"] or "",
            r["direction"] or "",
            r["outcome"],
            r["rule"] or "",
            r["reason"] or "",
            r["actor"] or "",
            r["trace_id"] or "",
        )
    out.print(table)


@app.command("queues")
def queues(ctx: typer.Context) -> None:
    """Depth and consumers of every queue."""
    ops, as_json = state(ctx)
    rows = ops.call("GET", "/queues")
    if as_json:
        dump(rows)
        return
    table = Table("queue", "role", "messages", "consumers", "problem")
    for q in rows:
        table.add_row(q["name"], q["role"], str(q["messages"]), str(q["consumers"]), q["error"] or "")
    out.print(table)


# dead letters ------------------------------------------------------------------------------------

GroupOption = Annotated[str, typer.Option("--group", help="sync-core or graph-webhook")]


@dlq_app.command("list")
def dlq_list(ctx: typer.Context, group: GroupOption = "sync-core") -> None:
    """Dead letters with their failure reason and attempts."""
    ops, as_json = state(ctx)
    rows = ops.call("GET", f"/dead-letters/{group}")
    if as_json:
        dump(rows)
        return
    table = Table("message", "type", "user", "attempts", "failure", "dead-lettered", "from")
    for d in rows:
        table.add_row(
            d["key"],
            d["type"] or "",
            d["user"] or "",
            str(d["attempts"]),
            d["error"] or "",
            when(d["dead_lettered_at"]),
            d["original_queue"] or "",
        )
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="Message id (see `dlq list`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter of the group")] = False,
    group: GroupOption = "sync-core",
) -> None:
    """Put dead letters back on their original queue."""
    ops, as_json = state(ctx)
    if all_ == bool(key):
        fail("give one message id, or --all")
    if all_:
        n = ops.call("POST", f"/dead-letters/{group}/replay-all")["count"]
        out.print(f"replayed {n} dead letter(s)")
    else:
        d = ops.call("POST", f"/dead-letters/{group}/{quote(str(key), safe='')}/replay")
        dump(d) if as_json else out.print(f"replayed {d['key']} to {d['original_queue']}")


@dlq_app.command("discard")
def dlq_discard(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="Message id (see `dlq list`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Discard every dead letter of the group")] = False,
    group: GroupOption = "sync-core",
) -> None:
    """Drop dead letters for good."""
    ops, as_json = state(ctx)
    if all_ == bool(key):
        fail("give one message id, or --all")
    if all_:
        n = ops.call("DELETE", f"/dead-letters/{group}")["count"]
        out.print(f"discarded {n} dead letter(s)")
    else:
        d = ops.call("DELETE", f"/dead-letters/{group}/{quote(str(key), safe='')}")
        dump(d) if as_json else out.print(f"discarded {d['key']}")


# subscriptions -----------------------------------------------------------------------------------


@subs_app.command("list")
def subs_list(ctx: typer.Context, user: Annotated[str | None, typer.Option("--user")] = None) -> None:
    """Each Graph subscription: status, expiry, last notification."""
    ops, as_json = state(ctx)
    rows = ops.call("GET", "/subscriptions", params={"user": user} if user else None)
    if as_json:
        dump(rows)
        return
    table = Table("user", "kind", "status", "expires", "last notification", "error")
    for s in rows:
        table.add_row(
            s["user"],
            s["kind"],
            s["status"],
            when(s["expires_at"]),
            when(s["last_notification_at"]),
            s["last_error"] or "",
        )
    out.print(table)


@subs_app.command("renew")
def subs_renew(ctx: typer.Context, user: str) -> None:
    """Ask graph-webhook to renew (or recreate) a user's subscriptions now."""
    ops, as_json = state(ctx)
    r = ops.call("POST", f"/subscriptions/{user_path(user)}/renew")
    dump(r) if as_json else out.print(f"{r['user']}: renewal requested")


if __name__ == "__main__":
    app()
