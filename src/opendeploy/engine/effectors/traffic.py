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

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import (
    EffectorError,
    ServerStep,
    StepOutcome,
    StepProgress,
    TrafficShift,
)
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations, TargetGroup
from opendeploy.engine.schedule import next_shift_after, weight_at
from opendeploy.engine.traffic_shift import FULL_WEIGHT, pool_weights


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
    """The effector of BlockTraffic and AllowTraffic over one :class:`TrafficController`.

    In a blue/green deployment with a canary or linear configuration (``step.shift``), a green
    host's AllowTraffic puts it in the pool at weight 0, and the leader's runs the schedule:
    at each shift of ``engine.schedule`` it sets every host's weight
    (``traffic_shift.pool_weights``) so that the green pool gets the scheduled share of new
    requests. Counted from the step's first start, so a rerun after a crash catches up in one
    step. A blue host's BlockTraffic then takes it out and gives it back the full weight, for
    the deployments that find it later. ``minute`` is the length of the API's minute."""

    def __init__(
        self, controller: TrafficController, *, minute: timedelta = timedelta(minutes=1)
    ) -> None:
        self.controller = controller
        self.minute = minute
        #: How time passes (tests of the schedule replace them).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.sleep: Callable[[float], None] = time.sleep

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome:
        host, lb = step.target_id, step.load_balancer
        try:
            if step.event is LifecycleEvent.BLOCK_TRAFFIC:
                message = self.controller.block(host, lb, progress)
                if step.shift is not None:
                    self.controller.set_weights(lb, {host: FULL_WEIGHT}, progress)
            elif step.event is LifecycleEvent.ALLOW_TRAFFIC and step.shift is not None:
                message = self._allow_shifting(step, step.shift, progress)
            elif step.event is LifecycleEvent.ALLOW_TRAFFIC:
                self._restore_weight(host, lb, progress)
                message = self.controller.allow(host, lb, progress)
            else:
                raise EffectorError(f"the traffic effector does not run {step.event}")
        except EffectorError as e:
            return StepOutcome.failed(f"{step.event} for {host} failed: {e}")
        return StepOutcome.succeeded(message)

    def _restore_weight(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> None:
        """A host coming back with weight 0 (a traffic shift left it so) would be in the pool
        and get nothing: it gets the weight of its peers first."""
        weights = {h.host: h.weight for h in self.controller.state(lb) if h.weight is not None}
        if weights.get(host) == 0:
            others = [w for h, w in weights.items() if h != host and w]
            self.controller.set_weights(lb, {host: max(others, default=FULL_WEIGHT)}, progress)

    def _allow_shifting(self, step: ServerStep, shift: TrafficShift, progress: StepProgress) -> str:
        host, lb = step.target_id, step.load_balancer
        self.controller.set_weights(lb, {host: 0}, progress)
        joined = self.controller.allow(host, lb, progress)
        if host != shift.leader:
            return f"{joined}; at weight 0 until the traffic shift ({shift.leader} runs it)"
        routing = shift.routing
        done: list[str] = []
        while True:
            elapsed = self.clock() - step.started_at
            percent = weight_at(routing, elapsed, minute=self.minute)
            weights = pool_weights(shift.blue, shift.green, percent)
            self.controller.set_weights(lb, weights, progress)
            line = f"{percent}% of new requests to green"
            progress.report(line)
            done.append(f"{percent}%")
            upcoming = next_shift_after(routing, elapsed, minute=self.minute)
            if upcoming is None:
                break
            due = step.started_at + upcoming.offset
            while (left := (due - self.clock()).total_seconds()) > 0:
                if progress.cancelled():
                    raise EffectorError(f"the traffic shift was given up at {percent}%")
                self.sleep(min(left, 0.2))
        return (
            f"{joined}; traffic shifted to green ({', '.join(shift.green)}) from blue "
            f"({', '.join(shift.blue) or 'none'}): {' → '.join(done)}"
        )
