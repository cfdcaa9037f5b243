"""Microsoft identity platform, as much as msal's client-credentials flow needs.

- OpenID discovery: https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
- Token request/response and AADSTS errors:
  https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
- Graph's 401 for a missing/invalid token: https://learn.microsoft.com/graph/errors
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import jwt
from fastapi import APIRouter, Request

from graph_sim.config import RegisteredApp, SimConfig
from graph_sim.errors import GraphError
from graph_sim.responses import JsonResponse

if TYPE_CHECKING:
    from graph_sim.simulator import Simulator

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


class Auth:
    """Registered apps, token issuing and access-token validation."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.apps: dict[str, RegisteredApp] = {a.client_id: a.model_copy() for a in config.apps()}
        self.tenants = {a.tenant_id for a in self.apps.values()}
        self.lifetime = config.token_lifetime_seconds
        self.key = secrets.token_bytes(32)
        self._valid: dict[str, dict[str, Any]] = {}
        self.revoked_apps: set[str] = set()

    def reset(self) -> None:
        """Registered apps as configured again; issued tokens stay valid (same signing key)."""
        self.apps = {a.client_id: a.model_copy() for a in self.config.apps()}
        self.revoked_apps.clear()

    def issue(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a /oauth2/v2.0/token request: (status, JSON body)."""
        if tenant not in self.tenants:
            return 400, aad_error(
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        if form.get("grant_type") != "client_credentials":
            return 400, aad_error(
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type. The simulator supports client_credentials only.",
            )
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None or app.tenant_id != tenant:
            return 400, aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        secret = form.get("client_secret")
        if secret is None:
            return 401, aad_error(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(secret, app.client_secret):
            return 401, aad_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                f"is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        scope = form.get("scope", "")
        if not any(s.endswith("/.default") for s in scope.split()):
            return 400, aad_error(
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        now = int(time.time())
        claims = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tenant}/",
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "roles": list(app.roles),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        token = jwt.encode(claims, self.key, algorithm="HS256")
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "ext_expires_in": self.lifetime,
            "access_token": token,
        }

    def validate(self, header: str | None) -> dict[str, Any]:
        """Claims of a valid bearer token, else Graph's 401 InvalidAuthenticationToken."""
        if not header or not header[:7].lower() == "bearer ":
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        token = header[7:].strip()
        claims = self._valid.get(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token,
                    self.key,
                    algorithms=["HS256"],
                    audience=[GRAPH_AUDIENCE, GRAPH_APP_ID],
                    options={"verify_exp": False},
                )
            except jwt.InvalidAudienceError as exc:
                raise GraphError(
                    401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
                ) from exc
            except jwt.PyJWTError as exc:
                raise GraphError(
                    401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.)."
                ) from exc
            if len(self._valid) > 10000:
                self._valid.clear()
            self._valid[token] = claims
        if claims["exp"] < time.time():
            raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        if claims["appid"] in self.revoked_apps:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        return claims


def aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


router = APIRouter()


def _sim(request: Request) -> Simulator:
    return request.app.state.sim  # type: ignore[no-any-return]


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", include_in_schema=False)
async def openid_configuration(tenant: str, request: Request) -> JsonResponse:
    if tenant not in _sim(request).auth.tenants:
        return JsonResponse(aad_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found."), status_code=400)
    root = _root(request)
    base = f"{root}/{tenant}"
    return JsonResponse(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{root}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "roles"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }
    )


@router.get("/{tenant}/discovery/v2.0/keys", include_in_schema=False)
async def keys(tenant: str) -> JsonResponse:
    # Tokens are HS256-signed with a simulator secret: nothing public to publish.
    return JsonResponse({"keys": []})


@router.post("/{tenant}/oauth2/v2.0/token", include_in_schema=False)
async def token(tenant: str, request: Request) -> JsonResponse:
    form = {k: str(v) for k, v in (await request.form()).items()}
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic ") and "client_id" not in form:
        import base64
        from urllib.parse import unquote

        cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        form["client_id"], form["client_secret"] = unquote(cid), unquote(secret)
    sim = _sim(request)
    status, body = sim.auth.issue(tenant, form)
    sim.stats.count("POST", "/{tenant}/oauth2/v2.0/token", status)
    return JsonResponse(body, status_code=status, headers={"Cache-Control": "no-store, no-cache"})
