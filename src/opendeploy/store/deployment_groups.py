"""Deployment groups of an application: create, read, update, list, delete.

Groups are addressed by (application id, group name). Their settings are columns named after the
API members in snake_case (see ``tables.deployment_groups``); nested objects keep the AWS shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from opendeploy.domain.ids import new_uuid
from opendeploy.service_errors import (
    DeploymentGroupAlreadyExistsError,
    DeploymentGroupDoesNotExistError,
)
from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.deployment_groups

#: The columns a caller may set on create/update (everything but ids, times and history).
SETTINGS = frozenset(
    c.name
    for c in _T.columns
    if c.name
    not in {
        "deployment_group_id",
        "application_id",
        "name",
        "create_time",
        "last_successful_deployment_id",
        "last_attempted_deployment_id",
    }
)


def already_exists(app: str, name: str) -> DeploymentGroupAlreadyExistsError:
    return DeploymentGroupAlreadyExistsError(
        f"A deployment group named {name} already exists for application {app}."
    )


def does_not_exist(app: str, name: str) -> DeploymentGroupDoesNotExistError:
    return DeploymentGroupDoesNotExistError(
        f"No Deployment Group found for name: {name} (application: {app})"
    )


class DeploymentGroups(Repository):
    """Rows of ``deployment_groups`` as dicts of column names."""

    def create(
        self,
        *,
        application_id: str,
        app_name: str,
        name: str,
        settings: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        """Insert a group; DeploymentGroupAlreadyExistsException when the name is taken."""
        unknown = set(settings) - SETTINGS
        if unknown:
            raise ValueError(f"deployment group settings: unknown columns {sorted(unknown)}")
        row = {
            "deployment_group_id": new_uuid(),
            "application_id": application_id,
            "name": name,
            "create_time": now,
            **settings,
        }
        try:
            with self.db.write() as conn:
                if conn.execute(
                    select(_T.c.name).where(
                        _T.c.application_id == application_id, _T.c.name == name
                    )
                ).first():
                    raise already_exists(app_name, name)
                conn.execute(insert(_T).values(**row))
        except IntegrityError as exc:
            raise already_exists(app_name, name) from exc
        return self.get(application_id, name) or row

    def get(self, application_id: str, name: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = (
                conn.execute(
                    select(_T).where(_T.c.application_id == application_id, _T.c.name == name)
                )
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def get_by_id(self, deployment_group_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = (
                conn.execute(select(_T).where(_T.c.deployment_group_id == deployment_group_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)

    def holding_ecs_services(
        self, services: list[tuple[str, str]], *, except_group: str | None = None
    ) -> list[tuple[str, str, str]]:
        """The (cluster, service, group id) of every ECS group but ``except_group`` whose
        ``ecsServices`` name one of ``services`` ((cluster, service) pairs)."""
        wanted = set(services)
        found: list[tuple[str, str, str]] = []
        with self.db.read() as conn:
            rows = conn.execute(
                select(_T.c.deployment_group_id, _T.c.ecs_services).where(
                    _T.c.compute_platform == "ECS"
                )
            ).all()
        for group_id, held in rows:
            if group_id == except_group:
                continue
            items = cast(list[dict[str, Any]], held or [])
            for item in items:
                key = (str(item.get("clusterName")), str(item.get("serviceName")))
                if key in wanted:
                    found.append((*key, str(group_id)))
        return found

    def get_many(self, application_id: str, names: list[str]) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    select(_T).where(_T.c.application_id == application_id, _T.c.name.in_(names))
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def list_names(
        self, application_id: str, *, after: str | None, limit: int
    ) -> tuple[list[str], bool]:
        """One page of the application's group names in name order after ``after``, and whether
        more follow."""
        query = (
            select(_T.c.name)
            .where(_T.c.application_id == application_id)
            .order_by(_T.c.name)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(_T.c.name > after)
        with self.db.read() as conn:
            names: list[str] = list(conn.execute(query).scalars())
        return names[:limit], len(names) > limit

    def update(
        self,
        *,
        application_id: str,
        app_name: str,
        current_name: str,
        new_name: str | None,
        settings: dict[str, Any],
    ) -> None:
        """Change the given settings (and the name); the others keep their values."""
        unknown = set(settings) - SETTINGS
        if unknown:
            raise ValueError(f"deployment group settings: unknown columns {sorted(unknown)}")
        values = dict(settings)
        if new_name and new_name != current_name:
            values["name"] = new_name
        try:
            with self.db.write() as conn:
                where = (_T.c.application_id == application_id, _T.c.name == current_name)
                if conn.execute(select(_T.c.name).where(*where)).first() is None:
                    raise does_not_exist(app_name, current_name)
                if (
                    "name" in values
                    and conn.execute(
                        select(_T.c.name).where(
                            _T.c.application_id == application_id, _T.c.name == new_name
                        )
                    ).first()
                ):
                    raise already_exists(app_name, str(new_name))
                if values:
                    conn.execute(update(_T).where(*where).values(**values))
                if "name" in values:
                    d = tables.deployments
                    conn.execute(
                        update(d)
                        .where(d.c.application_id == application_id)
                        .where(d.c.deployment_group_name == current_name)
                        .values(deployment_group_name=new_name)
                    )
        except IntegrityError as exc:
            raise already_exists(app_name, str(new_name)) from exc

    def delete(self, application_id: str, name: str) -> bool:
        """Delete the group (its deployments stay); False when there was none."""
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    delete(_T).where(_T.c.application_id == application_id, _T.c.name == name)
                ).rowcount
            )
