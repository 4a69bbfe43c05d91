"""The SNS message CodeDeploy publishes for a trigger event, built from the event and what the
store knows of its deployment (pure).

The shape is the one observed in AWS's notifications (platforms.md §6): ``Subject``
``<STATUS>: AWS CodeDeploy <deploymentId> in <region> to <applicationName>``; ``Message`` a JSON
string whose nested objects (``deploymentOverview``, ``errorInformation``,
``rollbackInformation``, an instance's ``lifecycleEvents``) are themselves JSON-encoded strings,
and whose times are in Java's ``Date.toString()`` form (``Fri Oct 14 08:38:46 UTC 2022``).
Instance events carry the instance's ARN, status and lifecycle events instead of the overview.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opendeploy.engine.events import DeliveredEvent, TriggerEvent

#: SNS refuses a Subject longer than this.
SUBJECT_MAX = 100

_STATUS = {
    TriggerEvent.DEPLOYMENT_START: "IN_PROGRESS",
    TriggerEvent.DEPLOYMENT_SUCCESS: "SUCCEEDED",
    TriggerEvent.DEPLOYMENT_FAILURE: "FAILED",
    TriggerEvent.DEPLOYMENT_STOP: "STOPPED",
    TriggerEvent.DEPLOYMENT_READY: "READY",
}
_ENDED = frozenset(
    {
        TriggerEvent.DEPLOYMENT_SUCCESS,
        TriggerEvent.DEPLOYMENT_FAILURE,
        TriggerEvent.DEPLOYMENT_STOP,
    }
)
_INSTANCE_EVENTS = frozenset(
    {
        TriggerEvent.INSTANCE_START,
        TriggerEvent.INSTANCE_SUCCESS,
        TriggerEvent.INSTANCE_FAILURE,
        TriggerEvent.INSTANCE_READY,
    }
)
#: Names the key of one delivery (event, trigger); the key is the same on every attempt.
_KEY_NAMESPACE = uuid.UUID("5b8f0c1e-6c1a-4d55-9a57-0d3e6a0f2b11")


@dataclass(frozen=True, slots=True)
class LifecycleFact:
    name: str
    status: str
    start_time: datetime | None
    end_time: datetime | None


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """What a message says of the deployment beyond the event itself (read when it is built)."""

    deployment_id: str
    application_name: str
    deployment_group_name: str
    status: str
    create_time: datetime
    complete_time: datetime | None
    #: ``{"Succeeded": n, "Failed": n, "Skipped": n, "InProgress": n, "Pending": n}``
    overview: Mapping[str, int]
    error_information: Mapping[str, Any] | None = None
    rollback_info: Mapping[str, Any] | None = None
    #: Per target: its ARN and lifecycle events (instance events only).
    target_arns: Mapping[str, str] = field(default_factory=dict)
    lifecycle: Mapping[str, Sequence[LifecycleFact]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one trigger: what SNS gets (``subject``, ``message``) and the key."""

    trigger_name: str
    subject: str
    message: str
    idempotency_key: str


def java_date(when: datetime | None) -> str | None:
    """``Fri Oct 14 08:38:46 UTC 2022``, as CodeDeploy's messages write times."""
    if when is None:
        return None
    return when.astimezone(UTC).strftime("%a %b %d %H:%M:%S UTC %Y")


def idempotency_key(deployment_id: str, event_seq: int, trigger_name: str) -> str:
    """The key of the delivery of event ``event_seq`` to trigger ``trigger_name`` (stable; the
    deployment id keeps keys of different databases apart, whose ``seq`` counts alike)."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{deployment_id}\0{event_seq}\0{trigger_name}"))


def is_instance_event(kind: TriggerEvent) -> bool:
    return kind in _INSTANCE_EVENTS


def _upper(status: str) -> str:
    """``InProgress`` -> ``IN_PROGRESS``."""
    out = []
    for i, ch in enumerate(status):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.upper())
    return "".join(out)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def status_of(delivered: DeliveredEvent, facts: DeploymentFacts) -> str:
    kind = delivered.event.event_type
    if kind in _STATUS:
        return _STATUS[kind]
    if is_instance_event(kind):
        return _upper(delivered.event.status)
    return _upper(facts.status)  # DeploymentRollback: where the rolled-back deployment is


def build(
    delivered: DeliveredEvent,
    facts: DeploymentFacts,
    trigger_name: str,
    *,
    region: str,
    account_id: str,
) -> Notification:
    """The notification of ``delivered`` for the trigger ``trigger_name``."""
    e = delivered.event
    status = status_of(delivered, facts)
    subject = f"{status}: AWS CodeDeploy {e.deployment_id} in {region} to {facts.application_name}"
    body: dict[str, Any]
    if is_instance_event(e.event_type) and e.instance_id is not None:
        events = [
            {
                "LifecycleEvent": lc.name,
                "LifecycleEventStatus": lc.status,
                "StartTime": java_date(lc.start_time),
                "EndTime": java_date(lc.end_time),
            }
            for lc in facts.lifecycle.get(e.instance_id, ())
        ]
        body = {
            "region": region,
            "accountId": account_id,
            "eventTriggerName": trigger_name,
            "deploymentId": e.deployment_id,
            "instanceId": facts.target_arns.get(e.instance_id, e.instance_id),
            "lastUpdatedAt": java_date(e.occurred_at),
            "instanceStatus": e.status,
            "lifecycleEvents": _compact(events),
        }
    else:
        ended = e.event_type in _ENDED
        body = {
            "region": region,
            "accountId": account_id,
            "eventTriggerName": trigger_name,
            "applicationName": facts.application_name,
            "deploymentId": e.deployment_id,
            "deploymentGroupName": facts.deployment_group_name,
            "createTime": java_date(facts.create_time),
            "completeTime": java_date(facts.complete_time or e.occurred_at) if ended else None,
            "status": status,
        }
        if ended:
            body["deploymentOverview"] = _compact(dict(facts.overview))
        error = e.detail.get("errorInformation") or facts.error_information
        if error and e.event_type is not TriggerEvent.DEPLOYMENT_START:
            body["errorInformation"] = _compact(
                {"ErrorCode": error.get("code"), "ErrorMessage": error.get("message")}
            )
        body["rollbackInformation"] = _compact(_rollback(delivered, facts))
    return Notification(
        trigger_name=trigger_name,
        subject=subject[:SUBJECT_MAX],
        message=_compact(body),
        idempotency_key=idempotency_key(e.deployment_id, delivered.seq, trigger_name),
    )


def _rollback(delivered: DeliveredEvent, facts: DeploymentFacts) -> dict[str, Any]:
    """``rollbackInformation``: on a rollback deployment, what it rolls back; on the rolled-back
    one (its DeploymentRollback event), the message of the rollback."""
    info = facts.rollback_info or {}
    out: dict[str, Any] = {}
    message = delivered.event.detail.get("rollbackMessage") or info.get("rollbackMessage")
    if message:
        out["RollbackMessage"] = message
    if info.get("rollbackTriggeringDeploymentId"):
        out["RollbackTriggeringDeploymentId"] = info["rollbackTriggeringDeploymentId"]
    if info.get("rollbackDeploymentId"):
        out["RollbackDeploymentId"] = info["rollbackDeploymentId"]
    return out


def wanted(trigger: Mapping[str, Any], kind: TriggerEvent) -> bool:
    """Whether ``trigger`` (a ``TriggerConfig``) subscribes to events of ``kind``."""
    return str(kind) in (trigger.get("triggerEvents") or ())
