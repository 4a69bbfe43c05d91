"""Elastic Load Balancing v2 as the load balancer of BlockTraffic and AllowTraffic, against a real
``moto_server`` process (one per module), reached through boto3's standard configuration only
(``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2``, the credential and region variables).

moto stores targets and answers every registered target ``healthy`` at once, with no draining
state (components.md §C): the calls and the final state are checked here; a target that never
turns healthy is played by a stub client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import EffectorError
from opendeploy.engine.effectors.elbv2 import ELBv2Driver
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
from opendeploy.engine.effectors.providers import traffic_controller
from tests.revisions.servers import free_port, moto_server

LB = LoadBalancerInfo(target_groups=("web",))


class _Quiet:
    def report(self, line: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """A moto_server, and boto3's standard environment pointing at it (no flag of ours); the id
    of a VPC in it."""
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", endpoint)
        env.setenv("AWS_ENDPOINT_URL_EC2", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        env.delenv("AWS_PROFILE", raising=False)
        # moto checks a target group's VPC; its first EC2 call takes seconds: one per module.
        yield boto3.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]


_COUNT = iter(range(1000))


def _target_group(vpc: str, targets: list[dict[str, Any]]) -> tuple[Any, str, str]:
    """A fresh ip target group holding ``targets``; (client, its name, its ARN)."""
    elb = boto3.client("elbv2")
    name = f"web-{next(_COUNT)}"
    arn = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip")[
        "TargetGroups"
    ][0]["TargetGroupArn"]
    elb.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "5"}],
    )
    if targets:
        elb.register_targets(TargetGroupArn=arn, Targets=targets)
    return elb, name, arn


def _registered(elb: Any, arn: str) -> dict[str, str]:
    answer = elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {
        f"{d['Target']['Id']}:{d['Target']['Port']}": d["TargetHealth"]["State"] for d in answer
    }


def _declared(target_group: str, servers: dict[str, str], **extra: Any) -> LoadBalancerDeclarations:
    spec = {"elbv2": {"target_group": target_group}, "servers": servers, **extra}
    return LoadBalancerDeclarations.parse({"target_groups": {"web": spec}})


def test_block_deregisters_allow_registers_and_state_reads_target_health(aws: str) -> None:
    elb, name, arn = _target_group(aws, [{"Id": "10.0.0.1", "Port": 8080}, {"Id": "10.0.0.2"}])
    # By name (looked up once) for one test, by ARN in the others.
    controller = traffic_controller(
        _declared(name, {"host-1": "10.0.0.1:8080", "host-2": "10.0.0.2"})
    )
    message = controller.block("host-1", LB, _Quiet())
    assert message.startswith(
        f"host-1 out of target group web (ELBv2 target group {name} (target 10.0.0.1:8080), "
        "drained in"
    )
    assert _registered(elb, arn) == {"10.0.0.2:80": "healthy"}
    state = {h.host: h for h in controller.state(LB)}
    assert list(state) == ["host-2"] and state["host-2"].serving
    # Again: a rerun after a crash does no harm.
    controller.block("host-1", LB, _Quiet())
    assert "healthy after" in controller.allow("host-1", LB, _Quiet())
    assert _registered(elb, arn) == {"10.0.0.1:8080": "healthy", "10.0.0.2:80": "healthy"}
    assert {(h.host, h.state, h.serving) for h in controller.state(LB)} == {
        ("host-1", "healthy", True),
        ("host-2", "healthy", True),
    }
    with pytest.raises(EffectorError, match="ELBv2 weighs target groups on a listener"):
        controller.set_weights(LB, {"host-1": 0}, _Quiet())


def test_aws_refusals_and_an_unreachable_endpoint_name_the_group_host_and_answer(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = traffic_controller(_declared("nope", {"host-1": "10.0.0.1"}))
    with pytest.raises(EffectorError) as info:
        missing.block("host-1", LB, _Quiet())
    assert str(info.value) == (
        "ELBv2 target group nope refused DescribeTargetGroups for host-1: TargetGroupNotFound: "
        "One or more target groups not found"
    )
    monkeypatch.setenv(
        "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2", f"http://127.0.0.1:{free_port()}"
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
    unreachable = traffic_controller(_declared(arn, {"host-1": "10.0.0.1"}))
    with pytest.raises(EffectorError) as info:
        unreachable.allow("host-1", LB, _Quiet())
    message = str(info.value)
    assert message.startswith(
        f"cannot reach Elastic Load Balancing for ELBv2 target group {arn} (RegisterTargets for "
        "host-1): Could not connect to the endpoint URL"
    )


class _NeverHealthy:
    """An ELB whose health check keeps failing (moto reports every target healthy)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def register_targets(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("RegisterTargets")
        return {}

    def describe_target_health(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("DescribeTargetHealth")
        health = {
            "State": "unhealthy",
            "Reason": "Target.FailedHealthChecks",
            "Description": "Health checks failed",
        }
        return {
            "TargetHealthDescriptions": [{"Target": kwargs["Targets"][0], "TargetHealth": health}]
        }


def test_a_target_never_healthy_fails_allow_with_elbs_reason() -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
    group = _declared(arn, {"host-1": "i-0abc"}, healthy_timeout_seconds=0.3).target_groups["web"]
    client = _NeverHealthy()
    with pytest.raises(EffectorError) as info:
        ELBv2Driver(lambda: client).ready(group, "host-1", _Quiet())
    assert str(info.value) == (
        f"ELB did not report host-1 healthy in ELBv2 target group {arn} (target i-0abc) within "
        "0.3 s (it said: unhealthy, Target.FailedHealthChecks, Health checks failed)"
    )
    assert client.calls[0] == "RegisterTargets" and len(client.calls) > 2


class _GivenUp:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def report(self, line: str) -> None:
        self.lines.append(line)

    def cancelled(self) -> bool:
        return bool(self.lines)


def test_a_drain_given_up_registers_the_target_again(aws: str) -> None:
    elb, _name, arn = _target_group(aws, [{"Id": "10.0.0.1"}])
    controller = traffic_controller(_declared(arn, {"host-1": "10.0.0.1"}))
    with pytest.raises(EffectorError, match="deregistering host-1 from .* was given up"):
        controller.block("host-1", LB, _GivenUp())
    assert _registered(elb, arn) == {"10.0.0.1:80": "healthy"}
