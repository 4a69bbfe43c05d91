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
- Lambda and ECS: traffic shifting (AllAtOnce, TimeBasedCanary, TimeBasedLinear), 10 percent.

Only OneAtATime's id is documented (``00000000-0000-0000-0000-000000000001``); the others get
stable ids in the same form, in the order below.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


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


@dataclass(frozen=True)
class MinimumHealthyHosts:
    """How many instances must stay healthy: a count, or a percentage of the fleet."""

    type: MinimumHealthyHostsType
    value: int


@dataclass(frozen=True)
class TrafficRouting:
    """How traffic moves to the new version on Lambda and ECS (percent, minutes)."""

    type: TrafficRoutingType
    percentage: int = 0
    interval_minutes: int = 0


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
