"""One reconciler per platform, sharing batches, health rules and rollback (``engine.reconcile``).

:func:`reconciler_for` picks the reconciler of a deployment: Server in-place (the lifecycle on
each host, in batches), Server blue/green (install on green, reroute, retire blue), Lambda (an
alias shifted between versions: ``lambda_traffic``), and, until its issue lands, a reconciler
that ends what this server cannot run yet (ECS) with a message saying so.

What every reconciler honours through the shared :class:`~opendeploy.engine.reconcile.Plan`:
``plan.end_if_stopped()`` first, on every pass (a user's StopDeployment and a stop by an alarm,
which the alarm watcher records as a stop request: ``ALARM_ACTIVE`` and
``DEPLOYMENT_STOP_ON_ALARM`` come with it), and ``plan.hold_for_gate(since)`` before each batch
or traffic-shift step (``since``: when the previous one ended; the analysis gate of
:mod:`opendeploy.engine.alarms` holds the step, or ends the deployment when it times out).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from opendeploy.engine.platforms.lambda_traffic import reconcile_lambda
from opendeploy.engine.platforms.server_blue_green import reconcile_blue_green
from opendeploy.engine.platforms.server_in_place import reconcile_in_place
from opendeploy.engine.platforms.unsupported import platform_unsupported, reconcile_unsupported
from opendeploy.engine.reconcile import Plan
from opendeploy.engine.snapshot import DeploymentSnapshot

Reconciler = Callable[[Plan], None]

SERVER_PLATFORM = "Server"
LAMBDA_PLATFORM = "Lambda"


def reconciler_for(snap: DeploymentSnapshot) -> Reconciler:
    """The reconciler of ``snap``'s platform and deployment type."""
    if snap.compute_platform == LAMBDA_PLATFORM:
        return reconcile_lambda
    if snap.compute_platform != SERVER_PLATFORM:
        return functools.partial(
            reconcile_unsupported, error=platform_unsupported(snap.compute_platform)
        )
    if snap.style.blue_green:
        return reconcile_blue_green
    return reconcile_in_place
