"""An async Microsoft Graph client: bearer tokens, immutable ids, retries, per-mailbox concurrency.

    async with GraphClient(settings) as graph:
        me = await graph.find_user("ann@contoso.com")
        async for items, delta_link in graph.delta(f"/users/{me['id']}/contacts/delta"):
            ...

Behaviour, after Graph's documentation:
- 429, 503 and 504 are retried after `Retry-After` (decimal seconds or an HTTP date) plus jitter,
  else after exponential back-off; at most `graph_max_attempts` attempts in all
  (https://learn.microsoft.com/graph/throttling). A `Retry-After` longer than
  `graph_max_retry_after_s` is not waited out in-process: `GraphThrottled` carries it to the caller.
- A 429 for one mailbox holds that mailbox's other requests back too, for the time Graph asked.
- At most `graph_max_concurrency_per_mailbox` requests run at once per mailbox: Outlook allows
  four concurrent requests per app and mailbox
  (https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
- `Prefer: IdType="ImmutableId"` by default, so ids survive moves between folders
  (https://learn.microsoft.com/graph/outlook-immutable-id, R21).
- A 401 drops the cached token and retries once with a new one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import quote

import httpx

from shared.graph.auth import TokenProvider, TokenSource
from shared.graph.backoff import RETRYABLE_STATUS, backoff_delay, parse_retry_after, retry_after_delay
from shared.graph.errors import GraphError, GraphNotFound, GraphThrottled, GraphUnavailable, error_from_response
from shared.graph.tls import ssl_context
from shared.settings import GraphSettings
from shared.telemetry import meter
from shared.transport import http_client

log = logging.getLogger(__name__)
_meter = meter("shared.graph")
requests_total = _meter.create_counter("graph_requests", description="Graph HTTP requests, by method and status")
retries_total = _meter.create_counter("graph_retries", description="Graph requests retried, by reason")
retry_after_waited = _meter.create_counter(
    "graph_retry_after_waited_seconds", unit="s", description="Seconds spent waiting on Graph's Retry-After"
)
request_duration = _meter.create_histogram(
    "graph_request_duration_seconds", unit="s", description="Duration of one Graph HTTP exchange"
)

IMMUTABLE_ID = 'IdType="ImmutableId"'
BATCH_LIMIT = 20  # https://learn.microsoft.com/graph/json-batching: at most 20 requests per batch
_MAILBOX_RE = re.compile(r"/users/([^/?#()]+)", re.IGNORECASE)
# Errors raised before the request reached the server: retrying cannot duplicate a write.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


def mailbox_of(url: str) -> str | None:
    """The `{id}` of a `/users/{id}/…` URL: the mailbox a request counts against."""
    match = _MAILBOX_RE.search(url)
    return match.group(1).lower() if match else None


class _MailboxGate:
    """Concurrency cap of one mailbox, and the time before which Graph asked us not to call it."""

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.not_before = 0.0

    def hold(self, seconds: float) -> None:
        self.not_before = max(self.not_before, time.monotonic() + seconds)


class GraphClient:
    """Graph over one keep-alive `httpx.AsyncClient`; use as an async context manager."""

    def __init__(self, settings: GraphSettings, tokens: TokenSource | None = None) -> None:
        self.settings = settings
        self.tokens: TokenSource = tokens or TokenProvider(settings)
        self.base_url = settings.graph_base_url.rstrip("/")
        self._base = httpx.URL(self.base_url)
        self._http: httpx.AsyncClient | None = None
        self._gates: dict[str, _MailboxGate] = {}
        # Graph's clock minus ours, from the `Date` header of its replies: subscription expiry
        # times are judged by Graph's clock, not by this host's.
        self.clock_skew_s = 0.0

    def now(self) -> datetime:
        """The current time by Graph's clock (as last seen in a reply's `Date` header)."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_skew_s)

    async def __aenter__(self) -> Self:
        self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _open(self) -> httpx.AsyncClient:
        if self._http is None:
            timeout = self.settings.graph_timeout_s
            self._http = http_client(
                verify=ssl_context(self.settings),
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                limits=httpx.Limits(
                    max_connections=self.settings.graph_max_connections,
                    max_keepalive_connections=self.settings.graph_keepalive_connections,
                    keepalive_expiry=30.0,
                ),
                headers={"Accept": "application/json", "User-Agent": "outlook-erp-sync"},
            )
        return self._http

    def url(self, url_or_path: str) -> str:
        """An absolute URL: paths are relative to `graph_base_url`; absolute URLs must be Graph's own."""
        if url_or_path.startswith(("https://", "http://")):
            target = httpx.URL(url_or_path)
            if (target.scheme, target.host, target.port) != (self._base.scheme, self._base.host, self._base.port):
                # Never send our bearer token to another host, whatever a response's link says.
                raise ValueError(f"refusing to call {target.scheme}://{target.host}: not the Graph base URL")
            return url_or_path
        return f"{self.base_url}/{url_or_path.lstrip('/')}"

    def _gate(self, mailbox: str) -> _MailboxGate:
        gate = self._gates.get(mailbox)
        if gate is None:
            gate = self._gates[mailbox] = _MailboxGate(self.settings.graph_max_concurrency_per_mailbox)
        return gate

    async def request(
        self,
        method: str,
        url_or_path: str,
        *,
        mailbox: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        immutable_ids: bool = True,
    ) -> httpx.Response:
        """Send one request with retries; return the 2xx/3xx response or raise a `GraphError`."""
        method = method.upper()
        url = self.url(url_or_path)
        key = (mailbox or mailbox_of(url.removeprefix(self.base_url)) or "").lower()
        gate = self._gate(key) if key else None
        request_headers = dict(headers or {})
        if immutable_ids:
            _add_preference(request_headers, IMMUTABLE_ID)
        max_attempts = max(self.settings.graph_max_attempts, 1)
        attempt = 0
        reauthorized = False
        while True:
            attempt += 1
            token = await self.tokens.token()
            request_headers["Authorization"] = f"Bearer {token}"
            request_headers["client-request-id"] = str(uuid.uuid4())
            try:
                response = await self._send(gate, method, url, json, params, request_headers)
            except httpx.TransportError as exc:
                requests_total.add(1, {"method": method, "status": "network"})
                safe = method in _IDEMPOTENT or isinstance(exc, _NOT_SENT)
                if not safe or attempt >= max_attempts:
                    raise GraphUnavailable(
                        f"{type(exc).__name__}: {exc}"
                        + ("" if safe else " (not retried: the write may have happened)"),
                        method=method,
                        url=url.split("?", 1)[0],
                    ) from exc
                retries_total.add(1, {"reason": "network"})
                await asyncio.sleep(backoff_delay(attempt))
                continue
            self._note_server_time(response)
            status = response.status_code
            requests_total.add(1, {"method": method, "status": str(status)})
            if status < 400:
                return response
            if status == 401 and not reauthorized:
                # The token may have been revoked or expired early: one more try with a fresh one.
                reauthorized = True
                attempt -= 1
                await self.tokens.invalidate(token)
                continue
            if status not in RETRYABLE_STATUS:
                raise error_from_response(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self.settings.graph_max_retry_after_s:
                if gate is not None and status == 429:
                    gate.hold(retry_after)
                raise error_from_response(response, retry_after=retry_after)
            if attempt >= max_attempts:
                raise error_from_response(response, retry_after=retry_after)
            if retry_after is not None:
                delay = retry_after_delay(retry_after)
                retry_after_waited.add(delay, {"status": str(status)})
            else:
                delay = backoff_delay(attempt)
            if gate is not None and status == 429:
                gate.hold(delay)
            retries_total.add(1, {"reason": str(status)})
            log.debug("Graph %s, retry %d/%d in %.2fs", status, attempt, max_attempts - 1, delay)
            await asyncio.sleep(delay)

    def _note_server_time(self, response: httpx.Response) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        try:
            server = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if server.tzinfo is None:
            server = server.replace(tzinfo=UTC)
        skew = (server - datetime.now(UTC)).total_seconds()
        # The header has one-second resolution: ignore differences that are only rounding.
        self.clock_skew_s = skew if abs(skew) > 2.0 else 0.0

    async def _send(
        self,
        gate: _MailboxGate | None,
        method: str,
        url: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        http = self._open()
        if gate is None:
            return await self._timed(http, method, url, json, params, headers)
        while True:
            wait = gate.not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            async with gate.semaphore:
                # A 429 seen by another request while this one queued: wait again before calling.
                if gate.not_before > time.monotonic():
                    continue
                return await self._timed(http, method, url, json, params, headers)

    async def _timed(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        start = time.perf_counter()
        try:
            return await http.request(method, url, json=json, params=params, headers=headers)
        finally:
            request_duration.record(time.perf_counter() - start, {"method": method})

    async def get_json(self, url_or_path: str, **kwargs: Any) -> dict[str, Any]:
        """GET and decode the JSON body."""
        return _json_of(await self.request("GET", url_or_path, **kwargs))

    async def post_json(self, url_or_path: str, json: Any, **kwargs: Any) -> dict[str, Any]:
        """POST a JSON body; the decoded reply (`{}` for an empty one)."""
        return _json_of(await self.request("POST", url_or_path, json=json, **kwargs))

    async def patch_json(self, url_or_path: str, json: Any, **kwargs: Any) -> dict[str, Any]:
        """PATCH a JSON body; the decoded reply (`{}` for an empty one)."""
        return _json_of(await self.request("PATCH", url_or_path, json=json, **kwargs))

    async def delete(self, url_or_path: str, *, missing_ok: bool = False, **kwargs: Any) -> None:
        """DELETE; with `missing_ok`, an item already gone (404) is not an error."""
        try:
            await self.request("DELETE", url_or_path, **kwargs)
        except GraphNotFound:
            if not missing_ok:
                raise

    async def delta(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        max_page_size: int | None = None,
        *,
        mailbox: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], str | None]]:
        """Each page's items; with the last page, the `@odata.deltaLink` to start the next round from.

        Follows `@odata.nextLink`. An unknown or expired token raises `GraphSyncStateNotFound` (410):
        start again without a token (https://learn.microsoft.com/graph/delta-query-overview).
        """
        request_headers = dict(headers or {})
        if max_page_size:
            _add_preference(request_headers, f"odata.maxpagesize={max_page_size}")
        url: str = url_or_path
        page_params = params
        while True:
            page = await self.get_json(url, params=page_params, mailbox=mailbox, headers=request_headers)
            items = page.get("value") or []
            next_link = page.get("@odata.nextLink")
            if next_link:
                yield items, None
                url, page_params = str(next_link), None
                continue
            delta_link = page.get("@odata.deltaLink")
            if not delta_link:
                raise GraphError("delta page with neither @odata.nextLink nor @odata.deltaLink", url=url.split("?")[0])
            yield items, str(delta_link)
            return

    async def batch(
        self, requests: list[dict[str, Any]], mailbox: str | None = None, *, immutable_ids: bool = True
    ) -> list[dict[str, Any]]:
        """Run requests through `$batch` (20 per call); their responses, in the order of `requests`.

        Each request is `{"method", "url", optional "id", "headers", "body", "dependsOn"}`; `url` is a path
        (or a full Graph URL). Sub-requests answered 429/503/504 are sent again after the Retry-After
        Graph gave; other failures are returned as they are, for the caller to inspect `status`.
        `dependsOn` may only name requests in the same chunk of 20.
        """
        prepared = [self._batch_item(i, r, immutable_ids) for i, r in enumerate(requests)]
        ids = [r["id"] for r in prepared]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        chunks = [prepared[start : start + BATCH_LIMIT] for start in range(0, len(prepared), BATCH_LIMIT)]
        for chunk in chunks:
            chunk_ids = {r["id"] for r in chunk}
            for r in chunk:
                if not set(r.get("dependsOn") or ()) <= chunk_ids:
                    raise ValueError(f"batch request {r['id']} depends on a request outside its chunk of {BATCH_LIMIT}")
        results: dict[str, dict[str, Any]] = {}
        for chunk in chunks:
            results.update(await self._batch_chunk(chunk, mailbox))
        return [results[i] for i in ids]

    def _batch_item(self, index: int, request: dict[str, Any], immutable_ids: bool) -> dict[str, Any]:
        item = dict(request)
        item["id"] = str(item.get("id", index + 1))
        item["method"] = str(item.get("method", "GET")).upper()
        url = str(item["url"])
        if url.startswith(("https://", "http://")):
            url = self.url(url).removeprefix(self.base_url)
        item["url"] = "/" + url.lstrip("/")
        headers = dict(item.get("headers") or {})
        if immutable_ids:
            _add_preference(headers, IMMUTABLE_ID)
        if "body" in item and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        if headers:
            item["headers"] = headers
        return item

    async def _batch_chunk(self, chunk: list[dict[str, Any]], mailbox: str | None) -> dict[str, dict[str, Any]]:
        done: dict[str, dict[str, Any]] = {}
        pending = chunk
        max_attempts = max(self.settings.graph_max_attempts, 1)
        for attempt in range(1, max_attempts + 1):
            reply = await self.post_json("/$batch", {"requests": pending}, mailbox=mailbox, immutable_ids=False)
            waits: list[float] = []
            retry: list[dict[str, Any]] = []
            answers = {str(r.get("id")): r for r in reply.get("responses") or []}
            for request in pending:
                answer = answers.get(request["id"])
                if answer is None:
                    answer = {"id": request["id"], "status": 502, "body": {"error": {"message": "no response"}}}
                status = int(answer.get("status") or 0)
                if status in RETRYABLE_STATUS and attempt < max_attempts:
                    headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
                    after = parse_retry_after(headers.get("retry-after"))
                    if after is not None and after > self.settings.graph_max_retry_after_s:
                        done[request["id"]] = answer
                        continue
                    waits.append(retry_after_delay(after) if after is not None else backoff_delay(attempt))
                    retry.append(request)
                else:
                    done[request["id"]] = answer
            if not retry:
                break
            retry_ids = {r["id"] for r in retry}
            # A retried request's dependencies already succeeded (or it would have failed with 424).
            pending = [
                {**r, "dependsOn": [d for d in r.get("dependsOn") or () if d in retry_ids]} if r.get("dependsOn") else r
                for r in retry
            ]
            pending = [{k: v for k, v in r.items() if not (k == "dependsOn" and not v)} for r in pending]
            delay = max(waits)
            retries_total.add(len(retry), {"reason": "batch"})
            retry_after_waited.add(delay, {"status": "batch"})
            await asyncio.sleep(delay)
        return done

    async def find_user(self, email: str) -> dict[str, Any]:
        """The Graph user whose mailbox is `email`: by user principal name, else by `mail`."""
        select = {"$select": "id,displayName,mail,userPrincipalName,accountEnabled"}
        try:
            return await self.get_json(f"/users/{quote(email, safe='@')}", params=select, mailbox=email)
        except GraphNotFound:
            pass
        escaped = email.replace("'", "''")
        found = await self.get_json("/users", params={"$filter": f"mail eq '{escaped}'", **select})
        users = found.get("value") or []
        if not users:
            raise GraphNotFound(f"no Graph user with mailbox {email}", status=404, code="ErrorInvalidUser")
        return dict(users[0])


def _add_preference(headers: dict[str, str], preference: str) -> None:
    """Add one `Prefer` value, keeping any the caller set (Graph takes a comma-separated list)."""
    for name, value in headers.items():
        if name.lower() == "prefer":
            if preference.split("=")[0].lower() not in value.lower():
                headers[name] = f"{value}, {preference}"
            return
    headers["Prefer"] = preference


def _json_of(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    data = response.json()
    return data if isinstance(data, dict) else {"value": data}


__all__ = ["GraphClient", "GraphThrottled", "mailbox_of"]
