"""The deployment events a pass gives rise to: CodeDeploy's ten trigger event types (pure).

A decision that changes a deployment's or an instance's state yields an event for the outbox,
written in the same transaction (``store.engine_store``), so that the notifications users get
(log, webhooks, SNS, the dashboard's live view) are exactly the state changes that happened:
none lost when the server dies after the commit, none invented when it dies before.

Mapping (user guide, "Monitoring deployments with Amazon SNS event notifications"):
``DeploymentStart`` when a deployment starts (Created/Queued → InProgress), ``DeploymentSuccess``,
``DeploymentFailure``, ``DeploymentStop`` when it ends so, ``DeploymentReady`` when a blue/green
replacement is ready for traffic, ``DeploymentRollback`` on the deployment being rolled back when
its rollback deployment is created; ``InstanceStart`` / ``InstanceSuccess`` / ``InstanceFailure`` /
``InstanceReady`` for each target (EC2/on-premises only, as with AWS). A skipped target (one that
never started) yields nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opendeploy.domain.status import DeploymentStatus, InstanceStatus
from opendeploy.engine.reconcile import Decisions
from opendeploy.engine.snapshot import DeploymentSnapshot


class TriggerEvent(enum.StrEnum):
    """``TriggerEventType`` of the AWS model (the ten a trigger may subscribe to)."""

    DEPLOYMENT_START = "DeploymentStart"
    DEPLOYMENT_SUCCESS = "DeploymentSuccess"
    DEPLOYMENT_FAILURE = "DeploymentFailure"
    DEPLOYMENT_STOP = "DeploymentStop"
    DEPLOYMENT_ROLLBACK = "DeploymentRollback"
    DEPLOYMENT_READY = "DeploymentReady"
    INSTANCE_START = "InstanceStart"
    INSTANCE_SUCCESS = "InstanceSuccess"
    INSTANCE_FAILURE = "InstanceFailure"
    INSTANCE_READY = "InstanceReady"


_DEPLOYMENT_EVENTS = {
    DeploymentStatus.SUCCEEDED: TriggerEvent.DEPLOYMENT_SUCCESS,
    DeploymentStatus.FAILED: TriggerEvent.DEPLOYMENT_FAILURE,
    DeploymentStatus.STOPPED: TriggerEvent.DEPLOYMENT_STOP,
    DeploymentStatus.READY: TriggerEvent.DEPLOYMENT_READY,
}
_INSTANCE_EVENTS = {
    InstanceStatus.IN_PROGRESS: TriggerEvent.INSTANCE_START,
    InstanceStatus.SUCCEEDED: TriggerEvent.INSTANCE_SUCCESS,
    InstanceStatus.FAILED: TriggerEvent.INSTANCE_FAILURE,
    InstanceStatus.READY: TriggerEvent.INSTANCE_READY,
}
_NOT_STARTED = (DeploymentStatus.CREATED, DeploymentStatus.QUEUED)


@dataclass(frozen=True, slots=True)
class DeploymentEvent:
    """One event for the outbox: what happened, to which deployment (and instance), when."""

    deployment_id: str
    event_type: TriggerEvent
    #: The status the deployment or instance moved to (AWS's spelling, e.g. ``InProgress``).
    status: str
    occurred_at: datetime
    instance_id: str | None = None
    #: Details for the sinks' messages (``errorInformation``, rollback links).
    detail: dict[str, Any] = field(default_factory=dict)


def events_of(snap: DeploymentSnapshot, d: Decisions, now: datetime) -> list[DeploymentEvent]:
    """The events that applying ``d`` to ``snap`` at ``now`` records, in a stable order."""
    out: list[DeploymentEvent] = []
    dep = snap.deployment_id
    transition = d.deployment
    moved = transition if transition is not None and transition.status is not snap.status else None
    if moved is not None and snap.status in _NOT_STARTED and moved.status not in _NOT_STARTED:
        # Also when it ends at once (no instances, constraints that cannot hold): it started.
        out.append(DeploymentEvent(dep, TriggerEvent.DEPLOYMENT_START, "InProgress", now))
    for tu in d.target_updates:
        kind = _INSTANCE_EVENTS.get(tu.status)
        if kind is not None:
            out.append(DeploymentEvent(dep, kind, str(tu.status), tu.at, tu.instance_id))
    if moved is not None:
        kind = _DEPLOYMENT_EVENTS.get(moved.status)
        if kind is not None:
            detail: dict[str, Any] = {}
            if moved.error is not None:
                detail["errorInformation"] = {
                    "code": moved.error.code,
                    "message": moved.error.message,
                }
            out.append(DeploymentEvent(dep, kind, str(moved.status), now, detail=detail))
    if d.rollback is not None and d.rollback.plan is not None:
        out.append(
            DeploymentEvent(
                dep,
                TriggerEvent.DEPLOYMENT_ROLLBACK,
                str(transition.status if transition else snap.status),
                now,
                detail={"rollbackMessage": d.rollback.message},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class DeliveredEvent:
    """An event as the outbox hands it to the sinks, with its place in the outbox (``seq``,
    which orders events and lets a sink drop the repeats of at-least-once delivery)."""

    seq: int
    event: DeploymentEvent
