"""In-place deployments to EC2/on-premises instances: the lifecycle on each host, in batches.

The rules (the order of the events, the health rule of :mod:`opendeploy.engine.batches`, the
agents' reports, dead agents and timeouts, rollback) are those the shared
:class:`~opendeploy.engine.reconcile.Plan` applies; this module decides the deployment as a whole:

1. ``Created`` → ``InProgress``; a deployment with no targets fails with ``NO_INSTANCES``, one
   whose minimum of healthy hosts leaves no instance to deploy to fails with
   ``HEALTH_CONSTRAINTS_INVALID`` (AWS fails those "immediately").
2. A stop request ends it (``Stopped``); one running longer than the deployment timeout fails.
3. Each in-flight target advances as far as its reports allow.
4. New targets start while the budget allows and the analysis gate passes; once the deployment
   can no longer succeed, nothing new starts, pending targets are ``Skipped``, in-flight ones
   finish, and the deployment fails (``HEALTH_CONSTRAINTS``, or ``AGENT_ISSUE`` when an
   instance failed because its agent stopped polling) as soon as none is in flight.
5. With traffic control, a deployment that ends ``Failed`` or ``Stopped`` puts back in the load
   balancer every host it took out and did not put back (:func:`hosts_to_put_back`).

The traffic rule of 5, and why. AWS leaves an instance whose deployment failed between
BlockTraffic and AllowTraffic deregistered (only a rollback, which runs the whole lifecycle
again, registers it again), and a stop cuts a running drain short; users then find hosts out of
rotation, or half drained, that no deployment will bring back. OpenDeploy restores them: when an
in-place deployment with traffic control ends Failed or Stopped, each host whose BlockTraffic
ran (succeeded, failed or was cut short: a load balancer may have been left half way; or was
dispatched, since a runner may have just taken it up) and whose AllowTraffic did not succeed
gets an AllowTraffic server step, dispatched in the pass that ends the deployment. It is
AllowTraffic itself, so the load balancer's health check decides: a host
left broken by its failed install stays out, and the step says why. The lifecycle events keep
what the deployment did (AllowTraffic ``Skipped``); the restore's outcome is the server step's
(logged by the server, ``event=AllowTraffic``). Two cases keep hosts out: a rollback deployment
is created (it reinstalls the last good revision and its own AllowTraffic puts them back; putting
them back first would send users to half-installed hosts), and a deployment that succeeds
although some hosts failed (those failed their install; AWS keeps them out too).
"""

from __future__ import annotations

from collections.abc import Sequence

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.status import DeploymentStatus, InstanceStatus, LifecycleEventStatus
from opendeploy.engine import batches
from opendeploy.engine.reconcile import (
    HEALTH_CONSTRAINTS_MESSAGE,
    DeploymentTransition,
    ErrorInformation,
    HostCommand,
    Plan,
)
from opendeploy.engine.rollback import RollbackTrigger
from opendeploy.engine.snapshot import MinimumHealthyHosts, TargetSnapshot

_DS = DeploymentStatus
_IS = InstanceStatus
_ES = LifecycleEventStatus


def reconcile_in_place(plan: Plan) -> None:
    """Decide the next steps of an in-place Server deployment (not ended yet) into ``plan``."""
    _reconcile(plan)
    for t in hosts_to_put_back(plan):
        plan.dispatch[t.instance_id] = HostCommand(
            t.instance_id, LifecycleEvent.ALLOW_TRAFFIC, "server"
        )


#: The ends of a deployment that put the hosts it took out back in the load balancer.
_RESTORING_ENDS = (_DS.FAILED, _DS.STOPPED)
#: A BlockTraffic in these states changed the load balancer (or may have, half way).
_TOOK_OUT = (_ES.SUCCEEDED, _ES.FAILED, _ES.IN_PROGRESS)


def hosts_to_put_back(plan: Plan) -> list[TargetSnapshot]:
    """The hosts whose traffic this pass must restore (the module's rule 5): none unless the
    deployment ends Failed or Stopped without a rollback; then each host with traffic control
    whose BlockTraffic ran (or was dispatched) and whose AllowTraffic did not succeed."""
    ending = plan.deployment
    if ending is None or ending.status not in _RESTORING_ENDS:
        return []
    if plan.rollback is not None and plan.rollback.plan is not None:
        return []  # the rollback's own AllowTraffic puts them back, once reinstalled
    out = []
    for t in plan.snap.targets:
        if not any(ev.name is LifecycleEvent.BLOCK_TRAFFIC for ev in t.events):
            continue
        block = plan.events[(t.instance_id, LifecycleEvent.BLOCK_TRAFFIC)].status
        allow = plan.events[(t.instance_id, LifecycleEvent.ALLOW_TRAFFIC)].status
        # A BlockTraffic dispatched but not yet seen taken up may have been taken up since (the
        # runner and this pass race): put such a host back too; for one never drained it is a
        # no-op.
        dispatched = t.command is not None and t.command.event is LifecycleEvent.BLOCK_TRAFFIC
        if (block in _TOOK_OUT or dispatched) and allow is not _ES.SUCCEEDED:
            out.append(t)
    return out


def _reconcile(plan: Plan) -> None:
    snap, now = plan.snap, plan.now
    mhh = snap.minimum_healthy_hosts
    total = len(snap.targets)

    if snap.status in (_DS.CREATED, _DS.QUEUED):
        if total == 0:
            plan.end(_DS.FAILED, _no_instances(), None)
            return
        if not batches.constraints_hold_at_start(total, mhh):
            plan.end(_DS.FAILED, _constraints_invalid(total, mhh), None)
            return
        plan.deployment = DeploymentTransition(_DS.IN_PROGRESS, start_time=now)

    if plan.end_if_stopped() or plan.end_if_timed_out():
        return

    for t in snap.targets:
        if plan.status[t.instance_id] is _IS.IN_PROGRESS:
            plan.advance(t)

    tally = plan.tally()
    if batches.can_still_succeed(tally, mhh):
        slots = batches.free_slots(tally, mhh)
        if slots and tally.pending and plan.hold_for_gate(plan.last_target_end()):
            return  # the analysis gate holds the next batch (or ended the deployment)
        for t in snap.targets:
            if slots == 0:
                break
            if plan.status[t.instance_id] is _IS.PENDING:
                plan.set_target(t, _IS.IN_PROGRESS)
                plan.advance(t)
                slots -= 1
        tally = plan.tally()
        if tally.in_flight == 0 and tally.pending == 0:
            if batches.can_still_succeed(tally, mhh):
                plan.deployment = DeploymentTransition(
                    _DS.SUCCEEDED, plan.deployment.start_time if plan.deployment else None, now
                )
            else:  # pragma: no cover - can_still_succeed held a moment ago with nothing pending
                plan.end(_DS.FAILED, _health_error(plan), RollbackTrigger.FAILURE)
        return

    # The minimum can no longer hold: nothing new starts, pending targets are skipped, and the
    # deployment fails once the in-flight targets have finished.
    for t in snap.targets:
        if plan.status[t.instance_id] is _IS.PENDING:
            for ev in t.events:
                plan.set_event(t, ev.name, _ES.SKIPPED)
            plan.set_target(t, _IS.SKIPPED)
    if plan.tally().in_flight == 0:
        plan.end(_DS.FAILED, _health_error(plan), RollbackTrigger.FAILURE)


def _health_error(plan: Plan) -> ErrorInformation:
    dead = plan.agent_failures()
    if dead:
        return ErrorInformation(
            "AGENT_ISSUE",
            "The overall deployment failed because the OpenDeploy agent stopped polling on "
            f"{_some_names(dead)}, and too few healthy instances remain.",
        )
    return ErrorInformation("HEALTH_CONSTRAINTS", HEALTH_CONSTRAINTS_MESSAGE)


#: How many instance names a deployment's error message spells out.
NAMES_IN_MESSAGE = 10


def _some_names(names: Sequence[str]) -> str:
    """``a, b, c`` or, for a large fleet, the first few ``and N more`` (a message, not a list)."""
    if len(names) <= NAMES_IN_MESSAGE:
        return ", ".join(names)
    return f"{', '.join(names[:NAMES_IN_MESSAGE])} and {len(names) - NAMES_IN_MESSAGE:,} more"


#: AWS's text (clients and CI tools show it as is).
NO_INSTANCES_MESSAGE = (
    "The deployment failed because no instances were found for your deployment group. Check "
    "your deployment group settings to make sure the tags for your EC2 instances or Auto Scaling "
    "groups correctly identify the instances you want to deploy to, and then try again."
)


def _no_instances() -> ErrorInformation:
    return ErrorInformation("NO_INSTANCES", NO_INSTANCES_MESSAGE)


def _constraints_invalid(total: int, mhh: MinimumHealthyHosts) -> ErrorInformation:
    need = batches.required_healthy(total, mhh)
    return ErrorInformation(
        "HEALTH_CONSTRAINTS_INVALID",
        f"minimumHealthyHosts {mhh.type} {mhh.value} requires {need} healthy instances of "
        f"{total}, so no instance can be taken out of service; the minimum must be less than the "
        "number of instances.",
    )
