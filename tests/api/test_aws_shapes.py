"""Answers shaped exactly like AWS's, as boto3 and aws-cli read them.

The members AWS always returns (with their defaults), the texts and codes clients match on, and
page tokens that stay put when items are added between two calls. One server per database
backend, paging after 2 items (OPENDEPLOY_PAGE_SIZE) so that a second page is cheap to reach.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendeploy.testing.server import RunningServer
from tests.api._wire import wire_client
from tests.cli._aws_cli import AWS, run, shared_files_env
from tests.conftest import server_on

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"


def _s3(key: str) -> dict[str, Any]:
    return {
        "revisionType": "S3",
        "s3Location": {"bucket": "b", "key": key, "bundleType": "zip", "eTag": "abc"},
    }


@pytest.fixture(scope="module")
def server(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp(f"shapes-{module_backend}")
    with server_on(module_backend, data, env={"OPENDEPLOY_PAGE_SIZE": "2"}) as (srv, _url):
        yield srv


@pytest.fixture(scope="module", params=["json", "cbor"])
def cd(request: pytest.FixtureRequest, server: RunningServer, cbor_data_path: Path) -> Any:
    return wire_client(server, request.param, cbor_data_path)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _app_with_group(cd: Any, **group: Any) -> tuple[str, str]:
    app = _unique("shape")
    cd.create_application(applicationName=app)
    cd.create_deployment_group(
        applicationName=app, deploymentGroupName="dg", serviceRoleArn=ROLE, **group
    )
    return app, "dg"


def test_deployment_group_info_has_the_members_aws_always_returns(cd: Any) -> None:
    app, group = _app_with_group(
        cd, ec2TagFilters=[{"Key": "Name", "Value": "web", "Type": "KEY_AND_VALUE"}]
    )
    info = cd.get_deployment_group(applicationName=app, deploymentGroupName=group)[
        "deploymentGroupInfo"
    ]
    assert info["deploymentStyle"] == {
        "deploymentType": "IN_PLACE",
        "deploymentOption": "WITHOUT_TRAFFIC_CONTROL",
    }
    assert info["autoRollbackConfiguration"] == {"enabled": False}
    assert info["onPremisesTagSet"] == {"onPremisesTagSetList": []}
    assert info["autoScalingGroups"] == []
    assert info["triggerConfigurations"] == []
    assert info["ec2TagFilters"] == [{"Key": "Name", "Value": "web", "Type": "KEY_AND_VALUE"}]
    assert info["computePlatform"] == "Server"
    batch = cd.batch_get_deployment_groups(applicationName=app, deploymentGroupNames=[group])
    assert batch["errorMessage"] == ""
    assert batch["deploymentGroupsInfo"][0]["deploymentStyle"]["deploymentType"] == "IN_PLACE"
    missing = cd.batch_get_deployment_groups(
        applicationName=app, deploymentGroupNames=[group, "nope"]
    )
    assert "nope" in missing["errorMessage"]
    listed = cd.list_deployment_groups(applicationName=app)
    assert listed["applicationName"] == app
    assert listed["deploymentGroups"] == [group]


def test_deployment_sets_style_revision_description_and_target_revision(cd: Any) -> None:
    app, group = _app_with_group(cd)
    revision = _s3(f"{uuid.uuid4().hex}.zip")
    dep = cd.create_deployment(applicationName=app, deploymentGroupName=group, revision=revision)[
        "deploymentId"
    ]
    info = cd.get_deployment(deploymentId=dep)["deploymentInfo"]
    assert info["deploymentStyle"] == {
        "deploymentType": "IN_PLACE",
        "deploymentOption": "WITHOUT_TRAFFIC_CONTROL",
    }
    registered = cd.get_application_revision(applicationName=app, revision=revision)
    assert registered["revisionInfo"]["description"] == (
        f"Application revision registered by Deployment ID: {dep}"
    )
    target = cd.get_deployment_group(applicationName=app, deploymentGroupName=group)[
        "deploymentGroupInfo"
    ]["targetRevision"]
    assert target == revision
    revisions = cd.batch_get_application_revisions(applicationName=app, revisions=[revision])
    assert revisions["errorMessage"] == ""
    instances = cd.batch_get_deployment_instances(deploymentId=dep, instanceIds=["nobody"])
    assert "nobody" in instances["errorMessage"]


def test_error_texts_and_codes_clients_match_on(cd: Any, server: RunningServer) -> None:
    with pytest.raises(cd.exceptions.DeploymentDoesNotExistException) as gone:
        cd.get_deployment(deploymentId="d-NOSUCH000")
    assert gone.value.response["Error"]["Message"] == (
        "The deployment d-NOSUCH000 could not be found."
    )
    # A missing application is reported before a missing group name, as AWS does.
    with pytest.raises(cd.exceptions.ApplicationDoesNotExistException):
        cd.create_deployment(applicationName=_unique("none"), revision=_s3("x.zip"))
    # botocore refuses an empty name itself; a client that skips its validation sends "".
    loose = wire_client(server, "json", Path("."), parameter_validation=False)
    with pytest.raises(loose.exceptions.ApplicationNameRequiredException):
        loose.get_application(applicationName="")
    with pytest.raises(loose.exceptions.ApplicationNameRequiredException):
        loose.create_application(applicationName="")


def test_page_tokens_do_not_shift_when_items_are_added(cd: Any) -> None:
    prefix = _unique("page")
    ours = [f"{prefix}-{i}" for i in (2, 4, 6, 8)]
    for name in ours:
        cd.create_application(applicationName=name)
    seen: list[str] = []
    page = cd.list_applications()
    while ours[0] not in page["applications"]:
        page = cd.list_applications(nextToken=page["nextToken"])
    seen += page["applications"]
    # Names sorting before the page just read must neither repeat nor hide what follows.
    cd.create_application(applicationName=f"{prefix}-0")
    cd.create_application(applicationName=f"{prefix}-1")
    token = page.get("nextToken")
    while token:
        page = cd.list_applications(nextToken=token)
        seen += page["applications"]
        token = page.get("nextToken")
    assert [n for n in seen if n in ours] == ours
    with pytest.raises(ClientError) as bad:
        cd.list_applications(nextToken="garbled")
    assert bad.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_list_deployments_pages_stay_put_while_deployments_are_created(cd: Any) -> None:
    app = _unique("pages")
    cd.create_application(applicationName=app)
    created = []
    for i in range(5):
        cd.create_deployment_group(
            applicationName=app, deploymentGroupName=f"g{i}", serviceRoleArn=ROLE
        )
    for i in range(4):
        created.append(
            cd.create_deployment(
                applicationName=app, deploymentGroupName=f"g{i}", revision=_s3("a.zip")
            )["deploymentId"]
        )
    # Newest first, 2 a page; a deployment created between the calls must not repeat one.
    first = cd.list_deployments()
    cd.create_deployment(applicationName=app, deploymentGroupName="g4", revision=_s3("a.zip"))
    second = cd.list_deployments(nextToken=first["nextToken"])
    assert first["deployments"] == created[::-1][:2]
    assert second["deployments"] == created[::-1][2:4]


def test_list_tags_for_resource_follows_next_token(cd: Any, server: RunningServer) -> None:
    app = _unique("tags")
    cd.create_application(applicationName=app)
    arn = f"arn:aws:codedeploy:{server.region}:000000000000:application:{app}"
    cd.tag_resource(ResourceArn=arn, Tags=[{"Key": k, "Value": k * 2} for k in "abc"])
    first = cd.list_tags_for_resource(ResourceArn=arn)
    assert first["Tags"] == [{"Key": "a", "Value": "aa"}, {"Key": "b", "Value": "bb"}]
    second = cd.list_tags_for_resource(ResourceArn=arn, NextToken=first["NextToken"])
    assert second["Tags"] == [{"Key": "c", "Value": "cc"}]
    assert "NextToken" not in second


def test_aws_cli_reads_the_group_defaults(server: RunningServer, tmp_path: Path) -> None:
    env = shared_files_env(server, tmp_path / "home")
    app = _unique("cli")
    assert (
        run(AWS, "deploy", "create-application", "--application-name", app, env=env).returncode == 0
    )
    made = run(
        AWS,
        "deploy",
        "create-deployment-group",
        "--application-name",
        app,
        "--deployment-group-name",
        "dg",
        "--service-role-arn",
        ROLE,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    got = run(
        AWS,
        "deploy",
        "get-deployment-group",
        "--application-name",
        app,
        "--deployment-group-name",
        "dg",
        "--query",
        "deploymentGroupInfo.deploymentStyle.deploymentType",
        "--output",
        "json",
        env=env,
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == "IN_PLACE"
