"""The engine's input: an immutable picture of one deployment, loaded by the worker.

Everything :func:`opendeploy.engine.reconcile.reconcile` needs to decide is here, and nothing
else: no store rows, no sessions, no clocks. Agent reports (acknowledgements and completions of
host commands) are recorded by the Command API on the target's current :class:`CommandSnapshot`;
the engine alone turns them into lifecycle-event and instance statuses, so every rule
(``ignoreApplicationStopFailures``, no-op commands, timeouts, dead agents) lives in one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# The minimum of healthy hosts is a domain record, re-exported for the engine and its tests.
from opendeploy.domain.configs import ALL_AT_ONCE as ALL_AT_ONCE
from opendeploy.domain.configs import HALF_AT_A_TIME as HALF_AT_A_TIME
from opendeploy.domain.configs import ONE_AT_A_TIME as ONE_AT_A_TIME
from opendeploy.domain.configs import ONE_AT_A_TIME_CONFIG as ONE_AT_A_TIME_CONFIG
from opendeploy.domain.configs import InvalidMinimumHealthyHosts as InvalidMinimumHealthyHosts
from opendeploy.domain.configs import MinimumHealthyHosts as MinimumHealthyHosts
from opendeploy.domain.configs import TrafficRouting, TrafficRoutingType
from opendeploy.domain.configs import minimum_for as minimum_for
from opendeploy.domain.lifecycle import SERVER_ORDER, LifecycleEvent
from opendeploy.domain.records import BlueGreenSettings, DeploymentStyle
from opendeploy.domain.status import (
    DeploymentStatus,
    InstanceStatus,
    LifecycleErrorCode,
    LifecycleEventStatus,
)
from opendeploy.errors import OpenDeployError

#: Who carries a command out: the host's agent, or an effector of the server.
Executor = Literal["agent", "server"]
#: A target's role in a blue/green deployment (``instanceLabel``).
Label = Literal["Blue", "Green"]
#: ContinueDeployment's ``deploymentWaitType``.
WaitType = Literal["READY_WAIT", "TERMINATION_WAIT"]

_E = LifecycleEvent
_TRAFFIC_EVENTS = frozenset(
    {
        _E.BEFORE_BLOCK_TRAFFIC,
        _E.BLOCK_TRAFFIC,
        _E.AFTER_BLOCK_TRAFFIC,
        _E.BEFORE_ALLOW_TRAFFIC,
        _E.ALLOW_TRAFFIC,
        _E.AFTER_ALLOW_TRAFFIC,
    }
)


class EngineInputError(OpenDeployError, ValueError):
    """A value handed to the engine breaks one of its rules (names the field and the value)."""


class AutoRollbackEvent(enum.StrEnum):
    DEPLOYMENT_FAILURE = "DEPLOYMENT_FAILURE"
    DEPLOYMENT_STOP_ON_ALARM = "DEPLOYMENT_STOP_ON_ALARM"
    DEPLOYMENT_STOP_ON_REQUEST = "DEPLOYMENT_STOP_ON_REQUEST"


@dataclass(frozen=True, slots=True)
class AutoRollbackConfig:
    """``autoRollbackConfiguration`` in effect for the deployment (group's or the override)."""

    enabled: bool = False
    events: frozenset[AutoRollbackEvent] = frozenset()


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """The public ``LifecycleEvent.diagnostics`` of one event."""

    error_code: LifecycleErrorCode
    message: str
    script_name: str = ""
    log_tail: str = ""


#: What AWS shows for a successful event.
SUCCESS_DIAGNOSTICS = Diagnostics(LifecycleErrorCode.SUCCESS, "Succeeded")


@dataclass(frozen=True, slots=True)
class EventSnapshot:
    """One lifecycle event of one target, as stored."""

    name: LifecycleEvent
    status: LifecycleEventStatus = LifecycleEventStatus.PENDING
    start_time: datetime | None = None
    end_time: datetime | None = None
    diagnostics: Diagnostics | None = None


@dataclass(frozen=True, slots=True)
class CommandSnapshot:
    """The command currently outstanding for a target, with what its executor said about it.

    ``acknowledged_at``/``noop`` come from PutHostCommandAcknowledgement (``IsCommandNoop``);
    ``completed_at``/``result``/``diagnostics`` from PutHostCommandComplete. The engine reads
    them and closes the command once it has turned them into statuses. A server step
    (``executor == "server"``) is reported the same way by the effector runner: taken up
    (``acknowledged_at``), then completed, so the engine treats both alike.
    """

    event: LifecycleEvent
    dispatched_at: datetime
    acknowledged_at: datetime | None = None
    noop: bool = False
    completed_at: datetime | None = None
    result: Literal["Succeeded", "Failed"] | None = None
    diagnostics: Diagnostics | None = None
    executor: Executor = "agent"


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """One instance of the deployment: its status, its events in order, its agent, its command."""

    instance_id: str
    events: tuple[EventSnapshot, ...]
    status: InstanceStatus = InstanceStatus.PENDING
    last_seen_at: datetime | None = None
    command: CommandSnapshot | None = None
    #: When the instance was deregistered (its key is revoked: its agent can no longer poll).
    deregistered_at: datetime | None = None
    #: ``Blue`` (the original fleet) or ``Green`` (the replacement) in a blue/green deployment.
    label: Label | None = None

    def event(self, name: LifecycleEvent) -> EventSnapshot:
        for ev in self.events:
            if ev.name == name:
                return ev
        raise EngineInputError(f"target {self.instance_id}: has no lifecycle event {name}")


@dataclass(frozen=True, slots=True)
class StopRequest:
    """A StopDeployment call (or an alarm) recorded on the deployment."""

    requested_at: datetime
    #: StopDeployment's ``autoRollbackEnabled``; ``None`` defers to the rollback configuration.
    auto_rollback_enabled: bool | None = None
    by_alarm: bool = False
    #: The alarms that raised it (``by_alarm``): those in ALARM, or, with ``unreadable``, those
    #: whose state could not be read while ``ignorePollAlarmFailure`` was false.
    alarms: tuple[str, ...] = ()
    unreadable: bool = False


@dataclass(frozen=True, slots=True)
class GateSnapshot:
    """A deployment's analysis gate (beyond AWS), as the alarm watcher last recorded it.

    New targets (the next batch) start only once the gate's metric has stayed within bounds
    for ``hold_seconds`` since the previous batch ended; after ``timeout_seconds`` of waiting the
    deployment fails (or stops, ``on_timeout == "stop"``)."""

    name: str
    hold_seconds: float
    timeout_seconds: float
    on_timeout: Literal["fail", "stop"] = "fail"
    #: Since when the metric has been within bounds without a break (None: it is not now).
    ok_since: datetime | None = None
    #: When the metric was last read: a gate passes on readings, never on the time since one.
    checked_at: datetime | None = None
    #: What the metric last read, for messages ("error_rate 0.12 > 0.05").
    detail: str = "not read yet"


@dataclass(frozen=True, slots=True)
class LastSuccessful:
    """The group's last successful deployment (other than this one) and its revision."""

    deployment_id: str
    #: Opaque to the engine: whatever the store uses to name a registered revision.
    revision: str


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    """One deployment with its targets, as the worker loads it under its lease."""

    deployment_id: str
    status: DeploymentStatus
    minimum_healthy_hosts: MinimumHealthyHosts
    targets: tuple[TargetSnapshot, ...]
    created_at: datetime
    started_at: datetime | None = None
    config_name: str = "CodeDeployDefault.OneAtATime"
    ignore_application_stop_failures: bool = False
    stop: StopRequest | None = None
    auto_rollback: AutoRollbackConfig = field(default_factory=AutoRollbackConfig)
    creator: str = "user"
    last_successful: LastSuccessful | None = None
    #: ``Server``, ``Lambda`` or ``ECS``; the engine runs Server deployments only (so far).
    compute_platform: str = "Server"
    #: In-place or blue/green.
    style: DeploymentStyle = field(default_factory=DeploymentStyle)
    #: When the engine process began watching agents (its start). Agents cannot poll a server
    #: that is down, so silence before this instant does not count against them.
    watching_since: datetime | None = None
    #: ``blueGreenDeploymentConfiguration`` of a blue/green deployment.
    blue_green: BlueGreenSettings = field(default_factory=BlueGreenSettings)
    #: The last ContinueDeployment's wait type (the engine acts on it where it applies).
    continue_requested: WaitType | None = None
    #: ``instanceTerminationWaitTimeStarted``: the wait before blue is terminated has begun.
    termination_wait_started: bool = False
    #: The deployment configuration's ``trafficRoutingConfig``: a Server one shifts between the
    #: blue and green pools (canary or linear); on Lambda and ECS it is how long AllowTraffic's
    #: shifting takes, which the engine allows on top of the event timeout.
    traffic_routing: TrafficRouting | None = None

    @property
    def shifts_traffic(self) -> bool:
        """A blue/green deployment (not its rollback) that moves traffic on a schedule."""
        routing = self.traffic_routing
        return (
            self.style.blue_green
            and not self.blue_green_rollback
            and routing is not None
            and routing.type is not TrafficRoutingType.ALL_AT_ONCE
        )

    @property
    def blue_green_rollback(self) -> bool:
        """A rollback of a blue/green deployment: traffic back to blue, nothing installed."""
        return self.style.blue_green and self.creator == "codeDeployRollback"

    #: The analysis gate of the deployment's group, if the server declares one.
    gate: GateSnapshot | None = None

    #: The hosts that polled this process since it started (None: not known, as for an engine
    #: without a Command API of its own). Within the restart grace only they are judged by
    #: their silence: another's report may have got through while its poll loop still waits
    #: out the backoff of the server's absence.
    polled_here: frozenset[str] | None = None


#: The events of the one target of a Lambda deployment, in order; all run by the server.
LAMBDA_EVENTS: tuple[LifecycleEvent, ...] = (
    _E.BEFORE_ALLOW_TRAFFIC,
    _E.ALLOW_TRAFFIC,
    _E.AFTER_ALLOW_TRAFFIC,
)


def platform_events(
    compute_platform: str, *, load_balancer: bool = False
) -> tuple[LifecycleEvent, ...]:
    """The events of a target of ``compute_platform``, in order."""
    if compute_platform == "Lambda":
        return LAMBDA_EVENTS
    return lifecycle_events(load_balancer=load_balancer)


def lifecycle_events(*, load_balancer: bool = False) -> tuple[LifecycleEvent, ...]:
    """The events of an in-place EC2/on-premises deployment, in order.

    Without a load balancer: ApplicationStop … ValidateService (agent-behaviour §2.7). With one,
    the six traffic events around them, two of which (BlockTraffic, AllowTraffic) the server runs.
    """
    if load_balancer:
        return SERVER_ORDER
    return tuple(e for e in SERVER_ORDER if e not in _TRAFFIC_EVENTS)


#: The install events of a green instance (and of an in-place one without a load balancer).
_INSTALL_EVENTS = lifecycle_events()
_ALLOW_EVENTS = (_E.BEFORE_ALLOW_TRAFFIC, _E.ALLOW_TRAFFIC, _E.AFTER_ALLOW_TRAFFIC)
_BLOCK_EVENTS = (_E.BEFORE_BLOCK_TRAFFIC, _E.BLOCK_TRAFFIC, _E.AFTER_BLOCK_TRAFFIC)


def blue_green_events(label: Label, *, rollback: bool = False) -> tuple[LifecycleEvent, ...]:
    """The events of one target of a blue/green deployment, in order (platforms.md §1.3).

    Green installs the revision then takes traffic; blue only gives its traffic up. A rollback
    reverses the traffic and installs nothing: blue takes traffic back, green gives it up."""
    if rollback:
        return _ALLOW_EVENTS if label == "Blue" else _BLOCK_EVENTS
    return _INSTALL_EVENTS + _ALLOW_EVENTS if label == "Green" else _BLOCK_EVENTS


def target_events(
    label: Label | None,
    *,
    load_balancer: bool = False,
    rollback: bool = False,
    compute_platform: str = "Server",
) -> tuple[LifecycleEvent, ...]:
    """The events of a target: a Lambda function's, a blue/green host's by its label, an
    in-place host's by whether its group has a load balancer."""
    if compute_platform != "Server":
        return platform_events(compute_platform, load_balancer=load_balancer)
    if label is not None:
        return blue_green_events(label, rollback=rollback)
    return lifecycle_events(load_balancer=load_balancer)


def new_target(
    instance_id: str,
    *,
    load_balancer: bool = False,
    label: Label | None = None,
    rollback: bool = False,
    compute_platform: str = "Server",
) -> TargetSnapshot:
    """A target as CreateDeployment stores it: Pending, every event Pending."""
    names = target_events(
        label, load_balancer=load_balancer, rollback=rollback, compute_platform=compute_platform
    )
    return TargetSnapshot(
        instance_id=instance_id, events=tuple(EventSnapshot(e) for e in names), label=label
    )
