"""BlockTraffic and AllowTraffic: the load balancer's part of a deployment, as an effector.

What CodeDeploy asks of a load balancer is behind :class:`TrafficController` (take a host out:
drain, wait for in-flight requests, bounded; put it in: enable, wait for the load balancer's own
health check, bounded; set the share of new requests each host gets; read back what the load
balancer does now). :class:`DeclaredTrafficController` is the controller of a server with a
load balancer declaration: it hands each declared target group to its provider's
:class:`PoolDriver` (HAProxy's runtime API, nginx, Elastic Load Balancing …). Without a
declaration, :class:`NoTrafficController` leaves traffic alone and says so in the event's
diagnostics, which is what the server did before it had providers (the steps succeeded at once):
a deployment group that names a load balancer still deploys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import (
    EffectorError,
    ServerStep,
    StepOutcome,
    StepProgress,
)
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations, TargetGroup


@dataclass(frozen=True, slots=True)
class HostTraffic:
    """What a load balancer does with one host of a target group now, as read back from it."""

    target_group: str
    host: str  # the instance name
    serving: bool  # takes new requests: enabled, healthy and of a weight above 0
    state: str  # the provider's own word for it ("UP", "DRAIN", "MAINT", "healthy" …)
    weight: int | None = None  # the relative weight, where the provider has one
    sessions: int | None = None  # requests or connections in flight, where it tells


class TrafficController(Protocol):
    """A load balancer, as CodeDeploy uses it: every call idempotent, each returns a message."""

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        """Take ``host`` out of ``lb``'s pools: no new requests; wait for in-flight ones."""
        ...

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        """Put ``host`` back; wait until the load balancer's health check passes."""
        ...

    def set_weights(
        self, lb: LoadBalancerInfo, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        """Give each host of ``weights`` its relative share (0..256) of ``lb``'s new requests;
        hosts not named keep theirs. A weight of 0 keeps the host enabled (health-checked) but
        sends it nothing new."""
        ...

    def state(self, lb: LoadBalancerInfo) -> list[HostTraffic]:
        """Every host the load balancer has in ``lb``'s pools, as it reports them now."""
        ...


class PoolDriver(Protocol):
    """One provider's way to do what :class:`TrafficController` asks, on one target group."""

    def drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str: ...

    def ready(self, group: TargetGroup, host: str, progress: StepProgress) -> str: ...

    def set_weights(
        self, group: TargetGroup, weights: Mapping[str, int], progress: StepProgress
    ) -> str: ...

    def state(self, group: TargetGroup) -> list[HostTraffic]: ...


class DeclaredTrafficController:
    """The :class:`TrafficController` over a declaration: each target group to its provider."""

    def __init__(
        self, declarations: LoadBalancerDeclarations, drivers: Mapping[str, PoolDriver]
    ) -> None:
        self.declarations = declarations
        self.drivers = drivers

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return "; ".join(d.drain(g, host, progress) for g, d in self._groups(lb))

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return "; ".join(d.ready(g, host, progress) for g, d in self._groups(lb))

    def set_weights(
        self, lb: LoadBalancerInfo, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        return "; ".join(d.set_weights(g, weights, progress) for g, d in self._groups(lb))

    def state(self, lb: LoadBalancerInfo) -> list[HostTraffic]:
        return [host for g, d in self._groups(lb) for host in d.state(g)]

    def _groups(self, lb: LoadBalancerInfo) -> list[tuple[TargetGroup, PoolDriver]]:
        if lb.elb_names:
            raise EffectorError(
                f"Classic load balancers ({', '.join(lb.elb_names)}) are not declared on this "
                "server; name target groups in targetGroupInfoList"
            )
        unknown = self.declarations.unknown(list(lb.target_groups))
        if unknown:
            raise EffectorError(
                f"target group {', '.join(unknown)} is not declared on this server "
                f"(declared: {', '.join(sorted(self.declarations.target_groups)) or 'none'})"
            )
        groups = [self.declarations.target_groups[n] for n in lb.target_groups]
        missing = sorted({g.pool.provider for g in groups} - set(self.drivers))
        if missing:
            raise EffectorError(f"this server has no driver for {', '.join(missing)}")
        return [(g, self.drivers[g.pool.provider]) for g in groups]


class NoTrafficController:
    """No load balancer provider configured: traffic is left as it is, and the event says so."""

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return self._untouched(host, lb)

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return self._untouched(host, lb)

    def set_weights(
        self, lb: LoadBalancerInfo, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        return self._untouched(", ".join(sorted(weights)), lb)

    def state(self, lb: LoadBalancerInfo) -> list[HostTraffic]:
        return []

    @staticmethod
    def _untouched(host: str, lb: LoadBalancerInfo) -> str:
        return (
            f"No load balancer provider is configured on this server: traffic to {host} "
            f"through {lb.describe()} was not changed."
        )


class TrafficEffector:
    """The effector of BlockTraffic and AllowTraffic over one :class:`TrafficController`."""

    def __init__(self, controller: TrafficController) -> None:
        self.controller = controller

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome:
        try:
            if step.event is LifecycleEvent.BLOCK_TRAFFIC:
                message = self.controller.block(step.target_id, step.load_balancer, progress)
            elif step.event is LifecycleEvent.ALLOW_TRAFFIC:
                message = self.controller.allow(step.target_id, step.load_balancer, progress)
            else:
                raise EffectorError(f"the traffic effector does not run {step.event}")
        except EffectorError as e:
            return StepOutcome.failed(f"{step.event} for {step.target_id} failed: {e}")
        return StepOutcome.succeeded(message)
