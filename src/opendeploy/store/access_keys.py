"""Access keys: the SigV4 credentials the server knows (admin keys and per-instance keys)."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select

from opendeploy.store import tables
from opendeploy.store._base import Repository

_ID_ALPHABET = string.ascii_uppercase + "234567"  # the base32 alphabet AWS key ids use
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"

KINDS = ("admin", "instance")


def new_access_key_id() -> str:
    """An AWS-looking access key id: ``AKIA`` and 16 characters, 20 in all."""
    return "AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))


def new_secret_access_key() -> str:
    """A 40-character secret, like AWS's, from the ``secrets`` module."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


class AccessKeys(Repository):
    """Create and look up access keys; secrets are stored as issued (SigV4 needs them)."""

    def create(self, *, principal: str, kind: str) -> tuple[str, str]:
        """Issue a key for ``principal`` (``kind`` "admin" or "instance"); returns (id, secret)."""
        if kind not in KINDS:
            raise ValueError(f"access key kind: {kind!r} is not one of {', '.join(KINDS)}")
        key_id, secret = new_access_key_id(), new_secret_access_key()
        with self.db.write() as conn:
            conn.execute(
                insert(tables.access_keys).values(
                    access_key_id=key_id,
                    secret_access_key=secret,
                    principal=principal,
                    kind=kind,
                    created_at=datetime.now(UTC),
                )
            )
        return key_id, secret

    def get_secret(self, access_key_id: str) -> str | None:
        """The secret of ``access_key_id``, or None when the key is unknown."""
        t = tables.access_keys
        with self.db.read() as conn:
            return conn.execute(
                select(t.c.secret_access_key).where(t.c.access_key_id == access_key_id)
            ).scalar_one_or_none()

    def get_principal(self, access_key_id: str) -> str | None:
        """Who ``access_key_id`` belongs to (an admin name or an instance name), or None."""
        t = tables.access_keys
        with self.db.read() as conn:
            return conn.execute(
                select(t.c.principal).where(t.c.access_key_id == access_key_id)
            ).scalar_one_or_none()

    def first(self, kind: str) -> tuple[str, str] | None:
        """The oldest key of ``kind`` as (id, secret), or None; the server's admin key on start."""
        t = tables.access_keys
        with self.db.read() as conn:
            row = conn.execute(
                select(t.c.access_key_id, t.c.secret_access_key)
                .where(t.c.kind == kind)
                .order_by(t.c.created_at, t.c.access_key_id)
                .limit(1)
            ).first()
        return None if row is None else (row[0], row[1])

    def of_principal(self, principal: str, kind: str) -> tuple[str, str] | None:
        """The oldest key of ``principal`` and ``kind`` as (id, secret), or None."""
        t = tables.access_keys
        with self.db.read() as conn:
            row = conn.execute(
                select(t.c.access_key_id, t.c.secret_access_key)
                .where(t.c.principal == principal, t.c.kind == kind)
                .order_by(t.c.created_at, t.c.access_key_id)
                .limit(1)
            ).first()
        return None if row is None else (row[0], row[1])

    def revoke(self, access_key_id: str) -> bool:
        """Delete the key; its dashboard sessions end with it at once (their rows cascade).
        SigV4 refuses it from the next lookup of its secret (a running server remembers found
        secrets for a while: ``api.key_cache``). False when there was no such key."""
        t = tables.access_keys
        with self.db.write() as conn:
            return bool(conn.execute(delete(t).where(t.c.access_key_id == access_key_id)).rowcount)
