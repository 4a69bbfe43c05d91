"""BlockTraffic and AllowTraffic: the load balancer's part of a deployment, as an effector.

What CodeDeploy asks of a load balancer is behind :class:`TrafficController` (take a host out:
drain, wait for in-flight requests, bounded; put it in: enable, wait for the load balancer's own
health check, bounded). Providers (HAProxy's runtime API, nginx/Caddy, Elastic Load Balancing)
implement it; without one, :class:`NoTrafficController` leaves traffic alone and says so in the
event's diagnostics, which is what the server did before it had providers (the steps succeeded at
once): a deployment group that names a load balancer still deploys.
"""

from __future__ import annotations

from typing import Protocol

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import (
    EffectorError,
    ServerStep,
    StepOutcome,
    StepProgress,
)


class TrafficController(Protocol):
    """A load balancer, as CodeDeploy uses it: both calls idempotent, both return a message."""

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        """Take ``host`` out of ``lb``'s pools: no new requests; wait for in-flight ones."""
        ...

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        """Put ``host`` back; wait until the load balancer's health check passes."""
        ...


class NoTrafficController:
    """No load balancer provider configured: traffic is left as it is, and the event says so."""

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return self._untouched(host, lb)

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        return self._untouched(host, lb)

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
