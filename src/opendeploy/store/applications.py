"""Applications: create, read, rename, list and delete (with their groups and revisions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from opendeploy.domain.ids import new_uuid
from opendeploy.service_errors import ApplicationAlreadyExistsError, ApplicationDoesNotExistError
from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.applications


def already_exists(name: str) -> ApplicationAlreadyExistsError:
    return ApplicationAlreadyExistsError(f"The application {name} already exists with the user.")


def does_not_exist(name: str) -> ApplicationDoesNotExistError:
    return ApplicationDoesNotExistError(f"No application found for name: {name}")


class Applications(Repository):
    """Rows of ``applications`` as dicts of column names (snake_case)."""

    def create(self, *, name: str, compute_platform: str, now: datetime) -> dict[str, Any]:
        """Insert a new application; ApplicationAlreadyExistsException when the name is taken."""
        row = {
            "application_id": new_uuid(),
            "name": name,
            "compute_platform": compute_platform,
            "create_time": now,
            "linked_to_github": False,
            "github_account_name": None,
        }
        try:
            with self.db.write() as conn:
                if conn.execute(select(_T.c.name).where(_T.c.name == name)).first():
                    raise already_exists(name)
                conn.execute(insert(_T).values(**row))
        except IntegrityError as exc:  # a concurrent create won the race
            raise already_exists(name) from exc
        return row

    def get(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(_T).where(_T.c.name == name)).mappings().first()
        return None if row is None else dict(row)

    def require(self, name: str) -> dict[str, Any]:
        """The application, or ApplicationDoesNotExistException."""
        app = self.get(name)
        if app is None:
            raise does_not_exist(name)
        return app

    def get_many(self, names: list[str]) -> list[dict[str, Any]]:
        """The applications among ``names`` that exist, in the order asked."""
        with self.db.read() as conn:
            rows = conn.execute(select(_T).where(_T.c.name.in_(names))).mappings().all()
        by_name = {r["name"]: dict(r) for r in rows}
        return [by_name[n] for n in dict.fromkeys(names) if n in by_name]

    def list_names(
        self, *, after: str | None = None, offset: int = 0, limit: int
    ) -> tuple[list[str], bool]:
        """One page of names in name order (after ``after``, skipping ``offset`` for the
        dashboard's numbered pages), and whether more follow."""
        query = select(_T.c.name).order_by(_T.c.name).offset(offset).limit(limit + 1)
        if after is not None:
            query = query.where(_T.c.name > after)
        with self.db.read() as conn:
            names: list[str] = list(conn.execute(query).scalars())
        return names[:limit], len(names) > limit

    def count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(_T)).scalar_one())

    def rename(self, current: str, new: str) -> None:
        """UpdateApplication: give ``current`` the name ``new``; its groups follow."""
        try:
            with self.db.write() as conn:
                if conn.execute(select(_T.c.name).where(_T.c.name == new)).first():
                    raise already_exists(new)
                result = conn.execute(update(_T).where(_T.c.name == current).values(name=new))
                if result.rowcount == 0:
                    raise does_not_exist(current)
                d = tables.deployments
                # Keep the history readable under the new name, as AWS does.
                conn.execute(
                    update(d).where(d.c.application_name == current).values(application_name=new)
                )
        except IntegrityError as exc:
            raise already_exists(new) from exc

    def delete(self, name: str) -> list[str]:
        """Delete the application, its groups and its revision records (deployments stay).

        Returns the names of the deleted groups (so the caller can drop their tags). Deleting an
        application that does not exist is not an error, as in AWS.
        """
        g = tables.deployment_groups
        with self.db.write() as conn:
            app_id = conn.execute(
                select(_T.c.application_id).where(_T.c.name == name)
            ).scalar_one_or_none()
            if app_id is None:
                return []
            groups = list(
                conn.execute(select(g.c.name).where(g.c.application_id == app_id)).scalars()
            )
            # Explicit deletes rather than relying on ON DELETE CASCADE alone, so the result does
            # not depend on SQLite's foreign_keys pragma.
            conn.execute(delete(g).where(g.c.application_id == app_id))
            conn.execute(
                delete(tables.revisions).where(tables.revisions.c.application_id == app_id)
            )
            conn.execute(delete(_T).where(_T.c.application_id == app_id))
        return groups
