"""The AWS providers of ECS deployments against a real ``moto_server`` process: the replacement
task set, the primary swap, the weighted listener and the deletion, each read back from moto;
reruns that find what the first run made; AWS's refusals as clear messages.

moto needs a bridge-mode task definition and a registered container instance for task sets
(components.md §C), and one attempt per call (a retried CreateTaskSet leaves another task set).
The clients come from boto3's standard configuration: the test sets ``AWS_ENDPOINT_URL`` and
the rest in the environment, as a user would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from opendeploy.engine.effectors.containers import ContainerPlatformError, EcsService, TaskSetSpec
from opendeploy.engine.effectors.ecs_aws import AwsEcsPlatform, ElbV2Listeners
from tests.revisions.servers import moto_server

pytestmark = pytest.mark.xdist_group("moto-ecs")


class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def report(self, line: str) -> None:
        self.lines.append(line)

    def cancelled(self) -> bool:
        return False


@dataclass
class Estate:
    service: EcsService
    task_definitions: list[str]
    blue: str  # target group ARNs
    green: str
    listener: str


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_MAX_ATTEMPTS": "1",
        }.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture
def estate(aws_env: None, request: pytest.FixtureRequest) -> Estate:
    """A cluster with one container instance, a CODE_DEPLOY service on target group A, a
    listener forwarding to A, and target group B for the replacement; names unique per test."""
    s = boto3.session.Session()
    ec2, ecs, elb = s.client("ec2"), s.client("ecs"), s.client("elbv2")
    tag = request.node.name[-20:].replace("[", "").replace("]", "").replace("_", "")[-12:]
    cluster = f"c{tag}"
    ecs.create_cluster(clusterName=cluster)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    ecs.register_container_instance(
        cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]})
    )
    definitions = [
        ecs.register_task_definition(
            family=f"web{tag}",
            networkMode="bridge",
            containerDefinitions=[
                {
                    "name": "web",
                    "image": image,
                    "memory": 64,
                    "portMappings": [{"containerPort": 80}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        for image in ("web:v1", "web:v2")
    ]
    lb = elb.create_load_balancer(Name=f"lb{tag}", Subnets=subnets)["LoadBalancers"][0]
    groups = [
        elb.create_target_group(Name=f"{n}{tag}", Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for n in ("a", "b")
    ]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": groups[0]}],
    )["Listeners"][0]["ListenerArn"]
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=definitions[0],
        desiredCount=2,
        deploymentController={"type": "CODE_DEPLOY"},
        loadBalancers=[{"targetGroupArn": groups[0], "containerName": "web", "containerPort": 80}],
    )
    return Estate(EcsService(cluster, "web"), definitions, groups[0], groups[1], listener)


def _spec(estate: Estate, deployment: str = "d-EXAMPLE01") -> TaskSetSpec:
    return TaskSetSpec(
        task_definition=estate.task_definitions[1],
        container_name="web",
        container_port=80,
        target_group=estate.green,
        external_id=deployment,
    )


def test_a_replacement_task_set_is_made_once_shifted_to_and_made_primary(estate: Estate) -> None:
    ecs, listeners = AwsEcsPlatform(poll_seconds=0.05), ElbV2Listeners()
    made = ecs.create_task_set(estate.service, _spec(estate))
    assert (made.status, made.task_definition, made.external_id) == (
        "ACTIVE",
        estate.task_definitions[1],
        "d-EXAMPLE01",
    )
    assert made.target_groups == (estate.green,)
    # A rerun (the first run's answer lost) finds the task set instead of making a second one.
    again = ecs.create_task_set(estate.service, _spec(estate))
    assert again.identifier == made.identifier
    assert [t.identifier for t in ecs.task_sets(estate.service)] == [made.identifier]
    assert ecs.wait_steady(estate.service, made.identifier, 10, Quiet()).steady

    assert listeners.forwards(estate.listener) == {estate.blue: 1}
    listeners.forward(estate.listener, {estate.blue: 90, estate.green: 10})
    assert listeners.forwards(estate.listener) == {estate.blue: 90, estate.green: 10}
    listeners.forward(estate.listener, {estate.blue: 0, estate.green: 100})
    assert listeners.forwards(estate.listener) == {estate.blue: 0, estate.green: 100}

    ecs.make_primary(estate.service, made.identifier)
    (primary,) = ecs.task_sets(estate.service)
    assert (primary.identifier, primary.status) == (made.identifier, "PRIMARY")
    service = boto3.client("ecs").describe_services(
        cluster=estate.service.cluster, services=["web"]
    )["services"][0]
    assert service["taskDefinition"] == estate.task_definitions[1]


def test_a_deleted_task_set_is_gone_and_deleting_it_again_is_no_error(estate: Estate) -> None:
    ecs = AwsEcsPlatform(poll_seconds=0.05)
    made = ecs.create_task_set(estate.service, _spec(estate, "d-EXAMPLE02"))
    ecs.delete_task_set(estate.service, made.identifier)
    assert all(
        t.identifier != made.identifier or t.status == "DRAINING"
        for t in ecs.task_sets(estate.service)
    )
    ecs.delete_task_set(estate.service, made.identifier)


def test_unknown_clusters_services_and_listeners_are_named_in_the_error(estate: Estate) -> None:
    ecs, listeners = AwsEcsPlatform(), ElbV2Listeners()
    with pytest.raises(
        ContainerPlatformError, match=r"ECS has no service nope in cluster .*MISSING"
    ):
        ecs.task_sets(EcsService(estate.service.cluster, "nope"))
    with pytest.raises(
        ContainerPlatformError,
        match=r"describe_services for service web in cluster nowhere failed: ClusterNotFound",
    ):
        ecs.task_sets(EcsService("nowhere", "web"))
    with pytest.raises(
        ContainerPlatformError, match=r"ELBv2 DescribeListeners for arn:nope failed"
    ):
        listeners.forwards("arn:nope")
