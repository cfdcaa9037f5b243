"""Who may use the console and the ops API: admins with hashed passwords, signed sessions, CSRF tokens.

- Passwords are hashed with scrypt (hashlib, RFC 7914) and a random salt; the stored form names its
  parameters (`scrypt$n$r$p$salt$hash`) so they can be raised later without breaking old hashes.
- The first admin is created from ADMIN_USERNAME / ADMIN_PASSWORD when the admin table is empty;
  after that the settings no longer change anything (docs/operations.md).
- A console session is a cookie signed with SESSION_SECRET (itsdangerous, timestamped): the admin's
  name, a CSRF token for the forms of that session, and a stamp of the password hash, so a changed
  password ends the sessions opened with the old one.
- The ops API takes the OPS_API_TOKEN bearer token instead (sync_core.api.deps).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from sync_core.models import Admin
from sync_core.settings import SyncCoreSettings
from sync_core.state import now_utc

# scrypt cost: 2^15 × 8 × 128 bytes = 32 MiB and ~50–100 ms per hash, OWASP's recommended minimum.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024
SESSION_COOKIE = "sync_admin_session"
LOGIN_COOKIE = "sync_admin_login"
_SESSION_SALT = "sync-core.console.session"
_LOGIN_SALT = "sync-core.console.login"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of `password`, with its parameters."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def password_stamp(stored: str) -> str:
    """A short fingerprint of a password hash: sessions carry it and die when it changes."""
    return hashlib.sha256(stored.encode()).hexdigest()[:16]


# Sessions and CSRF ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleSession:
    """A logged-in admin, as the signed cookie says."""

    username: str
    csrf: str
    stamp: str

    @property
    def actor(self) -> str:
        """How the journal names this person (R25 audit)."""
        return f"admin:{self.username}"


class Sessions:
    """Signs and reads session cookies, and the pre-login CSRF nonce of the login form."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._session = URLSafeTimedSerializer(secret, salt=_SESSION_SALT)
        self._login = URLSafeTimedSerializer(secret, salt=_LOGIN_SALT)
        self.max_age_s = max_age_s

    def issue(self, username: str, stored_hash: str) -> tuple[str, ConsoleSession]:
        session = ConsoleSession(username, secrets.token_urlsafe(32), password_stamp(stored_hash))
        cookie = self._session.dumps({"u": session.username, "c": session.csrf, "s": session.stamp})
        return cookie, session

    def read(self, cookie: str | None) -> ConsoleSession | None:
        """The session in a cookie; None when absent, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._session.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("u", "c", "s")):
            return None
        return ConsoleSession(data["u"], data["c"], data["s"])

    def login_nonce(self) -> tuple[str, str]:
        """A nonce for the login form and the signed cookie that vouches for it (login CSRF)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._login.dumps(nonce)

    def check_login_nonce(self, cookie: str | None, submitted: str | None) -> bool:
        if not cookie or not submitted:
            return False
        try:
            nonce = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), submitted.encode())


def csrf_ok(session: ConsoleSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf.encode(), (submitted or "").encode())


# Admins ----------------------------------------------------------------------------------------


class LoginThrottle:
    """Slows password guessing: after `limit` failures for a name or an address, refuse for `lock_s`."""

    def __init__(self, limit: int = 5, lock_s: float = 60.0) -> None:
        self.limit = limit
        self.lock_s = lock_s
        self._failures: dict[str, tuple[int, float]] = {}

    def locked(self, *keys: str) -> bool:
        now = time.monotonic()
        for key in keys:
            count, since = self._failures.get(key, (0, now))
            if count >= self.limit and now - since < self.lock_s:
                return True
        return False

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            count, since = self._failures.get(key, (0, now))
            if now - since >= self.lock_s:
                count, since = 0, now
            self._failures[key] = (count + 1, since)
        if len(self._failures) > 10_000:
            self._failures.clear()

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


class Admins:
    """The admin table: the first admin from settings, password checks, session validity."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: SyncCoreSettings) -> None:
        self.db = sessions
        self.settings = settings
        self.cookies = Sessions(settings.session_secret.get_secret_value(), settings.session_max_age_s)
        self.throttle = LoginThrottle()
        self._seeded = False

    async def ensure_first_admin(self) -> None:
        """Create the admin named in the settings when there is no admin at all."""
        if self._seeded:
            return
        async with self.db() as s:
            if (await s.exec(select(Admin).limit(1))).first() is None:
                stored = await asyncio.to_thread(hash_password, self.settings.admin_password.get_secret_value())
                s.add(Admin(username=self.settings.admin_username, password_hash=stored, created_at=now_utc()))
                try:
                    await s.commit()
                except IntegrityError:  # another replica seeded it meanwhile
                    await s.rollback()
        self._seeded = True

    async def authenticate(self, username: str, password: str) -> Admin | None:
        """The admin if the password is right, else None (same work either way, no user enumeration)."""
        await self.ensure_first_admin()
        async with self.db() as s:
            admin = await s.get(Admin, username)
            stored = admin.password_hash if admin is not None and admin.active else _dummy_hash()
            ok = await asyncio.to_thread(verify_password, password, stored)
            if admin is None or not admin.active or not ok:
                return None
            admin.last_login_at = now_utc()
            s.add(admin)
            await s.commit()
            return admin

    async def current(self, session: ConsoleSession | None) -> ConsoleSession | None:
        """The session if its admin still exists, is active and kept the password it logged in with."""
        if session is None:
            return None
        async with self.db() as s:
            admin = await s.get(Admin, session.username)
        if admin is None or not admin.active or password_stamp(admin.password_hash) != session.stamp:
            return None
        return session

    async def set_password(self, username: str, password: str) -> None:
        """Create the admin or change their password (ends their open sessions)."""
        stored = await asyncio.to_thread(hash_password, password)
        async with self.db() as s:
            admin = await s.get(Admin, username)
            if admin is None:
                admin = Admin(username=username, password_hash=stored, created_at=now_utc())
            admin.password_hash = stored
            admin.active = True
            s.add(admin)
            await s.commit()
        self._seeded = True


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so a wrong name costs as much as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))
