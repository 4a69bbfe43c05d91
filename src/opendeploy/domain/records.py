"""Typed records of the configuration objects the engine and its effectors act on.

Stored as the AWS wire shape (JSON columns, camelCase); parsed once, here, into frozen records,
so that no engine or effector code reads ``raw.get("targetGroupInfoList")`` itself, and each
rule about them (what counts as a load balancer, when traffic is controlled) lives in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

_E = TypeVar("_E", bound=enum.StrEnum)


class DeploymentType(enum.StrEnum):
    IN_PLACE = "IN_PLACE"
    BLUE_GREEN = "BLUE_GREEN"


class DeploymentOption(enum.StrEnum):
    WITH_TRAFFIC_CONTROL = "WITH_TRAFFIC_CONTROL"
    WITHOUT_TRAFFIC_CONTROL = "WITHOUT_TRAFFIC_CONTROL"


@dataclass(frozen=True, slots=True)
class DeploymentStyle:
    """``deploymentStyle``; AWS's defaults (in-place, without traffic control) when absent."""

    deployment_type: DeploymentType = DeploymentType.IN_PLACE
    deployment_option: DeploymentOption = DeploymentOption.WITHOUT_TRAFFIC_CONTROL

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> DeploymentStyle:
        """From the API shape; ValueError for one that is not a style."""
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"deploymentStyle: {raw!r} is not a structure")
        kind = raw.get("deploymentType") or DeploymentType.IN_PLACE
        option = raw.get("deploymentOption") or DeploymentOption.WITHOUT_TRAFFIC_CONTROL
        return cls(DeploymentType(kind), DeploymentOption(option))

    @property
    def blue_green(self) -> bool:
        return self.deployment_type is DeploymentType.BLUE_GREEN

    def as_wire(self) -> dict[str, str]:
        return {
            "deploymentType": str(self.deployment_type),
            "deploymentOption": str(self.deployment_option),
        }


@dataclass(frozen=True, slots=True)
class TargetGroupPair:
    """One ``targetGroupPairInfoList`` entry (ECS): two target groups, prod and test listeners."""

    target_groups: tuple[str, ...]
    prod_listeners: tuple[str, ...]
    test_listeners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadBalancerInfo:
    """``loadBalancerInfo``: the Classic load balancers, target groups and target-group pairs
    a deployment's traffic goes through (names as the API gives them)."""

    elb_names: tuple[str, ...] = ()
    target_groups: tuple[str, ...] = ()
    target_group_pairs: tuple[TargetGroupPair, ...] = ()

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> LoadBalancerInfo:
        raw = raw or {}

        def names(key: str) -> tuple[str, ...]:
            return tuple(str(e["name"]) for e in raw.get(key) or () if e.get("name"))

        pairs = tuple(
            TargetGroupPair(
                tuple(str(t["name"]) for t in p.get("targetGroups") or () if t.get("name")),
                tuple(str(a) for a in (p.get("prodTrafficRoute") or {}).get("listenerArns") or ()),
                tuple(str(a) for a in (p.get("testTrafficRoute") or {}).get("listenerArns") or ()),
            )
            for p in raw.get("targetGroupPairInfoList") or ()
        )
        return cls(names("elbInfoList"), names("targetGroupInfoList"), pairs)

    @property
    def present(self) -> bool:
        """Whether the deployment has a load balancer at all (then the traffic events exist)."""
        return bool(self.elb_names or self.target_groups or self.target_group_pairs)

    def describe(self) -> str:
        """The load balancers and target groups by name, for messages."""
        parts = [f"load balancer {n}" for n in self.elb_names]
        parts += [f"target group {n}" for n in self.target_groups]
        for pair in self.target_group_pairs:
            parts += [f"target group {n}" for n in pair.target_groups]
        return ", ".join(parts) or "no load balancer"


class ReadyAction(enum.StrEnum):
    """``deploymentReadyOption.actionOnTimeout``."""

    CONTINUE_DEPLOYMENT = "CONTINUE_DEPLOYMENT"
    STOP_DEPLOYMENT = "STOP_DEPLOYMENT"


class BlueAction(enum.StrEnum):
    """``terminateBlueInstancesOnDeploymentSuccess.action``."""

    TERMINATE = "TERMINATE"
    KEEP_ALIVE = "KEEP_ALIVE"


class GreenProvisioning(enum.StrEnum):
    """``greenFleetProvisioningOption.action``."""

    DISCOVER_EXISTING = "DISCOVER_EXISTING"
    COPY_AUTO_SCALING_GROUP = "COPY_AUTO_SCALING_GROUP"


#: AWS's limits on both waits of an EC2/on-premises blue/green deployment (48 h; user guide,
#: "Quotas").
MAX_BLUE_GREEN_WAIT_MINUTES = 2880


@dataclass(frozen=True, slots=True)
class BlueGreenSettings:
    """``blueGreenDeploymentConfiguration`` with AWS's defaults for what is absent.

    The defaults are the console's and Terraform's: reroute at once (``CONTINUE_DEPLOYMENT``),
    green found among existing instances, blue ``KEEP_ALIVE``... except that AWS defaults the
    blue action to TERMINATE with a 60-minute wait only for Auto Scaling copies; with
    DISCOVER_EXISTING nothing can be terminated, so KEEP_ALIVE is the honest default here."""

    ready_action: ReadyAction = ReadyAction.CONTINUE_DEPLOYMENT
    ready_wait_minutes: int = 0
    blue_action: BlueAction = BlueAction.KEEP_ALIVE
    termination_wait_minutes: int = 0
    provisioning: GreenProvisioning = GreenProvisioning.DISCOVER_EXISTING

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any] | None) -> BlueGreenSettings:
        """From the API shape; ValueError naming the member for one AWS refuses."""
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"blueGreenDeploymentConfiguration: {raw!r} is not a structure")
        ready = raw.get("deploymentReadyOption") or {}
        blue = raw.get("terminateBlueInstancesOnDeploymentSuccess") or {}
        green = raw.get("greenFleetProvisioningOption") or {}
        ready_action = _member(
            ReadyAction, ready.get("actionOnTimeout"), "deploymentReadyOption.actionOnTimeout"
        )
        ready_wait = _minutes(ready.get("waitTimeInMinutes"), "deploymentReadyOption")
        blue_action = _member(
            BlueAction, blue.get("action"), "terminateBlueInstancesOnDeploymentSuccess.action"
        )
        termination_wait = _minutes(
            blue.get("terminationWaitTimeInMinutes"), "terminateBlueInstancesOnDeploymentSuccess"
        )
        provisioning = _member(
            GreenProvisioning, green.get("action"), "greenFleetProvisioningOption.action"
        )
        if ready_action is ReadyAction.CONTINUE_DEPLOYMENT and ready_wait:
            # AWS's words (seen through Terraform, hashicorp/terraform-provider-aws#9653).
            raise ValueError(
                "Deployment ready action cannot be set to 'CONTINUE_DEPLOYMENT' when timeout is "
                "specified"
            )
        return cls(
            ready_action=ready_action or ReadyAction.CONTINUE_DEPLOYMENT,
            ready_wait_minutes=ready_wait,
            blue_action=blue_action or BlueAction.KEEP_ALIVE,
            termination_wait_minutes=termination_wait,
            provisioning=provisioning or GreenProvisioning.DISCOVER_EXISTING,
        )

    @property
    def waits_for_ready(self) -> bool:
        return self.ready_action is ReadyAction.STOP_DEPLOYMENT

    @property
    def terminates_blue(self) -> bool:
        return self.blue_action is BlueAction.TERMINATE


def _member(kind: type[_E], raw: Any, where: str) -> _E | None:
    if raw is None:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValueError(f"{where}: {raw!r} is not one of {allowed}") from None


def _minutes(raw: Any, where: str) -> int:
    if raw is None:
        return 0
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int)
        or not (0 <= raw <= MAX_BLUE_GREEN_WAIT_MINUTES)
    ):
        raise ValueError(
            f"{where}: a wait of {raw!r} minutes is not a whole number from 0 to "
            f"{MAX_BLUE_GREEN_WAIT_MINUTES} (48 hours)"
        )
    return int(raw)
