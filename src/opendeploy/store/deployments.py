"""Deployments and their targets: creation (with the one-active-per-group rule), reads, lists,
stop and continue requests, and the per-target lifecycle events the engine fills in.

A deployment row keeps the names of its application and group as they were, so its history
outlives both. ``deploymentOverview`` is counted from the targets, never stored twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from opendeploy.domain.status import (
    TERMINAL_DEPLOYMENT_STATUSES,
    DeploymentStatus,
    InstanceStatus,
)
from opendeploy.service_errors import (
    DeploymentAlreadyCompletedError,
    DeploymentDoesNotExistError,
    DeploymentGroupDoesNotExistError,
    DeploymentLimitExceededError,
)
from opendeploy.store import tables
from opendeploy.store._base import Repository
from opendeploy.store.instances import registered_with_tags
from opendeploy.store.revisions import upsert as upsert_revision

_D = tables.deployments
_TG = tables.deployment_targets
_EV = tables.lifecycle_events
_G = tables.deployment_groups

_TERMINAL = [str(s) for s in TERMINAL_DEPLOYMENT_STATUSES]

#: The keys of ``deploymentOverview``, as the API spells them.
OVERVIEW_KEYS = ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready")

#: The message CI tools parse (CircleCI-Public/aws-ecs-orb#181); keep it exact.
ACTIVE_DEPLOYMENT_MESSAGE = "The Deployment Group '{group}' already has an active Deployment '{id}'"

#: Chooses the targets from the registered fleet: [(name, arn, tags)] -> [(name, arn, label)].
TargetSelector = Callable[
    [list[tuple[str, str, dict[str, str]]]], list[tuple[str, str, str | None]]
]


def does_not_exist(deployment_id: str) -> DeploymentDoesNotExistError:
    return DeploymentDoesNotExistError(f"The deployment {deployment_id} could not be found.")


def _overviews(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        select(_TG.c.deployment_id, _TG.c.status, func.count())
        .where(_TG.c.deployment_id.in_(list(ids)))
        .group_by(_TG.c.deployment_id, _TG.c.status)
    ).all()
    out = {i: dict.fromkeys(OVERVIEW_KEYS, 0) for i in ids}
    for deployment_id, status, count in rows:
        overview = out[str(deployment_id)]
        if status in overview:
            overview[str(status)] = int(str(count))
    return out


class Deployments(Repository):
    """Rows of ``deployments`` as dicts of column names plus ``overview``."""

    def create(
        self,
        *,
        deployment: dict[str, Any],
        select_targets: TargetSelector | None,
        now: datetime,
        target_type: str = "InstanceTarget",
        also: Callable[[Connection], None] | None = None,
    ) -> dict[str, Any]:
        """Record a deployment, its targets and the revision's use, in one transaction.

        ``deployment`` holds the column values (``deployment_id``, ``application_id``,
        ``deployment_group_id``, ``revision`` …). The group is locked first, so two concurrent
        creates cannot both pass the one-active-deployment check (DeploymentLimitExceeded).
        ``select_targets`` picks the targets from the registered fleet at this moment. The
        store records what it found; the engine decides (a deployment with no targets fails
        with NO_INSTANCES on its first pass, asynchronously, as AWS's does).
        """
        group_id = deployment.get("deployment_group_id")
        row = dict(deployment)
        with self.db.write() as conn:
            if group_id is not None:
                group = conn.execute(
                    select(_G.c.name, _G.c.last_successful_deployment_id)
                    .where(_G.c.deployment_group_id == group_id)
                    .with_for_update()
                ).first()
                if group is None:
                    raise DeploymentGroupDoesNotExistError(
                        f"No Deployment Group found for id: {group_id}"
                    )
                active = conn.execute(
                    select(_D.c.deployment_id)
                    .where(_D.c.deployment_group_id == group_id, _D.c.status.not_in(_TERMINAL))
                    .order_by(_D.c.create_time)
                    .limit(1)
                ).scalar_one_or_none()
                if active is not None:
                    raise DeploymentLimitExceededError(
                        ACTIVE_DEPLOYMENT_MESSAGE.format(group=group.name, id=active)
                    )
                if group.last_successful_deployment_id and "previous_revision" not in row:
                    row["previous_revision"] = conn.execute(
                        select(_D.c.revision).where(
                            _D.c.deployment_id == group.last_successful_deployment_id
                        )
                    ).scalar_one_or_none()
            targets = select_targets(registered_with_tags(conn)) if select_targets else []
            row.setdefault("status", str(DeploymentStatus.CREATED))
            row.setdefault("create_time", now)
            conn.execute(insert(_D).values(**row))
            if targets:
                conn.execute(
                    insert(_TG),
                    [
                        {
                            "deployment_id": row["deployment_id"],
                            "target_id": name,
                            "target_arn": arn,
                            "target_type": target_type,
                            "instance_label": label,
                            "status": str(InstanceStatus.PENDING),
                            "last_updated_at": now,
                        }
                        for name, arn, label in targets
                    ],
                )
            if group_id is not None:
                conn.execute(
                    update(_G)
                    .where(_G.c.deployment_group_id == group_id)
                    .values(
                        last_attempted_deployment_id=row["deployment_id"],
                        # AWS sets the group's targetRevision from each deployment.
                        **({"target_revision": row["revision"]} if row.get("revision") else {}),
                    )
                )
            if row.get("revision"):
                upsert_revision(
                    conn,
                    application_id=row["application_id"],
                    location=row["revision"],
                    description=None,
                    now=now,
                    used=True,
                    first_description=(
                        f"Application revision registered by Deployment ID: {row['deployment_id']}"
                    ),
                )
            if also is not None:
                also(conn)  # the platform's own rows (a Lambda deployment's AppSpec)
        found = self.get(row["deployment_id"])
        assert found is not None
        return found

    def get(self, deployment_id: str) -> dict[str, Any] | None:
        return self.get_many([deployment_id])[0]

    def status_of(self, deployment_id: str) -> DeploymentStatus | None:
        """The deployment's status alone (None if unknown): what waiters poll for."""
        with self.db.read() as conn:
            raw = conn.execute(
                select(_D.c.status).where(_D.c.deployment_id == deployment_id)
            ).scalar_one_or_none()
        return None if raw is None else DeploymentStatus(raw)

    def get_many(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each id's deployment with its ``overview`` (None where unknown), in the order asked."""
        with self.db.read() as conn:
            rows = conn.execute(select(_D).where(_D.c.deployment_id.in_(list(ids)))).mappings()
            by_id = {r["deployment_id"]: dict(r) for r in rows}
            overviews = _overviews(conn, list(by_id))
        for deployment_id, row in by_id.items():
            row["overview"] = overviews[deployment_id]
        return [by_id.get(i) for i in ids]

    def brief(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """id -> {deployment_id, status, create_time, complete_time} (for group summaries)."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_D.c.deployment_id, _D.c.status, _D.c.create_time, _D.c.complete_time).where(
                    _D.c.deployment_id.in_(list(ids))
                )
            ).mappings()
            return {r["deployment_id"]: dict(r) for r in rows}

    def list_ids(
        self,
        *,
        application_id: str | None = None,
        deployment_group_name: str | None = None,
        statuses: Sequence[str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        external_id: str | None = None,
        after: str | None = None,
        offset: int = 0,
        limit: int,
    ) -> tuple[list[str], bool]:
        """One page of ids, newest first, after the deployment ``after``, filtered as
        ListDeployments asks."""
        query = select(_D.c.deployment_id)
        if application_id is not None:
            query = query.where(_D.c.application_id == application_id)
        if deployment_group_name is not None:
            query = query.where(_D.c.deployment_group_name == deployment_group_name)
        if statuses:
            query = query.where(_D.c.status.in_(list(statuses)))
        if created_after is not None:
            query = query.where(_D.c.create_time >= created_after)
        if created_before is not None:
            query = query.where(_D.c.create_time <= created_before)
        if external_id is not None:
            query = query.where(_D.c.external_id == external_id)
        if after is not None:
            created = select(_D.c.create_time).where(_D.c.deployment_id == after).scalar_subquery()
            query = query.where(
                or_(
                    _D.c.create_time < created,
                    and_(_D.c.create_time == created, _D.c.deployment_id < after),
                )
            )
        query = (
            query.order_by(_D.c.create_time.desc(), _D.c.deployment_id.desc())
            .offset(offset)
            .limit(limit + 1)
        )
        with self.db.read() as conn:
            ids: list[str] = list(conn.execute(query).scalars())
        return ids[:limit], len(ids) > limit

    def request_stop(
        self, deployment_id: str, *, auto_rollback: bool | None, now: datetime
    ) -> None:
        """Record a stop request (the AWS errors for an unknown or finished deployment).

        The store records the request; the engine decides what it means (ends the deployment
        as Stopped once no lifecycle event runs, and rolls back when asked), on its next pass.
        """
        with self.db.write() as conn:
            status = conn.execute(
                select(_D.c.status).where(_D.c.deployment_id == deployment_id).with_for_update()
            ).scalar_one_or_none()
            if status is None:
                raise does_not_exist(deployment_id)
            if status in _TERMINAL:
                raise DeploymentAlreadyCompletedError(
                    f"Deployment {deployment_id} has already completed."
                )
            conn.execute(
                update(_D)
                .where(_D.c.deployment_id == deployment_id)
                .values(stop_requested=True, auto_rollback_on_stop=auto_rollback)
            )

    def request_continue(self, deployment_id: str, wait_type: str) -> None:
        """Record a ContinueDeployment (the caller has checked that the deployment waits)."""
        with self.db.write() as conn:
            conn.execute(
                update(_D)
                .where(_D.c.deployment_id == deployment_id)
                .values(continue_requested=wait_type)
            )

    # --- targets -----------------------------------------------------------------------------

    def list_target_ids(
        self,
        deployment_id: str,
        *,
        statuses: Sequence[str] = (),
        labels: Sequence[str] = (),
        after: str | None = None,
        offset: int = 0,
        limit: int,
    ) -> tuple[list[str], bool]:
        """One page of the deployment's target ids (id order, after ``after``), filtered by
        status and label."""
        query = select(_TG.c.target_id).where(_TG.c.deployment_id == deployment_id)
        if statuses:
            query = query.where(_TG.c.status.in_(list(statuses)))
        if labels:
            query = query.where(_TG.c.instance_label.in_(list(labels)))
        if after is not None:
            query = query.where(_TG.c.target_id > after)
        query = query.order_by(_TG.c.target_id).offset(offset).limit(limit + 1)
        with self.db.read() as conn:
            ids: list[str] = list(conn.execute(query).scalars())
        return ids[:limit], len(ids) > limit

    def get_targets(
        self, deployment_id: str, target_ids: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Each target with ``lifecycle_events`` (in order), None where unknown."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_TG).where(
                    _TG.c.deployment_id == deployment_id, _TG.c.target_id.in_(list(target_ids))
                )
            ).mappings()
            by_id = {r["target_id"]: {**r, "lifecycle_events": []} for r in rows}
            events = conn.execute(
                select(_EV)
                .where(_EV.c.deployment_id == deployment_id, _EV.c.target_id.in_(list(by_id)))
                .order_by(_EV.c.target_id, _EV.c.position)
            ).mappings()
            for event in events:
                by_id[event["target_id"]]["lifecycle_events"].append(dict(event))
        return [by_id.get(t) for t in target_ids]

    def set_lifecycle_events(
        self, deployment_id: str, target_id: str, events: Sequence[dict[str, Any]]
    ) -> None:
        """Replace a target's lifecycle events (dicts of ``lifecycle_events`` columns, in order).

        For the engine: it writes the plan when it starts a target and rewrites it as the agent
        reports each event.
        """
        with self.db.write() as conn:
            conn.execute(
                _EV.delete().where(
                    _EV.c.deployment_id == deployment_id, _EV.c.target_id == target_id
                )
            )
            if events:
                conn.execute(
                    insert(_EV),
                    [
                        {
                            "deployment_id": deployment_id,
                            "target_id": target_id,
                            "position": position,
                            **event,
                        }
                        for position, event in enumerate(events)
                    ],
                )
