"""Deployments this server cannot run yet: Lambda and ECS (their issues fill them in).

Each ends at once, and never runs in place instead: it fails with ``errorInformation`` saying
what is missing, or is ``Stopped`` when a stop was requested first, so that it never blocks its
deployment group. CreateDeployment refuses them already; this is for those stored anyway (an
older server's, or written by hand).
"""

from __future__ import annotations

from opendeploy.domain.status import DeploymentStatus
from opendeploy.engine.reconcile import MANUAL_STOP_MESSAGE, ErrorInformation, Plan


def reconcile_unsupported(plan: Plan, error: ErrorInformation) -> None:
    if plan.snap.stop is not None:
        stopped = ErrorInformation("MANUAL_STOP", MANUAL_STOP_MESSAGE)
        plan.end(DeploymentStatus.STOPPED, stopped, None)
    else:
        plan.end(DeploymentStatus.FAILED, error, None)


def platform_unsupported(platform: str) -> ErrorInformation:
    # AWS has no error code for "not supported"; INTERNAL_ERROR is the one clients treat as the
    # service's side, and the message says exactly what is missing.
    return ErrorInformation(
        "INTERNAL_ERROR",
        f"The {platform} compute platform is not supported by this OpenDeploy server yet: it runs "
        "EC2/on-premises (Server) deployments only. The deployment was not run.",
    )
