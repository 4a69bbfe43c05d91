"""Blue/green deployments to EC2/on-premises instances: install on green, reroute, retire blue.

The phase timeline of ``shared/reference/platforms.md`` §1.4, decided from the targets' statuses
alone (so a restarted server, or another replica, carries on where the last pass stopped):

A. ``Created`` → ``InProgress``. No green (replacement) instance: ``NO_INSTANCES``; a minimum of
   healthy hosts that leaves no green instance to install on: ``HEALTH_CONSTRAINTS_INVALID``.
B. **Install on green** (ApplicationStop … ValidateService), in batches by the deployment
   configuration's minimum of healthy hosts over the green fleet (the in-place rule of
   :mod:`opendeploy.engine.batches`; "health constraints apply to the green fleet"). A green
   instance whose install succeeded is ``Ready``. Too many failures: the deployment fails
   (``HEALTH_CONSTRAINTS``, rollback trigger ``DEPLOYMENT_FAILURE``).
C. **Ready.** ``deploymentReadyOption.actionOnTimeout`` ``CONTINUE_DEPLOYMENT``: go on at once.
   ``STOP_DEPLOYMENT``: the deployment is ``Ready`` until ContinueDeployment(``READY_WAIT``);
   after ``waitTimeInMinutes`` without it, ``Stopped``. The Ready green instances are then
   ``Skipped`` (installed, never given traffic), and no rollback is made: traffic never moved.
D. **Reroute** the Ready green instances (BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic),
   with the rerouting rule of §1.6: batches of the configuration's size (at least one), success
   when ``success_threshold`` of them were rerouted; AllAtOnce succeeds if one was, OneAtATime
   fails at the first failure except the last instance's, HalfAtATime needs half.
E. **Block blue**: every blue instance at once (BeforeBlockTraffic, BlockTraffic,
   AfterBlockTraffic); one failure fails the deployment (user guide, "Instance health": a blue
   deregistration failure fails the whole deployment).
F. **Blue's fate.** ``KEEP_ALIVE``: ``Succeeded``; blue stays registered, out of the load
   balancer, and a status message says so. ``TERMINATE``: ``instanceTerminationWaitTimeStarted``
   is set and the deployment stays ``InProgress`` for ``terminationWaitTimeInMinutes`` (or until
   ContinueDeployment(``TERMINATION_WAIT``) / SkipWaitTimeForInstanceTermination), the window in
   which a stop (with rollback) still returns traffic to the untouched blue fleet. Then it
   succeeds. OpenDeploy does not destroy hosts (an on-premises host, or an EC2 instance it has no
   cloud credentials for): "terminated" blue instances are left out of every load balancer pool,
   sent no command, and listed in ``deploymentStatusMessages`` as retired, for the operator (or a
   trigger) to power off. That is the honest end state: nothing serves from them, and nothing
   claims they are gone.

A **rollback** of a blue/green deployment (``creator`` ``codeDeployRollback``) reroutes traffic
back without installing anything (§1.7): blue instances take traffic again (the allow events,
with the rerouting rule), then green instances give it up (the block events). It has no Ready
wait and no termination.

A stop or a timeout ends the deployment as in place (``Plan.end``); Ready green instances are
``Skipped``. The rollback (when configured) puts traffic back on blue; without one, each blue
host whose BlockTraffic ran is put back in the load balancer by an AllowTraffic server step (no
host is left out by a deployment that did not finish), and green hosts already in stay in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.status import (
    DeploymentStatus,
    InstanceStatus,
    LifecycleEventStatus,
)
from opendeploy.engine import batches
from opendeploy.engine.platforms.server_in_place import NAMES_IN_MESSAGE
from opendeploy.engine.reconcile import (
    HEALTH_CONSTRAINTS_MESSAGE,
    DeploymentTransition,
    ErrorInformation,
    HostCommand,
    Plan,
)
from opendeploy.engine.rollback import RollbackTrigger
from opendeploy.engine.snapshot import MinimumHealthyHosts, TargetSnapshot
from opendeploy.engine.traffic_shift import shift_leader

_DS = DeploymentStatus
_IS = InstanceStatus
_ES = LifecycleEventStatus
_E = LifecycleEvent

_DONE = frozenset({_ES.SUCCEEDED, _ES.FAILED, _ES.SKIPPED})

#: The last install event of a green instance: succeeded, the instance is installed.
_INSTALLED_AFTER = _E.VALIDATE_SERVICE

NO_GREEN_MESSAGE = (
    "The deployment failed because no replacement (green) instances were found: the "
    "targetInstances of the deployment select no registered instance. Check the tags of "
    "targetInstances, and that the replacement instances are registered, then try again."
)


def reconcile_blue_green(plan: Plan) -> None:
    """Decide the next steps of a blue/green Server deployment (not ended yet) into ``plan``."""
    _reconcile(plan)
    for t in _hosts_to_put_back(plan):
        plan.dispatch[t.instance_id] = HostCommand(t.instance_id, _E.ALLOW_TRAFFIC, "server")


#: A BlockTraffic in these states changed the load balancer (or may have, half way).
_TOOK_OUT = (_ES.SUCCEEDED, _ES.FAILED, _ES.IN_PROGRESS)


def _hosts_to_put_back(plan: Plan) -> list[TargetSnapshot]:
    """The outgoing hosts a deployment that ends Failed or Stopped without a rollback took out:
    each gets an AllowTraffic server step (as in place, ``server_in_place.hosts_to_put_back``),
    so that no host is left out of the load balancer by a deployment that did not finish. With
    a rollback, the rollback deployment puts them back itself."""
    ending = plan.deployment
    if ending is None or ending.status not in (_DS.FAILED, _DS.STOPPED):
        return []
    if plan.rollback is not None and plan.rollback.plan is not None:
        return []
    out = []
    for t in plan.snap.targets:
        if not any(ev.name is _E.BLOCK_TRAFFIC for ev in t.events):
            continue
        block = plan.events[(t.instance_id, _E.BLOCK_TRAFFIC)].status
        dispatched = t.command is not None and t.command.event is _E.BLOCK_TRAFFIC
        if block in _TOOK_OUT or dispatched:
            out.append(t)
    return out


def _reconcile(plan: Plan) -> None:
    snap = plan.snap
    rollback = snap.blue_green_rollback
    incoming_label = "Blue" if rollback else "Green"
    incoming = [t for t in snap.targets if t.label == incoming_label]
    outgoing = [t for t in snap.targets if t.label is not None and t.label != incoming_label]
    fleet = _Fleet(plan, incoming, rollback)

    if snap.status in (_DS.CREATED, _DS.QUEUED):
        if not incoming:
            plan.end(_DS.FAILED, ErrorInformation("NO_INSTANCES", NO_GREEN_MESSAGE), None)
            return
        mhh = snap.minimum_healthy_hosts
        if not rollback and not batches.constraints_hold_at_start(len(incoming), mhh):
            plan.end(_DS.FAILED, _constraints_invalid(len(incoming), mhh), None)
            return
        plan.deployment = DeploymentTransition(_DS.IN_PROGRESS, start_time=plan.now)

    if snap.stop is not None or _timed_out(plan):
        fleet.skip_ready()
        if not plan.end_if_stopped():
            limit = plan.settings.deployment_timeout_seconds + _waits(plan).total_seconds()
            plan.end(
                _DS.FAILED,
                ErrorInformation(
                    "TIMEOUT",
                    f"The deployment timed out: it ran longer than {limit:g} s (the deployment "
                    "timeout plus its ready, termination and traffic-shift waits).",
                ),
                RollbackTrigger.FAILURE,
            )
        return

    if not rollback and not fleet.install():
        return
    if not rollback and not _past_ready(plan, fleet):
        return
    if not fleet.reroute():
        return
    if not _block(plan, outgoing):
        return
    _retire(plan, outgoing, rollback)


def _timed_out(plan: Plan) -> bool:
    """Longer than the deployment timeout, its waits not counted: AWS bounds an EC2 blue/green
    deployment by its waits plus the events' time (user guide, "Quotas": 48 + 48 + 1 h × 13)."""
    started = plan.snap.started_at or plan.now
    limit = timedelta(seconds=plan.settings.deployment_timeout_seconds) + _waits(plan)
    return plan.now - started > limit


def _waits(plan: Plan) -> timedelta:
    snap, minute = plan.snap, plan.settings.minute
    settings = snap.blue_green
    waits = minute * (settings.ready_wait_minutes + settings.termination_wait_minutes)
    if snap.shifts_traffic and snap.traffic_routing is not None:
        waits += minute * snap.traffic_routing.span_minutes
    return waits


class _Fleet:
    """The fleet that takes traffic: green (installed first), or blue in a rollback."""

    def __init__(self, plan: Plan, targets: list[TargetSnapshot], rollback: bool) -> None:
        self.plan = plan
        self.targets = targets
        self.rollback = rollback
        # Whether each target had finished installing before this pass (then it is rerouting).
        self._installed_before = {t.instance_id: self._installed(t) for t in targets}

    def _installed(self, t: TargetSnapshot) -> bool:
        if self.rollback:
            return True
        ev = self.plan.events[(t.instance_id, _INSTALLED_AFTER)]
        return ev.status is _ES.SUCCEEDED

    def _status(self, t: TargetSnapshot) -> InstanceStatus:
        return self.plan.status[t.instance_id]

    def waiting(self, t: TargetSnapshot) -> bool:
        """Installed and not rerouted yet (a rollback's blue instance: not started yet)."""
        status = self._status(t)
        return status is _IS.READY or (self.rollback and status is _IS.PENDING)

    # -- B. install ------------------------------------------------------------------------------

    def install(self) -> bool:
        """Advance the install on green; True once every green instance is installed or out."""
        plan, mhh = self.plan, self.plan.snap.minimum_healthy_hosts
        for t in self.targets:
            if self._status(t) is _IS.IN_PROGRESS and not self._installed_before[t.instance_id]:
                plan.advance(t, pause_before=_E.BEFORE_ALLOW_TRAFFIC)
        tally = self._install_tally()
        if batches.can_still_succeed(tally, mhh):
            slots = batches.free_slots(tally, mhh)
            for t in self.targets:
                if slots == 0:
                    break
                if self._status(t) is _IS.PENDING:
                    plan.set_target(t, _IS.IN_PROGRESS)
                    plan.advance(t, pause_before=_E.BEFORE_ALLOW_TRAFFIC)
                    slots -= 1
            tally = self._install_tally()
            return tally.in_flight == 0 and tally.pending == 0
        self.skip_pending()
        if self._install_tally().in_flight == 0:
            self.skip_ready()
            plan.end(_DS.FAILED, _health_error(plan, "install"), RollbackTrigger.FAILURE)
        return False

    def _install_tally(self) -> batches.Tally:
        statuses = [self._status(t) for t in self.targets]
        installed = sum(1 for t in self.targets if self._installed(t))
        failed = sum(
            1 for t in self.targets if self._status(t) is _IS.FAILED and not self._installed(t)
        )
        return batches.Tally(
            total=len(self.targets),
            succeeded=installed,
            failed=failed,
            in_flight=sum(
                1
                for t in self.targets
                if self._status(t) is _IS.IN_PROGRESS and not self._installed(t)
            ),
            pending=statuses.count(_IS.PENDING),
        )

    def ready_since(self) -> datetime:
        """When the last green instance finished installing (the Ready wait starts there)."""
        ends = [
            ev.end_time
            for t in self.targets
            if (ev := self.plan.events[(t.instance_id, _INSTALLED_AFTER)]).end_time is not None
        ]
        return max(ends, default=self.plan.now)

    def rerouting_started(self) -> bool:
        return any(
            self._installed(t) and self._status(t) in (_IS.IN_PROGRESS, _IS.SUCCEEDED, _IS.FAILED)
            for t in self.targets
        )

    # -- D. reroute -----------------------------------------------------------------------------

    def reroute(self) -> bool:
        """Give traffic to the installed instances; True once rerouting has succeeded."""
        plan = self.plan
        shifting = plan.snap.shifts_traffic
        rerouting = [
            t
            for t in self.targets
            if self._status(t) is _IS.IN_PROGRESS and self._installed_before[t.instance_id]
        ]
        if shifting:
            # The leader waits for the others and they for it: the others, then the leader,
            # then the others again, so that one pass decides what the reports allow.
            leader = shift_leader(t.instance_id for t in self.targets if self._installed(t))
            others = [t for t in rerouting if t.instance_id != leader]
            first = [t for t in rerouting if t.instance_id == leader]
            rerouting = [*others, *first, *others]
        for t in rerouting:
            if self._status(t) is _IS.IN_PROGRESS:
                plan.advance(t, hold_before=self._hold(t) if shifting else None)
        rule = _RerouteRule(self._reroute_counts(), plan.snap.minimum_healthy_hosts)
        if shifting:
            # The weights move every green host at once: all of them join the pool together.
            rule.budget = max(rule.budget, rule.tally.total)
        if shifting and self.shift_failed():
            leader = shift_leader(t.instance_id for t in self.targets if self._installed(t))
            self.skip_ready()
            if self._reroute_counts().in_flight == 0:
                plan.end(
                    _DS.FAILED,
                    ErrorInformation(
                        "HEALTH_CONSTRAINTS",
                        "The overall deployment failed because the traffic shift did not "
                        f"complete: {leader} (the replacement instance that runs the shift) "
                        "failed.",
                    ),
                    RollbackTrigger.FAILURE,
                )
            return False
        if rule.can_still_succeed():
            slots = rule.free_slots()
            for t in self.targets:
                if slots == 0:
                    break
                if self.waiting(t):
                    plan.set_target(t, _IS.IN_PROGRESS)
                    plan.advance(t, hold_before=self._hold(t) if shifting else None)
                    slots -= 1
            counts = self._reroute_counts()
            return counts.in_flight == 0 and counts.pending == 0
        self.skip_ready()
        if self._reroute_counts().in_flight == 0:
            plan.end(_DS.FAILED, _health_error(plan, "reroute"), RollbackTrigger.FAILURE)
        return False

    def _hold(self, t: TargetSnapshot) -> LifecycleEvent | None:
        """Where a green host waits in a traffic shift (:mod:`opendeploy.engine.traffic_shift`).

        The leader's AllowTraffic (which runs the schedule) waits until every other green host
        is in the pool at weight 0 (its AllowTraffic done, or failed); the others'
        AfterAllowTraffic waits until the leader's AllowTraffic is done."""
        installed = [g for g in self.targets if self._installed(g)]
        leader = shift_leader(g.instance_id for g in installed)
        events = self.plan.events
        if t.instance_id == leader:
            others_in = all(
                events[(g.instance_id, _E.ALLOW_TRAFFIC)].status in _DONE
                or self._status(g) is _IS.FAILED
                for g in installed
                if g.instance_id != leader
            )
            return None if others_in else _E.ALLOW_TRAFFIC
        leader_done = (
            events[(leader, _E.ALLOW_TRAFFIC)].status is _ES.SUCCEEDED
            or self.plan.status[leader] is _IS.FAILED
        )
        return None if leader_done else _E.AFTER_ALLOW_TRAFFIC

    def shift_failed(self) -> bool:
        """Whether the host that runs the traffic shift failed before the shift was done: the
        other green hosts sit in the pool at weight 0, so the deployment must not go on."""
        installed = [g.instance_id for g in self.targets if self._installed(g)]
        if not installed:
            return False
        leader = shift_leader(installed)
        shifted = self.plan.events[(leader, _E.ALLOW_TRAFFIC)].status is _ES.SUCCEEDED
        return self.plan.status[leader] is _IS.FAILED and not shifted

    def _reroute_counts(self) -> batches.Tally:
        mine = [t for t in self.targets if self._installed(t)]
        statuses = [self._status(t) for t in mine]
        return batches.Tally(
            total=len(mine),
            succeeded=statuses.count(_IS.SUCCEEDED),
            failed=statuses.count(_IS.FAILED),
            in_flight=statuses.count(_IS.IN_PROGRESS),
            pending=sum(1 for t in mine if self.waiting(t)),
        )

    # -- ending ---------------------------------------------------------------------------------

    def skip_pending(self) -> None:
        for t in self.targets:
            if self._status(t) is _IS.PENDING:
                _skip(self.plan, t)

    def skip_ready(self) -> None:
        """Installed green instances that will never take traffic now: ``Skipped`` (their
        install events keep their ``Succeeded``; the traffic events are skipped)."""
        for t in self.targets:
            if self._status(t) is _IS.READY:
                _skip(self.plan, t)


class _RerouteRule:
    """The rerouting rule of platforms.md §1.6 over the installed instances.

    A batch is the configuration's budget, at least one (putting a host *in* a load balancer
    takes nothing out of service, so a small fleet under HalfAtATime still reroutes); the
    deployment needs ``success_threshold`` rerouted instances; once the failures fill the budget
    no new batch starts (OneAtATime: the first failure ends it, unless it was the last)."""

    def __init__(self, tally: batches.Tally, mhh: MinimumHealthyHosts) -> None:
        self.tally = tally
        self.budget = max(1, batches.budget(tally.total, mhh))
        self.need = batches.success_threshold(tally.total, mhh)

    def can_still_succeed(self) -> bool:
        t = self.tally
        startable = t.pending if t.failed < self.budget else 0
        return t.succeeded + t.in_flight + startable >= self.need

    def free_slots(self) -> int:
        t = self.tally
        return max(0, min(self.budget - t.failed - t.in_flight, t.pending))


def _past_ready(plan: Plan, fleet: _Fleet) -> bool:
    """C. The Ready wait: True once rerouting may go on (in this pass or an earlier one)."""
    snap = plan.snap
    settings = snap.blue_green
    if not settings.waits_for_ready or fleet.rerouting_started():
        return True
    if snap.status is not _DS.READY:
        started = plan.deployment.start_time if plan.deployment else None
        plan.deployment = DeploymentTransition(_DS.READY, start_time=started)
        return False
    if snap.continue_requested == "READY_WAIT":
        plan.deployment = DeploymentTransition(_DS.IN_PROGRESS)
        return True
    wait = plan.settings.minute * settings.ready_wait_minutes
    if plan.now >= fleet.ready_since() + wait:
        fleet.skip_ready()
        minutes = settings.ready_wait_minutes
        plan.end(
            _DS.STOPPED,
            ErrorInformation(
                "TIMEOUT",
                "The deployment was stopped because traffic rerouting was not started "
                f"(ContinueDeployment with READY_WAIT) within the wait time of {minutes} "
                "minute" + ("" if minutes == 1 else "s") + " (deploymentReadyOption."
                "waitTimeInMinutes); the replacement instances were not registered with the "
                "load balancer.",
            ),
            None,
        )
    return False


def _block(plan: Plan, outgoing: Sequence[TargetSnapshot]) -> bool:
    """E. Take the outgoing fleet out of the load balancer, all at once; True once done."""
    for t in outgoing:
        status = plan.status[t.instance_id]
        if status is _IS.IN_PROGRESS:
            plan.advance(t)
        elif status is _IS.PENDING:
            plan.set_target(t, _IS.IN_PROGRESS)
            plan.advance(t)
    statuses = [plan.status[t.instance_id] for t in outgoing]
    if _IS.IN_PROGRESS in statuses or _IS.PENDING in statuses:
        return False
    failed = [t.instance_id for t in outgoing if plan.status[t.instance_id] is _IS.FAILED]
    if failed:
        plan.end(
            _DS.FAILED,
            ErrorInformation(
                "HEALTH_CONSTRAINTS",
                "The deployment failed because traffic could not be blocked on the original "
                f"instance{'s' if len(failed) > 1 else ''} {_names(failed)}: one blocking failure "
                "fails a blue/green deployment.",
            ),
            RollbackTrigger.FAILURE,
        )
        return False
    return True


def _retire(plan: Plan, outgoing: Sequence[TargetSnapshot], rollback: bool) -> None:
    """F. Blue's fate, then Succeeded."""
    snap = plan.snap
    settings = snap.blue_green
    names = _names([t.instance_id for t in outgoing])
    if rollback or not outgoing:
        _succeed(plan)
        return
    if not settings.terminates_blue:
        plan.status_messages.append(
            f"The original (blue) instances {names} were kept (KEEP_ALIVE): they are out of the "
            "load balancer and still registered."
        )
        _succeed(plan)
        return
    if not snap.termination_wait_started:
        plan.termination_wait_started = True
    blocked = [
        ev.end_time
        for t in outgoing
        if (ev := plan.events[(t.instance_id, _E.AFTER_BLOCK_TRAFFIC)]).end_time is not None
    ]
    wait = plan.settings.minute * settings.termination_wait_minutes
    due = max(blocked, default=plan.now) + wait
    if snap.continue_requested != "TERMINATION_WAIT" and plan.now < due:
        return
    plan.status_messages.append(
        f"The original (blue) instances {names} were retired (TERMINATE): OpenDeploy does not "
        "destroy hosts; they are out of every load balancer pool and are sent no more commands "
        "by this deployment. Power them off or deregister them."
    )
    _succeed(plan)


def _succeed(plan: Plan) -> None:
    start = plan.deployment.start_time if plan.deployment else None
    plan.deployment = DeploymentTransition(_DS.SUCCEEDED, start, plan.now)


def _skip(plan: Plan, t: TargetSnapshot) -> None:
    for ev in t.events:
        if plan.events[(t.instance_id, ev.name)].status is _ES.PENDING:
            plan.set_event(t, ev.name, _ES.SKIPPED)
    plan.set_target(t, _IS.SKIPPED)
    plan.close_command(t)


def _health_error(plan: Plan, phase: str) -> ErrorInformation:
    dead = plan.agent_failures()
    if dead and phase == "install":
        return ErrorInformation(
            "AGENT_ISSUE",
            "The overall deployment failed because the OpenDeploy agent stopped polling on "
            f"{_names(dead)}, and too few replacement instances remain.",
        )
    if phase == "reroute":
        return ErrorInformation(
            "HEALTH_CONSTRAINTS",
            "The overall deployment failed because traffic could not be rerouted to enough "
            "replacement instances (the deployment configuration's minimum of healthy hosts).",
        )
    return ErrorInformation("HEALTH_CONSTRAINTS", HEALTH_CONSTRAINTS_MESSAGE)


def _names(names: Sequence[str]) -> str:
    if len(names) <= NAMES_IN_MESSAGE:
        return ", ".join(names)
    return f"{', '.join(names[:NAMES_IN_MESSAGE])} and {len(names) - NAMES_IN_MESSAGE:,} more"


def _constraints_invalid(total: int, mhh: MinimumHealthyHosts) -> ErrorInformation:
    need = batches.required_healthy(total, mhh)
    return ErrorInformation(
        "HEALTH_CONSTRAINTS_INVALID",
        f"minimumHealthyHosts {mhh.type} {mhh.value} requires {need} healthy instances of the "
        f"{total} replacement (green) instances, so none can be installed at a time; the minimum "
        "must be less than the number of replacement instances.",
    )
