"""``reconcile(snapshot, now) -> Decisions``: the whole state machine of a deployment, pure.

This module holds what every platform shares: the decisions' types, :class:`Plan` (the working
state of one call, with the rules of targets, events, commands and server steps, dead agents,
timeouts, stops and rollback), and the entry point, which hands the plan to the reconciler of the
deployment's platform (:mod:`opendeploy.engine.platforms`): Server in-place (below), Server
blue/green (:mod:`opendeploy.engine.platforms.server_blue_green`).

The worker leases a deployment, loads a :class:`~opendeploy.engine.snapshot.DeploymentSnapshot`,
calls :func:`reconcile` and applies the :class:`Decisions` in one transaction (Nomad's scheduler
submitting a plan). Calling it again on the applied state at the same instant decides nothing new,
so a worker that crashes and retries, or two replicas racing for a lease, do no harm.

One call of the in-place Server reconciler does, in this order:

0. (Any platform.) A Lambda or ECS deployment ends at once: this server runs only Server
   (EC2/on-premises) deployments so far. It fails (``errorInformation`` says so), or is
   ``Stopped`` when a stop was requested first, so that it never blocks its group.
1. ``Created`` → ``InProgress``; a deployment with no targets fails with ``NO_INSTANCES``, one
   whose minimum of healthy hosts leaves no instance to deploy to fails with
   ``HEALTH_CONSTRAINTS_INVALID`` (AWS fails those "immediately").
2. A stop request ends it as ``Stopped`` (``MANUAL_STOP``, or ``ALARM_ACTIVE`` for an alarm: the
   alarm watcher of :mod:`opendeploy.engine.alarms` records such a stop, every platform honours
   it through :meth:`Plan.end_if_stopped`); a deployment running longer than
   ``deployment_timeout_seconds`` fails with ``TIMEOUT``.
3. Each in-flight target advances: the agent's acknowledgement makes the event ``InProgress``
   (``startTime``), a no-op acknowledgement makes it ``Succeeded``, a completion makes it
   ``Succeeded`` or ``Failed`` (``endTime``, diagnostics); the next event is dispatched, strictly in
   order, or the target is done. A failure fails the target and skips its remaining events, except
   a failed ApplicationStop/BeforeBlockTraffic/AfterBlockTraffic under
   ``ignoreApplicationStopFailures``: the event stays ``Failed`` with the script's diagnostics (so
   the reason is visible) and the instance continues. Server-side events (BlockTraffic,
   AllowTraffic) are dispatched as *server steps* (``executor="server"``): the effector runner
   carries them out outside the engine's transaction and reports like an agent, so the same
   rules read their outcome; the agent's liveness does not concern them.
4. Dead agents and timeouts fail the outstanding event with a message naming the cause: the
   instance deregistered (at once: its key is revoked, so its agent can neither take nor report
   a command), the agent not polling for ``agent_dead_after_seconds``, the command not picked up
   within
   ``event_start_timeout_seconds`` (AWS: "Minutes until a deployment fails if a lifecycle event
   doesn't start: 5"), or not completed within ``event_timeout_seconds`` (AWS: 3600 s).
5. The health rule (:mod:`opendeploy.engine.batches`): new targets start while the budget allows
   and the analysis gate, if any, lets the next batch go (:meth:`Plan.hold_for_gate`);
   once the deployment can no longer succeed, nothing new starts, pending targets are ``Skipped``,
   in-flight ones finish their lifecycle (they are already out of service, and finishing restores
   them), and the deployment fails (``HEALTH_CONSTRAINTS``, or ``AGENT_ISSUE`` when an instance
   failed because its agent stopped polling) as soon as none is in flight.
6. When the deployment ends as failed or stopped, :mod:`opendeploy.engine.rollback` decides the
   rollback deployment.

When a deployment ends early (stop, timeout), an in-flight target becomes ``Failed``: its
outstanding event is ``Skipped`` if the agent never acknowledged it (the Command API answers the
late acknowledgement with ``Failed``, so the official agent skips it), ``Failed`` if it was running
(the agent cannot be interrupted; its late completion is ignored), and later events ``Skipped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opendeploy.domain.lifecycle import SERVER_SIDE_EVENTS, LifecycleEvent
from opendeploy.domain.status import (
    TERMINAL_DEPLOYMENT_STATUSES,
    DeploymentStatus,
    InstanceStatus,
    LifecycleErrorCode,
    LifecycleEventStatus,
)
from opendeploy.engine import batches
from opendeploy.engine.rollback import RollbackDecision, RollbackTrigger, decide_rollback
from opendeploy.engine.snapshot import (
    SUCCESS_DIAGNOSTICS,
    CommandSnapshot,
    DeploymentSnapshot,
    Diagnostics,
    EngineInputError,
    EventSnapshot,
    Executor,
    StopRequest,
    TargetSnapshot,
)

_E = LifecycleEvent
_ES = LifecycleEventStatus
_IS = InstanceStatus
_DS = DeploymentStatus

#: Failures that ``ignoreApplicationStopFailures`` lets an instance continue past (API Reference,
#: CreateDeployment: "ApplicationStop, BeforeBlockTraffic, and AfterBlockTraffic").
IGNORABLE_EVENTS = frozenset({_E.APPLICATION_STOP, _E.BEFORE_BLOCK_TRAFFIC, _E.AFTER_BLOCK_TRAFFIC})

#: Every dead-agent diagnostics message starts so; the engine recognises its own failures by it.
AGENT_NOT_POLLING_PREFIX = "The OpenDeploy agent on "

MANUAL_STOP_MESSAGE = "The deployment was stopped by a user request."

HEALTH_CONSTRAINTS_MESSAGE = (
    "The overall deployment failed because too many individual instances failed deployment, too "
    "few healthy instances are available for deployment, or some instances in your deployment "
    "group are experiencing problems."
)

_TERMINAL_EVENT = frozenset({_ES.SUCCEEDED, _ES.FAILED, _ES.SKIPPED})


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSettings:
    """Timeouts of the engine, in seconds; one object for the whole server."""

    #: A running lifecycle event fails after this long (AWS: 3600, not adjustable there).
    event_timeout_seconds: float = 3600.0
    #: A dispatched command the agent has not acknowledged fails after this long (AWS: 5 min).
    event_start_timeout_seconds: float = 300.0
    #: An agent that has not polled for this long is unreachable; its outstanding event fails.
    #: A live agent always holds a long poll, so the store must count a held poll as "seen now".
    agent_dead_after_seconds: float = 15.0
    #: A deployment running longer fails with TIMEOUT (AWS: 12 h for in-place deployments).
    deployment_timeout_seconds: float = 12 * 3600.0
    #: After the engine (re)starts, an agent gets at least this long to poll again before it
    #: counts as dead: agents back off while the server is down (ours up to 30 s, the official
    #: agent up to about 90 s), so a short ``agent_dead_after_seconds`` would otherwise fail
    #: live hosts that are merely waiting out their retry delay.
    restart_grace_seconds: float = 95.0
    #: The length of every minute the API counts (traffic intervals, ready and termination
    #: waits): AWS's 60 s, or less to run those waits in seconds (``--minute-seconds``).
    minute_seconds: float = 60.0

    @property
    def minute(self) -> timedelta:
        """:attr:`minute_seconds` as the ``minute`` argument of ``engine.schedule``."""
        return timedelta(seconds=self.minute_seconds)

    def __post_init__(self) -> None:
        for name in (
            "event_timeout_seconds",
            "event_start_timeout_seconds",
            "agent_dead_after_seconds",
            "deployment_timeout_seconds",
            "restart_grace_seconds",
            "minute_seconds",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise EngineInputError(f"EngineSettings.{name}: {value} must be > 0")


@dataclass(frozen=True, slots=True)
class ErrorInformation:
    """``errorInformation`` of a deployment: an AWS ``ErrorCode`` and a message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class DeploymentTransition:
    """A new deployment status; the times to set with it (``None``: leave as stored)."""

    status: DeploymentStatus
    start_time: datetime | None = None
    complete_time: datetime | None = None
    error: ErrorInformation | None = None


@dataclass(frozen=True, slots=True)
class TargetUpdate:
    instance_id: str
    status: InstanceStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class EventUpdate:
    """The new state of one lifecycle event; the times given replace the stored ones."""

    instance_id: str
    event: LifecycleEvent
    status: LifecycleEventStatus
    start_time: datetime | None = None
    end_time: datetime | None = None
    diagnostics: Diagnostics | None = None


@dataclass(frozen=True, slots=True)
class HostCommand:
    """A command for the target; it becomes the target's current command.

    ``executor``: the instance's agent polls for it, or the server's effector runner carries it
    out (BlockTraffic, AllowTraffic, and the steps of the other platforms)."""

    instance_id: str
    event: LifecycleEvent
    executor: Executor = "agent"


@dataclass(frozen=True, slots=True)
class DeploymentOverview:
    """``deploymentOverview`` counts, derived from the targets' statuses."""

    pending: int = 0
    in_progress: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    ready: int = 0

    def as_api(self) -> dict[str, int]:
        return {
            "Pending": self.pending,
            "InProgress": self.in_progress,
            "Succeeded": self.succeeded,
            "Failed": self.failed,
            "Skipped": self.skipped,
            "Ready": self.ready,
        }


@dataclass(frozen=True, slots=True)
class Decisions:
    """Everything one :func:`reconcile` call decided, for the worker to apply in one transaction.

    ``dispatch`` replaces the target's current command; ``close_commands`` ends it with no
    successor (a late report about it is accepted and ignored). ``overview`` describes the state
    after the decisions; ``unreachable`` names the instances whose agents cannot be reached (the
    worker records it on the instance as ``unreachable_since``, outside ``has_changes``).
    """

    overview: DeploymentOverview
    deployment: DeploymentTransition | None = None
    target_updates: tuple[TargetUpdate, ...] = ()
    event_updates: tuple[EventUpdate, ...] = ()
    dispatch: tuple[HostCommand, ...] = ()
    close_commands: tuple[str, ...] = ()
    rollback: RollbackDecision | None = None
    unreachable: tuple[str, ...] = ()
    #: Sets ``instanceTerminationWaitTimeStarted`` (a blue/green deployment's blue wait began).
    termination_wait_started: bool = False
    #: Lines to add to ``deploymentStatusMessages``.
    status_messages: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        """Whether applying these decisions changes anything."""
        return bool(
            self.deployment
            or self.termination_wait_started
            or self.status_messages
            or self.target_updates
            or self.event_updates
            or self.dispatch
            or self.close_commands
            or self.rollback
        )


@dataclass(slots=True)
class _Outcome:
    status: LifecycleEventStatus
    start: datetime | None
    end: datetime | None
    diagnostics: Diagnostics | None
    from_agent: bool  # reported by the agent (a script's result), not decided by the server


class _EventTable:
    """Every target's lifecycle events, as the snapshot has them plus this pass's changes.

    Looked up by ``(instance id, event)``. Only the changes are stored: copying every event of
    every target into one dict made each pass cost a dict entry per event of the fleet (the
    largest part of a pass at 10,000 hosts), when a pass reads few of them."""

    __slots__ = ("_changed", "_targets")

    def __init__(self, targets: tuple[TargetSnapshot, ...]) -> None:
        self._targets = {t.instance_id: t for t in targets}
        self._changed: dict[tuple[str, LifecycleEvent], EventSnapshot] = {}

    def __getitem__(self, key: tuple[str, LifecycleEvent]) -> EventSnapshot:
        changed = self._changed.get(key)
        if changed is not None:
            return changed
        instance_id, name = key
        for ev in self._targets[instance_id].events:
            if ev.name is name:
                return ev
        raise KeyError(key)

    def __setitem__(self, key: tuple[str, LifecycleEvent], ev: EventSnapshot) -> None:
        self._changed[key] = ev


@dataclass(slots=True)
class Plan:
    """The mutable working state of one reconcile call; turned into Decisions at the end."""

    snap: DeploymentSnapshot
    now: datetime
    settings: EngineSettings
    status: dict[str, InstanceStatus] = field(default_factory=dict)
    events: _EventTable = field(init=False)
    deployment: DeploymentTransition | None = None
    target_updates: dict[str, TargetUpdate] = field(default_factory=dict)
    event_updates: dict[tuple[str, LifecycleEvent], EventUpdate] = field(default_factory=dict)
    dispatch: dict[str, HostCommand] = field(default_factory=dict)
    close: list[str] = field(default_factory=list)
    rollback: RollbackDecision | None = None
    #: The events the server carries out itself (a platform widens it: every Lambda event).
    server_events: frozenset[LifecycleEvent] = SERVER_SIDE_EVENTS
    #: Seconds a running event may take beyond ``event_timeout_seconds`` (AllowTraffic on
    #: Lambda and ECS: its traffic schedule, which may span hours).
    extra_time: dict[LifecycleEvent, float] = field(default_factory=dict)
    #: Whether the targets are hosts with agents (not a Lambda function): only then can they be
    #: unreachable.
    agents: bool = True
    termination_wait_started: bool = False
    status_messages: list[str] = field(default_factory=list)
    # The times before which a report is too old, worked out once per pass: the checks run for
    # every waiting target of every pass, and comparing two datetimes is far cheaper than
    # subtracting them. None: no such time (a timeout too long to be reached).
    _dead_before: datetime | None = field(init=False)
    _dead_before_restart: datetime | None = field(init=False)
    _running_since_before: datetime | None = field(init=False)
    _dispatched_before: datetime | None = field(init=False)

    def __post_init__(self) -> None:
        for t in self.snap.targets:
            self.status[t.instance_id] = t.status
        self.events = _EventTable(self.snap.targets)
        s = self.settings
        self._dead_before = _cutoff(self.now, s.agent_dead_after_seconds)
        self._dead_before_restart = _cutoff(
            self.now, max(s.agent_dead_after_seconds, s.restart_grace_seconds)
        )
        self._running_since_before = _cutoff(self.now, s.event_timeout_seconds)
        self._dispatched_before = _cutoff(self.now, s.event_start_timeout_seconds)

    # -- recording ---------------------------------------------------------------------------

    def set_target(self, t: TargetSnapshot, status: InstanceStatus) -> None:
        if self.status[t.instance_id] != status:
            self.status[t.instance_id] = status
            self.target_updates[t.instance_id] = TargetUpdate(t.instance_id, status, self.now)

    def set_event(
        self,
        t: TargetSnapshot,
        name: LifecycleEvent,
        status: LifecycleEventStatus,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        diagnostics: Diagnostics | None = None,
    ) -> None:
        key = (t.instance_id, name)
        old = self.events[key]
        if (
            old.status is status
            and end is None
            and diagnostics is None
            and (start is None or old.start_time is not None)
        ):
            return  # the event as it stands (every pass says so of each running event)
        new = EventSnapshot(
            name,
            status,
            start_time=old.start_time or start,
            end_time=end or old.end_time,
            diagnostics=diagnostics or old.diagnostics,
        )
        if new != old:
            self.events[key] = new
            self.event_updates[key] = EventUpdate(
                t.instance_id, name, status, new.start_time, new.end_time, new.diagnostics
            )

    def close_command(self, t: TargetSnapshot) -> None:
        self.dispatch.pop(t.instance_id, None)
        if t.command is not None and t.instance_id not in self.close:
            self.close.append(t.instance_id)

    # -- queries -----------------------------------------------------------------------------

    def next_event(self, t: TargetSnapshot) -> EventSnapshot | None:
        for ev in t.events:
            current = self.events[(t.instance_id, ev.name)]
            if current.status not in _TERMINAL_EVENT:
                return current
        return None

    def tally(self) -> batches.Tally:
        values = list(self.status.values())
        return batches.Tally(
            total=len(values),
            succeeded=values.count(_IS.SUCCEEDED),
            failed=values.count(_IS.FAILED),
            in_flight=values.count(_IS.IN_PROGRESS),
            pending=values.count(_IS.PENDING),
        )

    def agent_dead(self, t: TargetSnapshot, since: datetime) -> bool:
        """Whether the agent has been quiet for longer than ``agent_dead_after_seconds``."""
        seen = t.last_seen_at or since
        watching = self.snap.watching_since
        if watching is not None and not _before(watching, self._dead_before_restart):
            # Within the restart grace of the engine's start, an agent is judged by its silence
            # only once it has polled again: while this server was stopped or starting agents
            # could not reach it and backed off (the official agent's polls up to about 90 s),
            # and one whose report got through may still wait out that backoff before it polls.
            # Judged on evidence, not on the server's own absence.
            polled = self.snap.polled_here
            if seen < watching or (polled is not None and t.instance_id not in polled):
                return False
        return _before(seen, self._dead_before)

    def dead_agent_message(self, t: TargetSnapshot, running: bool) -> str:
        if t.last_seen_at is None:
            quiet = "has never polled"
        else:
            secs = int((self.now - t.last_seen_at).total_seconds())
            quiet = f"has not polled for {secs} s (last seen {t.last_seen_at.isoformat()})"
        tail = (
            "the outcome of the lifecycle event is unknown"
            if running
            else "the lifecycle event was not run"
        )
        return f"{AGENT_NOT_POLLING_PREFIX}{t.instance_id} {quiet}; {tail}."

    def deregistered_message(self, t: TargetSnapshot, running: bool) -> str:
        assert t.deregistered_at is not None
        tail = (
            "the outcome of the lifecycle event is unknown"
            if running
            else "the lifecycle event was not run"
        )
        return (
            f"The instance {t.instance_id} was deregistered at {t.deregistered_at.isoformat()}; "
            f"its agent can no longer take or report commands, so {tail}."
        )

    # -- the state machine of one target -----------------------------------------------------

    def command_outcome(self, t: TargetSnapshot, cmd: CommandSnapshot) -> _Outcome | None:
        """What the outstanding command's reports (or their absence) mean now; None: wait."""
        s = self.settings
        if cmd.result is not None:
            start = cmd.acknowledged_at or cmd.dispatched_at
            end = cmd.completed_at or self.now
            if cmd.result == "Succeeded":
                # A server step's message says what it did (which load balancer, or that no
                # provider is configured); an agent's success reads as AWS shows it.
                server = cmd.executor == "server" and cmd.diagnostics is not None
                diag = cmd.diagnostics if server and cmd.diagnostics else SUCCESS_DIAGNOSTICS
                return _Outcome(_ES.SUCCEEDED, start, end, diag, True)
            diag = cmd.diagnostics or Diagnostics(
                LifecycleErrorCode.UNKNOWN_ERROR, "The agent reported a failure with no details."
            )
            return _Outcome(_ES.FAILED, start, end, diag, True)
        if cmd.executor == "server":
            return self.server_step_outcome(t, cmd)
        if t.deregistered_at is not None and not (cmd.acknowledged_at and cmd.noop):
            msg = self.deregistered_message(t, running=cmd.acknowledged_at is not None)
            return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
        if cmd.acknowledged_at is not None:
            if cmd.noop:
                ack = cmd.acknowledged_at
                return _Outcome(_ES.SUCCEEDED, ack, ack, SUCCESS_DIAGNOSTICS, True)
            if self.agent_dead(t, cmd.dispatched_at):
                msg = self.dead_agent_message(t, running=True)
                return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
            return self.running(t, cmd, f"The lifecycle event {cmd.event} on {t.instance_id}")
        if self.agent_dead(t, cmd.dispatched_at):
            msg = self.dead_agent_message(t, running=False)
            return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
        if _before(cmd.dispatched_at, self._dispatched_before):
            msg = (
                f"The agent on {t.instance_id} did not pick up the lifecycle event {cmd.event} "
                f"within {s.event_start_timeout_seconds:g} s of its dispatch; it was not run."
            )
            return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
        return None

    def running(self, t: TargetSnapshot, cmd: CommandSnapshot, what: str) -> _Outcome | None:
        """A command taken up and not reported: still running (the event is ``InProgress``),
        or running longer than ``event_timeout_seconds``: failed, ``what`` named."""
        started = cmd.acknowledged_at
        assert started is not None
        allowed = self.settings.event_timeout_seconds
        cutoff = self._running_since_before
        extra = self.extra_time.get(cmd.event)
        if extra:
            allowed += extra
            cutoff = _cutoff(self.now, allowed)
        if _before(started, cutoff):
            msg = f"{what} did not complete within {allowed:g} s (started {started.isoformat()})."
            return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
        self.set_event(t, cmd.event, _ES.IN_PROGRESS, start=started)
        return None

    def server_step_outcome(self, t: TargetSnapshot, cmd: CommandSnapshot) -> _Outcome | None:
        """A server step without a result yet: running (``InProgress``) or waiting for the
        effector runner; only the event timeouts apply (the host's agent plays no part)."""
        s = self.settings
        if cmd.acknowledged_at is not None:
            return self.running(t, cmd, f"The server step {cmd.event} for {t.instance_id}")
        if _before(cmd.dispatched_at, self._dispatched_before):
            msg = (
                f"No effector runner of this server took up the step {cmd.event} for "
                f"{t.instance_id} within {s.event_start_timeout_seconds:g} s of its dispatch; "
                "it was not run."
            )
            return _Outcome(_ES.FAILED, None, self.now, _unknown(msg), False)
        return None

    def fail_target(self, t: TargetSnapshot) -> None:
        for ev in t.events:
            if self.events[(t.instance_id, ev.name)].status is _ES.PENDING:
                self.set_event(t, ev.name, _ES.SKIPPED)
        self.set_target(t, _IS.FAILED)
        self.close_command(t)

    def advance(
        self,
        t: TargetSnapshot,
        *,
        pause_before: LifecycleEvent | None = None,
        hold_before: LifecycleEvent | None = None,
    ) -> None:
        """Move one in-flight target forward as far as the reports allow.

        ``pause_before``: when that event is next (and not dispatched yet), the target stops
        there as ``Ready`` (a blue/green green instance installed, waiting to take traffic).
        ``hold_before``: when that event is next, nothing is dispatched yet and the target stays
        ``InProgress`` (a traffic shift waiting for the other hosts)."""
        cmd = t.command
        if (
            cmd is not None
            and self.events[(t.instance_id, cmd.event)].status not in _TERMINAL_EVENT
        ):
            outcome = self.command_outcome(t, cmd)
            if outcome is None:
                return
            self.set_event(
                t,
                cmd.event,
                outcome.status,
                start=outcome.start,
                end=outcome.end,
                diagnostics=outcome.diagnostics,
            )
            ignorable = (
                outcome.from_agent
                and self.snap.ignore_application_stop_failures
                and cmd.event in IGNORABLE_EVENTS
            )
            if outcome.status is _ES.FAILED and not ignorable:
                self.fail_target(t)
                return
        while (ev := self.next_event(t)) is not None:
            if cmd is not None and ev.name == cmd.event:
                return  # its command is outstanding (a re-dispatch would double-run it)
            if ev.name is pause_before:
                self.set_target(t, _IS.READY)
                self.close_command(t)
                return
            if ev.name is hold_before:
                return
            if ev.name in self.server_events:
                # The server's own step (the load balancer): the effector runner carries it out.
                self.dispatch[t.instance_id] = HostCommand(t.instance_id, ev.name, "server")
                return
            if t.deregistered_at is not None:
                # No agent will ever take it: fail now rather than after the dead-agent window.
                msg = self.deregistered_message(t, running=False)
                self.set_event(t, ev.name, _ES.FAILED, end=self.now, diagnostics=_unknown(msg))
                self.fail_target(t)
                return
            self.dispatch[t.instance_id] = HostCommand(t.instance_id, ev.name)
            return
        self.set_target(t, _IS.SUCCEEDED)
        self.close_command(t)

    def abandon(self, t: TargetSnapshot, reason: str) -> None:
        """End an in-flight target because the deployment ended early (stop or timeout)."""
        cmd = t.command
        if cmd is not None:
            key = (t.instance_id, cmd.event)
            if self.events[key].status not in _TERMINAL_EVENT:
                if cmd.result is not None or (cmd.acknowledged_at and cmd.noop):
                    outcome = self.command_outcome(t, cmd)
                    assert outcome is not None  # a reported result always has an outcome
                    self.set_event(
                        t,
                        cmd.event,
                        outcome.status,
                        start=outcome.start,
                        end=outcome.end,
                        diagnostics=outcome.diagnostics,
                    )
                elif cmd.acknowledged_at is not None:
                    self.set_event(
                        t,
                        cmd.event,
                        _ES.FAILED,
                        start=cmd.acknowledged_at,
                        end=self.now,
                        diagnostics=_unknown(reason),
                    )
                else:
                    self.set_event(t, cmd.event, _ES.SKIPPED)
        if self.next_event(t) is None and all(
            self.events[(t.instance_id, ev.name)].status is _ES.SUCCEEDED for ev in t.events
        ):
            self.set_target(t, _IS.SUCCEEDED)
            self.close_command(t)
            return
        self.fail_target(t)

    # -- the deployment ----------------------------------------------------------------------

    def end(
        self,
        status: DeploymentStatus,
        error: ErrorInformation,
        trigger: RollbackTrigger | None,
    ) -> None:
        for t in self.snap.targets:
            current = self.status[t.instance_id]
            if current is _IS.PENDING:
                for ev in t.events:
                    if self.events[(t.instance_id, ev.name)].status is _ES.PENDING:
                        self.set_event(t, ev.name, _ES.SKIPPED)
                self.set_target(t, _IS.SKIPPED)
            elif current is _IS.IN_PROGRESS:
                self.abandon(t, error.message)
        start = None if self.snap.started_at else self.now
        self.deployment = DeploymentTransition(status, start, self.now, error)
        if trigger is not None:
            stop = self.snap.stop
            self.rollback = decide_rollback(
                deployment_id=self.snap.deployment_id,
                trigger=trigger,
                config=self.snap.auto_rollback,
                last_successful=self.snap.last_successful,
                creator=self.snap.creator,
                stop_override=stop.auto_rollback_enabled if stop else None,
                traffic_only=self.snap.style.blue_green and self.snap.compute_platform == "Server",
            )

    def end_if_stopped(self) -> bool:
        """End the deployment as Stopped if a stop was requested (every platform alike)."""
        stop = self.snap.stop
        if stop is None:
            return False
        if stop.by_alarm:
            self.end(_DS.STOPPED, alarm_error(stop), RollbackTrigger.STOP_ON_ALARM)
        else:
            error = ErrorInformation("MANUAL_STOP", MANUAL_STOP_MESSAGE)
            self.end(_DS.STOPPED, error, RollbackTrigger.STOP_ON_REQUEST)
        return True

    def hold_for_gate(self, since: datetime | None) -> bool:
        """Whether the next batch or traffic step must wait for the analysis gate (every
        platform asks this before each one; ``since``: when the previous one ended, None before
        the first, which no gate holds).

        The gate passes once readings of its metric show it within bounds for ``hold_seconds``
        after ``since`` (the first such reading and the latest at least that far apart). A
        gate still closed ``timeout_seconds`` after ``since`` ends the deployment (Failed, or
        Stopped with ``on_timeout: stop``; either may roll back as configured); the answer is
        then True and ``self.deployment`` says how it ended."""
        gate = self.snap.gate
        if gate is None or since is None:
            return False
        if gate.ok_since is not None and gate.checked_at is not None:
            # Held as long as readings prove: a reading older than the batch's end (the
            # watcher may not have looked since) says nothing about the new revision.
            held = (gate.checked_at - max(gate.ok_since, since)).total_seconds()
            if held >= gate.hold_seconds:
                return False
        if (self.now - since).total_seconds() > gate.timeout_seconds:
            error = ErrorInformation(
                "CUSTOMER_APPLICATION_UNHEALTHY",
                f"The analysis gate {gate.name} did not pass within {gate.timeout_seconds:g} s "
                f"of the previous step's end: {gate.detail}.",
            )
            if gate.on_timeout == "stop":
                self.end(_DS.STOPPED, error, RollbackTrigger.STOP_ON_ALARM)
            else:
                self.end(_DS.FAILED, error, RollbackTrigger.FAILURE)
        return True

    def last_target_end(self) -> datetime | None:
        """When the latest finished target ended (None: none has): where an in-place
        deployment's wait for its next batch begins."""
        latest: datetime | None = None
        for t in self.snap.targets:
            if self.status[t.instance_id] not in (_IS.SUCCEEDED, _IS.FAILED):
                continue
            for ev in t.events:
                end = self.events[(t.instance_id, ev.name)].end_time
                if end is not None and (latest is None or end > latest):
                    latest = end
        return latest

    def end_if_timed_out(self) -> bool:
        """Fail the deployment if it ran longer than ``deployment_timeout_seconds``."""
        started = self.snap.started_at or self.now
        limit = self.settings.deployment_timeout_seconds
        if (self.now - started).total_seconds() <= limit:
            return False
        error = ErrorInformation(
            "TIMEOUT", f"The deployment timed out: it ran longer than {limit:g} s."
        )
        self.end(_DS.FAILED, error, RollbackTrigger.FAILURE)
        return True

    def agent_failures(self) -> list[str]:
        out = []
        for t in self.snap.targets:
            if self.status[t.instance_id] is not _IS.FAILED:
                continue
            for ev in t.events:
                diag = self.events[(t.instance_id, ev.name)].diagnostics
                if diag is not None and diag.message.startswith(AGENT_NOT_POLLING_PREFIX):
                    out.append(t.instance_id)
                    break
        return out

    def decisions(self) -> Decisions:
        values = list(self.status.values())
        overview = DeploymentOverview(
            pending=values.count(_IS.PENDING),
            in_progress=values.count(_IS.IN_PROGRESS),
            succeeded=values.count(_IS.SUCCEEDED),
            failed=values.count(_IS.FAILED),
            skipped=values.count(_IS.SKIPPED),
            ready=values.count(_IS.READY),
        )
        terminal = self.snap.status in TERMINAL_DEPLOYMENT_STATUSES
        unreachable = () if terminal or not self.agents else self.unreachable()
        return Decisions(
            overview=overview,
            deployment=self.deployment,
            target_updates=tuple(self.target_updates.values()),
            event_updates=tuple(self.event_updates.values()),
            dispatch=tuple(self.dispatch.values()),
            close_commands=tuple(self.close),
            rollback=self.rollback,
            unreachable=unreachable,
            termination_wait_started=self.termination_wait_started,
            status_messages=tuple(self.status_messages),
        )

    def unreachable(self) -> tuple[str, ...]:
        """Instances this deployment still needed whose agents cannot be reached now.

        A waiting or in-flight target whose agent has not polled for ``agent_dead_after`` (or
        whose instance was deregistered), and one that this very pass failed for that reason
        (the worker records the verdict on the instance, where users look for it).
        """
        out = []
        open_ = (_IS.PENDING, _IS.IN_PROGRESS)
        for t in self.snap.targets:
            if t.status not in open_:
                continue
            if self.status[t.instance_id] not in open_:
                if self.failed_for_its_agent(t):
                    out.append(t.instance_id)
                continue
            if t.instance_id in self.dispatch:
                since = self.now  # dispatched in this pass: its agent has had no chance yet
            elif t.command is not None:
                since = t.command.dispatched_at
            else:
                since = self.snap.started_at or self.now
            if t.deregistered_at is not None or self.agent_dead(t, since):
                out.append(t.instance_id)
        return tuple(out)

    def failed_for_its_agent(self, t: TargetSnapshot) -> bool:
        """Whether this pass failed one of ``t``'s events because its agent is gone."""
        # Looked up by key, not by scanning every update: a pass that ends thousands of targets
        # would otherwise be quadratic.
        for ev in t.events:
            u = self.event_updates.get((t.instance_id, ev.name))
            if u is None or u.status is not _ES.FAILED:
                continue
            if t.deregistered_at is not None:
                return True
            if u.diagnostics is not None and u.diagnostics.message.startswith(
                AGENT_NOT_POLLING_PREFIX
            ):
                return True
        return False


#: AWS's text for a deployment stopped by an alarm (as observed), the alarms' names follow.
ALARM_ACTIVE_MESSAGE = (
    "One or more alarms have been activated according to the Amazon CloudWatch metrics you "
    "selected, and the affected deployments have been stopped. Activated alarms: "
)


def alarm_error(stop: StopRequest) -> ErrorInformation:
    """``errorInformation`` of a stop by an alarm: AWS's message with the alarms, each in angle
    brackets; for alarms whose state could not be read, a message that says so."""
    names = " ".join(f"<{n}>" for n in stop.alarms)
    if stop.unreadable:
        return ErrorInformation(
            "ALARM_ACTIVE",
            "The deployment was stopped because the state of one or more alarms could not be "
            f"read and ignorePollAlarmFailure is false. Alarms not read: {names}",
        )
    return ErrorInformation("ALARM_ACTIVE", ALARM_ACTIVE_MESSAGE + names)


def _cutoff(now: datetime, seconds: float) -> datetime | None:
    """``now`` less ``seconds``: a time that happened longer ago than that is past it."""
    try:
        return now - timedelta(seconds=seconds)
    except OverflowError:
        return None  # a timeout of centuries, or infinite: never reached


def _before(moment: datetime, cutoff: datetime | None) -> bool:
    """Whether ``moment`` is older than ``cutoff`` allows (as ``now - moment > seconds``)."""
    return cutoff is not None and moment < cutoff


def _unknown(message: str) -> Diagnostics:
    return Diagnostics(LifecycleErrorCode.UNKNOWN_ERROR, message)


def reconcile(
    snap: DeploymentSnapshot, now: datetime, *, settings: EngineSettings | None = None
) -> Decisions:
    """Decide the next steps of one deployment at ``now``; pure and idempotent.

    >>> from datetime import UTC
    >>> from opendeploy.engine.snapshot import ONE_AT_A_TIME, new_target
    >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
    >>> snap = DeploymentSnapshot("d-ABCDEFGHI", DeploymentStatus.CREATED, ONE_AT_A_TIME,
    ...     (new_target("i-1"), new_target("i-2")), created_at=t0)
    >>> [(c.instance_id, str(c.event)) for c in reconcile(snap, t0).dispatch]
    [('i-1', 'ApplicationStop')]
    """
    plan = Plan(snap, now, settings or EngineSettings())
    if snap.status in TERMINAL_DEPLOYMENT_STATUSES:
        return plan.decisions()
    # Imported here: the platforms build on this module's Plan (a cycle at import time).
    from opendeploy.engine.platforms import reconciler_for

    reconciler_for(snap)(plan)
    return plan.decisions()
