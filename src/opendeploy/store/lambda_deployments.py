"""The Lambda side of a deployment: its AppSpec, the weights it set, the alias put back.

One row per Lambda deployment (``lambda_deployments``), written with the deployment by
CreateDeployment. The AllowTraffic effector records each weight it set on the alias (the latest
is ``LambdaFunctionInfo.targetVersionWeight``; the history is what ``opendeploy watch`` and the
dashboard draw); the restorer records when it put the alias back after a failure or a stop.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from opendeploy.appspec.lambda_spec import LambdaAppSpec
from opendeploy.domain.configs import TrafficRouting, TrafficRoutingType
from opendeploy.store import tables
from opendeploy.store._base import Repository
from opendeploy.store.deployment_configs import traffic_routing_of

if TYPE_CHECKING:
    from opendeploy.store.database import Store

_L = tables.lambda_deployments
_D = tables.deployments
_C = tables.host_commands

#: The most weight changes kept per deployment (a linear 1 % config makes 100).
MAX_WEIGHT_HISTORY = 200
#: The deployments whose alias the restorer puts back: ended without success.
RESTORED_STATUSES = ("Failed", "Stopped")


def insert_row(
    conn: Connection, deployment_id: str, spec: LambdaAppSpec | None, error: str | None
) -> None:
    """Record a new Lambda deployment's AppSpec (or why it cannot be deployed)."""
    conn.execute(
        insert(_L).values(
            deployment_id=deployment_id,
            spec=spec.as_json() if spec is not None else None,
            error=error,
        )
    )


def spec_in(conn: Connection, deployment_id: str) -> tuple[LambdaAppSpec | None, str | None]:
    """The deployment's AppSpec, or None and why not (inside an open transaction)."""
    row = conn.execute(
        select(_L.c.spec, _L.c.error).where(_L.c.deployment_id == deployment_id)
    ).first()
    if row is None:
        return None, f"Deployment {deployment_id} has no Lambda AppSpec recorded."
    if row.spec is None:
        return None, row.error or "The AppSpec could not be read."
    return LambdaAppSpec.from_json(row.spec), None


class LambdaDeployments(Repository):
    def get(self, deployment_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(_L).where(_L.c.deployment_id == deployment_id)).first()
        return dict(row._mapping) if row is not None else None

    def get_many(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        with self.db.read() as conn:
            rows = conn.execute(select(_L).where(_L.c.deployment_id.in_(ids))).mappings().all()
        return {str(r["deployment_id"]): dict(r) for r in rows}

    def spec(self, deployment_id: str) -> tuple[LambdaAppSpec | None, str | None]:
        """The deployment's AppSpec, or None and why not."""
        with self.db.read() as conn:
            return spec_in(conn, deployment_id)

    def record_weight(self, deployment_id: str, weight: float, at: datetime) -> None:
        """Record that the alias now sends ``weight`` (0.0-1.0) of its traffic to the target."""
        with self.db.write() as conn:
            history = conn.execute(
                select(_L.c.weights).where(_L.c.deployment_id == deployment_id).with_for_update()
            ).scalar_one_or_none()
            entries: list[dict[str, Any]] = list(history or [])
            if not entries or entries[-1]["weight"] != weight:
                entries.append({"at": at.isoformat(), "weight": weight})
            conn.execute(
                update(_L)
                .where(_L.c.deployment_id == deployment_id)
                .values(target_weight=weight, weights=entries[-MAX_WEIGHT_HISTORY:])
            )

    def needing_restore(self, limit: int = 20) -> list[tuple[str, LambdaAppSpec]]:
        """Deployments that ended without success after moving traffic, alias not put back."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_L.c.deployment_id, _L.c.spec)
                .join(_D, _D.c.deployment_id == _L.c.deployment_id)
                .where(
                    _D.c.status.in_(RESTORED_STATUSES),
                    _L.c.restored_at.is_(None),
                    _L.c.target_weight.is_not(None),
                    _L.c.spec.is_not(None),
                )
                .limit(limit)
            ).all()
        return [(str(r.deployment_id), LambdaAppSpec.from_json(r.spec)) for r in rows]

    def mark_restored(self, deployment_id: str, at: datetime) -> None:
        with self.db.write() as conn:
            conn.execute(
                update(_L)
                .where(_L.c.deployment_id == deployment_id)
                .values(restored_at=at, target_weight=0.0)
            )
            history = conn.execute(
                select(_L.c.weights).where(_L.c.deployment_id == deployment_id)
            ).scalar_one_or_none()
            entries: list[dict[str, Any]] = list(history or [])
            if entries and entries[-1]["weight"] != 0.0:
                entries.append({"at": at.isoformat(), "weight": 0.0, "restored": True})
                conn.execute(
                    update(_L)
                    .where(_L.c.deployment_id == deployment_id)
                    .values(weights=entries[-MAX_WEIGHT_HISTORY:])
                )


class LambdaStepStore:
    """The Lambda effectors' view of the store (``engine.effectors.lambda_ports.LambdaStore``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows = store.lambda_deployments

    def spec(self, deployment_id: str) -> tuple[LambdaAppSpec | None, str | None]:
        return self.rows.spec(deployment_id)

    def routing(self, deployment_id: str) -> TrafficRouting:
        with self.store.database.read() as conn:
            row = conn.execute(
                select(_D.c.deployment_config_name, _D.c.compute_platform).where(
                    _D.c.deployment_id == deployment_id
                )
            ).first()
            routing = (
                traffic_routing_of(conn, row.deployment_config_name, row.compute_platform)
                if row is not None
                else None
            )
        return routing or TrafficRouting(TrafficRoutingType.ALL_AT_ONCE)

    def record_weight(self, deployment_id: str, weight: float, at: datetime) -> None:
        self.rows.record_weight(deployment_id, weight, at)

    def status(self, deployment_id: str) -> str | None:
        status = self.store.deployments.status_of(deployment_id)
        return None if status is None else str(status)

    def hook_answered(self, execution_id: str) -> bool:
        with self.store.database.read() as conn:
            row = conn.execute(
                select(_C.c.result, _C.c.closed_at).where(_C.c.command_id == execution_id)
            ).first()
        return row is None or row.result is not None or row.closed_at is not None

    def needing_restore(self) -> list[tuple[str, LambdaAppSpec]]:
        return self.rows.needing_restore()

    def mark_restored(self, deployment_id: str, at: datetime) -> None:
        self.rows.mark_restored(deployment_id, at)
