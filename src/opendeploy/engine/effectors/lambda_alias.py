"""AllowTraffic on Lambda: the alias shifted on the schedule, and put back when a deployment fails.

:class:`LambdaAliasEffector` runs AllowTraffic: from ``t0`` (when a runner first took the step
up, kept across reruns), it sets the weight :func:`~opendeploy.engine.schedule.weight_at` says is
due, then sleeps until :func:`~opendeploy.engine.schedule.next_shift_after`, until 100 % is due:
then the alias points to TargetVersion with no routing configuration. A partial weight is
``FunctionVersion = CurrentVersion`` with ``RoutingConfig.AdditionalVersionWeights = {Target:
w}``, ``w`` a fraction, as CodeDeploy sets it. Each change is idempotent: the alias is read
first (nothing is written when it already carries the weight) and read back after, and a
resumed run (a restart, another replica after the lease ran out) catches up in one step.

:class:`AliasRestorer` puts the alias back to CurrentVersion with no weight left once a
deployment that moved traffic has failed or been stopped. It runs in its own loop (so a
deployment ended while the server was down, or by a stop that cancelled the shift, is put back
after a restart too), and the shift itself calls it when it learns it was cancelled (its last
write may have come after the restorer's). It touches the alias only while it is in a state
the deployment left (on CurrentVersion or TargetVersion, weight only on TargetVersion): a newer
deployment's shift is not undone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.appspec.lambda_spec import INVALID_LAMBDA_CONFIGURATION_MESSAGE, LambdaAppSpec
from opendeploy.domain.configs import TrafficRouting, TrafficRoutingType
from opendeploy.engine.effectors import EffectorError, ServerStep, StepOutcome, StepProgress
from opendeploy.engine.effectors.lambda_client import lambda_client
from opendeploy.engine.effectors.lambda_ports import LambdaStore
from opendeploy.engine.loop import BackgroundLoop
from opendeploy.engine.schedule import MINUTE, next_shift_after, weight_at

log = logging.getLogger("opendeploy.effectors.lambda")

ROLLBACK_CREATOR = "codeDeployRollback"
#: The longest the shift sleeps between looks at whether it was cancelled.
_NAP_SECONDS = 0.1
_ENDED = ("Failed", "Stopped")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def aws_error(e: Exception) -> str:
    """A boto3 error as one line: the AWS error code and its message."""
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', str(e))}"
    return f"{type(e).__name__}: {e}"


def not_found(e: Exception) -> bool:
    return isinstance(e, ClientError) and (
        e.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
    )


def routing_of(alias: dict[str, Any]) -> tuple[str, dict[str, float]]:
    """An alias's ``FunctionVersion`` and ``AdditionalVersionWeights``."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return str(alias.get("FunctionVersion")), {str(k): float(v) for k, v in weights.items()}


def wanted(spec: LambdaAppSpec, percent: int) -> tuple[str, dict[str, float]]:
    """The alias's version and weights that send ``percent`` % to the target version."""
    if percent >= 100:
        return spec.target_version, {}
    if percent <= 0:
        return spec.current_version, {}
    return spec.current_version, {spec.target_version: round(percent / 100, 4)}


def set_alias(client: Any, spec: LambdaAppSpec, version: str, weights: dict[str, float]) -> bool:
    """Make the alias carry ``version`` and ``weights``; False if it did already. Read back:
    :class:`EffectorError` if the alias does not hold what was written."""
    fn, name = spec.function_name, spec.alias
    if routing_of(client.get_alias(FunctionName=fn, Name=name)) == (version, weights):
        return False
    client.update_alias(
        FunctionName=fn,
        Name=name,
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": weights},
    )
    got = routing_of(client.get_alias(FunctionName=fn, Name=name))
    if got != (version, weights):
        raise EffectorError(
            f"the alias {name} of {fn} reads back version {got[0]} with weights {got[1]} after "
            f"it was set to version {version} with weights {weights}"
        )
    return True


class AliasRestorer(BackgroundLoop):
    """Puts the alias of failed and stopped Lambda deployments back (see the module)."""

    thread_name = "opendeploy-lambda-restore"

    def __init__(
        self,
        store: LambdaStore,
        *,
        client: Callable[[], Any] = lambda_client,
        tick_seconds: float = 1.0,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__()
        self.store = store
        self.client = client
        self.tick_seconds = tick_seconds
        self.clock = clock

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("alias restorer pass failed; retrying on the next tick")
            self.wakeup.wait(self.tick_seconds)

    def run_once(self) -> int:
        """Put back every alias due; returns how many deployments were settled."""
        due = self.store.needing_restore()
        for deployment_id, spec in due:
            self.restore(deployment_id, spec)
        return len(due)

    def restore_if_ended(self, deployment_id: str, spec: LambdaAppSpec) -> None:
        if self.store.status(deployment_id) in _ENDED:
            self.restore(deployment_id, spec)

    def restore(self, deployment_id: str, spec: LambdaAppSpec) -> None:
        """Alias back to CurrentVersion, no weight; recorded. A failure is retried next tick."""
        fn, name = spec.function_name, spec.alias
        try:
            client = self.client()
            version, weights = routing_of(client.get_alias(FunctionName=fn, Name=name))
            ours = {spec.current_version, spec.target_version}
            if version in ours and set(weights) <= {spec.target_version}:
                changed = set_alias(client, spec, spec.current_version, {})
                log.info(
                    "alias restored deployment_id=%s function=%s alias=%s version=%s%s",
                    deployment_id,
                    fn,
                    name,
                    spec.current_version,
                    "" if changed else " (already there)",
                )
            else:
                log.warning(
                    "alias not restored deployment_id=%s function=%s alias=%s: it points to "
                    "version %s with weights %s, which this deployment did not set",
                    deployment_id,
                    fn,
                    name,
                    version,
                    weights,
                )
        except (ClientError, BotoCoreError, EffectorError) as e:
            if not not_found(e):
                log.warning(
                    "alias restore failed deployment_id=%s: %s; retrying",
                    deployment_id,
                    aws_error(e),
                )
                return
        self.store.mark_restored(deployment_id, self.clock())


class LambdaAliasEffector:
    """AllowTraffic of a Lambda deployment (see the module)."""

    def __init__(
        self,
        store: LambdaStore,
        restorer: AliasRestorer,
        *,
        client: Callable[[], Any] = lambda_client,
        minute: timedelta = MINUTE,
        clock: Clock = _utcnow,
    ) -> None:
        self.store = store
        self.restorer = restorer
        self.client = client
        self.minute = minute
        self.clock = clock

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome:
        spec, why = self.store.spec(step.deployment_id)
        if spec is None:
            return StepOutcome.failed(f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} {why}")
        if step.creator == ROLLBACK_CREATOR:
            routing = TrafficRouting(TrafficRoutingType.ALL_AT_ONCE)
        else:
            routing = self.store.routing(step.deployment_id)
        try:
            return self._shift(step, spec, routing, progress)
        except (ClientError, BotoCoreError, EffectorError) as e:
            return StepOutcome.failed(
                f"The alias {spec.alias} of the Lambda function {spec.function_name} could not "
                f"be shifted to version {spec.target_version}: {aws_error(e)}"
            )

    def _shift(
        self,
        step: ServerStep,
        spec: LambdaAppSpec,
        routing: TrafficRouting,
        progress: StepProgress,
    ) -> StepOutcome:
        client = self.client()
        t0 = step.started_at
        while True:
            # The runner learns of a stop only when it next renews the lease: ask the store
            # before each write, so a stopped deployment's alias is not shifted once more.
            if progress.cancelled() or self.store.status(step.deployment_id) in _ENDED:
                return self._cancelled(step, spec)
            elapsed = self.clock() - t0
            percent = weight_at(routing, elapsed, minute=self.minute)
            version, weights = wanted(spec, percent)
            set_alias(client, spec, version, weights)
            now = self.clock()
            self.store.record_weight(step.deployment_id, percent / 100, now)
            progress.report(
                f"{now.isoformat()} {spec.function_name}:{spec.alias} version "
                f"{spec.target_version} {percent}%, version {spec.current_version} "
                f"{100 - percent}%"
            )
            if progress.cancelled():
                return self._cancelled(step, spec)
            upcoming = next_shift_after(routing, elapsed, minute=self.minute)
            if upcoming is None:
                return StepOutcome.succeeded(
                    f"The alias {spec.alias} of {spec.function_name} sends all traffic to "
                    f"version {spec.target_version}."
                )
            self._sleep_until(t0 + upcoming.offset, progress)

    def _sleep_until(self, due: datetime, progress: StepProgress) -> None:
        while not progress.cancelled():
            left = (due - self.clock()).total_seconds()
            if left <= 0:
                return
            time.sleep(min(left, _NAP_SECONDS))  # the runner's cancel flag has no event to wait on

    def _cancelled(self, step: ServerStep, spec: LambdaAppSpec) -> StepOutcome:
        # Given up by the engine (a stop, a timeout): put the alias back now rather than on the
        # restorer's next tick. Cut short by a shutdown instead: the deployment has not ended,
        # and the step is taken up again after a restart.
        self.restorer.restore_if_ended(step.deployment_id, spec)
        return StepOutcome.failed("The traffic shift was cancelled.")
