"""Custom deployment configurations (the predefined ones live in ``domain.configs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from opendeploy.domain.configs import PREDEFINED, InvalidTrafficRouting, TrafficRouting
from opendeploy.domain.ids import new_uuid
from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES
from opendeploy.service_errors import DeploymentConfigAlreadyExistsError, DeploymentConfigInUseError
from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.deployment_configs


def traffic_routing_of(
    conn: Connection, config_name: str, platform: str | None, *, blue_green: bool = False
) -> TrafficRouting | None:
    """The ``trafficRoutingConfig`` of a deployment's configuration: a Lambda or ECS one's
    shifts, or a Server blue/green one's (canary or linear between the blue and green pools;
    an in-place deployment shifts nothing)."""
    if platform in (None, "Server") and not blue_green:
        return None
    predefined = PREDEFINED.get(config_name)
    if predefined is not None:
        return predefined.traffic_routing
    stored = conn.execute(
        select(_T.c.traffic_routing_config).where(_T.c.name == config_name)
    ).scalar_one_or_none()
    try:
        return TrafficRouting.from_wire(stored) if stored else None
    except InvalidTrafficRouting:
        return None  # checked on creation; a row written by hand runs all at once


def _already_exists(name: str) -> DeploymentConfigAlreadyExistsError:
    return DeploymentConfigAlreadyExistsError(
        f"Deployment Configuration already exists with name {name}"
    )


class DeploymentConfigs(Repository):
    """Rows of ``deployment_configs`` as dicts; JSON columns hold the AWS shapes."""

    def create(
        self,
        *,
        name: str,
        compute_platform: str,
        minimum_healthy_hosts: dict[str, Any] | None,
        traffic_routing_config: dict[str, Any] | None,
        zonal_config: dict[str, Any] | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Insert a custom configuration; DeploymentConfigAlreadyExistsException if taken."""
        row = {
            "deployment_config_id": new_uuid(),
            "name": name,
            "compute_platform": compute_platform,
            "create_time": now,
            "minimum_healthy_hosts": minimum_healthy_hosts,
            "traffic_routing_config": traffic_routing_config,
            "zonal_config": zonal_config,
        }
        try:
            with self.db.write() as conn:
                if conn.execute(select(_T.c.name).where(_T.c.name == name)).first():
                    raise _already_exists(name)
                conn.execute(insert(_T).values(**row))
        except IntegrityError as exc:
            raise _already_exists(name) from exc
        return row

    def get(self, name: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(_T).where(_T.c.name == name)).mappings().first()
        return None if row is None else dict(row)

    def list_names(self) -> list[str]:
        """Every custom configuration name, in name order."""
        with self.db.read() as conn:
            return list(conn.execute(select(_T.c.name).order_by(_T.c.name)).scalars())

    def delete(self, name: str) -> None:
        """Delete a custom configuration unless a group or an active deployment uses it.

        DeploymentConfigInUseException otherwise; deleting an unknown name is not an error.
        """
        g, d = tables.deployment_groups, tables.deployments
        with self.db.write() as conn:
            used = (
                conn.execute(
                    select(g.c.deployment_group_id)
                    .where(g.c.deployment_config_name == name)
                    .limit(1)
                ).first()
                or conn.execute(
                    select(d.c.deployment_id)
                    .where(d.c.deployment_config_name == name)
                    .where(d.c.status.not_in([str(s) for s in TERMINAL_DEPLOYMENT_STATUSES]))
                    .limit(1)
                ).first()
            )
            if used:
                raise DeploymentConfigInUseError(
                    f"The deployment config {name} is in use by a deployment group "
                    "or an active deployment."
                )
            conn.execute(delete(_T).where(_T.c.name == name))
