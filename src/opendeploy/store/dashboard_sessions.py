"""Dashboard sessions held server-side: a row per sign-in, ended by sign-out or revocation.

The cookie (``web/session``) is signed and names the session by its random nonce; the row (keyed
by the nonce's SHA-256, so the table alone cannot be turned back into cookies) is what makes it
a live session. Signing out deletes the row; revoking the access key deletes its rows with it
(``ON DELETE CASCADE``); expired rows are dropped when someone signs in.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, insert, select

from opendeploy.store import tables
from opendeploy.store._base import Repository

_S = tables.dashboard_sessions
_K = tables.access_keys


def session_id(nonce: str) -> str:
    """The stored name of the session whose cookie carries ``nonce``."""
    return hashlib.sha256(nonce.encode("utf-8", "surrogatepass")).hexdigest()


class DashboardSessions(Repository):
    """Start, look up and end dashboard sessions."""

    def start(self, nonce: str, access_key_id: str, *, now: datetime, expires_at: datetime) -> None:
        """Record a sign-in (and forget sessions that have expired)."""
        with self.db.write() as conn:
            conn.execute(delete(_S).where(_S.c.expires_at <= now))
            conn.execute(
                insert(_S).values(
                    session_id=session_id(nonce),
                    access_key_id=access_key_id,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    def key_kind(self, nonce: str, access_key_id: str, *, now: datetime) -> str | None:
        """The kind of the key (``"admin"`` …) a live session of ``access_key_id`` was started
        with; None when the session was ended, has expired, or its key is gone."""
        with self.db.read() as conn:
            kind = conn.execute(
                select(_K.c.kind)
                .select_from(_S.join(_K, _K.c.access_key_id == _S.c.access_key_id))
                .where(
                    _S.c.session_id == session_id(nonce),
                    _S.c.access_key_id == access_key_id,
                    _S.c.expires_at > now,
                )
            ).scalar_one_or_none()
        return None if kind is None else str(kind)

    def end(self, nonce: str) -> None:
        """Sign-out: the session's cookie stops working at once, on every replica."""
        with self.db.write() as conn:
            conn.execute(delete(_S).where(_S.c.session_id == session_id(nonce)))
