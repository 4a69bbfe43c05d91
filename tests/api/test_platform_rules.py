"""What each compute platform can run, through real boto3 against ``opendeploy server``.

The predefined Lambda and ECS configurations as GetDeploymentConfig / ListDeploymentConfigs
answer them, AWS's rules for a custom ``trafficRoutingConfig``, and what is refused at create time
because it could not run: instance selection on Lambda and ECS groups, an ECS group without its
service, a revision type the platform cannot deploy, ``targetInstances`` outside blue/green; the
blue/green configuration's checks and the Blue/Green labels of a blue/green deployment's
targets. One server per database for the module.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendeploy.store.database import Store
from opendeploy.testing.server import RunningServer
from tests.conftest import server_on

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
S3 = {
    "revisionType": "S3",
    "s3Location": {"bucket": "b", "key": "app.zip", "bundleType": "zip", "eTag": "abc"},
}
GITHUB = {"revisionType": "GitHub", "gitHubLocation": {"repository": "o/r", "commitId": "abc"}}
LAMBDA_APPSPEC = """\
version: 0.0
Resources:
  - fn:
      Type: AWS::Lambda::Function
      Properties: {Name: fn, Alias: live, CurrentVersion: "1", TargetVersion: "2"}
"""
APPSPEC_CONTENT = {"revisionType": "AppSpecContent", "appSpecContent": {"content": LAMBDA_APPSPEC}}
STRING = {"revisionType": "String", "string": {"content": LAMBDA_APPSPEC}}


def ecs_service() -> dict[str, str]:
    """A service of its own: an ECS service belongs to one deployment group at most."""
    return {"serviceName": f"web-{uuid.uuid4().hex[:8]}", "clusterName": "prod"}


BLUE_GREEN = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
TAG = [{"Key": "role", "Value": "web", "Type": "KEY_AND_VALUE"}]


@pytest.fixture(scope="module")
def served(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    data = tmp_path_factory.mktemp(f"rules-{module_backend}")
    with server_on(module_backend, data) as pair:
        yield pair


@pytest.fixture(scope="module")
def cd(served: tuple[RunningServer, str]) -> Any:
    return served[0].client("codedeploy")


def refused(call: Callable[[], Any], code: str, *fragments: str) -> str:
    """The message of the error ``call`` fails with, after checking its code and words."""
    with pytest.raises(ClientError) as exc:
        call()
    error = exc.value.response["Error"]
    assert error["Code"] == code, error
    for fragment in fragments:
        assert fragment in error["Message"], error["Message"]
    return str(error["Message"])


def new_app(cd: Any, platform: str) -> str:
    name = f"{platform.lower()}-{uuid.uuid4().hex[:8]}"
    cd.create_application(applicationName=name, computePlatform=platform)
    return name


# --- deployment configurations ------------------------------------------------------------------


def _canary(p: int, i: int) -> dict[str, Any]:
    return {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": p, "canaryInterval": i},
    }


def _linear(p: int, i: int) -> dict[str, Any]:
    return {
        "type": "TimeBasedLinear",
        "timeBasedLinear": {"linearPercentage": p, "linearInterval": i},
    }


#: AWS's predefined Lambda and ECS configurations (user guide, "Working with deployment
#: configurations"): what GetDeploymentConfig answers for each.
PREDEFINED_TRAFFIC = {
    "CodeDeployDefault.LambdaAllAtOnce": ("Lambda", {"type": "AllAtOnce"}),
    "CodeDeployDefault.LambdaCanary10Percent5Minutes": ("Lambda", _canary(10, 5)),
    "CodeDeployDefault.LambdaCanary10Percent10Minutes": ("Lambda", _canary(10, 10)),
    "CodeDeployDefault.LambdaCanary10Percent15Minutes": ("Lambda", _canary(10, 15)),
    "CodeDeployDefault.LambdaCanary10Percent30Minutes": ("Lambda", _canary(10, 30)),
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute": ("Lambda", _linear(10, 1)),
    "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes": ("Lambda", _linear(10, 2)),
    "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes": ("Lambda", _linear(10, 3)),
    "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes": ("Lambda", _linear(10, 10)),
    "CodeDeployDefault.ECSAllAtOnce": ("ECS", {"type": "AllAtOnce"}),
    "CodeDeployDefault.ECSLinear10PercentEvery1Minutes": ("ECS", _linear(10, 1)),
    "CodeDeployDefault.ECSLinear10PercentEvery3Minutes": ("ECS", _linear(10, 3)),
    "CodeDeployDefault.ECSCanary10Percent5Minutes": ("ECS", _canary(10, 5)),
    "CodeDeployDefault.ECSCanary10Percent15Minutes": ("ECS", _canary(10, 15)),
}


def test_predefined_lambda_and_ecs_configurations_answer_as_aws(cd: Any) -> None:
    listed = [
        name
        for page in cd.get_paginator("list_deployment_configs").paginate()
        for name in page["deploymentConfigsList"]
    ]
    assert set(PREDEFINED_TRAFFIC) <= set(listed)
    # The spelling differs between the platforms, as on AWS.
    assert "CodeDeployDefault.LambdaLinear10PercentEvery1Minutes" not in listed
    assert "CodeDeployDefault.ECSLinear10PercentEvery1Minute" not in listed
    for name, (platform, routing) in PREDEFINED_TRAFFIC.items():
        info = cd.get_deployment_config(deploymentConfigName=name)["deploymentConfigInfo"]
        assert info["deploymentConfigName"] == name
        assert info["computePlatform"] == platform
        assert info["trafficRoutingConfig"] == routing
        assert "minimumHealthyHosts" not in info
        assert info["deploymentConfigId"]


def test_custom_traffic_routing_configuration(cd: Any) -> None:
    name = f"canary-{uuid.uuid4().hex[:8]}"
    # A stray member of the other type is dropped: the answer has the one shape.
    sent = {**_canary(25, 7), "timeBasedLinear": {"linearPercentage": 5, "linearInterval": 1}}
    cd.create_deployment_config(
        deploymentConfigName=name, computePlatform="Lambda", trafficRoutingConfig=sent
    )
    info = cd.get_deployment_config(deploymentConfigName=name)["deploymentConfigInfo"]
    assert info["computePlatform"] == "Lambda"
    assert info["trafficRoutingConfig"] == _canary(25, 7)
    assert "minimumHealthyHosts" not in info
    longest = f"linear-{uuid.uuid4().hex[:8]}"
    cd.create_deployment_config(
        deploymentConfigName=longest, computePlatform="ECS", trafficRoutingConfig=_linear(10, 320)
    )
    assert cd.get_deployment_config(deploymentConfigName=longest)["deploymentConfigInfo"][
        "trafficRoutingConfig"
    ] == _linear(10, 320)


@pytest.mark.parametrize(
    ("routing", "fragment"),
    [
        (_canary(100, 5), "canaryPercentage 100 is not valid"),
        (_canary(0, 5), "canaryPercentage 0 is not valid"),
        (_canary(10, 0), "canaryInterval 0 is not valid"),
        (_canary(10, 2881), "the maximum is 2880 minutes"),
        (_linear(10, 321), "puts 2889 minutes between the first and the last traffic shift"),
        (_linear(99, -1), "linearInterval -1 is not valid"),
        ({"type": "TimeBasedLinear"}, "needs timeBasedLinear"),
        (
            {"type": "TimeBasedCanary", "timeBasedLinear": _linear(10, 1)["timeBasedLinear"]},
            "A TimeBasedCanary traffic routing configuration needs timeBasedCanary",
        ),
        ({"type": "Sometimes"}, "Member must satisfy enum value set"),
    ],
)
def test_what_aws_refuses_in_a_traffic_routing_configuration(
    cd: Any, routing: dict[str, Any], fragment: str
) -> None:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    refused(
        lambda: cd.create_deployment_config(
            deploymentConfigName=name, computePlatform="Lambda", trafficRoutingConfig=routing
        ),
        "InvalidTrafficRoutingConfigurationException",
        fragment,
    )
    refused(
        lambda: cd.get_deployment_config(deploymentConfigName=name),
        "DeploymentConfigDoesNotExistException",
    )


# --- deployment groups that could not run -------------------------------------------------------


@pytest.mark.parametrize("platform", ["Lambda", "ECS"])
def test_lambda_and_ecs_groups_refuse_instance_selection(cd: Any, platform: str) -> None:
    app = new_app(cd, platform)
    extra = {"ecsServices": [ecs_service()]} if platform == "ECS" else {}

    def create(**settings: Any) -> Callable[[], Any]:
        return lambda: cd.create_deployment_group(
            applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE, **extra, **settings
        )

    each: list[tuple[dict[str, Any], str, str]] = [
        ({"ec2TagFilters": TAG}, "InvalidEC2TagException", "ec2TagFilters"),
        ({"ec2TagSet": {"ec2TagSetList": [TAG]}}, "InvalidEC2TagException", "ec2TagSet"),
        (
            {"onPremisesInstanceTagFilters": TAG},
            "InvalidTagException",
            "onPremisesInstanceTagFilters",
        ),
        (
            {"onPremisesTagSet": {"onPremisesTagSetList": [TAG]}},
            "InvalidTagException",
            "onPremisesTagSet",
        ),
        ({"autoScalingGroups": ["asg-1"]}, "InvalidAutoScalingGroupException", "autoScalingGroups"),
    ]
    for settings, code, member in each:
        message = refused(create(**settings), code)
        assert message == f"For {platform} deployment group, {member} can not be specified"
    # Empty selections select nothing, so they are accepted (tools send them).
    create(ec2TagFilters=[], onPremisesTagSet={"onPremisesTagSetList": []}, autoScalingGroups=[])()

    def update(**settings: Any) -> Callable[[], Any]:
        return lambda: cd.update_deployment_group(
            applicationName=app, currentDeploymentGroupName="g", **settings
        )

    refused(update(onPremisesInstanceTagFilters=TAG), "InvalidTagException")
    refused(update(autoScalingGroups=["asg-1"]), "InvalidAutoScalingGroupException")
    info = cd.get_deployment_group(applicationName=app, deploymentGroupName="g")
    assert not info["deploymentGroupInfo"].get("onPremisesInstanceTagFilters")


def test_an_ecs_group_needs_its_service_and_no_other_platform_takes_one(cd: Any) -> None:
    app = new_app(cd, "ECS")
    base = {"applicationName": app, "deploymentGroupName": "g", "serviceRoleArn": ROLE}
    refused(
        lambda: cd.create_deployment_group(**base),
        "InvalidECSServiceException",
        "For ECS deployment group, ecsServices must be specified",
    )
    refused(
        lambda: cd.create_deployment_group(**base, ecsServices=[]),
        "InvalidECSServiceException",
    )
    refused(
        lambda: cd.create_deployment_group(**base, ecsServices=[{"serviceName": "web"}]),
        "InvalidECSServiceException",
        "both serviceName and clusterName must be specified",
    )
    service = ecs_service()
    cd.create_deployment_group(**base, ecsServices=[service], deploymentStyle=BLUE_GREEN)
    refused(
        lambda: cd.update_deployment_group(
            applicationName=app, currentDeploymentGroupName="g", ecsServices=[]
        ),
        "InvalidECSServiceException",
    )
    # An update that leaves ecsServices out keeps them.
    cd.update_deployment_group(
        applicationName=app,
        currentDeploymentGroupName="g",
        deploymentConfigName="CodeDeployDefault.ECSCanary10Percent5Minutes",
    )
    info = cd.get_deployment_group(applicationName=app, deploymentGroupName="g")
    assert info["deploymentGroupInfo"]["ecsServices"] == [service]
    # The service is this group's: another group, of any application, cannot take it, while
    # the group itself may name it again.
    refused(
        lambda: cd.create_deployment_group(
            **{**base, "applicationName": new_app(cd, "ECS")}, ecsServices=[service]
        ),
        "ECSServiceMappingLimitExceededException",
        f"The Amazon ECS service {service['serviceName']} in cluster prod is already associated",
    )
    cd.update_deployment_group(
        applicationName=app, currentDeploymentGroupName="g", ecsServices=[service]
    )
    for platform in ("Server", "Lambda"):
        other = new_app(cd, platform)
        refused(
            lambda other=other: cd.create_deployment_group(  # type: ignore[misc]
                applicationName=other,
                deploymentGroupName="g",
                serviceRoleArn=ROLE,
                ecsServices=[ecs_service()],
            ),
            "InvalidECSServiceException",
            f"For {platform} deployment group, ecsServices can not be specified",
        )


# --- deployments that could not run -------------------------------------------------------------


def _deployments(cd: Any, app: str, group: str) -> list[str]:
    listed: list[str] = cd.list_deployments(applicationName=app, deploymentGroupName=group)[
        "deployments"
    ]
    return listed


def test_a_revision_type_the_platform_cannot_deploy_is_refused(cd: Any) -> None:
    server = new_app(cd, "Server")
    cd.create_deployment_group(
        applicationName=server, deploymentGroupName="g", serviceRoleArn=ROLE, ec2TagFilters=TAG
    )
    lambda_app = new_app(cd, "Lambda")
    cd.create_deployment_group(
        applicationName=lambda_app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        deploymentStyle=BLUE_GREEN,
    )
    ecs = new_app(cd, "ECS")
    cd.create_deployment_group(
        applicationName=ecs,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        ecsServices=[ecs_service()],
        deploymentStyle=BLUE_GREEN,
    )
    cases = [
        (server, APPSPEC_CONTENT, "AppSpecContent", "EC2/on-premises", "use S3 or GitHub"),
        (server, STRING, "String", "EC2/on-premises", "use S3 or GitHub"),
        (lambda_app, GITHUB, "GitHub", "AWS Lambda", "use S3 or String or AppSpecContent"),
        (ecs, GITHUB, "GitHub", "Amazon ECS", "use S3 or AppSpecContent"),
        (ecs, STRING, "String", "Amazon ECS", "use S3 or AppSpecContent"),
    ]
    for app, revision, kind, words, advice in cases:
        message = refused(
            lambda app=app, revision=revision: cd.create_deployment(  # type: ignore[misc]
                applicationName=app, deploymentGroupName="g", revision=revision
            ),
            "InvalidRevisionException",
            advice,
        )
        assert message.startswith(f"The revision type {kind} is not supported for an {words}")
        assert _deployments(cd, app, "g") == []
    # What each platform can deploy is accepted (nothing here runs them to the end).
    lambda_deployment = cd.create_deployment(
        applicationName=lambda_app, deploymentGroupName="g", revision=APPSPEC_CONTENT
    )["deploymentId"]
    assert _deployments(cd, lambda_app, "g") == [lambda_deployment]


def test_target_instances_belong_to_blue_green_on_ec2_only(cd: Any) -> None:
    server = new_app(cd, "Server")
    cd.create_deployment_group(
        applicationName=server, deploymentGroupName="g", serviceRoleArn=ROLE, ec2TagFilters=TAG
    )
    lambda_app = new_app(cd, "Lambda")
    cd.create_deployment_group(
        applicationName=lambda_app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        deploymentStyle=BLUE_GREEN,
    )
    green = {"tagFilters": [{"Key": "fleet", "Value": "green", "Type": "KEY_AND_VALUE"}]}
    refused(
        lambda: cd.create_deployment(
            applicationName=server, deploymentGroupName="g", revision=S3, targetInstances=green
        ),
        "InvalidTargetInstancesException",
        "only for a blue/green deployment on EC2/on-premises instances",
        "deployment group 'g' deploys in place.",
    )
    refused(
        lambda: cd.create_deployment(
            applicationName=lambda_app,
            deploymentGroupName="g",
            revision=APPSPEC_CONTENT,
            targetInstances=green,
        ),
        "InvalidTargetInstancesException",
        "deploys to the Lambda compute platform",
    )
    assert _deployments(cd, server, "g") == _deployments(cd, lambda_app, "g") == []


def test_an_ecs_group_stored_without_its_service_cannot_deploy(
    cd: Any, served: tuple[RunningServer, str]
) -> None:
    """A group recorded before CreateDeploymentGroup refused it (written to the store here)."""
    app = new_app(cd, "ECS")
    store = Store.open(served[1])
    try:
        application_id = store.applications.require(app)["application_id"]
        store.deployment_groups.create(
            application_id=application_id,
            app_name=app,
            name="old",
            settings={
                "compute_platform": "ECS",
                "deployment_config_name": "CodeDeployDefault.ECSAllAtOnce",
            },
            now=datetime.now(UTC),
        )
    finally:
        store.close()
    refused(
        lambda: cd.create_deployment(
            applicationName=app, deploymentGroupName="old", revision=APPSPEC_CONTENT
        ),
        "InvalidECSServiceException",
        "Deployment group 'old' names no Amazon ECS service (ecsServices) to deploy to.",
    )
    assert _deployments(cd, app, "old") == []


# --- blue/green on EC2/on-premises ---------------------------------------------------------------


def _bg_group(cd: Any, app: str, name: str, **extra: Any) -> None:
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName=name,
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=extra.pop("tags", TAG),
        deploymentStyle=BLUE_GREEN,
        loadBalancerInfo={"targetGroupInfoList": [{"name": "tg"}]},
        **extra,
    )


def test_blue_green_group_configuration_is_checked_as_aws_does(cd: Any) -> None:
    app = new_app(cd, "Server")
    cases = [
        (
            {
                "deploymentReadyOption": {
                    "actionOnTimeout": "CONTINUE_DEPLOYMENT",
                    "waitTimeInMinutes": 5,
                }
            },
            "Deployment ready action cannot be set to 'CONTINUE_DEPLOYMENT' when timeout",
        ),
        ({"deploymentReadyOption": {"actionOnTimeout": "LATER"}}, "enum value set"),
        (
            {
                "terminateBlueInstancesOnDeploymentSuccess": {
                    "action": "TERMINATE",
                    "terminationWaitTimeInMinutes": 2881,
                }
            },
            "0 to 2880",
        ),
        (
            {"greenFleetProvisioningOption": {"action": "COPY_AUTO_SCALING_GROUP"}},
            "Exactly one AutoScaling group must be specifed",
        ),
    ]
    for config, words in cases:
        refused(
            functools.partial(_bg_group, cd, app, "bad", blueGreenDeploymentConfiguration=config),
            "InvalidBlueGreenDeploymentConfigurationException",
            words,
        )
    _bg_group(cd, app, "ok")
    refused(
        lambda: cd.update_deployment_group(
            applicationName=app,
            currentDeploymentGroupName="ok",
            blueGreenDeploymentConfiguration=cases[0][0],
        ),
        "InvalidBlueGreenDeploymentConfigurationException",
        cases[0][1],
    )


def test_blue_green_deployment_labels_green_from_target_instances(cd: Any) -> None:
    app = new_app(cd, "Server")
    role = [{"Key": "bg-role", "Value": app, "Type": "KEY_AND_VALUE"}]
    green_tag = [{"Key": "bg-green", "Value": app, "Type": "KEY_AND_VALUE"}]
    hosts = {f"{app}-b1": "blue", f"{app}-b2": "blue", f"{app}-g1": "green"}
    for host, color in hosts.items():
        cd.register_on_premises_instance(
            instanceName=host, iamUserArn=f"arn:aws:iam::123456789012:user/{host}"
        )
        tags = [{"Key": "bg-role", "Value": app}]
        if color == "green":
            tags.append({"Key": "bg-green", "Value": app})
        cd.add_tags_to_on_premises_instances(instanceNames=[host], tags=tags)
    _bg_group(cd, app, "bg", tags=role)

    def create(**kw: Any) -> Any:
        return cd.create_deployment(
            applicationName=app, deploymentGroupName="bg", revision=S3, **kw
        )

    refused(create, "InvalidTargetInstancesException", "name the replacement (green) instances")
    refused(
        lambda: create(targetInstances={"autoScalingGroups": ["asg"]}),
        "InvalidTargetInstancesException",
        "Auto Scaling",
    )
    nobody = [{"Key": "bg-green", "Value": "nobody", "Type": "KEY_AND_VALUE"}]
    refused(
        lambda: create(targetInstances={"tagFilters": nobody}),
        "InvalidTargetInstancesException",
        "selects no registered instance",
    )
    assert _deployments(cd, app, "bg") == []
    dep = create(targetInstances={"tagFilters": green_tag})["deploymentId"]
    # The green instance also matches the group's tags: it is green only.
    blue = cd.list_deployment_instances(deploymentId=dep, instanceTypeFilter=["Blue"])
    green = cd.list_deployment_instances(deploymentId=dep, instanceTypeFilter=["Green"])
    assert sorted(blue["instancesList"]) == [f"{app}-b1", f"{app}-b2"]
    assert green["instancesList"] == [f"{app}-g1"]
    targets = cd.batch_get_deployment_targets(
        deploymentId=dep, targetIds=[f"{app}-g1", f"{app}-b1"]
    )
    labels = {
        t["instanceTarget"]["targetId"]: t["instanceTarget"]["instanceLabel"]
        for t in targets["deploymentTargets"]
    }
    assert labels == {f"{app}-g1": "Green", f"{app}-b1": "Blue"}
    # Green installs first; blue waits (no agent polls here, so green stays installing).
    deadline = time.monotonic() + 10
    while cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"] == "Created":
        assert time.monotonic() < deadline, "the engine did not start the deployment"
        time.sleep(0.05)
    statuses = {
        t["instanceTarget"]["targetId"]: t["instanceTarget"]["status"]
        for t in cd.batch_get_deployment_targets(
            deploymentId=dep, targetIds=[f"{app}-g1", f"{app}-b1", f"{app}-b2"]
        )["deploymentTargets"]
    }
    assert statuses == {f"{app}-g1": "InProgress", f"{app}-b1": "Pending", f"{app}-b2": "Pending"}
    refused(
        lambda: cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT"),
        "DeploymentIsNotInReadyStateException",
    )
    by_label = cd.list_deployment_targets(
        deploymentId=dep, targetFilters={"ServerInstanceLabel": ["Green"]}
    )
    assert by_label["targetIds"] == [f"{app}-g1"]
    # Instance types belong to blue/green deployments only (AWS's model).
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="inplace",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=role,
    )
    in_place = cd.create_deployment(
        applicationName=app, deploymentGroupName="inplace", revision=S3
    )["deploymentId"]
    for call in (
        lambda: cd.list_deployment_instances(deploymentId=in_place, instanceTypeFilter=["Blue"]),
        lambda: cd.list_deployment_targets(
            deploymentId=in_place, targetFilters={"ServerInstanceLabel": ["Blue"]}
        ),
    ):
        refused(call, "InvalidDeploymentInstanceTypeException", "blue/green deployments only")
    cd.stop_deployment(deploymentId=in_place)
    cd.stop_deployment(deploymentId=dep)
    refused(
        lambda: cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT"),
        "DeploymentAlreadyCompletedException",
    )


def test_lambda_and_ecs_deployments_are_blue_green_and_not_refused_for_it(cd: Any) -> None:
    """Lambda and ECS groups are BLUE_GREEN by nature (ECS tutorials set it): not refused."""
    app = new_app(cd, "ECS")
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        ecsServices=[ecs_service()],
        deploymentStyle=BLUE_GREEN,
    )
    ecs_appspec = {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"content": "version: 0.0\nResources: []\n"},
    }
    deployment = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=ecs_appspec
    )["deploymentId"]
    assert _deployments(cd, app, "g") == [deployment]


def test_a_configuration_of_another_platform_is_refused(cd: Any) -> None:
    server = new_app(cd, "Server")
    lambda_app = new_app(cd, "Lambda")
    refused(
        lambda: cd.create_deployment_group(
            applicationName=server,
            deploymentGroupName="g",
            serviceRoleArn=ROLE,
            deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
        ),
        "InvalidDeploymentConfigNameException",
        "The deployment configuration CodeDeployDefault.LambdaAllAtOnce is for the Lambda "
        "compute platform and cannot be used for a Server deployment.",
    )
    refused(
        lambda: cd.create_deployment_group(
            applicationName=lambda_app,
            deploymentGroupName="g",
            serviceRoleArn=ROLE,
            deploymentConfigName="CodeDeployDefault.OneAtATime",
        ),
        "InvalidDeploymentConfigNameException",
        "is for the Server compute platform and cannot be used for a Lambda deployment",
    )
    custom = f"ecs-{uuid.uuid4().hex[:8]}"
    cd.create_deployment_config(
        deploymentConfigName=custom, computePlatform="ECS", trafficRoutingConfig=_canary(5, 2)
    )
    cd.create_deployment_group(
        applicationName=server, deploymentGroupName="g", serviceRoleArn=ROLE, ec2TagFilters=TAG
    )
    refused(
        lambda: cd.update_deployment_group(
            applicationName=server, currentDeploymentGroupName="g", deploymentConfigName=custom
        ),
        "InvalidDeploymentConfigNameException",
        f"The deployment configuration {custom} is for the ECS compute platform",
    )
    refused(
        lambda: cd.create_deployment(
            applicationName=server,
            deploymentGroupName="g",
            revision=S3,
            deploymentConfigName="CodeDeployDefault.ECSAllAtOnce",
        ),
        "InvalidDeploymentConfigNameException",
    )
    assert _deployments(cd, server, "g") == []
    # The platform's own configurations are accepted.
    cd.create_deployment_group(
        applicationName=lambda_app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        deploymentConfigName="CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    )
    group = cd.get_deployment_group(applicationName=lambda_app, deploymentGroupName="g")
    assert group["deploymentGroupInfo"]["deploymentConfigName"] == (
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    )


def test_instance_settings_are_refused_on_lambda_and_ecs_deployments(cd: Any) -> None:
    lambda_app = new_app(cd, "Lambda")
    cd.create_deployment_group(
        applicationName=lambda_app, deploymentGroupName="g", serviceRoleArn=ROLE
    )
    ecs = new_app(cd, "ECS")
    cd.create_deployment_group(
        applicationName=ecs,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        ecsServices=[ecs_service()],
    )
    for app in (lambda_app, ecs):
        refused(
            lambda app=app: cd.create_deployment(  # type: ignore[misc]
                applicationName=app,
                deploymentGroupName="g",
                revision=APPSPEC_CONTENT,
                fileExistsBehavior="OVERWRITE",
            ),
            "InvalidFileExistsBehaviorException",
            "For Lambda and ECS deployment, fileExistsBehavior can not be specified",
        )

    def deploy(**settings: Any) -> Callable[[], Any]:
        return lambda: cd.create_deployment(
            applicationName=lambda_app,
            deploymentGroupName="g",
            revision=APPSPEC_CONTENT,
            **settings,
        )

    refused(
        deploy(ignoreApplicationStopFailures=True),
        "InvalidIgnoreApplicationStopFailuresValueException",
        "For Lambda deployments, ignoreApplicationStopFailures must be false",
    )
    refused(
        deploy(updateOutdatedInstancesOnly=True),
        "InvalidUpdateOutdatedInstancesOnlyValueException",
        "For Lambda deployments, updateOutdatedInstancesOnly must be false",
    )
    assert _deployments(cd, lambda_app, "g") == _deployments(cd, ecs, "g") == []
    # false is what a Lambda deployment expects, and is accepted.
    deploy(ignoreApplicationStopFailures=False, updateOutdatedInstancesOnly=False)()
    assert len(_deployments(cd, lambda_app, "g")) == 1
