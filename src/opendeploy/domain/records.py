"""Typed records of the configuration objects the engine and its effectors act on.

Stored as the AWS wire shape (JSON columns, camelCase); parsed once, here, into frozen records,
so that no engine or effector code reads ``raw.get("targetGroupInfoList")`` itself, and each
rule about them (what counts as a load balancer, when traffic is controlled) lives in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
