"""Lambda deployments: an alias moved from one function version to the next, hooks around it.

A Lambda deployment has one target, the function (its id is the function's name), with three
lifecycle events, all carried out by the server as *server steps* (effectors, under a lease):

1. ``BeforeAllowTraffic``: the AppSpec checked against the function (the alias must point to
   ``CurrentVersion`` with no weight on another version; ``TargetVersion`` must exist), then the
   hook function, if the AppSpec names one, invoked and waited for: it reports through
   PutLifecycleEventHookExecutionStatus.
2. ``AllowTraffic``: the alias shifted to ``TargetVersion`` on the configuration's schedule
   (``engine.schedule``: AllAtOnce, TimeBasedCanary, TimeBasedLinear). Its running time is the
   schedule's span plus the event timeout.
3. ``AfterAllowTraffic``: the second hook, once 100 % is on the target version.

The shared :class:`~opendeploy.engine.reconcile.Plan` applies the rules of server steps
(outcomes, the event timeout, which is also how a hook that never answers fails: AWS's hour, or
``--event-timeout``), stops, the deployment timeout and rollback; this module decides the
deployment as a whole and names its error as AWS does (``INVALID_LAMBDA_CONFIGURATION`` for an
AppSpec that does not match the function, ``HOOK_EXECUTION_FAILURE`` for a hook that failed or
never answered). A failed or stopped deployment's alias is put back to ``CurrentVersion`` with no
weight left by the restorer (``engine.effectors.lambda_alias``), outside the engine.
"""

from __future__ import annotations

from opendeploy.appspec.lambda_spec import INVALID_LAMBDA_CONFIGURATION_MESSAGE
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.status import DeploymentStatus, InstanceStatus, LifecycleEventStatus
from opendeploy.engine.reconcile import DeploymentTransition, ErrorInformation, Plan
from opendeploy.engine.rollback import RollbackTrigger
from opendeploy.engine.schedule import finish_offset
from opendeploy.engine.snapshot import LAMBDA_EVENTS, TargetSnapshot

_DS = DeploymentStatus
_IS = InstanceStatus
_ES = LifecycleEventStatus
_E = LifecycleEvent

#: A Lambda deployment stored without its target (the AppSpec named no function).
NO_FUNCTION_MESSAGE = (
    f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} The AppSpec names no Lambda function to deploy."
)


def reconcile_lambda(plan: Plan) -> None:
    """Decide the next steps of a Lambda deployment (not ended yet) into ``plan``."""
    snap, now = plan.snap, plan.now
    plan.server_events = frozenset(LAMBDA_EVENTS)
    plan.agents = False  # the target is a function: no agent to lose
    if snap.traffic_routing is not None:
        span = finish_offset(snap.traffic_routing, minute=plan.settings.minute)
        plan.extra_time[_E.ALLOW_TRAFFIC] = span.total_seconds()

    if snap.status in (_DS.CREATED, _DS.QUEUED):
        if not snap.targets:
            error = ErrorInformation("INVALID_LAMBDA_CONFIGURATION", NO_FUNCTION_MESSAGE)
            plan.end(_DS.FAILED, error, None)
            return
        plan.deployment = DeploymentTransition(_DS.IN_PROGRESS, start_time=now)

    if plan.end_if_stopped() or plan.end_if_timed_out():
        return

    target = snap.targets[0]
    if plan.status[target.instance_id] is _IS.PENDING:
        plan.set_target(target, _IS.IN_PROGRESS)
    if plan.status[target.instance_id] is _IS.IN_PROGRESS:
        plan.advance(target)
    status = plan.status[target.instance_id]
    if status is _IS.SUCCEEDED:
        start = plan.deployment.start_time if plan.deployment else None
        plan.deployment = DeploymentTransition(_DS.SUCCEEDED, start, now)
    elif status is _IS.FAILED:
        plan.end(_DS.FAILED, failure_of(plan, target), RollbackTrigger.FAILURE)


def failure_of(plan: Plan, target: TargetSnapshot) -> ErrorInformation:
    """The deployment's ``errorInformation`` from the event that failed, in AWS's codes."""
    for ev in target.events:
        current = plan.events[(target.instance_id, ev.name)]
        if current.status is not _ES.FAILED:
            continue
        message = current.diagnostics.message if current.diagnostics else ""
        if message.startswith(INVALID_LAMBDA_CONFIGURATION_MESSAGE):
            return ErrorInformation("INVALID_LAMBDA_CONFIGURATION", message)
        if ev.name is _E.ALLOW_TRAFFIC:
            return ErrorInformation(
                "INVALID_LAMBDA_FUNCTION",
                f"The deployment failed while shifting traffic: {message}",
            )
        return ErrorInformation(
            "HOOK_EXECUTION_FAILURE",
            f"The deployment failed because the {ev.name} hook failed: {message}",
        )
    return ErrorInformation("INTERNAL_ERROR", "The Lambda target failed with no failed event.")
