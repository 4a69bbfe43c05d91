"""The ECS AppSpec parser: AWS's documented example in YAML and JSON, case-insensitive keys, and
each rule of platforms.md §4.2 broken once, with the message naming the field."""

from __future__ import annotations

import json

import pytest
import yaml

from opendeploy.appspec.ecs_spec import EcsAppSpecError, parse_ecs_appspec

ARN = "arn:aws:ecs:us-east-1:111122223333:task-definition/web:2"

EXAMPLE = f"""
version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: "{ARN}"
        LoadBalancerInfo:
          ContainerName: "web"
          ContainerPort: 80
        PlatformVersion: "LATEST"
        NetworkConfiguration:
          AwsvpcConfiguration:
            Subnets: ["subnet-a", "subnet-b"]
            SecurityGroups: ["sg-1"]
            AssignPublicIp: "ENABLED"
        CapacityProviderStrategy:
          - Base: 1
            CapacityProvider: "FARGATE_SPOT"
            Weight: 2
          - CapacityProvider: "FARGATE"
Hooks:
  - BeforeInstall: "fnA"
  - AfterInstall: "fnB"
  - AfterAllowTestTraffic: "fnC"
  - BeforeAllowTraffic: "fnD"
  - AfterAllowTraffic: "fnE"
"""


def test_the_documented_example_in_yaml_and_json_reads_alike() -> None:
    spec = parse_ecs_appspec(EXAMPLE)
    assert (spec.task_definition, spec.container_name, spec.container_port) == (ARN, "web", 80)
    assert spec.platform_version == "LATEST"
    assert spec.network_configuration == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"],
            "securityGroups": ["sg-1"],
            "assignPublicIp": "ENABLED",
        }
    }
    assert spec.capacity_provider_strategy == (
        {"capacityProvider": "FARGATE_SPOT", "base": 1, "weight": 2},
        {"capacityProvider": "FARGATE", "base": 0, "weight": 0},
    )
    assert list(spec.hooks) == [
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ]
    assert parse_ecs_appspec(json.dumps(yaml.safe_load(EXAMPLE))) == spec


def test_keys_are_matched_whatever_their_case_and_optional_parts_may_be_left_out() -> None:
    spec = parse_ecs_appspec(
        "resources:\n  - svc:\n      type: aws::ecs::service\n      properties:\n"
        f"        taskdefinition: {ARN}\n"
        "        loadbalancerinfo: {containername: web, containerport: '8080'}\n"
        "hooks:\n  - afterallowtesttraffic: check\n"
    )
    assert (spec.container_port, spec.network_configuration, spec.platform_version) == (
        8080,
        None,
        None,
    )
    assert spec.capacity_provider_strategy == ()
    assert dict(spec.hooks) == {"AfterAllowTestTraffic": "check"}


def _with(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[1, 2]", "The AppSpec must be a mapping"),
        ("Resources: []", "exactly one resource"),
        (_with("AWS::ECS::Service", "AWS::Lambda::Function"), "needs AWS::ECS::Service"),
        (_with(f'TaskDefinition: "{ARN}"', "TaskDefinition: web:2"), "not a task definition ARN"),
        (_with('ContainerName: "web"', ""), "LoadBalancerInfo is missing ContainerName"),
        (_with("ContainerPort: 80", "ContainerPort: eighty"), "ContainerPort must be a number"),
        (_with("ContainerPort: 80", "ContainerPort: 70000"), "is not a port"),
        (_with('SecurityGroups: ["sg-1"]', ""), "SecurityGroups missing"),
        (_with('AssignPublicIp: "ENABLED"', "AssignPublicIp: MAYBE"), "ENABLED or DISABLED"),
        (_with("Weight: 2", "Weight: 0"), "a provider with Weight above 0"),
        (_with('- BeforeInstall: "fnA"', "- Install: fnA"), "not an ECS lifecycle event"),
        (_with('- AfterInstall: "fnB"', '- BeforeInstall: "fnB"'), "BeforeInstall is given more"),
        ("{not json", "neither valid YAML nor JSON"),
    ],
)
def test_each_broken_rule_is_named(text: str, error: str) -> None:
    with pytest.raises(EcsAppSpecError, match=error):
        parse_ecs_appspec(text)
