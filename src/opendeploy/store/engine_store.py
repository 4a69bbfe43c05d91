"""The engine's store on SQL (SQLite or PostgreSQL): leases, loading, applying, marks.

:class:`SqlEngineStore` is the :class:`~opendeploy.engine.ports.EngineStore` the engine worker
runs on: it finds the active deployments, takes a deployment's lease (``lease_owner``/
``lease_expires_at``, set by a conditional UPDATE after ``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so replicas sharing a database never work on one deployment at once and a dead
replica's lease expires), loads a :class:`~opendeploy.engine.snapshot.DeploymentSnapshot`, and
commits a pass's :class:`~opendeploy.engine.reconcile.Decisions` in one transaction: statuses
and times, lifecycle events, host commands and server steps created and closed,
errorInformation, the group's last successful deployment, the rollback deployment with
``rollbackInfo`` both ways, the outbox's deployment events, the agents found unreachable, and
the lease's release. A pass whose lease was taken over meanwhile writes nothing.

Loading keeps each deployment's targets and their instance rows between passes (see
:class:`TargetsState`): the store records facts, the engine decides. What a commit leaves in the
store is exactly what :func:`opendeploy.engine.apply.apply_decisions` predicts
(``tests/store/test_engine_store.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from opendeploy.appspec.lambda_spec import LambdaAppSpec
from opendeploy.domain.configs import PREDEFINED, MinimumHealthyHosts, minimum_of
from opendeploy.domain.ids import new_deployment_id
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import BlueGreenSettings, DeploymentStyle, LoadBalancerInfo
from opendeploy.domain.status import (
    TERMINAL_DEPLOYMENT_STATUSES,
    DeploymentStatus,
    InstanceStatus,
    LifecycleErrorCode,
    LifecycleEventStatus,
)
from opendeploy.engine.alarms.verdict import gate_snapshot
from opendeploy.engine.events import DeploymentEvent, events_of
from opendeploy.engine.ports import Committed
from opendeploy.engine.reconcile import Decisions, EventUpdate
from opendeploy.engine.rollback import RollbackDecision
from opendeploy.engine.snapshot import (
    AutoRollbackConfig,
    AutoRollbackEvent,
    CommandSnapshot,
    DeploymentSnapshot,
    Diagnostics,
    EngineInputError,
    EventSnapshot,
    Label,
    LastSuccessful,
    StopRequest,
    TargetSnapshot,
    WaitType,
    blue_green_events,
    platform_events,
)
from opendeploy.store import commands as cmd_store
from opendeploy.store import driver_sql, tables
from opendeploy.store import lambda_deployments as lambda_store
from opendeploy.store.database import Store
from opendeploy.store.deployment_configs import traffic_routing_of

log = logging.getLogger("opendeploy.engine")

_D = tables.deployments
_TG = tables.deployment_targets
_EV = tables.lifecycle_events
_G = tables.deployment_groups
_I = tables.on_premises_instances
_CFG = tables.deployment_configs

ACTIVE_STATUSES = [
    str(DeploymentStatus.CREATED),
    str(DeploymentStatus.QUEUED),
    str(DeploymentStatus.IN_PROGRESS),
    # A blue/green deployment waiting for ContinueDeployment: the engine times the wait out.
    str(DeploymentStatus.READY),
]
_TERMINAL = [str(s) for s in TERMINAL_DEPLOYMENT_STATUSES]
AUTOSCALING_CREATOR = "autoscaling"


# --- loading a snapshot -------------------------------------------------------------------------


def _diagnostics(raw: dict[str, Any] | None) -> Diagnostics | None:
    if not raw:
        return None
    try:
        code = LifecycleErrorCode(raw.get("errorCode") or "UnknownError")
    except ValueError:
        code = LifecycleErrorCode.UNKNOWN_ERROR
    return Diagnostics(
        code,
        str(raw.get("message") or ""),
        str(raw.get("scriptName") or ""),
        str(raw.get("logTail") or ""),
    )


def diagnostics_wire(d: Diagnostics | None) -> dict[str, str] | None:
    """The public ``diagnostics`` shape of the engine's :class:`Diagnostics`."""
    if d is None:
        return None
    return {
        "errorCode": str(d.error_code),
        "scriptName": d.script_name,
        "message": d.message,
        "logTail": d.log_tail,
    }


def _minimum(conn: Connection, config_name: str) -> MinimumHealthyHosts:
    stored = None
    if config_name not in PREDEFINED:
        stored = conn.execute(
            select(_CFG.c.minimum_healthy_hosts).where(_CFG.c.name == config_name)
        ).scalar_one_or_none()
    return minimum_of(config_name, stored)


def _auto_rollback(raw: dict[str, Any] | None) -> AutoRollbackConfig:
    if not raw:
        return AutoRollbackConfig()
    events = frozenset(
        AutoRollbackEvent(e)
        for e in raw.get("events") or []
        if e in AutoRollbackEvent.__members__.values()
    )
    return AutoRollbackConfig(bool(raw.get("enabled")), events)


@dataclass(frozen=True)
class TargetsState:
    """A deployment's targets and lifecycle events as stored at ``revision``.

    Only the engine writes them (one replica at a time, under the lease), bumping
    ``deployments.engine_revision`` in the same transaction; so the worker keeps this between
    passes and re-reads the rows only when the revision moved (another replica drove the
    deployment meanwhile). Read back every pass, they made each pass O(targets x events) rows
    even when one agent had reported: the largest cost per host-event in a large fleet."""

    revision: int
    #: target -> (status, events, whether the events are stored yet), in target order.
    targets: dict[str, tuple[InstanceStatus, tuple[EventSnapshot, ...], bool]]
    #: target -> its open command, for the targets that have one. Agents change these rows
    #: too (acknowledgements, completions) without moving ``revision``: each pass reads back
    #: those whose status moved (``commands.changed_commands``), not all of them.
    commands: dict[str, CommandSnapshot] = dataclasses.field(default_factory=dict)
    #: target -> its blue/green label (only labelled targets; fixed once the deployment exists).
    labels: dict[str, Label] = dataclasses.field(default_factory=dict)


#: How old the instance rows of a deployment's targets (last seen, deregistered, marked
#: unreachable) may be when a pass uses them. A pass that would judge an agent unreachable on
#: rows read earlier reads them again first, so that only the harmless answers ("alive") come
#: from rows up to this old; a deregistration is noticed within this long.
INSTANCE_ROWS_MAX_AGE_SECONDS = 1.0


@dataclass(frozen=True)
class InstanceRows:
    """The instance rows of a deployment's targets, as read at ``read_at`` (monotonic)."""

    read_at: float
    #: target -> (last_seen_at, deregister_time, unreachable_since)
    rows: dict[str, tuple[datetime | None, datetime | None, datetime | None]]


@dataclass(frozen=True)
class Loaded:
    """A snapshot plus the stored rows the worker needs to apply decisions."""

    snapshot: DeploymentSnapshot
    row: dict[str, Any]
    stored_events: dict[str, bool]  # target -> whether its events are stored yet
    #: Targets whose instance is recorded as unreachable already (``unreachable_since``).
    marked_unreachable: frozenset[str] = frozenset()
    #: The targets and events this snapshot was built from (what the worker caches).
    state: TargetsState | None = None
    #: The instance rows this snapshot was built from (what the worker caches).
    instances: InstanceRows | None = None
    #: ``(target, command id, status)`` of the commands whose news this snapshot holds, to be
    #: recorded as seen (``commands.mark_seen``) when the pass commits.
    news: tuple[tuple[str, str, str], ...] = ()
    #: Whether ``instances`` were read in an earlier pass (see ``SqlEngineStore.load``).
    instances_cached: bool = False


def _read_targets(
    conn: Connection,
    deployment_id: str,
    revision: int,
    *,
    load_balancer: bool,
    rollback: bool = False,
    compute_platform: str = "Server",
) -> TargetsState:
    targets = conn.execute(
        select(_TG.c.target_id, _TG.c.status, _TG.c.instance_label)
        .where(_TG.c.deployment_id == deployment_id)
        .order_by(_TG.c.target_id)
    ).all()
    events: dict[str, list[EventSnapshot]] = {str(t.target_id): [] for t in targets}
    for ev in conn.execute(
        select(_EV).where(_EV.c.deployment_id == deployment_id).order_by(_EV.c.position)
    ).mappings():
        events.setdefault(str(ev["target_id"]), []).append(
            EventSnapshot(
                LifecycleEvent(ev["name"]),
                LifecycleEventStatus(ev["status"]),
                ev["start_time"],
                ev["end_time"],
                _diagnostics(ev["diagnostics"]),
            )
        )
    default = tuple(
        EventSnapshot(e) for e in platform_events(compute_platform, load_balancer=load_balancer)
    )
    labels: dict[str, Label] = {
        str(t.target_id): _label(t.instance_label) for t in targets if t.instance_label
    }
    by_label = {
        label: tuple(EventSnapshot(e) for e in blue_green_events(label, rollback=rollback))
        for label in set(labels.values())
    }
    out: dict[str, tuple[InstanceStatus, tuple[EventSnapshot, ...], bool]] = {}
    for t in targets:
        name = str(t.target_id)
        label = labels.get(name)
        planned = default if label is None else by_label[label]
        out[name] = (InstanceStatus(t.status), tuple(events[name]) or planned, bool(events[name]))
    return TargetsState(revision, out, labels=labels)


def _label(raw: str) -> Label:
    if raw not in ("Blue", "Green"):
        raise EngineInputError(f"instance_label: {raw!r} is not Blue or Green")
    return "Blue" if raw == "Blue" else "Green"


def state_after(state: TargetsState, d: Decisions, now: datetime) -> TargetsState:
    """``state`` with the decisions applied at ``now``, at the revision :func:`apply` leaves
    behind."""
    targets = dict(state.targets)
    for tu in d.target_updates:
        _, events, stored = targets[tu.instance_id]
        targets[tu.instance_id] = (tu.status, events, stored)
    for instance_id, updates in _updates_by_target(d).items():
        status, events, _ = targets[instance_id]
        targets[instance_id] = (status, tuple(_apply_updates(events, updates)), True)
    commands = dict(state.commands)
    for name in d.close_commands:
        commands.pop(name, None)
    for hc in d.dispatch:
        commands[hc.instance_id] = CommandSnapshot(
            hc.event, dispatched_at=now, executor=hc.executor
        )
    return TargetsState(state.revision + 1, targets, commands, state.labels)


def _command_snapshot(c: Mapping[str, Any]) -> CommandSnapshot:
    return CommandSnapshot(
        LifecycleEvent(c["lifecycle_event"]),
        dispatched_at=c["dispatched_at"],
        acknowledged_at=c["acknowledged_at"],
        noop=bool(c["noop"]),
        completed_at=c["completed_at"],
        result=c["result"] if c["result"] in ("Succeeded", "Failed") else None,
        diagnostics=_diagnostics(c["diagnostics"]),
        executor="server" if c["executor"] == "server" else "agent",
    )


def _read_instances(conn: Connection, deployment_id: str) -> InstanceRows:
    read_at = time.monotonic()
    if driver_sql.supports(conn):
        return InstanceRows(read_at, driver_sql.target_instances(conn, deployment_id))
    return InstanceRows(
        read_at,
        {
            str(inst.name): (inst.last_seen_at, inst.deregister_time, inst.unreachable_since)
            for inst in conn.execute(_TARGET_INSTANCES, {"b_dep": deployment_id}).all()
        },
    )


# The statements of every pass, built once: building them per pass (SQLAlchemy's clause
# construction, coercion and cache keys) cost more than running them, and a pass runs for every
# agent report of a small fleet.
_B_DEP = bindparam("b_dep", type_=_D.c.deployment_id.type)
_DEPLOYMENT = select(_D).where(_D.c.deployment_id == _B_DEP)
_TARGET_INSTANCES = (
    select(_I.c.name, _I.c.last_seen_at, _I.c.deregister_time, _I.c.unreachable_since)
    .join(_TG, _TG.c.target_id == _I.c.name)
    .where(_TG.c.deployment_id == _B_DEP)
)
_LAST_SUCCESSFUL = select(_G.c.last_successful_deployment_id).where(
    _G.c.deployment_group_id == bindparam("b_group")
)
_REVISION_OF = select(_D.c.revision).where(_D.c.deployment_id == _B_DEP)
_BUMP_REVISION = (
    update(_D).where(_D.c.deployment_id == _B_DEP).values(engine_revision=_D.c.engine_revision + 1)
)
_B_OWNER = bindparam("b_owner", type_=_D.c.lease_owner.type)
_B_NOW = bindparam("b_now", type_=_D.c.lease_expires_at.type)
#: Not leased, leased by this replica, or leased by one whose lease ran out.
_FREE = or_(
    _D.c.lease_owner.is_(None), _D.c.lease_owner == _B_OWNER, _D.c.lease_expires_at < _B_NOW
)
_CANDIDATES = (
    select(_D.c.deployment_id)
    .where(_D.c.status.in_(ACTIVE_STATUSES), _FREE)
    .order_by(_D.c.create_time)
)
_LEASABLE = and_(_D.c.deployment_id == _B_DEP, _D.c.status.in_(ACTIVE_STATUSES), _FREE)
_LOCK_LEASABLE = select(_D.c.deployment_id).where(_LEASABLE).with_for_update(skip_locked=True)
_TAKE_LEASE = (
    update(_D)
    .where(_LEASABLE)
    .values(lease_owner=_B_OWNER, lease_expires_at=bindparam("b_expires", type_=_B_NOW.type))
)
_LEASE_OWNER = select(_D.c.lease_owner).where(_D.c.deployment_id == _B_DEP).with_for_update()
_RELEASE = (
    update(_D)
    .where(_D.c.deployment_id == _B_DEP, _D.c.lease_owner == _B_OWNER)
    .values(lease_owner=None, lease_expires_at=None)
)


def load(
    conn: Connection,
    deployment_id: str,
    now: datetime,
    *,
    watching_since: datetime | None = None,
    holding: frozenset[str] = frozenset(),
    heard: Mapping[str, datetime] | None = None,
    known: TargetsState | None = None,
    instances: InstanceRows | None = None,
) -> Loaded | None:
    """The deployment as a snapshot (None if it is gone); ``watching_since``: the engine's start.

    ``holding``: the hosts holding a poll in this process right now. They are alive now,
    whatever ``last_seen_at`` says: the store learns of held polls only at the next batched
    write, and a server far behind with its writes (a fleet of thousands reporting at once) must
    not take its own lag for dead agents. ``heard``: when this process last heard from each
    agent, which may be newer than the batched ``last_seen_at``. ``known``: the targets as this
    worker last left them, used instead of reading them when the deployment's
    ``engine_revision`` still matches (then only the commands with news are read).
    ``instances``: the targets' instance rows as read earlier, used instead of reading them."""
    row = conn.execute(_DEPLOYMENT, {"b_dep": deployment_id}).mappings().first()
    if row is None:
        return None
    d = dict(row)
    engine_revision = int(d.get("engine_revision") or 0)
    if known is not None and known.revision == engine_revision:
        targets, commands, labels = known.targets, dict(known.commands), known.labels
        rows = cmd_store.changed_commands(conn, deployment_id)
    else:
        style = DeploymentStyle.from_wire(d["deployment_style"])
        fresh = _read_targets(
            conn,
            deployment_id,
            engine_revision,
            load_balancer=LoadBalancerInfo.from_wire(d["load_balancer_info"]).present,
            compute_platform=str(d["compute_platform"] or "Server"),
            rollback=style.blue_green and d["creator"] == "codeDeployRollback",
        )
        targets, commands, labels = fresh.targets, {}, fresh.labels
        rows = cmd_store.open_commands(conn, deployment_id)
    news = []
    for name, c in rows.items():
        commands[name] = _command_snapshot(c)
        if c["status"] != c["seen_status"]:
            news.append((name, str(c["command_id"]), str(c["status"])))
    state = TargetsState(engine_revision, targets, commands, labels)
    if instances is None:
        instances = _read_instances(conn, deployment_id)
    # One loop over the targets (at 10,000 hosts, each pass's per-target work is what counts).
    instance_rows = instances.rows
    heard = heard or {}
    marked: set[str] = set()
    snap_targets = []
    stored: dict[str, bool] = {}
    for name, (status, evs, is_stored) in targets.items():
        stored[name] = is_stored
        instance = instance_rows.get(name)
        seen_at: datetime | None = None
        deregister_time: datetime | None = None
        if instance is not None:
            last_seen_at, deregister_time, unreachable_since = instance
            if unreachable_since is not None:
                marked.add(name)
            if deregister_time is not None:
                # A deregistered instance cannot poll any more: it was last seen when it left.
                seen_at = deregister_time
            elif name in holding:
                seen_at = now
            else:
                recent = heard.get(name)
                seen_at = (
                    max(last_seen_at, recent)
                    if last_seen_at and recent
                    else (last_seen_at or recent)
                )
        snap_targets.append(
            TargetSnapshot(
                name, evs, status, seen_at, commands.get(name), deregister_time, labels.get(name)
            )
        )
    last = None
    if d["deployment_group_id"] is not None:
        last_id = conn.execute(
            _LAST_SUCCESSFUL, {"b_group": d["deployment_group_id"]}
        ).scalar_one_or_none()
        if last_id and last_id != deployment_id:
            revision = conn.execute(_REVISION_OF, {"b_dep": last_id}).scalar_one_or_none()
            if revision:
                last = LastSuccessful(str(last_id), json.dumps(revision, sort_keys=True))
    stop = None
    if d["stop_requested"]:
        alarms = d.get("stop_alarms") or {}
        stop = StopRequest(
            requested_at=now,
            auto_rollback_enabled=d["auto_rollback_on_stop"],
            by_alarm=bool(d.get("stop_by_alarm")),
            alarms=tuple(str(n) for n in alarms.get("alarms") or ()),
            unreadable=bool(alarms.get("unreadable")),
        )
    snapshot = DeploymentSnapshot(
        deployment_id=deployment_id,
        status=DeploymentStatus(d["status"]),
        minimum_healthy_hosts=_minimum(conn, d["deployment_config_name"]),
        targets=tuple(snap_targets),
        created_at=d["create_time"],
        started_at=d["start_time"],
        config_name=d["deployment_config_name"],
        ignore_application_stop_failures=bool(d["ignore_application_stop_failures"]),
        stop=stop,
        auto_rollback=_auto_rollback(d["auto_rollback_configuration"]),
        creator=d["creator"],
        last_successful=last,
        compute_platform=str(d["compute_platform"] or "Server"),
        style=DeploymentStyle.from_wire(d["deployment_style"]),
        watching_since=watching_since,
        blue_green=_blue_green(d["blue_green_deployment_configuration"]),
        continue_requested=_wait_type(d["continue_requested"]),
        termination_wait_started=bool(d["instance_termination_wait_time_started"]),
        # Read for blue/green deployments only: an in-place pass needs no extra query.
        traffic_routing=traffic_routing_of(
            conn,
            d["deployment_config_name"],
            d["compute_platform"],
            blue_green=DeploymentStyle.from_wire(d["deployment_style"]).blue_green,
        ),
        gate=gate_snapshot(d.get("gate_state")),
    )
    return Loaded(snapshot, d, stored, frozenset(marked), state, instances, tuple(news))


def _blue_green(raw: dict[str, Any] | None) -> BlueGreenSettings:
    try:
        return BlueGreenSettings.from_wire(raw)
    except ValueError:
        # Stored before the API checked it (an older server): AWS's defaults, not a stuck pass.
        return BlueGreenSettings()


def _wait_type(raw: str | None) -> WaitType | None:
    if raw == "READY_WAIT":
        return "READY_WAIT"
    if raw == "TERMINATION_WAIT":
        return "TERMINATION_WAIT"
    return None


# --- applying decisions -------------------------------------------------------------------------


def _updates_by_target(d: Decisions) -> dict[str, dict[LifecycleEvent, EventUpdate]]:
    """The event updates grouped by instance (one pass, not one scan per target)."""
    grouped: dict[str, dict[LifecycleEvent, EventUpdate]] = {}
    for u in d.event_updates:
        grouped.setdefault(u.instance_id, {})[u.event] = u
    return grouped


def _apply_updates(
    events: Sequence[EventSnapshot], updates: dict[LifecycleEvent, EventUpdate]
) -> list[EventSnapshot]:
    out = []
    for ev in events:
        u = updates.get(ev.name)
        if u is not None:
            ev = EventSnapshot(ev.name, u.status, u.start_time, u.end_time, u.diagnostics)
        out.append(ev)
    return out


def _rollback_row(old: dict[str, Any], revision: dict[str, Any], now: datetime) -> dict[str, Any]:
    keep = (
        "application_id",
        "application_name",
        "deployment_group_id",
        "deployment_group_name",
        "deployment_config_name",
        "compute_platform",
        "ignore_application_stop_failures",
        "update_outdated_instances_only",
        "file_exists_behavior",
        "deployment_mode",
        "auto_rollback_configuration",
        "deployment_style",
        "blue_green_deployment_configuration",
        "load_balancer_info",
        "override_alarm_configuration",
        "ec2_deployment_options",
    )
    row = {k: old[k] for k in keep}
    row |= {
        "deployment_id": new_deployment_id(),
        "status": str(DeploymentStatus.CREATED),
        "creator": "codeDeployRollback",
        "revision": revision,
        "previous_revision": old["revision"],
        "create_time": now,
        "deployment_status_messages": [],
    }
    return row


def _lambda_rollback(conn: Connection, old_id: str, new_id: str) -> None:
    """The AppSpec of a Lambda rollback: the alias back from the target version to the one it
    started from, all at once, with no hooks (AWS reroutes back; its rollbacks take seconds)."""
    spec, _ = lambda_store.spec_in(conn, old_id)
    back = None
    if spec is not None:
        back = LambdaAppSpec(
            spec.function_name, spec.alias, spec.target_version, spec.current_version
        )
    lambda_store.insert_row(
        conn, new_id, back, None if back else "The deployment rolled back has no AppSpec."
    )


def _create_rollback(
    conn: Connection, old: dict[str, Any], decision: RollbackDecision, now: datetime
) -> str | None:
    """Record the rollback decision on ``old`` and create the rollback deployment, if any."""
    old_id = old["deployment_id"]
    plan = decision.plan
    if plan is None:
        conn.execute(
            update(_D)
            .where(_D.c.deployment_id == old_id)
            .values(rollback_info={"rollbackMessage": decision.message})
        )
        return None
    # A blue/green rollback with no earlier success keeps the deployment's own revision (it
    # reroutes traffic; nothing is installed).
    revision = json.loads(plan.revision) if plan.revision else old["revision"]
    row = _rollback_row(old, revision, now)
    new_id = row["deployment_id"]
    row["rollback_info"] = {
        "rollbackTriggeringDeploymentId": old_id,
        "rollbackMessage": plan.rollback_message,
    }
    conn.execute(insert(_D).values(**row))
    targets = conn.execute(
        select(_TG.c.target_id, _TG.c.target_arn, _TG.c.target_type, _TG.c.instance_label).where(
            _TG.c.deployment_id == old_id
        )
    ).all()
    if old["compute_platform"] == "Lambda":
        _lambda_rollback(conn, old_id, new_id)
    if targets:
        conn.execute(
            insert(_TG),
            [
                {
                    "deployment_id": new_id,
                    "target_id": t.target_id,
                    "target_arn": t.target_arn,
                    "target_type": t.target_type or "InstanceTarget",
                    "instance_label": t.instance_label,
                    "status": str(InstanceStatus.PENDING),
                    "last_updated_at": now,
                }
                for t in targets
            ],
        )
    conn.execute(
        update(_D)
        .where(_D.c.deployment_id == old_id)
        .values(
            rollback_info={
                "rollbackDeploymentId": new_id,
                "rollbackMessage": plan.triggering_message,
            }
        )
    )
    if old["deployment_group_id"] is not None:
        conn.execute(
            update(_G)
            .where(_G.c.deployment_group_id == old["deployment_group_id"])
            .values(last_attempted_deployment_id=new_id)
        )
    return str(new_id)


_SET_TARGET_STATUS = (
    update(_TG)
    .where(_TG.c.deployment_id == bindparam("b_dep"), _TG.c.target_id == bindparam("b_target"))
    .values(status=bindparam("b_status"), last_updated_at=bindparam("b_at"))
)
_TOUCH_TARGET = (
    update(_TG)
    .where(_TG.c.deployment_id == bindparam("b_dep"), _TG.c.target_id == bindparam("b_target"))
    .values(last_updated_at=bindparam("b_at"))
)
_INSERT_EVENT = insert(_EV)
_SET_EVENT = (
    update(_EV)
    .where(
        _EV.c.deployment_id == bindparam("b_dep"),
        _EV.c.target_id == bindparam("b_target"),
        _EV.c.position == bindparam("b_position"),
    )
    .values(
        status=bindparam("b_status"),
        start_time=bindparam("b_start"),
        end_time=bindparam("b_end"),
        diagnostics=bindparam("b_diagnostics"),
    )
)


def apply(conn: Connection, loaded: Loaded, d: Decisions, now: datetime) -> str | None:
    """Write ``d`` inside the open transaction; returns the rollback deployment's id, if any."""
    snap = loaded.snapshot
    dep_id = snap.deployment_id
    # Tells any worker holding these targets in memory (TargetsState) that they changed.
    conn.execute(_BUMP_REVISION, {"b_dep": dep_id})
    if d.deployment is not None:
        values: dict[str, Any] = {"status": str(d.deployment.status)}
        if d.deployment.start_time is not None and snap.started_at is None:
            values["start_time"] = d.deployment.start_time
        if d.deployment.complete_time is not None:
            values["complete_time"] = d.deployment.complete_time
        if d.deployment.error is not None:
            values["error_information"] = {
                "code": d.deployment.error.code,
                "message": d.deployment.error.message,
            }
        conn.execute(update(_D).where(_D.c.deployment_id == dep_id).values(**values))
    if d.termination_wait_started or d.status_messages:
        extra: dict[str, Any] = {}
        if d.termination_wait_started:
            extra["instance_termination_wait_time_started"] = True
        if d.status_messages:
            extra["deployment_status_messages"] = [
                *(loaded.row.get("deployment_status_messages") or []),
                *d.status_messages,
            ]
        conn.execute(update(_D).where(_D.c.deployment_id == dep_id).values(**extra))
    if (
        d.deployment is not None
        and d.deployment.status is DeploymentStatus.SUCCEEDED
        and loaded.row["deployment_group_id"]
    ):
        conn.execute(
            update(_G)
            .where(_G.c.deployment_group_id == loaded.row["deployment_group_id"])
            .values(last_successful_deployment_id=dep_id)
        )
    # Statements are executed once per kind for all their rows: built and run per target, their
    # SQLAlchemy overhead made applying a pass O(targets) statements, the largest cost per
    # host-event in a fleet of thousands. They run as plain SQL on the driver's connection
    # (store.driver_sql: an executemany on SQLite, one statement over arrays on PostgreSQL):
    # with thousands of targets changing per pass, SQLAlchemy's processing of each parameter set
    # was most of what applying cost.
    updated_targets = {tu.instance_id for tu in d.target_updates}
    driver_sql.execute_many(
        conn,
        _SET_TARGET_STATUS,
        driver_sql.SET_TARGET_STATUS,
        [
            {"b_dep": dep_id, "b_target": tu.instance_id, "b_status": str(tu.status), "b_at": tu.at}
            for tu in d.target_updates
        ],
    )
    grouped = _updates_by_target(d)
    inserts: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    touched: list[dict[str, Any]] = []
    for t in snap.targets:
        updates = grouped.get(t.instance_id)
        if not updates:
            continue
        if not loaded.stored_events.get(t.instance_id, False):
            inserts.extend(
                {
                    "deployment_id": dep_id,
                    "target_id": t.instance_id,
                    "position": position,
                    "name": str(ev.name),
                    "status": str(ev.status),
                    "start_time": ev.start_time,
                    "end_time": ev.end_time,
                    "diagnostics": diagnostics_wire(ev.diagnostics),
                }
                for position, ev in enumerate(_apply_updates(t.events, updates))
            )
        else:
            for position, ev in enumerate(t.events):
                u = updates.get(ev.name)
                if u is not None:
                    changes.append(
                        {
                            "b_dep": dep_id,
                            "b_target": t.instance_id,
                            "b_position": position,
                            "b_status": str(u.status),
                            "b_start": u.start_time,
                            "b_end": u.end_time,
                            "b_diagnostics": diagnostics_wire(u.diagnostics),
                        }
                    )
        if t.instance_id not in updated_targets:
            touched.append({"b_dep": dep_id, "b_target": t.instance_id, "b_at": now})
    driver_sql.execute_many(conn, _INSERT_EVENT, driver_sql.INSERT_EVENT, inserts)
    driver_sql.execute_many(conn, _SET_EVENT, driver_sql.SET_EVENT, changes)
    driver_sql.execute_many(conn, _TOUCH_TARGET, driver_sql.TOUCH_TARGET, touched)
    cmd_store.close(conn, dep_id, list(d.close_commands), now)
    cmd_store.dispatch_many(
        conn, dep_id, [(hc.instance_id, str(hc.event), hc.executor) for hc in d.dispatch], now
    )
    record_events(conn, events_of(snap, d, now))
    if d.rollback is not None:
        return _create_rollback(conn, loaded.row, d.rollback, now)
    return None


_OUTBOX = tables.deployment_events


def record_events(conn: Connection, events: Sequence[DeploymentEvent]) -> None:
    """Add ``events`` to the outbox, inside the transaction of the decisions they come from."""
    driver_sql.execute_many(
        conn,
        insert(_OUTBOX),
        driver_sql.INSERT_DEPLOYMENT_EVENT,
        [
            {
                "deployment_id": e.deployment_id,
                "instance_id": e.instance_id,
                "event_type": str(e.event_type),
                "status": e.status,
                "occurred_at": e.occurred_at,
                "detail": e.detail or None,
            }
            for e in events
        ],
    )


def mark_unreachable(
    conn: Connection, names: Sequence[str], now: datetime, dead_after_seconds: float
) -> list[str]:
    """Record ``unreachable_since`` on instances the engine found unreachable; returns those set.

    Guarded by the instance's own ``last_seen_at`` so that an agent that polled between the
    snapshot and this write is not marked; its next call clears the mark in any case.
    """
    cutoff = now - timedelta(seconds=dead_after_seconds)
    marked = []
    for name in names:
        done = conn.execute(
            update(_I)
            .where(
                _I.c.name == name,
                _I.c.unreachable_since.is_(None),
                or_(
                    _I.c.deregister_time.is_not(None),
                    _I.c.last_seen_at.is_(None),
                    _I.c.last_seen_at < cutoff,
                ),
            )
            .values(unreachable_since=now)
        ).rowcount
        if done:
            marked.append(name)
    return marked


# --- automatic deployments to new instances ----------------------------------------------------


def deploy_to_new_instance(
    store: Store,
    instance_name: str,
    now: datetime,
    *,
    select_groups: Callable[[str, dict[str, str], list[dict[str, Any]]], list[dict[str, Any]]],
) -> list[str]:
    """Deploy each matching group's last successful revision to a newly polling instance.

    ``select_groups(name, tags, groups)`` returns the groups whose tag filters select the
    instance (the control API's targeting). A group with an active deployment is left alone
    (that deployment's successor will include the instance).
    """
    # Most first polls find nothing to do (no group has succeeded yet, or none selects the
    # instance): find that out with a read, without the database-wide write lock of SQLite (a
    # fleet of thousands polling for the first time queued on it).
    with store.database.read() as conn:
        candidates = conn.execute(
            select(_G.c.deployment_group_id).where(
                _G.c.last_successful_deployment_id.is_not(None),
                _G.c.compute_platform == "Server",
            )
        ).first()
    if candidates is None:
        return []
    created: list[str] = []
    with store.database.write() as conn:
        inst = conn.execute(
            select(_I.c.name, _I.c.instance_arn).where(
                _I.c.name == instance_name, _I.c.deregister_time.is_(None)
            )
        ).first()
        if inst is None:
            return []
        tags = {
            str(k): str(v)
            for k, v in conn.execute(
                select(tables.instance_tags.c.key, tables.instance_tags.c.value).where(
                    tables.instance_tags.c.instance_name == instance_name
                )
            ).all()
        }
        groups = [
            dict(g)
            for g in conn.execute(
                select(_G).where(
                    _G.c.last_successful_deployment_id.is_not(None),
                    _G.c.compute_platform == "Server",
                )
            ).mappings()
        ]
        for group in select_groups(instance_name, tags, groups):
            if DeploymentStyle.from_wire(group["deployment_style"]).blue_green:
                continue  # switched to blue/green since: not a deployment this server runs
            last = (
                conn.execute(
                    select(_D).where(_D.c.deployment_id == group["last_successful_deployment_id"])
                )
                .mappings()
                .first()
            )
            if last is None or last["status"] != str(DeploymentStatus.SUCCEEDED):
                continue
            if group["last_attempted_deployment_id"] != last["deployment_id"]:
                continue  # a later deployment failed, or one is active: not a clean state
            already = conn.execute(
                select(_TG.c.target_id).where(
                    _TG.c.deployment_id == last["deployment_id"], _TG.c.target_id == instance_name
                )
            ).first()
            if already is not None:
                continue
            row = _rollback_row(dict(last), last["revision"], now)
            row["creator"] = AUTOSCALING_CREATOR
            row["previous_revision"] = None
            row["description"] = f"Automatic deployment to the new instance {instance_name}"
            conn.execute(insert(_D).values(**row))
            conn.execute(
                insert(_TG).values(
                    deployment_id=row["deployment_id"],
                    target_id=instance_name,
                    target_arn=inst.instance_arn,
                    target_type="InstanceTarget",
                    status=str(InstanceStatus.PENDING),
                    last_updated_at=now,
                )
            )
            conn.execute(
                update(_G)
                .where(_G.c.deployment_group_id == group["deployment_group_id"])
                .values(last_attempted_deployment_id=row["deployment_id"])
            )
            created.append(row["deployment_id"])
    return created


# --- the engine's store -------------------------------------------------------------------------


class SqlEngineStore:
    """The :class:`~opendeploy.engine.ports.EngineStore` of one worker on the SQL store.

    Keeps, between passes, the targets of the deployments this worker drives
    (:class:`TargetsState`) and their instance rows (:class:`InstanceRows`); both are dropped
    when a pass fails, and the targets are re-read whenever another writer moved the
    deployment's ``engine_revision``.
    """

    def __init__(self, store: Store, owner: str, *, lease_seconds: float) -> None:
        self.store = store
        self.owner = owner
        self.lease_seconds = lease_seconds
        #: The targets of the deployments this worker drives, as it last left them.
        self._targets: dict[str, TargetsState] = {}
        #: Their instance rows, as last read.
        self._instances: dict[str, InstanceRows] = {}

    def candidates(self, now: datetime) -> list[str]:
        with self.store.database.read() as conn:
            # Every platform: reconcile ends what it cannot run at once, so that such a
            # deployment never holds its group's single active slot.
            return list(conn.execute(_CANDIDATES, {"b_owner": self.owner, "b_now": now}).scalars())

    def lease(self, deployment_id: str, now: datetime) -> bool:
        expires = now + timedelta(seconds=self.lease_seconds)
        params = {"b_dep": deployment_id, "b_owner": self.owner, "b_now": now, "b_expires": expires}
        with self.store.database.write() as conn:
            locking = conn.dialect.name == "postgresql"
            if locking and conn.execute(_LOCK_LEASABLE, params).first() is None:
                return False
            taken = conn.execute(_TAKE_LEASE, params).rowcount
        return bool(taken)

    def release(self, deployment_id: str) -> None:
        self._targets.pop(deployment_id, None)
        self._instances.pop(deployment_id, None)
        with self.store.database.write() as conn:
            conn.execute(_RELEASE, {"b_dep": deployment_id, "b_owner": self.owner})

    def forget(self, keep: set[str]) -> None:
        for gone in set(self._targets) - keep:
            del self._targets[gone]  # finished, or driven by another replica now
        for gone in set(self._instances) - keep:
            del self._instances[gone]

    def load(
        self,
        deployment_id: str,
        now: datetime,
        *,
        watching_since: datetime | None,
        holding: frozenset[str],
        heard: Mapping[str, datetime] | None,
        fresh_instances: bool = False,
    ) -> Loaded | None:
        instances = None if fresh_instances else self._instances.get(deployment_id)
        if instances is not None and (
            time.monotonic() - instances.read_at > INSTANCE_ROWS_MAX_AGE_SECONDS
        ):
            instances = None
        with self.store.database.read() as conn:
            loaded = load(
                conn,
                deployment_id,
                now,
                watching_since=watching_since,
                holding=holding,
                heard=heard,
                known=self._targets.get(deployment_id),
                instances=instances,
            )
        if loaded is not None and instances is not None:
            loaded = dataclasses.replace(loaded, instances_cached=True)
        return loaded

    def commit(
        self,
        deployment_id: str,
        loaded: Any,
        decisions: Decisions | None,
        now: datetime,
        *,
        dead_after_seconds: float,
    ) -> Committed | None:
        assert loaded is None or isinstance(loaded, Loaded)
        # Whatever happens below, the cached state is stale until this pass commits.
        self._targets.pop(deployment_id, None)
        self._instances.pop(deployment_id, None)
        rollback_id: str | None = None
        marked: list[str] = []
        with self.store.database.write() as conn:
            owner = conn.execute(_LEASE_OWNER, {"b_dep": deployment_id}).scalar_one_or_none()
            if owner != self.owner:
                return None  # the lease expired mid-pass and another replica took it
            if loaded is not None and decisions is not None and decisions.has_changes:
                rollback_id = apply(conn, loaded, decisions, now)
            if loaded is not None and decisions is not None and loaded.news:
                done = set(decisions.close_commands) | {c.instance_id for c in decisions.dispatch}
                cmd_store.mark_seen(
                    conn,
                    [(cid, status) for name, cid, status in loaded.news if name not in done],
                )
            if loaded is not None and decisions is not None:
                fresh = [n for n in decisions.unreachable if n not in loaded.marked_unreachable]
                if fresh:
                    marked = mark_unreachable(conn, fresh, now, dead_after_seconds)
            conn.execute(_RELEASE, {"b_dep": deployment_id, "b_owner": self.owner})
        # Committed: keep the targets as they now are for the next pass.
        if loaded is not None and loaded.state is not None and decisions is not None:
            ended = decisions.deployment is not None and (
                decisions.deployment.status in TERMINAL_DEPLOYMENT_STATUSES
            )
            if not ended:
                self._targets[deployment_id] = (
                    state_after(loaded.state, decisions, now)
                    if decisions.has_changes
                    else loaded.state
                )
                if loaded.instances is not None:
                    self._instances[deployment_id] = loaded.instances
        server_steps = decisions is not None and any(
            hc.executor == "server" for hc in decisions.dispatch
        )
        return Committed(rollback_id, tuple(marked), server_steps)
