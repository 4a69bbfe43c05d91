from __future__ import annotations

import re
from typing import Any

from tests.api._handler_ctx import Api, api_fixture  # noqa: F401 - the `api` fixture

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
S3 = {
    "revisionType": "S3",
    "s3Location": {"bucket": "b", "key": "app.zip", "bundleType": "zip", "eTag": '"abc"'},
}


def _fleet(api: Api, **tags_by_name: dict[str, str]) -> None:
    for name, tags in tags_by_name.items():
        api.RegisterOnPremisesInstance(
            instanceName=name, iamUserArn=f"arn:aws:iam::123456789012:user/{name}"
        )
        api.AddTagsToOnPremisesInstances(
            instanceNames=[name], tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )


def _setup(api: Api, **group: Any) -> None:
    api.CreateApplication(applicationName="app")
    api.CreateDeploymentGroup(
        applicationName="app", deploymentGroupName="prod", serviceRoleArn=ROLE, **group
    )


def test_create_deployment_resolves_targets_and_limits_active(api: Api) -> None:
    _fleet(api, web1={"Role": "web"}, web2={"Role": "web"}, db1={"Role": "db"})
    _setup(
        api, onPremisesInstanceTagFilters=[{"Key": "Role", "Value": "web", "Type": "KEY_AND_VALUE"}]
    )
    dep = api.CreateDeployment(
        applicationName="app",
        deploymentGroupName="prod",
        revision=S3,
        fileExistsBehavior="OVERWRITE",
        ignoreApplicationStopFailures=True,
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )["deploymentId"]
    assert re.fullmatch(r"d-[A-Z0-9]{9}", dep)
    info = api.GetDeployment(deploymentId=dep)["deploymentInfo"]
    assert info["status"] == "Created" and info["creator"] == "user"
    assert info["deploymentConfigName"] == "CodeDeployDefault.OneAtATime"
    assert info["fileExistsBehavior"] == "OVERWRITE" and info["ignoreApplicationStopFailures"]
    assert info["autoRollbackConfiguration"]["events"] == ["DEPLOYMENT_FAILURE"]
    assert info["deploymentOverview"]["Pending"] == 2
    assert info["revision"]["s3Location"]["eTag"] == "abc"
    assert api.ListDeploymentTargets(deploymentId=dep)["targetIds"] == ["web1", "web2"]
    target = api.GetDeploymentTarget(deploymentId=dep, targetId="web1")["deploymentTarget"]
    assert target["instanceTarget"]["status"] == "Pending"
    assert target["instanceTarget"]["targetArn"].startswith(
        "arn:aws:codedeploy:eu-west-1:123456789012:instance/web1_"
    )
    err = api.error(
        "CreateDeployment", applicationName="app", deploymentGroupName="prod", revision=S3
    )
    assert err.code == "DeploymentLimitExceededException"
    assert err.message == f"The Deployment Group 'prod' already has an active Deployment '{dep}'"
    # The revision was registered by the deployment, with its use recorded.
    rev = api.GetApplicationRevision(applicationName="app", revision=S3)["revisionInfo"]
    assert rev["deploymentGroups"] == ["prod"] and rev["firstUsedTime"] is not None
    group = api.GetDeploymentGroup(applicationName="app", deploymentGroupName="prod")
    assert group["deploymentGroupInfo"]["lastAttemptedDeployment"]["deploymentId"] == dep


def test_stop_and_already_completed(api: Api) -> None:
    _fleet(api, web1={"Role": "web"})
    _setup(
        api,
        onPremisesTagSet={
            "onPremisesTagSetList": [[{"Key": "Role", "Value": "web", "Type": "KEY_AND_VALUE"}]]
        },
    )
    dep = api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    # No engine behind these handlers: the request is recorded, and the engine ends it.
    assert api.StopDeployment(deploymentId=dep, autoRollbackEnabled=False)["status"] == "Pending"
    assert api.GetDeployment(deploymentId=dep)["deploymentInfo"]["status"] == "Created"
    api.run_engine()
    info = api.GetDeployment(deploymentId=dep)["deploymentInfo"]
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    assert info["deploymentOverview"]["Skipped"] == 1
    assert (
        api.error("StopDeployment", deploymentId=dep).code == "DeploymentAlreadyCompletedException"
    )
    # A finished deployment frees the group for the next one.
    api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)


def test_no_instances_fails_on_the_engines_first_pass(api: Api) -> None:
    """As AWS: CreateDeployment answers, clients see Created, then the deployment fails."""
    _setup(api, ec2TagFilters=[{"Key": "Name", "Value": "none", "Type": "KEY_AND_VALUE"}])
    dep = api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    assert api.GetDeployment(deploymentId=dep)["deploymentInfo"]["status"] == "Created"
    api.run_engine()
    info = api.GetDeployment(deploymentId=dep)["deploymentInfo"]
    assert info["status"] == "Failed" and info["errorInformation"]["code"] == "NO_INSTANCES"
    assert info["errorInformation"]["message"].startswith(
        "The deployment failed because no instances were found for your deployment group."
    )


def test_create_deployment_errors(api: Api) -> None:
    _setup(api)
    base = {"applicationName": "app", "deploymentGroupName": "prod"}
    assert api.error("CreateDeployment", **base).code == "RevisionRequiredException"
    assert api.error("CreateDeployment", **base, revision={"revisionType": "S3"}).code == (
        "InvalidRevisionException"
    )
    assert api.error(
        "CreateDeployment", applicationName="app", deploymentGroupName="x", revision=S3
    ).code == ("DeploymentGroupDoesNotExistException")
    assert api.error("CreateDeployment", **base, revision=S3, deploymentConfigName="nope").code == (
        "DeploymentConfigDoesNotExistException"
    )
    assert api.error("CreateDeployment", **base, revision=S3, fileExistsBehavior="KEEP").code == (
        "InvalidFileExistsBehaviorException"
    )
    assert api.error("CreateDeployment", **base, revision=S3, description="x" * 101).code == (
        "DescriptionTooLongException"
    )
    assert api.error("GetDeployment", deploymentId="d-123").code == "InvalidDeploymentIdException"
    assert api.error("GetDeployment", deploymentId="d-AAAAAAAAA").code == (
        "DeploymentDoesNotExistException"
    )


def test_list_deployments_filters_and_pages(api: Api) -> None:
    _setup(api, ec2TagFilters=[{"Key": "x", "Type": "KEY_ONLY"}])
    ids = []
    for _ in range(3):
        create = api.CreateDeployment(
            applicationName="app", deploymentGroupName="prod", revision=S3
        )
        ids.append(create["deploymentId"])
        api.run_engine()  # it fails (no instances), so the next may start
    listed = api.ListDeployments(applicationName="app", deploymentGroupName="prod")["deployments"]
    assert sorted(listed) == sorted(ids) and listed[0] == ids[-1]
    assert api.ListDeployments(includeOnlyStatuses=["Succeeded"])["deployments"] == []
    assert api.error("ListDeployments", applicationName="app").code == (
        "DeploymentGroupNameRequiredException"
    )
    assert api.error("ListDeployments", includeOnlyStatuses=["Done"]).code == (
        "InvalidDeploymentStatusException"
    )
    got = api.BatchGetDeployments(deploymentIds=ids)["deploymentsInfo"]
    assert {d["deploymentId"] for d in got} == set(ids)


def test_groups(api: Api) -> None:
    _setup(api)
    assert (
        api.error(
            "CreateDeploymentGroup",
            applicationName="app",
            deploymentGroupName="prod",
            serviceRoleArn=ROLE,
        ).code
        == "DeploymentGroupAlreadyExistsException"
    )
    assert (
        api.error(
            "CreateDeploymentGroup",
            applicationName="app",
            deploymentGroupName="g2",
            serviceRoleArn=ROLE,
            ec2TagFilters=[{"Key": "a"}],
            ec2TagSet={"ec2TagSetList": [[{"Key": "a"}]]},
        ).code
        == "InvalidEC2TagCombinationException"
    )
    assert (
        api.error(
            "CreateDeploymentGroup",
            applicationName="app",
            deploymentGroupName="g2",
            serviceRoleArn=ROLE,
            deploymentConfigName="bad name",
        ).code
        == "InvalidDeploymentConfigNameException"
    )
    api.UpdateDeploymentGroup(
        applicationName="app",
        currentDeploymentGroupName="prod",
        newDeploymentGroupName="live",
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
    )
    info = api.BatchGetDeploymentGroups(applicationName="app", deploymentGroupNames=["live", "x"])
    assert info["deploymentGroupsInfo"][0]["deploymentConfigName"] == "CodeDeployDefault.AllAtOnce"
    assert "x" in info["errorMessage"]
    api.DeleteDeploymentGroup(applicationName="app", deploymentGroupName="live")
    assert api.ListDeploymentGroups(applicationName="app")["deploymentGroups"] == []


def test_delete_application_keeps_deployments(api: Api) -> None:
    _setup(api, ec2TagFilters=[{"Key": "x", "Type": "KEY_ONLY"}])
    api.RegisterApplicationRevision(applicationName="app", revision=S3, description="first")
    dep = api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    api.DeleteApplication(applicationName="app")
    assert api.GetDeployment(deploymentId=dep)["deploymentInfo"]["applicationName"] == "app"
    api.CreateApplication(applicationName="app")
    assert api.ListApplicationRevisions(applicationName="app")["revisions"] == []


def test_configs(api: Api) -> None:
    listed = api.ListDeploymentConfigs()["deploymentConfigsList"]
    assert len(listed) == 17 and listed[0] == "CodeDeployDefault.OneAtATime"
    one = api.GetDeploymentConfig(deploymentConfigName="CodeDeployDefault.OneAtATime")
    # AWS's answer for OneAtATime (API Reference, MinimumHealthyHosts.type); nobody can set it.
    assert one["deploymentConfigInfo"]["minimumHealthyHosts"] == {
        "type": "MOST_CONCURRENCY",
        "value": 1,
    }
    assert (
        api.error(
            "CreateDeploymentConfig",
            deploymentConfigName="Most",
            minimumHealthyHosts={"type": "MOST_CONCURRENCY", "value": 1},
        ).code
        == "InvalidMinimumHealthyHostValueException"
    )
    half = api.GetDeploymentConfig(deploymentConfigName="CodeDeployDefault.HalfAtATime")
    assert half["deploymentConfigInfo"]["minimumHealthyHosts"] == {
        "type": "FLEET_PERCENT",
        "value": 50,
    }
    canary = api.GetDeploymentConfig(
        deploymentConfigName="CodeDeployDefault.ECSCanary10Percent5Minutes"
    )
    assert canary["deploymentConfigInfo"]["trafficRoutingConfig"]["timeBasedCanary"] == {
        "canaryPercentage": 10,
        "canaryInterval": 5,
    }
    api.CreateDeploymentConfig(
        deploymentConfigName="Three", minimumHealthyHosts={"type": "HOST_COUNT", "value": 3}
    )
    assert (
        api.error(
            "CreateDeploymentConfig",
            deploymentConfigName="Three",
            minimumHealthyHosts={"type": "HOST_COUNT", "value": 3},
        ).code
        == "DeploymentConfigAlreadyExistsException"
    )
    assert (
        api.error(
            "CreateDeploymentConfig",
            deploymentConfigName="Bad",
            minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 100},
        ).code
        == "InvalidMinimumHealthyHostValueException"
    )
    assert api.error(
        "DeleteDeploymentConfig", deploymentConfigName="CodeDeployDefault.AllAtOnce"
    ).code == ("InvalidOperationException")
    _setup(api, deploymentConfigName="Three")
    assert api.error("DeleteDeploymentConfig", deploymentConfigName="Three").code == (
        "DeploymentConfigInUseException"
    )
    api.DeleteDeploymentGroup(applicationName="app", deploymentGroupName="prod")
    api.DeleteDeploymentConfig(deploymentConfigName="Three")
    assert "Three" not in api.ListDeploymentConfigs()["deploymentConfigsList"]


def test_revisions(api: Api) -> None:
    api.CreateApplication(applicationName="app")
    gh = {"revisionType": "GitHub", "gitHubLocation": {"repository": "o/r", "commitId": "abc"}}
    inline = {"revisionType": "AppSpecContent", "appSpecContent": {"content": "version: 0.0"}}
    for rev in (S3, gh, inline):
        api.RegisterApplicationRevision(applicationName="app", revision=rev, description="d")
    got = api.BatchGetApplicationRevisions(applicationName="app", revisions=[S3, gh, inline])
    assert len(got["revisions"]) == 3
    assert got["revisions"][2]["revisionLocation"]["appSpecContent"]["sha256"]
    listed = api.ListApplicationRevisions(applicationName="app", s3Bucket="b", s3KeyPrefix="app")
    assert [r["revisionType"] for r in listed["revisions"]] == ["S3"]
    assert api.error("ListApplicationRevisions", applicationName="app", s3KeyPrefix="x").code == (
        "BucketNameFilterRequiredException"
    )
    other = {
        "revisionType": "S3",
        "s3Location": {"bucket": "b", "key": "other.zip", "bundleType": "zip"},
    }
    assert api.error("GetApplicationRevision", applicationName="app", revision=other).code == (
        "RevisionDoesNotExistException"
    )


def test_continue_deployment_is_blue_green_only(api: Api) -> None:
    _fleet(api, h1={"r": "a"})
    _setup(api, onPremisesInstanceTagFilters=[{"Key": "r", "Type": "KEY_ONLY"}])
    dep = api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    assert api.error("ContinueDeployment", deploymentId=dep).code == (
        "UnsupportedActionForDeploymentTypeException"
    )
    assert api.error("ContinueDeployment", deploymentId=dep, deploymentWaitType="SOON").code == (
        "InvalidDeploymentWaitTypeException"
    )


def test_put_lifecycle_event_hook_execution_status(api: Api) -> None:
    _fleet(api, h1={"r": "a"})
    _setup(api, onPremisesInstanceTagFilters=[{"Key": "r", "Type": "KEY_ONLY"}])
    dep = api.CreateDeployment(applicationName="app", deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    call = "PutLifecycleEventHookExecutionStatus"
    hook = "12345678-1234-1234-1234-123456789012"
    assert api.error(call, lifecycleEventHookExecutionId=hook, status="Succeeded").code == (
        "DeploymentIdRequiredException"
    )
    assert api.error(call, deploymentId="nope", status="Succeeded").code == (
        "InvalidDeploymentIdException"
    )
    assert api.error(call, deploymentId=dep, status="Pending").code == (
        "InvalidLifecycleEventHookExecutionStatusException"
    )
    assert api.error(call, deploymentId="d-AAAAAAAAA", status="Failed").code == (
        "DeploymentDoesNotExistException"
    )
    # a Server deployment has no hook executions: its hooks run on the hosts
    unsupported = api.error(
        call, deploymentId=dep, lifecycleEventHookExecutionId=hook, status="Succeeded"
    )
    assert unsupported.code == "UnsupportedActionForDeploymentTypeException"

    api.CreateApplication(applicationName="fn", computePlatform="Lambda")
    api.CreateDeploymentGroup(
        applicationName="fn",
        deploymentGroupName="live",
        serviceRoleArn=ROLE,
        deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
    )
    appspec = "version: 0.0\nResources: []\n"
    lambda_dep = api.CreateDeployment(
        applicationName="fn",
        deploymentGroupName="live",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": appspec}},
    )["deploymentId"]
    unknown = api.error(
        call, deploymentId=lambda_dep, lifecycleEventHookExecutionId=hook, status="Succeeded"
    )
    assert unknown.code == "InvalidLifecycleEventHookExecutionIdException"
    assert hook in unknown.message
