"""Every area of the control plane through real boto3 / aws-cli against ``opendeploy server``.

One server per database backend for the whole module (SQLite, and PostgreSQL when
OPENDEPLOY_TEST_DATABASE_URL is set), so the module stays quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from opendeploy.testing.server import RunningServer
from tests.api._wire import wire_client
from tests.conftest import server_on

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
S3 = {
    "revisionType": "S3",
    "s3Location": {"bucket": "b", "key": "app.zip", "bundleType": "zip", "eTag": "abc"},
}


@pytest.fixture(scope="module")
def server(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp(f"server-{module_backend}")
    with server_on(module_backend, data) as (srv, _url):
        yield srv


@pytest.fixture(scope="module", params=["json", "cbor"])
def cd(request: pytest.FixtureRequest, server: RunningServer, cbor_data_path: Path) -> Any:
    """boto3 in awsJson1_1, and in RPC v2 CBOR through a model copy that lists only CBOR."""
    return wire_client(server, request.param, cbor_data_path)


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_applications_and_pagination(cd: Any) -> None:
    prefix = uuid.uuid4().hex[:6]
    for i in range(103):
        cd.create_application(applicationName=f"{prefix}-{i:03d}")
    names = [
        n
        for p in cd.get_paginator("list_applications").paginate()
        for n in p["applications"]
        if n.startswith(prefix)
    ]
    assert len(names) == 103
    with pytest.raises(ClientError) as exc:
        cd.create_application(applicationName=f"{prefix}-000")
    assert _code(exc) == "ApplicationAlreadyExistsException"
    with pytest.raises(cd.exceptions.InvalidApplicationNameException):
        cd.create_application(applicationName="x" * 101)
    info = cd.get_application(applicationName=f"{prefix}-001")["application"]
    assert info["createTime"].tzinfo is not None


def test_deployment_lifecycle_and_waiter_failure(cd: Any, server: RunningServer) -> None:
    app = f"app-{uuid.uuid4().hex[:6]}"
    host = f"host-{uuid.uuid4().hex[:6]}"
    cd.register_on_premises_instance(
        instanceName=host, iamUserArn=f"arn:aws:iam::123456789012:user/{host}"
    )
    cd.add_tags_to_on_premises_instances(instanceNames=[host], tags=[{"Key": "app", "Value": app}])
    cd.create_application(applicationName=app)
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="prod",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=[{"Key": "app", "Value": app, "Type": "KEY_AND_VALUE"}],
    )
    dep = cd.create_deployment(applicationName=app, deploymentGroupName="prod", revision=S3)[
        "deploymentId"
    ]
    with pytest.raises(ClientError) as exc:
        cd.create_deployment(applicationName=app, deploymentGroupName="prod", revision=S3)
    assert _code(exc) == "DeploymentLimitExceededException"
    assert exc.value.response["Error"]["Message"] == (
        f"The Deployment Group 'prod' already has an active Deployment '{dep}'"
    )
    with pytest.raises(cd.exceptions.UnsupportedActionForDeploymentTypeException):
        cd.put_lifecycle_event_hook_execution_status(
            deploymentId=dep, lifecycleEventHookExecutionId=str(uuid.uuid4()), status="Succeeded"
        )
    targets = [
        t
        for p in cd.get_paginator("list_deployment_targets").paginate(deploymentId=dep)
        for t in p["targetIds"]
    ]
    assert targets == [host]
    got = cd.batch_get_deployment_targets(deploymentId=dep, targetIds=targets)
    # No agent ever polls for this host: the engine has started it (or not yet), nothing more.
    assert got["deploymentTargets"][0]["instanceTarget"]["status"] in ("Pending", "InProgress")
    assert cd.stop_deployment(deploymentId=dep)["status"] == "Succeeded"
    with pytest.raises(cd.exceptions.DeploymentAlreadyCompletedException):
        cd.stop_deployment(deploymentId=dep)
    with pytest.raises(WaiterError, match="Stopped|terminal failure"):
        cd.get_waiter("deployment_successful").wait(
            deploymentId=dep, WaiterConfig={"Delay": 1, "MaxAttempts": 2}
        )
    listed = cd.list_deployments(applicationName=app, deploymentGroupName="prod")["deployments"]
    assert listed == [dep]


def test_configs_revisions_and_tags(cd: Any) -> None:
    configs = [
        c
        for p in cd.get_paginator("list_deployment_configs").paginate()
        for c in p["deploymentConfigsList"]
    ]
    assert "CodeDeployDefault.LambdaCanary10Percent5Minutes" in configs
    one = cd.get_deployment_config(deploymentConfigName="CodeDeployDefault.OneAtATime")
    assert one["deploymentConfigInfo"]["deploymentConfigId"] == (
        "00000000-0000-0000-0000-000000000001"
    )
    with pytest.raises(cd.exceptions.InvalidOperationException):
        cd.delete_deployment_config(deploymentConfigName="CodeDeployDefault.AllAtOnce")
    app = f"rev-{uuid.uuid4().hex[:6]}"
    cd.create_application(applicationName=app)
    arn = f"arn:aws:codedeploy:us-east-1:000000000000:application:{app}"
    cd.register_application_revision(applicationName=app, revision=S3, description="first")
    rev = cd.get_application_revision(applicationName=app, revision=S3)
    assert rev["revisionInfo"]["description"] == "first"
    with pytest.raises(cd.exceptions.RevisionDoesNotExistException):
        cd.get_application_revision(
            applicationName=app,
            revision={"revisionType": "S3", "s3Location": {"bucket": "b", "key": "nope.zip"}},
        )
    cd.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "x"}])
    assert cd.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "x"}]
    with pytest.raises(cd.exceptions.InvalidNextTokenException):
        cd.list_applications(nextToken="garbage")


def test_aws_cli(server: RunningServer) -> None:
    """aws-cli v1 (``aws deploy … --endpoint-url``): reads, writes, batch reads and an error."""
    aws = Path(sys.executable).with_name("aws")
    env = {**os.environ, **server.env()}
    app = f"cli-{uuid.uuid4().hex[:6]}"

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(aws), "deploy", *args, "--endpoint-url", server.endpoint, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

    def call(*args: str) -> Any:
        out = run(*args).stdout
        return json.loads(out) if out.strip() else None

    assert "applicationId" in call("create-application", "--application-name", app)
    assert app in call("list-applications")["applications"]
    call(
        "register-on-premises-instance",
        "--instance-name",
        app,
        "--iam-user-arn",
        f"arn:aws:iam::123456789012:user/{app}",
    )
    call(
        "add-tags-to-on-premises-instances",
        "--instance-names",
        app,
        "--tags",
        f"Key=app,Value={app}",
    )
    infos = call("batch-get-on-premises-instances", "--instance-names", app)["instanceInfos"]
    assert [(i["instanceName"], i["tags"]) for i in infos] == [
        (app, [{"Key": "app", "Value": app}])
    ]
    group = call(
        "create-deployment-group",
        "--application-name",
        app,
        "--deployment-group-name",
        "prod",
        "--service-role-arn",
        ROLE,
        "--on-premises-instance-tag-filters",
        f"Key=app,Value={app},Type=KEY_AND_VALUE",
    )
    groups = call(
        "batch-get-deployment-groups", "--application-name", app, "--deployment-group-names", "prod"
    )["deploymentGroupsInfo"]
    assert [g["deploymentGroupId"] for g in groups] == [group["deploymentGroupId"]]
    dep = call(
        "create-deployment",
        "--application-name",
        app,
        "--deployment-group-name",
        "prod",
        "--s3-location",
        "bucket=b,key=app.zip,bundleType=zip",
    )["deploymentId"]
    listed = call("list-deployments", "--application-name", app, "--deployment-group-name", "prod")
    assert listed["deployments"] == [dep]
    assert call("stop-deployment", "--deployment-id", dep)["status"] == "Succeeded"
    infos = call("batch-get-deployments", "--deployment-ids", dep)["deploymentsInfo"]
    assert [(i["deploymentId"], i["status"]) for i in infos] == [(dep, "Stopped")]
    renamed = f"{app}-renamed"
    call("update-application", "--application-name", app, "--new-application-name", renamed)
    apps = call("batch-get-applications", "--application-names", renamed)["applicationsInfo"]
    assert [a["applicationName"] for a in apps] == [renamed]
    call("delete-application", "--application-name", renamed)
    failed = run("get-application", "--application-name", renamed, check=False)
    assert failed.returncode != 0 and "ApplicationDoesNotExistException" in failed.stderr
    failed = run(
        "create-deployment-group",
        "--application-name",
        renamed,
        "--deployment-group-name",
        "prod",
        "--service-role-arn",
        ROLE,
        check=False,
    )
    assert failed.returncode != 0 and "ApplicationDoesNotExistException" in failed.stderr
