"""The AppSpec of an Amazon ECS deployment: the service's replacement task set and its hooks.

::

    version: 0.0
    Resources:
      - TargetService:
          Type: AWS::ECS::Service
          Properties:
            TaskDefinition: "arn:aws:ecs:us-east-1:111122223333:task-definition/web:2"
            LoadBalancerInfo: {ContainerName: web, ContainerPort: 80}
            PlatformVersion: LATEST                       # optional
            NetworkConfiguration:                          # optional, all or nothing
              AwsvpcConfiguration:
                Subnets: [subnet-a, subnet-b]
                SecurityGroups: [sg-1]
                AssignPublicIp: ENABLED                    # ENABLED | DISABLED
            CapacityProviderStrategy:                      # optional
              - {Base: 1, CapacityProvider: FARGATE_SPOT, Weight: 2}
    Hooks:
      - BeforeInstall: fnA
      - AfterAllowTestTraffic: fnC

YAML or JSON (the same tree); keys are matched case-insensitively, as aws-cli's ECS
customization does. The rules are AWS's (platforms.md §4.2): the task definition is a full ARN,
the container port a number, the network configuration all three fields or none, and a capacity
provider strategy needs a provider of weight above 0. Pure: text in, :class:`EcsAppSpec` or
:class:`EcsAppSpecError` out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opendeploy.appspec.serverless import hook_functions, load_document
from opendeploy.errors import AppSpecError

__all__ = ["ECS_HOOKS", "EcsAppSpec", "EcsAppSpecError", "parse_ecs_appspec"]

#: The hooks an ECS AppSpec may name, in the order they run.
ECS_HOOKS: Final = (
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
)
_SERVICE_TYPE: Final = "aws::ecs::service"
_TASK_DEFINITION_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/[A-Za-z0-9_-]{1,255}:\d+"
)


class EcsAppSpecError(AppSpecError):
    """An ECS AppSpec that cannot be deployed; the message names the field and the rule."""


@dataclass(frozen=True, slots=True)
class EcsAppSpec:
    """What an ECS deployment starts: a task set of ``task_definition`` whose
    ``container_name`` on ``container_port`` joins the target group; the hook functions."""

    task_definition: str
    container_name: str
    container_port: int
    platform_version: str | None = None
    #: CreateTaskSet's ``networkConfiguration`` (``awsvpcConfiguration``), or None: the service's.
    network_configuration: Mapping[str, Any] | None = None
    #: CreateTaskSet's ``capacityProviderStrategy`` items.
    capacity_provider_strategy: tuple[Mapping[str, Any], ...] = ()
    hooks: Mapping[str, str] = field(default_factory=dict)


def _lower_keys(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EcsAppSpecError(f"{where} must be a mapping, not {value!r}.")
    return {str(k).lower(): v for k, v in value.items()}


def _text(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise EcsAppSpecError(f"{where} must be a non-empty string, not {value!r}.")
    return str(value).strip()


def _texts(where: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise EcsAppSpecError(f"{where} must be a non-empty list of strings.")
    return [_text(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _integer(where: str, value: Any, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise EcsAppSpecError(f"{where} must be a number, not {value!r}.")
    try:
        return int(value)
    except ValueError:
        raise EcsAppSpecError(f"{where} must be a number, not {value!r}.") from None


def parse_ecs_appspec(text: str) -> EcsAppSpec:
    """Parse an ECS AppSpec; :class:`EcsAppSpecError` names the field and the rule."""
    top = _lower_keys("The AppSpec", load_document(text, EcsAppSpecError))
    resources = top.get("resources")
    if not isinstance(resources, list) or len(resources) != 1:
        raise EcsAppSpecError(
            "'Resources' must list exactly one resource: the ECS service to deploy to."
        )
    entry = resources[0]
    if not isinstance(entry, dict) or len(entry) != 1:
        raise EcsAppSpecError("The resource must map one logical name to its Type and Properties.")
    ((logical, raw_body),) = entry.items()
    body = _lower_keys(f"Resource {logical!r}", raw_body)
    kind = body.get("type")
    if not isinstance(kind, str) or kind.lower() != _SERVICE_TYPE:
        raise EcsAppSpecError(
            f"Resource {logical!r} has Type {kind!r}; an ECS deployment needs AWS::ECS::Service."
        )
    props = _lower_keys(f"Resource {logical!r} Properties", body.get("properties"))
    if props.get("taskdefinition") is None:
        raise EcsAppSpecError(f"Resource {logical!r} is missing the property TaskDefinition.")
    task_definition = _text("TaskDefinition", props["taskdefinition"])
    if not _TASK_DEFINITION_ARN.fullmatch(task_definition):
        raise EcsAppSpecError(
            f"TaskDefinition {task_definition!r} is not a task definition ARN "
            "(arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>)."
        )
    if props.get("loadbalancerinfo") is None:
        raise EcsAppSpecError(f"Resource {logical!r} is missing the property LoadBalancerInfo.")
    lb = _lower_keys("LoadBalancerInfo", props["loadbalancerinfo"])
    for key, name in (("containername", "ContainerName"), ("containerport", "ContainerPort")):
        if lb.get(key) is None:
            raise EcsAppSpecError(f"LoadBalancerInfo is missing {name}.")
    port = _integer("LoadBalancerInfo.ContainerPort", lb["containerport"])
    if not 1 <= port <= 65535:
        raise EcsAppSpecError(f"LoadBalancerInfo.ContainerPort {port} is not a port (1-65535).")
    platform = props.get("platformversion")
    return EcsAppSpec(
        task_definition=task_definition,
        container_name=_text("LoadBalancerInfo.ContainerName", lb["containername"]),
        container_port=port,
        platform_version=None if platform is None else _text("PlatformVersion", platform),
        network_configuration=_network(props.get("networkconfiguration")),
        capacity_provider_strategy=_capacity(props.get("capacityproviderstrategy")),
        hooks=hook_functions(top.get("hooks"), ECS_HOOKS, "an ECS", EcsAppSpecError),
    )


def _network(raw: Any) -> Mapping[str, Any] | None:
    if raw is None:
        return None
    awsvpc = _lower_keys("NetworkConfiguration", raw).get("awsvpcconfiguration")
    fields = _lower_keys("NetworkConfiguration.AwsvpcConfiguration", awsvpc)
    names = {"subnets": "Subnets", "securitygroups": "SecurityGroups"}
    names["assignpublicip"] = "AssignPublicIp"
    missing = [name for key, name in names.items() if fields.get(key) is None]
    if missing:
        # AWS: all three or none (then the service's current network settings are used).
        raise EcsAppSpecError(
            "NetworkConfiguration.AwsvpcConfiguration needs Subnets, SecurityGroups and "
            f"AssignPublicIp together; {', '.join(missing)} missing."
        )
    assign = _text("AssignPublicIp", fields["assignpublicip"]).upper()
    if assign not in ("ENABLED", "DISABLED"):
        raise EcsAppSpecError(f"AssignPublicIp {assign!r} must be ENABLED or DISABLED.")
    return {
        "awsvpcConfiguration": {
            "subnets": _texts("Subnets", fields["subnets"]),
            "securityGroups": _texts("SecurityGroups", fields["securitygroups"]),
            "assignPublicIp": assign,
        }
    }


def _capacity(raw: Any) -> tuple[Mapping[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise EcsAppSpecError("CapacityProviderStrategy must be a non-empty list.")
    strategy: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        where = f"CapacityProviderStrategy[{i}]"
        fields = _lower_keys(where, item)
        if fields.get("capacityprovider") is None:
            raise EcsAppSpecError(f"{where} is missing CapacityProvider.")
        strategy.append(
            {
                "capacityProvider": _text(f"{where}.CapacityProvider", fields["capacityprovider"]),
                "base": _integer(f"{where}.Base", fields.get("base"), 0),
                "weight": _integer(f"{where}.Weight", fields.get("weight"), 0),
            }
        )
    if all(s["weight"] <= 0 for s in strategy):
        raise EcsAppSpecError("CapacityProviderStrategy needs a provider with Weight above 0.")
    return tuple(strategy)
