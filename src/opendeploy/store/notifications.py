"""The notification delivery log: rows made from outbox events, claimed and updated by senders.

``add`` is idempotent (the unique (event_seq, trigger_name) pair), so an outbox batch delivered
twice makes each delivery once. ``claim`` leases due rows to one replica (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so replicas claim different rows); the claim survives a restart of the
same replica (its id is kept in the data directory) and runs out otherwise, after which another
replica sends the row again with the same idempotency key (at least once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from opendeploy.engine.notifications.messages import DeploymentFacts, LifecycleFact
from opendeploy.engine.notifications.senders import Delivery
from opendeploy.store import tables
from opendeploy.store.database import Store

_N = tables.notification_deliveries
_D = tables.deployments
_G = tables.deployment_groups
_T = tables.deployment_targets
_L = tables.lifecycle_events

PENDING = "Pending"
DELIVERED = "Delivered"
FAILED = "Failed"

_B_NOW = bindparam("b_now", type_=_N.c.next_attempt_at.type)
_B_OWNER = bindparam("b_owner", type_=_N.c.lease_owner.type)
_DUE = and_(
    _N.c.status == PENDING,
    _N.c.next_attempt_at <= _B_NOW,
    or_(
        _N.c.lease_expires_at.is_(None),
        _N.c.lease_owner == _B_OWNER,
        _N.c.lease_expires_at < _B_NOW,
    ),
)
_OVERVIEW_KEYS = ("Succeeded", "Failed", "Skipped", "InProgress", "Pending")


@dataclass(frozen=True, slots=True)
class Subject:
    """A deployment as notifications see it: its facts and its group's triggers."""

    facts: DeploymentFacts
    triggers: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """A row of the delivery log, as the dashboard and the CLI show it."""

    id: int
    deployment_id: str
    instance_id: str | None
    event_type: str
    trigger_name: str
    target_kind: str
    target: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    occurred_at: datetime
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    next_attempt_at: datetime
    idempotency_key: str


class NotificationLog:
    """Reads deployments' facts for messages; adds, claims, settles and lists deliveries."""

    def __init__(self, store: Store, owner: str) -> None:
        self.store = store
        self.owner = owner

    def subjects(self, deployment_ids: Iterable[str]) -> dict[str, Subject]:
        """Facts and triggers of these deployments (those whose group has triggers)."""
        ids = sorted(set(deployment_ids))
        if not ids:
            return {}
        with self.store.database.read() as conn:
            deps = conn.execute(select(_D).where(_D.c.deployment_id.in_(ids))).mappings().all()
            group_ids = {d["deployment_group_id"] for d in deps if d["deployment_group_id"]}
            triggers: dict[str, list[Mapping[str, Any]]] = {}
            if group_ids:
                for g in conn.execute(
                    select(_G.c.deployment_group_id, _G.c.trigger_configurations).where(
                        _G.c.deployment_group_id.in_(group_ids)
                    )
                ):
                    if g.trigger_configurations:
                        triggers[g.deployment_group_id] = list(g.trigger_configurations)
            deps = [d for d in deps if d["deployment_group_id"] in triggers]
            overview = _overviews(conn, [d["deployment_id"] for d in deps])
        out: dict[str, Subject] = {}
        for d in deps:
            dep = d["deployment_id"]
            facts = DeploymentFacts(
                deployment_id=dep,
                application_name=d["application_name"],
                deployment_group_name=d["deployment_group_name"] or "",
                status=d["status"],
                create_time=d["create_time"],
                complete_time=d["complete_time"],
                overview=overview.get(dep, dict.fromkeys(_OVERVIEW_KEYS, 0)),
                error_information=d["error_information"],
                rollback_info=d["rollback_info"],
            )
            out[dep] = Subject(facts, triggers[d["deployment_group_id"]])
        return out

    def with_instances(
        self, facts: DeploymentFacts, instance_ids: Iterable[str]
    ) -> DeploymentFacts:
        """``facts`` with the ARNs and lifecycle events of these targets (instance events)."""
        names = sorted(set(instance_ids))
        if not names:
            return facts
        dep = facts.deployment_id
        with self.store.database.read() as conn:
            arns = {
                str(r.target_id): str(r.target_arn)
                for r in conn.execute(
                    select(_T.c.target_id, _T.c.target_arn).where(
                        _T.c.deployment_id == dep, _T.c.target_id.in_(names)
                    )
                )
            }
            lifecycle: dict[str, list[LifecycleFact]] = {name: [] for name in names}
            for e in conn.execute(
                select(_L.c.target_id, _L.c.name, _L.c.status, _L.c.start_time, _L.c.end_time)
                .where(_L.c.deployment_id == dep, _L.c.target_id.in_(names))
                .order_by(_L.c.target_id, _L.c.position)
            ):
                lifecycle[str(e.target_id)].append(
                    LifecycleFact(e.name, e.status, e.start_time, e.end_time)
                )
        return replace(facts, target_arns=arns, lifecycle=lifecycle)

    def add(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert deliveries, skipping those that exist; how many were new."""
        if not rows:
            return 0
        added = 0
        with self.store.database.write() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            for row in rows:
                # RETURNING, not rowcount: SQLite's driver reports -1 for an upsert.
                statement = insert(_N).values(**row).on_conflict_do_nothing().returning(_N.c.id)
                added += len(conn.execute(statement).all())
        return added

    def claim(self, now: datetime, *, lease_seconds: float, limit: int) -> list[Delivery]:
        """Up to ``limit`` due deliveries, leased to this replica, oldest first."""
        expires = now + timedelta(seconds=lease_seconds)
        with self.store.database.write() as conn:
            query = select(_N.c.id).where(_DUE).order_by(_N.c.id).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [int(r[0]) for r in conn.execute(query, {"b_now": now, "b_owner": self.owner})]
            if not ids:
                return []
            conn.execute(
                update(_N)
                .where(_N.c.id.in_(ids))
                .values(lease_owner=self.owner, lease_expires_at=expires)
            )
            rows = conn.execute(select(_N).where(_N.c.id.in_(ids)).order_by(_N.c.id)).mappings()
            return [
                Delivery(
                    id=int(r["id"]),
                    trigger_name=r["trigger_name"],
                    target=r["target"],
                    event_type=r["event_type"],
                    subject=r["subject"],
                    message=r["message"],
                    idempotency_key=r["idempotency_key"],
                    occurred_at=r["occurred_at"],
                    attempt=int(r["attempts"]) + 1,
                    deployment_id=r["deployment_id"],
                )
                for r in rows
            ]

    def settle(
        self,
        delivery_id: int,
        now: datetime,
        *,
        ok: bool,
        status_code: int | None,
        error: str | None,
        retry_at: datetime | None,
    ) -> str | None:
        """Record an attempt of a claimed delivery: Delivered, Pending until ``retry_at``, or
        Failed (``retry_at`` None). The new status, or None if the claim was lost."""
        status = DELIVERED if ok else (PENDING if retry_at is not None else FAILED)
        with self.store.database.write() as conn:
            result = conn.execute(
                update(_N)
                .where(_N.c.id == delivery_id, _N.c.lease_owner == self.owner)
                .values(
                    status=status,
                    attempts=_N.c.attempts + 1,
                    last_status_code=status_code,
                    last_error=None if ok else error,
                    last_attempt_at=now,
                    delivered_at=now if ok else None,
                    next_attempt_at=retry_at if retry_at is not None else now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        return status if result.rowcount else None

    def recent(
        self, *, limit: int = 100, deployment_id: str | None = None, status: str | None = None
    ) -> list[LoggedDelivery]:
        """The newest deliveries first."""
        query = select(_N).order_by(_N.c.id.desc()).limit(limit)
        if deployment_id:
            query = query.where(_N.c.deployment_id == deployment_id)
        if status:
            query = query.where(_N.c.status == status)
        with self.store.database.read() as conn:
            return [
                LoggedDelivery(**{k: r[k] for k in LoggedDelivery.__dataclass_fields__})
                for r in conn.execute(query).mappings()
            ]

    def counts(self) -> dict[tuple[str, str], int]:
        """(target kind, status) -> deliveries in the log (metrics)."""
        with self.store.database.read() as conn:
            rows = conn.execute(
                select(_N.c.target_kind, _N.c.status, func.count()).group_by(
                    _N.c.target_kind, _N.c.status
                )
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def prune(self, before: datetime) -> int:
        """Forget settled deliveries older than ``before``."""
        with self.store.database.write() as conn:
            return int(
                conn.execute(
                    delete(_N).where(_N.c.status != PENDING, _N.c.created_at < before)
                ).rowcount
            )


def _overviews(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    if not ids:
        return out
    rows = conn.execute(
        select(_T.c.deployment_id, _T.c.status, func.count())
        .where(_T.c.deployment_id.in_(ids))
        .group_by(_T.c.deployment_id, _T.c.status)
    ).all()
    for row in rows:
        status = str(row[1])
        counts = out.setdefault(str(row[0]), dict.fromkeys(_OVERVIEW_KEYS, 0))
        key = status if status in counts else ("InProgress" if status == "Ready" else None)
        if key is not None:
            counts[key] += int(row[2])
    return out
