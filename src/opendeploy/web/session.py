"""Dashboard sessions: signed cookies, CSRF tokens and one-shot flash messages.

A session is what a login with an admin access key pair buys: a cookie holding the key id, a
random nonce and an expiry, signed with HMAC-SHA256. The signing key is derived from the server's
admin secret, so every replica sharing the database accepts the same cookies. The cookie alone
is not enough: each sign-in is recorded server-side (``store.dashboard_sessions``) and every
request checks that record, joined to its key, so signing out, or revoking the key, ends the
session at once, on every replica, even for a copy of the cookie.

CSRF: every POST form carries ``csrf_token`` = HMAC(key, "csrf:" + nonce) of the session; the
cookie is also ``SameSite=Strict``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from opendeploy.api.sigv4 import same_text

#: A session lasts this long after the login (seconds).
SESSION_SECONDS = 12 * 3600
SESSION_COOKIE = "od_session"
FLASH_COOKIE = "od_flash"
#: Domain separation for the keys derived from the admin secret.
_KEY_LABEL = b"opendeploy dashboard session v1"


def derive_key(admin_secret: str) -> bytes:
    """The session signing key for a server whose admin secret is ``admin_secret``."""
    return hmac.new(admin_secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, payload: dict[str, Any]) -> str:
    """``payload`` as ``<base64 json>.<base64 hmac>``."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(key: bytes, token: str | None) -> dict[str, Any] | None:
    """The payload of a token :func:`sign` made with ``key``; None if forged or garbled."""
    if not token or "." not in token:
        return None
    body, _, mac = token.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not same_text(mac, expected):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Session:
    """A logged-in dashboard user: the admin access key they logged in with."""

    access_key_id: str
    nonce: str
    expires_at: float

    def csrf_token(self, key: bytes) -> str:
        return _b64(hmac.new(key, f"csrf:{self.nonce}".encode(), hashlib.sha256).digest())

    def csrf_ok(self, key: bytes, token: str | None) -> bool:
        return bool(token) and same_text(str(token), self.csrf_token(key))


def new_session(access_key_id: str, *, now: float | None = None) -> Session:
    return Session(
        access_key_id=access_key_id,
        nonce=secrets.token_urlsafe(18),
        expires_at=(now or time.time()) + SESSION_SECONDS,
    )


def session_cookie(key: bytes, session: Session) -> str:
    return sign(key, {"k": session.access_key_id, "n": session.nonce, "e": session.expires_at})


def read_session(key: bytes, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a cookie stands for, if its signature holds and it has not expired."""
    payload = unsign(key, cookie)
    if payload is None:
        return None
    try:
        session = Session(str(payload["k"]), str(payload["n"]), float(payload["e"]))
    except (KeyError, TypeError, ValueError):
        return None
    if session.expires_at <= (now or time.time()):
        return None
    return session


def secrets_match(given: str, stored: str | None) -> bool:
    """Constant-time comparison of a typed secret with the stored one (None never matches)."""
    if stored is None:
        # Compare anyway so an unknown key id costs the same time as a wrong secret.
        same_text(given, given)
        return False
    return same_text(given, stored)
