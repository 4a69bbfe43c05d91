"""Whether a failed or stopped deployment is rolled back, and to what (pure).

AWS's model (user guide, "Redeploy and roll back a deployment"): a rollback is a *new* deployment
of the last successfully deployed revision, created by ``codeDeployRollback``; the two are linked
both ways through ``rollbackInfo`` (``rollbackDeploymentId`` on the failed one,
``rollbackTriggeringDeploymentId`` on the new one), and ``rollbackMessage`` explains the outcome.

Triggers: ``DEPLOYMENT_FAILURE`` and ``DEPLOYMENT_STOP_ON_REQUEST`` (and ``…_ON_ALARM``) in the
``autoRollbackConfiguration``; StopDeployment's ``autoRollbackEnabled`` overrides the configuration
for a stop. Choices of ours, documented: a rollback deployment is never itself rolled back (it
would redeploy the revision that just failed), and with no earlier successful deployment there is
nothing to roll back to, which the failed deployment's ``rollbackMessage`` says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from opendeploy.engine.snapshot import AutoRollbackConfig, AutoRollbackEvent, LastSuccessful

ROLLBACK_CREATOR = "codeDeployRollback"


class RollbackTrigger(enum.StrEnum):
    """Why the deployment ended without success; values are the AutoRollbackEvent names."""

    FAILURE = AutoRollbackEvent.DEPLOYMENT_FAILURE.value
    STOP_ON_REQUEST = AutoRollbackEvent.DEPLOYMENT_STOP_ON_REQUEST.value
    STOP_ON_ALARM = AutoRollbackEvent.DEPLOYMENT_STOP_ON_ALARM.value


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """Create a new deployment of ``revision``; the worker fills in its id on both sides."""

    triggering_deployment_id: str
    revision: str
    last_successful_deployment_id: str
    creator: str
    #: ``rollbackInfo.rollbackMessage`` of the triggering (failed or stopped) deployment.
    triggering_message: str
    #: ``rollbackInfo.rollbackMessage`` of the new rollback deployment.
    rollback_message: str


@dataclass(frozen=True, slots=True)
class RollbackDecision:
    """The outcome: a plan, or none and the message saying why not."""

    plan: RollbackPlan | None
    message: str


def _wanted(
    trigger: RollbackTrigger, config: AutoRollbackConfig, stop_override: bool | None
) -> bool:
    if trigger is not RollbackTrigger.FAILURE and stop_override is not None:
        return stop_override
    return config.enabled and AutoRollbackEvent(trigger.value) in config.events


def decide_rollback(
    *,
    deployment_id: str,
    trigger: RollbackTrigger,
    config: AutoRollbackConfig,
    last_successful: LastSuccessful | None,
    creator: str = "user",
    stop_override: bool | None = None,
    traffic_only: bool = False,
) -> RollbackDecision | None:
    """Decide the rollback of ``deployment_id``; ``None`` when none is configured or requested.

    >>> decide_rollback(deployment_id="d-A", trigger=RollbackTrigger.FAILURE,
    ...     config=AutoRollbackConfig(True, frozenset({AutoRollbackEvent.DEPLOYMENT_FAILURE})),
    ...     last_successful=LastSuccessful("d-OLD", "rev-1")).plan.revision
    'rev-1'
    """
    if not _wanted(trigger, config, stop_override):
        return None
    why = "failed" if trigger is RollbackTrigger.FAILURE else "was stopped"
    if creator == ROLLBACK_CREATOR:
        return RollbackDecision(
            None, f"Not rolled back: {deployment_id} is itself a rollback deployment and {why}."
        )
    if traffic_only:
        # Blue/green: the rollback reroutes traffic back to the original instances, which still
        # run what they ran; it needs no earlier successful deployment (platforms.md §1.7).
        plan = RollbackPlan(
            triggering_deployment_id=deployment_id,
            revision=last_successful.revision if last_successful else "",
            last_successful_deployment_id=last_successful.deployment_id if last_successful else "",
            creator=ROLLBACK_CREATOR,
            triggering_message=(
                f"The deployment {why}; rolling back: traffic returns to the original (blue) "
                "instances."
            ),
            rollback_message=(
                f"Rollback of blue/green deployment {deployment_id}, which {why} "
                f"({trigger.value}): reroutes traffic back to the original (blue) instances; "
                "nothing is reinstalled."
            ),
        )
        return RollbackDecision(plan, plan.triggering_message)
    if last_successful is None:
        return RollbackDecision(
            None,
            f"Not rolled back: {deployment_id} {why}, and its deployment group has no earlier "
            "successful deployment to roll back to.",
        )
    plan = RollbackPlan(
        triggering_deployment_id=deployment_id,
        revision=last_successful.revision,
        last_successful_deployment_id=last_successful.deployment_id,
        creator=ROLLBACK_CREATOR,
        triggering_message=(
            f"The deployment {why}; rolling back to the revision of the last successful "
            f"deployment {last_successful.deployment_id}."
        ),
        rollback_message=(
            f"Rollback of deployment {deployment_id}, which {why} ({trigger.value}): redeploys "
            f"the revision of {last_successful.deployment_id}."
        ),
    )
    return RollbackDecision(plan, plan.triggering_message)
