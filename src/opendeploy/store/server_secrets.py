"""Secrets made once and shared by every replica of one database (table ``server_secrets``).

:meth:`ServerSecrets.get_or_create` is race-free without locks: each replica that finds no row
makes a value and inserts it only if the name is still free (``ON CONFLICT DO NOTHING``), then
reads back whatever is stored, so replicas starting together all end up with the first one's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.server_secrets


class ServerSecrets(Repository):
    """Named values every replica reads alike."""

    def get(self, name: str) -> str | None:
        with self.db.read() as conn:
            value = conn.execute(select(_T.c.value).where(_T.c.name == name)).scalar_one_or_none()
        return None if value is None else str(value)

    def get_or_create(self, name: str, make: Callable[[], str]) -> str:
        """The value stored under ``name``; when there is none, ``make()``'s, unless another
        replica stored one meanwhile (then that one: the first insert wins)."""
        found = self.get(name)
        if found is not None:
            return found
        self._insert_if_absent(name, make())
        stored = self.get(name)
        if stored is None:  # pragma: no cover - the row cannot vanish between two statements
            raise RuntimeError(f"server secret {name!r} was not stored")
        return stored

    def replace(self, name: str, value: str) -> None:
        """Store ``value`` under ``name`` whatever was there (a signer for a new region)."""
        with self.db.write() as conn:
            changed = conn.execute(update(_T).where(_T.c.name == name).values(value=value))
            if changed.rowcount:
                return
        self._insert_if_absent(name, value)

    def _insert_if_absent(self, name: str, value: str) -> None:
        row = {"name": name, "value": value, "created_at": datetime.now(UTC)}
        with self.db.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(postgresql.insert(_T).values(**row).on_conflict_do_nothing())
            else:
                conn.execute(sqlite.insert(_T).values(**row).on_conflict_do_nothing())
