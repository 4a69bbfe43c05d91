"""What an ECS deployment asks of a container platform and of its listeners: the ports.

An ECS deployment (platforms.md §4.3) starts a replacement task set beside the service's original
one, points the test listener at the replacement's target group, shifts the production
listener's weights from the original target group to the replacement's, makes the replacement the
service's primary task set and deletes the original. :class:`ContainerPlatform` is the task-set
half (AWS ECS through boto3, or a container engine on the user's own hosts), :class:`Listeners`
the traffic half (ELBv2 weighted forwards, or a local load balancer's frontends). Every call is
idempotent, because a step whose runner died is run again: a task set is found again by its
``externalId`` (the deployment id, as AWS sets it), and a weight already set is set again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opendeploy.engine.effectors import EffectorError, StepProgress


@dataclass(frozen=True, slots=True)
class EcsService:
    """A service, as a deployment group's ``ecsServices`` names it."""

    cluster: str
    service: str

    @property
    def target_id(self) -> str:
        """The deployment target's id: ``<cluster>:<service>`` (platforms.md §4.5)."""
        return f"{self.cluster}:{self.service}"


@dataclass(frozen=True, slots=True)
class TaskSetSpec:
    """The replacement task set an AppSpec asks for (platforms.md §4.2)."""

    task_definition: str
    container_name: str
    container_port: int
    target_group: str  # the ARN (or the name, where the platform takes names)
    external_id: str  # the deployment id: how a rerun finds the task set it made
    platform_version: str | None = None
    network_configuration: Mapping[str, Any] | None = None
    capacity_provider_strategy: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class TaskSet:
    """A task set as the platform reports it (the fields of the API's ``ECSTaskSet``)."""

    identifier: str
    arn: str
    status: str  # PRIMARY | ACTIVE | DRAINING
    task_definition: str
    desired: int
    pending: int
    running: int
    steady: bool  # stabilityStatus STEADY_STATE
    target_groups: tuple[str, ...] = ()
    external_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ContainerPlatformError(EffectorError):
    """The platform refused or could not be reached; the message names the service and why."""


class ContainerPlatform(Protocol):
    """Task sets of a service."""

    def task_sets(self, service: EcsService) -> list[TaskSet]:
        """Every task set the service has now (raises if the cluster or service is unknown)."""
        ...

    def create_task_set(self, service: EcsService, spec: TaskSetSpec) -> TaskSet:
        """Create the replacement task set at 100 % scale, or return the one ``spec``'s
        external id already made."""
        ...

    def wait_steady(
        self, service: EcsService, identifier: str, timeout: float, progress: StepProgress
    ) -> TaskSet:
        """Wait until the task set's tasks are running and healthy; raise after ``timeout``."""
        ...

    def make_primary(self, service: EcsService, identifier: str) -> None:
        """Make the task set the service's primary one."""
        ...

    def delete_task_set(self, service: EcsService, identifier: str) -> None:
        """Delete the task set (an already deleted one is not an error)."""
        ...


class Listeners(Protocol):
    """The listeners of the target-group pair."""

    def forwards(self, listener: str) -> dict[str, int]:
        """Target group -> weight of the listener's forward action now."""
        ...

    def forward(self, listener: str, weights: Mapping[str, int]) -> None:
        """Forward the listener's requests to the target groups by ``weights``."""
        ...
