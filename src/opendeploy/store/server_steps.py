"""Server steps: the host-command rows with ``executor = 'server'``, as the effector runner
takes them up and reports them.

A step is created ``Queued`` by the engine (``commands.dispatch_many``). A runner takes it up
with a conditional UPDATE (``InProgress``, ``acknowledged_at`` the first time, ``delivered_at`` as
its lease), so of two replicas' runners only one wins it; a step whose lease ran out (its runner
died, or lost the database) is due again and is taken up once more (``rerun``). Its outcome is
recorded through the same write as an agent's completion (``commands.Commands.complete``), which
ignores an outcome for a step the engine closed meanwhile.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, bindparam, func, or_, select, update

from opendeploy.domain.configs import TrafficRoutingType
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import DeploymentStyle, LoadBalancerInfo
from opendeploy.engine.effectors import ServerStep, StepOutcome, TrafficShift
from opendeploy.engine.traffic_shift import shift_leader
from opendeploy.store import tables
from opendeploy.store.commands import IN_PROGRESS, QUEUED, SERVER, _bounded
from opendeploy.store.database import Store
from opendeploy.store.deployment_configs import traffic_routing_of
from opendeploy.store.engine_store import diagnostics_wire

_C = tables.host_commands
_D = tables.deployments

_B_STALE = bindparam("b_stale", type_=_C.c.delivered_at.type)
_B_NOW = bindparam("b_now", type_=_C.c.delivered_at.type)
#: Due: queued, or taken up by a runner whose lease ran out.
_IS_DUE = and_(
    _C.c.executor == SERVER,
    _C.c.closed_at.is_(None),
    or_(
        _C.c.status == QUEUED,
        and_(_C.c.status == IN_PROGRESS, _C.c.delivered_at < _B_STALE),
    ),
)
_DUE = (
    select(
        _C.c.command_id,
        _C.c.deployment_id,
        _C.c.instance_name,
        _C.c.lifecycle_event,
        _C.c.acknowledged_at,
        _D.c.load_balancer_info,
        _D.c.deployment_style,
        _D.c.compute_platform,
        _D.c.deployment_config_name,
        _D.c.creator,
    )
    .select_from(_C.join(_D, _D.c.deployment_id == _C.c.deployment_id))
    .where(_IS_DUE)
    .order_by(_C.c.dispatched_at, _C.c.command_id)
    .limit(bindparam("b_limit"))
)
_TAKE = (
    update(_C)
    .where(_C.c.command_id == bindparam("b_id"), _IS_DUE)
    .values(
        status=IN_PROGRESS,
        delivered_at=_B_NOW,
        acknowledged_at=func.coalesce(_C.c.acknowledged_at, _B_NOW),
        noop=False,
    )
)
_RENEW = (
    update(_C)
    .where(
        _C.c.command_id == bindparam("b_id"),
        _C.c.closed_at.is_(None),
        _C.c.status == IN_PROGRESS,
    )
    .values(delivered_at=_B_NOW)
)


_TG = tables.deployment_targets
_EV = tables.lifecycle_events
_CFG = tables.deployment_configs


def _shift(conn: Connection, row: RowMapping) -> TrafficShift | None:
    """The traffic shift a blue/green step belongs to (None: no canary or linear shift).

    Blue: the Blue targets. Green: the Green targets whose install succeeded (ValidateService)
    and that have not failed; the leader is the first of the installed ones, failed or not, as
    the engine chooses it (``platforms.server_blue_green``)."""
    style = DeploymentStyle.from_wire(row["deployment_style"])
    if not style.blue_green or row["creator"] == "codeDeployRollback":
        return None
    if row["lifecycle_event"] not in (LifecycleEvent.ALLOW_TRAFFIC, LifecycleEvent.BLOCK_TRAFFIC):
        return None
    routing = traffic_routing_of(conn, row["deployment_config_name"], "Server", blue_green=True)
    if routing is None or routing.type is TrafficRoutingType.ALL_AT_ONCE:
        return None
    dep = row["deployment_id"]
    targets = conn.execute(
        select(_TG.c.target_id, _TG.c.instance_label, _TG.c.status).where(
            _TG.c.deployment_id == dep
        )
    ).all()
    installed: set[str] = set(
        conn.execute(
            select(_EV.c.target_id).where(
                _EV.c.deployment_id == dep,
                _EV.c.name == str(LifecycleEvent.VALIDATE_SERVICE),
                _EV.c.status == "Succeeded",
            )
        ).scalars()
    )
    mine = next((t for t in targets if t.target_id == row["instance_name"]), None)
    # A green host's AllowTraffic and a blue host's BlockTraffic belong to the shift; any other
    # (a blue host put back after a failed deployment) is a plain step.
    wanted = "Green" if row["lifecycle_event"] == LifecycleEvent.ALLOW_TRAFFIC else "Blue"
    if mine is None or mine.instance_label != wanted:
        return None
    blue = tuple(sorted(str(t.target_id) for t in targets if t.instance_label == "Blue"))
    greens = [t for t in targets if t.instance_label == "Green" and t.target_id in installed]
    if not greens:
        return None
    green = tuple(sorted(str(t.target_id) for t in greens if t.status != "Failed"))
    leader = shift_leader(str(t.target_id) for t in greens)
    return TrafficShift(routing=routing, blue=blue, green=green, leader=leader)


class ServerSteps:
    """The effector runner's view of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def take_due(self, now: datetime, *, stale_before: datetime, limit: int) -> list[ServerStep]:
        """Take up to ``limit`` due steps (oldest first); those another runner won are left."""
        if limit <= 0:
            return []
        params: dict[str, Any] = {"b_stale": stale_before, "b_limit": limit}
        with self.store.database.read() as conn:
            rows = conn.execute(_DUE, params).mappings().all()
        if not rows:
            return []
        taken: list[ServerStep] = []
        with self.store.database.write() as conn:
            for row in rows:
                done = conn.execute(
                    _TAKE, {"b_id": row["command_id"], "b_now": now, "b_stale": stale_before}
                ).rowcount
                if not done:
                    continue  # another runner took it, or the engine closed it meanwhile
                taken.append(
                    ServerStep(
                        command_id=str(row["command_id"]),
                        deployment_id=str(row["deployment_id"]),
                        target_id=str(row["instance_name"]),
                        event=LifecycleEvent(row["lifecycle_event"]),
                        started_at=row["acknowledged_at"] or now,
                        load_balancer=LoadBalancerInfo.from_wire(row["load_balancer_info"]),
                        style=DeploymentStyle.from_wire(row["deployment_style"]),
                        rerun=row["acknowledged_at"] is not None,
                        compute_platform=str(row["compute_platform"] or "Server"),
                        creator=str(row["creator"] or "user"),
                        shift=_shift(conn, row),
                    )
                )
        return taken

    def renew(self, command_id: str, now: datetime, message: str | None = None) -> bool:
        """Renew the step's lease (and add a progress line); False once the engine closed it."""
        # One UPDATE of the row, never two: on PostgreSQL a second update of a row this
        # transaction already changed runs the foreign key's check (a KEY SHARE lock on the
        # deployment), which deadlocks with an engine pass that holds the deployment FOR UPDATE
        # and is closing this very step (a stop while the step reports progress).
        with self.store.database.write() as conn:
            if not message:
                return bool(conn.execute(_RENEW, {"b_id": command_id, "b_now": now}).rowcount)
            old = conn.execute(
                select(_C.c.output).where(_C.c.command_id == command_id)
            ).scalar_one_or_none()
            text = _bounded((old or "") + message.rstrip("\n") + "\n")
            renew = _RENEW.values(output=text)
            return bool(conn.execute(renew, {"b_id": command_id, "b_now": now}).rowcount)

    def report(self, step: ServerStep, outcome: StepOutcome, now: datetime) -> bool:
        """Record the outcome like an agent's completion; False when it came too late to count."""
        done = self.store.commands.complete(
            step.command_id,
            now=now,
            result=outcome.result,
            diagnostics=diagnostics_wire(outcome.diagnostics),
        )
        return bool(done)
