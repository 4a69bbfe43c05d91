"""GitHub account token names (connections made outside the API; listed and deleted by it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select

from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.github_account_tokens


class GitHubTokens(Repository):
    """The named GitHub tokens the server may use to fetch GitHub revisions."""

    def add(self, *, name: str, token: str | None, now: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(delete(_T).where(_T.c.name == name))
            conn.execute(insert(_T).values(name=name, token=token, create_time=now))

    def list_names(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(select(_T.c.name).order_by(_T.c.name)).scalars())

    def delete(self, name: str) -> bool:
        """Forget the token; False when there was none by that name."""
        with self.db.write() as conn:
            return bool(conn.execute(delete(_T).where(_T.c.name == name)).rowcount)
