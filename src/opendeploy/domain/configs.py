"""Deployment configurations: minimum healthy hosts, traffic routing, and AWS's predefined ones.

The predefined ``CodeDeployDefault.*`` configurations are values here, not rows: they exist on
every server, cannot be created, changed or deleted, and ListDeploymentConfigs shows them before
the custom ones. Their settings are AWS's (user guide, "Working with deployment configurations"):

- Server: AllAtOnce = HOST_COUNT 0, HalfAtATime = FLEET_PERCENT 50, OneAtATime =
  MOST_CONCURRENCY 1, which is what GetDeploymentConfig answers for it on AWS (API Reference,
  ``MinimumHealthyHosts.type``: a type nobody can set, "a deployment to only one instance at a
  time"). OneAtATime has a rule of its own that the engine applies: the deployment fails as soon
  as any instance *except the last one* fails (a one-instance group needs that instance to
  succeed).
- Lambda and ECS: traffic shifting (AllAtOnce, TimeBasedCanary, TimeBasedLinear), 10 percent,
  with AWS's exact names: ``LambdaLinear10PercentEvery1Minute`` (singular) beside
  ``ECSLinear10PercentEvery1Minutes`` (plural). GetDeploymentConfig answers them with
  ``computePlatform`` and ``trafficRoutingConfig`` and no ``minimumHealthyHosts``.

:class:`TrafficRouting` is the one place AWS's rules for a ``trafficRoutingConfig`` live
(CreateDeploymentConfig refuses what it refuses); ``engine/schedule.py`` turns one into the
times and weights of its traffic shifts.

Only OneAtATime's id is documented (``00000000-0000-0000-0000-000000000001``); the others get
stable ids in the same form, in the order below.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ComputePlatform(enum.StrEnum):
    SERVER = "Server"
    LAMBDA = "Lambda"
    ECS = "ECS"


class MinimumHealthyHostsType(enum.StrEnum):
    HOST_COUNT = "HOST_COUNT"
    FLEET_PERCENT = "FLEET_PERCENT"
    #: Only CodeDeployDefault.OneAtATime has it; CreateDeploymentConfig refuses it.
    MOST_CONCURRENCY = "MOST_CONCURRENCY"


#: The types CreateDeploymentConfig accepts (AWS: "You cannot set the type to MOST_CONCURRENCY").
SETTABLE_MINIMUM_HEALTHY_HOSTS_TYPES = frozenset(
    {MinimumHealthyHostsType.HOST_COUNT, MinimumHealthyHostsType.FLEET_PERCENT}
)


class TrafficRoutingType(enum.StrEnum):
    TIME_BASED_CANARY = "TimeBasedCanary"
    TIME_BASED_LINEAR = "TimeBasedLinear"
    ALL_AT_ONCE = "AllAtOnce"


#: The prefix AWS reserves for its own configurations.
PREDEFINED_PREFIX = "CodeDeployDefault."


class InvalidMinimumHealthyHosts(ValueError):
    """A ``minimumHealthyHosts`` that breaks a rule (names the field and the value)."""


@dataclass(frozen=True, slots=True)
class MinimumHealthyHosts:
    """How many instances must stay healthy: a count, or a percentage of the fleet.

    The one record of it, for the API, the engine and the dashboard. ``MOST_CONCURRENCY`` is not
    accepted from users; it is what AWS returns for CodeDeployDefault.OneAtATime (value 1), and
    the engine honours it (see ``engine.batches``).
    """

    type: MinimumHealthyHostsType
    value: int

    def __post_init__(self) -> None:
        try:
            kind = MinimumHealthyHostsType(self.type)
        except ValueError:
            raise InvalidMinimumHealthyHosts(
                f"minimumHealthyHosts.type: {self.type!r} is not a known type"
            ) from None
        object.__setattr__(self, "type", kind)  # a plain string becomes the enum member
        if self.value < 0:
            raise InvalidMinimumHealthyHosts(
                f"minimumHealthyHosts.value: {self.value} must be >= 0"
            )
        if kind is MinimumHealthyHostsType.FLEET_PERCENT and self.value > 100:
            raise InvalidMinimumHealthyHosts(
                f"minimumHealthyHosts.value: {self.value} exceeds 100 for FLEET_PERCENT"
            )
        if kind is MinimumHealthyHostsType.MOST_CONCURRENCY and self.value < 1:
            raise InvalidMinimumHealthyHosts(
                f"minimumHealthyHosts.value: {self.value} must be >= 1 for MOST_CONCURRENCY"
            )


#: AWS's limit on the minutes from the first traffic shift to the last (user guide, quotas).
MAX_SHIFT_SPAN_MINUTES = 2880

#: The members of ``trafficRoutingConfig`` that hold each time-based type's settings, and the
#: names of its percentage and interval in there.
_WIRE_MEMBERS: dict[TrafficRoutingType, tuple[str, str, str]] = {
    TrafficRoutingType.TIME_BASED_CANARY: ("timeBasedCanary", "canaryPercentage", "canaryInterval"),
    TrafficRoutingType.TIME_BASED_LINEAR: ("timeBasedLinear", "linearPercentage", "linearInterval"),
}


class InvalidTrafficRouting(ValueError):
    """A traffic routing configuration AWS refuses; the API answers it with
    InvalidTrafficRoutingConfigurationException and this message."""


def _whole(name: str, value: object) -> int:
    """``value`` if it is a whole number (JSON's ``true`` is not); else why not."""
    if value is None:
        raise InvalidTrafficRouting(f"The {name} is required.")
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidTrafficRouting(f"The {name} {value!r} is not a whole number.")
    return value


@dataclass(frozen=True)
class TrafficRouting:
    """How traffic moves to the new version on Lambda and ECS: a type, the percentage of traffic
    each increment moves and the minutes between increments (both 0 for AllAtOnce).

    Every instance holds AWS's rules, so code that receives one need not check it again:
    percentage 1 to 99, interval at least 1 minute, at most :data:`MAX_SHIFT_SPAN_MINUTES`
    between the first shift and the last. Parse the API's ``trafficRoutingConfig`` with
    :meth:`from_wire`; ``engine.schedule`` gives the shifts.
    """

    type: TrafficRoutingType
    percentage: int = 0
    interval_minutes: int = 0

    def __post_init__(self) -> None:
        kind = TrafficRoutingType(self.type)
        object.__setattr__(self, "type", kind)
        if kind is TrafficRoutingType.ALL_AT_ONCE:
            if self.percentage or self.interval_minutes:
                raise InvalidTrafficRouting(
                    "An AllAtOnce traffic routing configuration takes no percentage or interval."
                )
            return
        _, percent_name, interval_name = _WIRE_MEMBERS[kind]
        _whole(percent_name, self.percentage)
        _whole(interval_name, self.interval_minutes)
        if not 1 <= self.percentage <= 99:
            raise InvalidTrafficRouting(
                f"The {percent_name} {self.percentage} is not valid: the traffic an increment "
                "shifts must be between 1 and 99 percent."
            )
        if self.interval_minutes < 1:
            raise InvalidTrafficRouting(
                f"The {interval_name} {self.interval_minutes} is not valid: the time between "
                "traffic shifts must be at least 1 minute."
            )
        if self.span_minutes > MAX_SHIFT_SPAN_MINUTES:
            raise InvalidTrafficRouting(
                f"The {kind} traffic routing configuration ({percent_name} {self.percentage}, "
                f"{interval_name} {self.interval_minutes}) puts {self.span_minutes} minutes "
                f"between the first and the last traffic shift; the maximum is "
                f"{MAX_SHIFT_SPAN_MINUTES} minutes."
            )

    @property
    def increments(self) -> int:
        """How many times traffic shifts: 1 (AllAtOnce), 2 (canary), ⌈100/p⌉ (linear)."""
        if self.type is TrafficRoutingType.ALL_AT_ONCE:
            return 1
        if self.type is TrafficRoutingType.TIME_BASED_CANARY:
            return 2
        return math.ceil(100 / self.percentage)

    @property
    def span_minutes(self) -> int:
        """Minutes from the first traffic shift to the last (the one that reaches 100 %)."""
        return (self.increments - 1) * self.interval_minutes

    @classmethod
    def from_wire(cls, value: Any) -> TrafficRouting:
        """From the API's ``TrafficRoutingConfig`` shape; :class:`InvalidTrafficRouting` says
        what AWS would refuse. The member of the other time-based type, if sent too, is ignored.
        """
        if not isinstance(value, Mapping):
            raise InvalidTrafficRouting("The traffic routing configuration must be an object.")
        raw = value.get("type")
        try:
            kind = TrafficRoutingType(raw if isinstance(raw, str) else "")
        except ValueError:
            raise InvalidTrafficRouting(
                f"The traffic routing type {raw!r} is not one of TimeBasedCanary, "
                "TimeBasedLinear, AllAtOnce."
            ) from None
        if kind is TrafficRoutingType.ALL_AT_ONCE:
            return cls(kind)
        member, percent_name, interval_name = _WIRE_MEMBERS[kind]
        body = value.get(member)
        if not isinstance(body, Mapping):
            raise InvalidTrafficRouting(
                f"A {kind} traffic routing configuration needs {member} "
                f"({percent_name} and {interval_name})."
            )
        return cls(
            kind,
            _whole(percent_name, body.get(percent_name)),
            _whole(interval_name, body.get(interval_name)),
        )

    def to_wire(self) -> dict[str, Any]:
        """The API's ``TrafficRoutingConfig`` shape, as GetDeploymentConfig answers it."""
        wire: dict[str, Any] = {"type": str(self.type)}
        if self.type is not TrafficRoutingType.ALL_AT_ONCE:
            member, percent_name, interval_name = _WIRE_MEMBERS[self.type]
            wire[member] = {percent_name: self.percentage, interval_name: self.interval_minutes}
        return wire


@dataclass(frozen=True)
class DeploymentConfig:
    """One deployment configuration, predefined or custom."""

    name: str
    config_id: str
    compute_platform: ComputePlatform
    minimum_healthy_hosts: MinimumHealthyHosts | None = None
    traffic_routing: TrafficRouting | None = None


def _predefined() -> dict[str, DeploymentConfig]:
    P, M, T = ComputePlatform, MinimumHealthyHostsType, TrafficRoutingType
    server = [
        ("OneAtATime", MinimumHealthyHosts(M.MOST_CONCURRENCY, 1)),
        ("HalfAtATime", MinimumHealthyHosts(M.FLEET_PERCENT, 50)),
        ("AllAtOnce", MinimumHealthyHosts(M.HOST_COUNT, 0)),
    ]
    lambda_ = [
        ("LambdaAllAtOnce", TrafficRouting(T.ALL_AT_ONCE)),
        *(
            (f"LambdaCanary10Percent{n}Minutes", TrafficRouting(T.TIME_BASED_CANARY, 10, n))
            for n in (5, 10, 15, 30)
        ),
        ("LambdaLinear10PercentEvery1Minute", TrafficRouting(T.TIME_BASED_LINEAR, 10, 1)),
        *(
            (f"LambdaLinear10PercentEvery{n}Minutes", TrafficRouting(T.TIME_BASED_LINEAR, 10, n))
            for n in (2, 3, 10)
        ),
    ]
    ecs = [
        ("ECSAllAtOnce", TrafficRouting(T.ALL_AT_ONCE)),
        ("ECSLinear10PercentEvery1Minutes", TrafficRouting(T.TIME_BASED_LINEAR, 10, 1)),
        ("ECSLinear10PercentEvery3Minutes", TrafficRouting(T.TIME_BASED_LINEAR, 10, 3)),
        ("ECSCanary10Percent5Minutes", TrafficRouting(T.TIME_BASED_CANARY, 10, 5)),
        ("ECSCanary10Percent15Minutes", TrafficRouting(T.TIME_BASED_CANARY, 10, 15)),
    ]
    configs: list[DeploymentConfig] = []
    for short, mhh in server:
        configs.append(
            DeploymentConfig(PREDEFINED_PREFIX + short, "", P.SERVER, minimum_healthy_hosts=mhh)
        )
    for platform, table in ((P.LAMBDA, lambda_), (P.ECS, ecs)):
        for short, routing in table:
            configs.append(
                DeploymentConfig(PREDEFINED_PREFIX + short, "", platform, traffic_routing=routing)
            )
    return {
        c.name: DeploymentConfig(
            c.name,
            f"00000000-0000-0000-0000-{index:012d}",
            c.compute_platform,
            c.minimum_healthy_hosts,
            c.traffic_routing,
        )
        for index, c in enumerate(configs, start=1)
    }


#: Every predefined configuration by name, in the order ListDeploymentConfigs shows them.
PREDEFINED: dict[str, DeploymentConfig] = _predefined()

#: The configuration a deployment group gets when it names none.
DEFAULT_SERVER_CONFIG = PREDEFINED_PREFIX + "OneAtATime"
DEFAULT_CONFIG_BY_PLATFORM: dict[ComputePlatform, str] = {
    ComputePlatform.SERVER: DEFAULT_SERVER_CONFIG,
    ComputePlatform.LAMBDA: PREDEFINED_PREFIX + "LambdaAllAtOnce",
    ComputePlatform.ECS: PREDEFINED_PREFIX + "ECSAllAtOnce",
}


def is_predefined(name: str) -> bool:
    """True for AWS's own configurations (the whole ``CodeDeployDefault.`` prefix is reserved)."""
    return name.startswith(PREDEFINED_PREFIX)


#: CodeDeployDefault.OneAtATime, as GetDeploymentConfig reports it.
ONE_AT_A_TIME = MinimumHealthyHosts(MinimumHealthyHostsType.MOST_CONCURRENCY, 1)
#: CodeDeployDefault.HalfAtATime.
HALF_AT_A_TIME = MinimumHealthyHosts(MinimumHealthyHostsType.FLEET_PERCENT, 50)
#: CodeDeployDefault.AllAtOnce.
ALL_AT_ONCE = MinimumHealthyHosts(MinimumHealthyHostsType.HOST_COUNT, 0)

ONE_AT_A_TIME_CONFIG = "CodeDeployDefault.OneAtATime"


def minimum_for(config_name: str, type_: str, value: int) -> MinimumHealthyHosts:
    """The minimum of a deployment configuration as stored (InvalidMinimumHealthyHosts if bad).

    OneAtATime is ``MOST_CONCURRENCY 1`` (what AWS's GetDeploymentConfig answers) and has a rule
    of its own (one at a time, all but the last must succeed) that the engine applies: the
    predefined name maps to :data:`ONE_AT_A_TIME`, whatever type and value are passed.
    """
    if config_name == ONE_AT_A_TIME_CONFIG:
        return ONE_AT_A_TIME
    return MinimumHealthyHosts(type_, value)  # type: ignore[arg-type]  # checked on creation


def minimum_of(config_name: str, stored: Mapping[str, Any] | None) -> MinimumHealthyHosts:
    """The minimum the engine runs a deployment with: a predefined configuration's, or the
    stored custom one's (``stored``: its ``minimumHealthyHosts`` wire shape). A configuration
    that is gone (or not a Server one) runs as the default, one at a time."""
    predefined = PREDEFINED.get(config_name)
    if predefined is not None and predefined.minimum_healthy_hosts is not None:
        mhh = predefined.minimum_healthy_hosts
        return minimum_for(config_name, str(mhh.type), mhh.value)
    if not stored:
        return ONE_AT_A_TIME
    return minimum_for(config_name, str(stored.get("type")), int(stored.get("value") or 0))
