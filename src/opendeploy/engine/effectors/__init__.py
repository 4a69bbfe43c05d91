"""Effectors: the server's own steps of a deployment, carried out outside the engine.

``reconcile`` decides that a step is due (a :class:`~opendeploy.engine.reconcile.HostCommand`
with ``executor="server"``); the store records it like a host command, ``Queued``; the
:class:`~opendeploy.engine.effectors.runner.EffectorRunner` takes it up (``InProgress``, with
a lease), runs the :class:`Effector` for its event *outside* any transaction, and writes the
outcome back the way an agent's completion is written, so the engine reads both alike.

An effector must be idempotent: after a crash between its work and the outcome's write (or when
another replica takes a step whose lease ran out) the step runs again, and must do no harm (put
a host in a load balancer that is already in: a no-op). A long step reports progress (which also
renews its lease) and stops early when :meth:`StepProgress.cancelled` says the engine gave it up
(a stop, a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from opendeploy.domain.configs import TrafficRouting
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import DeploymentStyle, LoadBalancerInfo
from opendeploy.domain.status import LifecycleErrorCode
from opendeploy.engine.snapshot import Diagnostics
from opendeploy.errors import OpenDeployError


class EffectorError(OpenDeployError):
    """An effector could not carry its step out; the message says what and why (it becomes the
    lifecycle event's diagnostics)."""


@dataclass(frozen=True, slots=True)
class TrafficShift:
    """A blue/green deployment's canary or linear shift, as its traffic steps need it."""

    routing: TrafficRouting
    #: The original hosts, in the pool until BlockTraffic.
    blue: tuple[str, ...]
    #: The replacement hosts that take part (installed, not failed).
    green: tuple[str, ...]
    #: The green host whose AllowTraffic runs the schedule (``traffic_shift.shift_leader``).
    leader: str


@dataclass(frozen=True, slots=True)
class ServerStep:
    """One server step as the runner took it up, with what its effector needs to know."""

    command_id: str
    deployment_id: str
    target_id: str
    event: LifecycleEvent
    #: When a runner first took the step up (the event's start time).
    started_at: datetime
    load_balancer: LoadBalancerInfo
    style: DeploymentStyle
    #: Whether a runner took it up before (and died or lost its lease before reporting): the
    #: effector runs it again, which must do no harm.
    rerun: bool = False
    #: ``Server``, ``Lambda`` or ``ECS``: which effector of the event runs it.
    compute_platform: str = "Server"
    #: The deployment's creator (``codeDeployRollback`` for a rollback).
    creator: str = "user"
    #: The traffic shift of a blue/green deployment with a canary or linear configuration.
    shift: TrafficShift | None = None


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What the step came to; ``diagnostics`` as the lifecycle event shows them."""

    result: Literal["Succeeded", "Failed"]
    diagnostics: Diagnostics

    @classmethod
    def succeeded(cls, message: str = "Succeeded") -> StepOutcome:
        return cls("Succeeded", Diagnostics(LifecycleErrorCode.SUCCESS, message))

    @classmethod
    def failed(cls, message: str) -> StepOutcome:
        return cls("Failed", Diagnostics(LifecycleErrorCode.UNKNOWN_ERROR, message))


class StepProgress(Protocol):
    """Given to a running effector: how it reports progress and learns it was given up."""

    def report(self, message: str) -> None:
        """Record a line of progress (shown with the event's output); renews the step's lease."""
        ...

    def cancelled(self) -> bool:
        """Whether the engine gave the step up (its command closed): stop as soon as safe."""
        ...


class Effector(Protocol):
    """Carries out one kind of server step; idempotent (see the module's docstring)."""

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome: ...


class ByPlatform:
    """One event's effectors per compute platform (AllowTraffic: a load balancer on Server, an
    alias on Lambda); ``default`` for the others."""

    def __init__(self, default: Effector, **by_platform: Effector) -> None:
        self.default = default
        self.by_platform = by_platform

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome:
        effector = self.by_platform.get(step.compute_platform, self.default)
        return effector.run(step, progress)


def given_up(progress: StepProgress, line: str, what: str) -> None:
    """Report ``line`` (which asks the store whether the step is still wanted) and raise an
    EffectorError if the engine gave the step up.

    A drain calls it before it takes its host out for good, and puts the host back when it
    raises: a BlockTraffic given up (a stop, a timeout, the server shutting down) never
    completed, so the host's application was never stopped, and leaving it out of rotation
    would leave it out for nobody's sake. (A deployment that ends puts back the hosts it took
    out anyway, ``engine.platforms.server_in_place``; this closes the race in which a drain
    taken up just before the end would otherwise take its host out after that restore.) After
    a shutdown the step is run again, and drains again.
    """
    progress.report(line)
    if progress.cancelled():
        raise EffectorError(f"{what} was given up")
