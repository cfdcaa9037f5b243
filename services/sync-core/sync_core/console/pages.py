"""The console's pages: users (R16, R23, R35), journal (R25), anomalies (R26), imported from Outlook (R27),
force sync (R24), test connection (R28), queues and dead letters.

Reads are GET pages; every action is a POST form with the session's CSRF token, answered with a
redirect (and a flash message) or, for test connection, the page with the result. Each action is
audited by the operation it calls, under the admin's name (`admin:<username>`).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from sync_core.api.deps import refuse_nul
from sync_core.api.schemas import MAX_DB_INT
from sync_core.auth import LOGIN_COOKIE, SESSION_COOKIE, ConsoleSession, csrf_ok
from sync_core.operations import connection, force, imports, queues, subscriptions, users
from sync_core.operations.errors import OpsError
from sync_core.operations.force import ForceRequest
from sync_core.operations.journal import DIRECTIONS, OUTCOMES, JournalQuery, search
from sync_core.operations.users import CONFLICT_POLICIES, SWITCHES, UserUpdate
from sync_core.reconcile import REPAIR_LABELS, AnomalyType, Repair

if TYPE_CHECKING:
    from sync_core.app import Runtime

TEMPLATES = Path(__file__).parent / "templates"
FLASH_COOKIE = "sync_admin_flash"
KINDS = ("event", "contact", "task", "call")
PAGE_SIZE = 50

router = APIRouter(prefix="/admin", include_in_schema=False)


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # Every template is HTML: escape everything, whatever its file name.
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlq"] = lambda v: quote(str(v), safe="")
    return env


templates = Jinja2Templates(env=_env())


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, fragments answer 401."""

    def __init__(self, next_url: str) -> None:
        super().__init__("login required")
        self.next_url = next_url


def _safe_next(value: str | None) -> str:
    """Only our own console pages are places to go back to after login (no open redirect)."""
    if value and value.startswith("/admin/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin/users"


async def login_required(request: Request, exc: Exception) -> Response:
    if request.headers.get("x-fragment"):
        return Response("login required", status_code=401)
    target = _safe_next(exc.next_url if isinstance(exc, LoginRequired) else None)
    return RedirectResponse(f"/admin/login?{urlencode({'next': target})}", status_code=303)


def runtime(request: Request) -> Runtime:
    return request.app.state.rt  # type: ignore[no-any-return]


async def admin_session(request: Request) -> ConsoleSession:
    """The logged-in admin, or `LoginRequired`."""
    rt = runtime(request)
    session = await rt.admins.current(rt.admins.cookies.read(request.cookies.get(SESSION_COOKIE)))
    if session is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    refuse_nul(request)
    return session


async def checked_session(
    request: Request, session: Annotated[ConsoleSession, Depends(admin_session)]
) -> ConsoleSession:
    """The admin of a POST form whose CSRF token matches the session's; 403 otherwise."""
    form = await request.form()
    token = form.get("csrf_token")
    if not csrf_ok(session, token if isinstance(token, str) else None):
        raise CsrfRefused()
    return session


class CsrfRefused(OpsError):
    status = 403

    def __init__(self) -> None:
        super().__init__("the form's security token is missing or stale: reload the page and try again")


Admin = Annotated[ConsoleSession, Depends(admin_session)]
PostingAdmin = Annotated[ConsoleSession, Depends(checked_session)]


# Rendering helpers -----------------------------------------------------------------------------


def _flash_signer(rt: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(rt.settings.session_secret.get_secret_value(), salt="sync-core.console.flash")


def redirect(request: Request, url: str, message: str | None = None, level: str = "ok") -> RedirectResponse:
    resp = RedirectResponse(url, status_code=303)
    if message:
        resp.set_cookie(
            FLASH_COOKIE,
            _flash_signer(runtime(request)).dumps({"level": level, "text": message[:500]}),
            max_age=60,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/admin",
        )
    return resp


def _secure(request: Request) -> bool:
    s = runtime(request).settings
    return s.session_cookie_secure or s.environment == "production"


def _take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = _flash_signer(runtime(request)).loads(raw, max_age=120)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def _zone(request: Request) -> ZoneInfo:
    try:
        return ZoneInfo(runtime(request).settings.console_timezone)
    except Exception:
        return ZoneInfo("UTC")


def render(
    request: Request,
    name: str,
    session: ConsoleSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    tz = _zone(request)
    flash = _take_flash(request)

    def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        if value is None:
            return "—"
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(tz).strftime(fmt)

    def ago(value: datetime | None) -> str:
        if value is None:
            return "never"
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        seconds = int((datetime.now(UTC) - value).total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if abs(seconds) >= size:
                return f"{seconds // size} {unit} ago"
        return f"{max(seconds, 0)} s ago"

    resp = templates.TemplateResponse(
        request,
        name,
        {
            "session": session,
            "flash": flash,
            "when": when,
            "ago": ago,
            "timezone": str(tz),
            "page": name.removesuffix(".html"),
            **context,
        },
        status_code=status_code,
    )
    if flash:
        resp.delete_cookie(FLASH_COOKIE, path="/admin")
    return resp


# Login -----------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(session: Admin) -> Response:
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None, error: str | None = None) -> Response:
    rt = runtime(request)
    nonce, cookie = rt.admins.cookies.login_nonce()
    resp = render(request, "login.html", None, nonce=nonce, next=_safe_next(next), error=error)
    resp.set_cookie(
        LOGIN_COOKIE, cookie, max_age=3600, httponly=True, samesite="strict", secure=_secure(request), path="/admin"
    )
    return resp


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/admin/users",
) -> Response:
    rt = runtime(request)
    admins = rt.admins
    if not admins.cookies.check_login_nonce(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return await _login_again(request, next, "The login form expired: please try again.")
    client = f"ip:{request.client.host if request.client else '?'}"
    if admins.throttle.locked(f"user:{username}", client):
        return await _login_again(request, next, "Too many failed attempts: wait a minute and try again.", 429)
    admin = await admins.authenticate(username, password)
    if admin is None:
        admins.throttle.failed(f"user:{username}", client)
        return await _login_again(request, next, "Wrong user name or password.", 401)
    admins.throttle.succeeded(f"user:{username}", client)
    cookie, _ = admins.cookies.issue(admin.username, admin.password_hash)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=rt.settings.session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    resp.delete_cookie(LOGIN_COOKIE, path="/admin")
    return resp


async def _login_again(request: Request, next_url: str, error: str, status: int = 400) -> Response:
    resp = await login_form(request, next=next_url, error=error)
    resp.status_code = status
    return resp


@router.post("/logout")
async def logout(request: Request, session: PostingAdmin) -> Response:
    resp = RedirectResponse("/admin/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# Users -----------------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request, session: Admin) -> Response:
    rt = runtime(request)
    try:
        rows = await users.list_users(rt)
        error = None
    except OpsError as exc:
        rows, error = [], str(exc)
    return render(request, "users.html", session, users=rows, error=error, switches=SWITCHES)


async def _user_page(request: Request, session: ConsoleSession, ref: str, **extra: Any) -> Response:
    rt = runtime(request)
    try:
        user = await users.get_user(rt, ref)
    except OpsError as exc:
        return render(request, "error.html", session, status_code=exc.status, error=str(exc))
    recent = await search(rt, JournalQuery(user=user.email, limit=20))
    return render(
        request,
        "user.html",
        session,
        user=user,
        switches=SWITCHES,
        policies=CONFLICT_POLICIES,
        journal=recent,
        today=date.today().isoformat(),
        **extra,
    )


@router.get("/users/{ref}", response_class=HTMLResponse)
async def user_page(request: Request, ref: str, session: Admin) -> Response:
    return await _user_page(request, session, ref)


@router.post("/users/{ref}/settings")
async def save_settings(request: Request, ref: str, session: PostingAdmin) -> Response:
    form = await request.form()
    back = f"/admin/users/{quote(ref, safe='')}"
    try:
        update = UserUpdate(
            **{name: form.get(name) == "on" for name in SWITCHES},
            conflict_policy=str(form.get("conflict_policy") or "last_modified"),  # type: ignore[arg-type]
            window_days_back=int(str(form.get("window_days_back") or 0)),
            window_days_ahead=int(str(form.get("window_days_ahead") or 0)),
            version=int(str(form.get("version"))) if form.get("version") else None,
        )
    except (ValueError, TypeError) as exc:
        return redirect(request, back, f"Not saved: {exc}", "error")
    try:
        await users.update_user(runtime(request), ref, update, actor=session.actor)
    except OpsError as exc:
        return redirect(request, back, f"Not saved: {exc}", "error")
    return redirect(request, back, "Saved.")


@router.post("/users/{ref}/test-connection", response_class=HTMLResponse)
async def test_connection(request: Request, ref: str, session: PostingAdmin) -> Response:
    try:
        report = await connection.test_connection(runtime(request), ref, actor=session.actor)
    except OpsError as exc:
        return redirect(request, f"/admin/users/{quote(ref, safe='')}", f"Test connection: {exc}", "error")
    return await _user_page(request, session, ref, report=report)


@router.post("/users/{ref}/force")
async def force_sync(
    request: Request,
    ref: str,
    session: PostingAdmin,
    direction: Annotated[str, Form()],
    since: Annotated[str, Form()] = "",
) -> Response:
    back = f"/admin/users/{quote(ref, safe='')}"
    rt = runtime(request)
    try:
        since_at = None
        if direction == "outlook_to_erp" and since:
            since_at = datetime.combine(date.fromisoformat(since), time(), tzinfo=_zone(request))
        accepted = await force.force_sync(
            rt,
            ref,
            ForceRequest(direction=direction, since=since_at),  # type: ignore[arg-type]
            actor=session.actor,
        )
    except ValueError as exc:
        return redirect(request, back, f"Force sync not started: {exc}", "error")
    except OpsError as exc:
        return redirect(request, back, f"Force sync not started: {exc}", "error")
    query = urlencode(
        {
            "direction": accepted.direction,
            "since": accepted.requested_at.isoformat(),
            "expected": len(accepted.messages),
        }
    )
    return redirect(request, f"{back}/force?{query}", f"Force sync requested: {len(accepted.messages)} collection(s).")


@router.get("/users/{ref}/force", response_class=HTMLResponse)
async def force_progress(
    request: Request, ref: str, session: Admin, direction: str, since: datetime, expected: int = 3
) -> Response:
    rt = runtime(request)
    if direction not in DIRECTIONS:
        return render(request, "error.html", session, status_code=422, error="unknown direction")
    try:
        user = await users.get_user(rt, ref)
    except OpsError as exc:
        return render(request, "error.html", session, status_code=exc.status, error=str(exc))
    progress = await force.progress(
        rt,
        user.email,
        direction=direction,  # type: ignore[arg-type]
        since=since,
        expected=max(1, min(expected, 3)),
        actor=session.actor,
    )
    rows = await search(rt, JournalQuery(user=user.email, since=since, limit=200))
    template = "_force_progress.html" if request.headers.get("x-fragment") else "force.html"
    return render(
        request,
        template,
        session,
        user=user,
        progress=progress,
        journal=rows,
        refresh_url=str(request.url),
    )


@router.post("/users/{ref}/reconcile")
async def reconcile_user(request: Request, ref: str, session: PostingAdmin) -> Response:
    rt = runtime(request)
    try:
        run = await rt.reconciler.reconcile(ref, trigger=session.actor)
    except OpsError as exc:
        return redirect(request, f"/admin/users/{quote(ref, safe='')}", f"Reconciliation failed: {exc}", "error")
    return redirect(
        request, f"/admin/anomalies?{urlencode({'user': run.user})}", f"Reconciled: {run.anomalies} anomaly(ies) found."
    )


@router.post("/users/{ref}/renew")
async def renew_subscriptions(request: Request, ref: str, session: PostingAdmin) -> Response:
    back = f"/admin/users/{quote(ref, safe='')}"
    try:
        await subscriptions.renew(runtime(request), ref, actor=session.actor)
    except OpsError as exc:
        return redirect(request, back, f"Renewal not requested: {exc}", "error")
    return redirect(request, back, "Asked graph-webhook to renew the subscriptions.")


# Journal ---------------------------------------------------------------------------------------


def _parse_local(value: str | None, tz: ZoneInfo) -> datetime | None:
    """A `datetime-local` or date input, in the console's time zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


@router.get("/journal", response_class=HTMLResponse)
async def journal_page(
    request: Request,
    session: Admin,
    user: str = "",
    kind: str = "",
    direction: str = "",
    outcome: str = "",
    rule: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    offset: Annotated[int, Query(le=MAX_DB_INT)] = 0,
) -> Response:
    rt = runtime(request)
    tz = _zone(request)
    query = JournalQuery(
        user=user.strip() or None,
        kind=kind or None,
        direction=direction or None,
        outcome=outcome or None,
        rule=rule.strip().upper() or None,
        actor=actor.strip() or None,
        since=_parse_local(since, tz),
        until=_parse_local(until, tz),
        limit=PAGE_SIZE,
        offset=max(offset, 0),
    )
    rows = await search(rt, query)
    filters = {
        "user": user,
        "kind": kind,
        "direction": direction,
        "outcome": outcome,
        "rule": rule,
        "actor": actor,
        "since": since,
        "until": until,
    }
    base = {k: v for k, v in filters.items() if v}
    template = "_journal_rows.html" if request.headers.get("x-fragment") else "journal.html"
    return render(
        request,
        template,
        session,
        rows=rows,
        filters=filters,
        kinds=KINDS,
        directions=DIRECTIONS,
        outcomes=OUTCOMES,
        offset=query.offset,
        prev_url=f"/admin/journal?{urlencode({**base, 'offset': max(query.offset - PAGE_SIZE, 0)})}"
        if query.offset
        else None,
        next_url=f"/admin/journal?{urlencode({**base, 'offset': query.offset + PAGE_SIZE})}"
        if len(rows) == PAGE_SIZE
        else None,
        refresh_url=f"/admin/journal?{urlencode(base)}",
    )


# Anomalies -------------------------------------------------------------------------------------


@router.get("/anomalies", response_class=HTMLResponse)
async def anomalies_page(request: Request, session: Admin, user: str = "", type: str = "") -> Response:
    rt = runtime(request)
    rows = await rt.reconciler.anomalies(user=user or None, type=type or None)
    runs = await rt.reconciler.runs(user=user or None, limit=10)
    try:
        people = await users.list_users(rt)
    except OpsError:
        people = []
    return render(
        request,
        "anomalies.html",
        session,
        anomalies=rows,
        runs=runs,
        people=people,
        user=user,
        type=type,
        types=[t.value for t in AnomalyType],
        labels={r.value: label for r, label in REPAIR_LABELS.items()},
    )


@router.post("/anomalies/reconcile")
async def reconcile_from_anomalies(
    request: Request, session: PostingAdmin, user: Annotated[str, Form(max_length=320)]
) -> Response:
    rt = runtime(request)
    try:
        run = await rt.reconciler.reconcile(user, trigger=session.actor)
    except OpsError as exc:
        return redirect(request, "/admin/anomalies", f"Reconciliation failed: {exc}", "error")
    return redirect(
        request, f"/admin/anomalies?{urlencode({'user': run.user})}", f"Reconciled: {run.anomalies} anomaly(ies) found."
    )


@router.post("/anomalies/{anomaly_id}/repair")
async def repair_anomaly(
    request: Request,
    anomaly_id: Annotated[int, PathParam(ge=1, le=MAX_DB_INT)],
    session: PostingAdmin,
    repair: Annotated[str, Form(max_length=50)] = "",
) -> Response:
    rt = runtime(request)
    back = "/admin/anomalies"
    try:
        row = await rt.reconciler.repair(anomaly_id, repair or None, actor=session.actor)
    except OpsError as exc:
        return redirect(request, back, f"Not repaired: {exc}", "error")
    label = REPAIR_LABELS.get(Repair(row.repair), row.repair) if row.repair else "repair"
    return redirect(
        request,
        f"{back}?{urlencode({'user': row.user})}",
        f"{label} requested for anomaly {anomaly_id}; reconcile again to check it.",
    )


# Imported from Outlook -------------------------------------------------------------------------


@router.get("/imported", response_class=HTMLResponse)
async def imported_page(
    request: Request, session: Admin, user: str = "", kind: str = "", offset: Annotated[int, Query(le=MAX_DB_INT)] = 0
) -> Response:
    rt = runtime(request)
    try:
        page = await imports.imported(rt, user=user or None, kind=kind or None, limit=PAGE_SIZE, offset=max(offset, 0))
        error = None
    except OpsError as exc:
        page, error = None, str(exc)
    base = {k: v for k, v in {"user": user, "kind": kind}.items() if v}
    pages = max(1, math.ceil(page.total / PAGE_SIZE)) if page else 1
    return render(
        request,
        "imported.html",
        session,
        page=page,
        error=error,
        user=user,
        kind=kind,
        number=(page.offset // PAGE_SIZE + 1) if page else 1,
        pages=pages,
        prev_url=f"/admin/imported?{urlencode({**base, 'offset': page.offset - PAGE_SIZE})}"
        if page and page.offset > 0
        else None,
        next_url=f"/admin/imported?{urlencode({**base, 'offset': page.offset + PAGE_SIZE})}"
        if page and page.offset + PAGE_SIZE < page.total
        else None,
    )


# Queues ----------------------------------------------------------------------------------------


@router.get("/queues", response_class=HTMLResponse)
async def queues_page(request: Request, session: Admin) -> Response:
    rt = runtime(request)
    error = None
    stats: list[Any] = []
    letters: dict[str, list[Any]] = {}
    try:
        stats = await queues.queue_stats(rt)
        for group in queues.dead_letter_queues(rt).groups():
            letters[group] = await queues.list_dead_letters(rt, group, limit=100)
    except OpsError as exc:
        error = str(exc)
    return render(request, "queues.html", session, stats=stats, letters=letters, error=error)


@router.post("/queues/{group}/replay-all")
async def replay_all(request: Request, group: str, session: PostingAdmin) -> Response:
    try:
        count = await queues.replay_all(runtime(request), group, actor=session.actor)
    except OpsError as exc:
        return redirect(request, "/admin/queues", f"Not replayed: {exc}", "error")
    return redirect(request, "/admin/queues", f"Replayed {count} dead letter(s) of {group}.")


@router.post("/queues/{group}/discard-all")
async def discard_all(request: Request, group: str, session: PostingAdmin) -> Response:
    try:
        count = await queues.discard_all(runtime(request), group, actor=session.actor)
    except OpsError as exc:
        return redirect(request, "/admin/queues", f"Not discarded: {exc}", "error")
    return redirect(request, "/admin/queues", f"Discarded {count} dead letter(s) of {group}.")


@router.post("/queues/{group}/{key}/replay")
async def replay_one(request: Request, group: str, key: str, session: PostingAdmin) -> Response:
    try:
        await queues.replay(runtime(request), group, key, actor=session.actor)
    except OpsError as exc:
        return redirect(request, "/admin/queues", f"Not replayed: {exc}", "error")
    return redirect(request, "/admin/queues", f"Replayed {key}.")


@router.post("/queues/{group}/{key}/discard")
async def discard_one(request: Request, group: str, key: str, session: PostingAdmin) -> Response:
    try:
        await queues.discard(runtime(request), group, key, actor=session.actor)
    except OpsError as exc:
        return redirect(request, "/admin/queues", f"Not discarded: {exc}", "error")
    return redirect(request, "/admin/queues", f"Discarded {key}.")


__all__ = ["LoginRequired", "login_required", "router"]
