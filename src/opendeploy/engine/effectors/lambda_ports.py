"""What the Lambda effectors need of the store (``store.lambda_deployments.LambdaStepStore``)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from opendeploy.appspec.lambda_spec import LambdaAppSpec
from opendeploy.domain.configs import TrafficRouting


class LambdaStore(Protocol):
    def spec(self, deployment_id: str) -> tuple[LambdaAppSpec | None, str | None]:
        """The deployment's AppSpec, or None and why it cannot be deployed."""
        ...

    def routing(self, deployment_id: str) -> TrafficRouting:
        """The deployment configuration's traffic routing (AllAtOnce when it has none)."""
        ...

    def record_weight(self, deployment_id: str, weight: float, at: datetime) -> None:
        """The alias now sends ``weight`` (0.0-1.0) of its traffic to the target version."""
        ...

    def status(self, deployment_id: str) -> str | None:
        """The deployment's status (None if unknown)."""
        ...

    def hook_answered(self, execution_id: str) -> bool:
        """Whether the hook execution (a server step's command id) has its answer, or was given
        up by the engine (a stop, a timeout)."""
        ...

    def needing_restore(self) -> list[tuple[str, LambdaAppSpec]]:
        """Deployments ended without success after moving traffic, alias not yet put back."""
        ...

    def mark_restored(self, deployment_id: str, at: datetime) -> None: ...
