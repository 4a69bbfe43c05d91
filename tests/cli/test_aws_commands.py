"""The generated ``aws deploy`` commands as a subprocess against a real ``opendeploy server``.

The CLI finds the server on its own (only ``OPENDEPLOY_DATA_DIR`` is set, as after a local
``opendeploy server``); what it created is checked through boto3, which is faster than more CLI
processes and independent of the code under test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore import xform_name

from opendeploy.cli.aws_commands import service_model
from opendeploy.cli.aws_names import AWS_COMMANDS, OPERATIONS
from opendeploy.testing.server import RunningServer, running_server
from tests._stored import server_store, stored_deployment, stored_group
from tests.cli._aws_cli import OPENDEPLOY, ROLE, local_server_env, run


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server") / "data") as srv:
        yield srv


@pytest.fixture(scope="module")
def env(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return local_server_env(server, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def cd(server: RunningServer) -> Any:
    return server.client("codedeploy")


def od(env: dict[str, str], *args: str) -> Any:
    """Run ``opendeploy args`` and return the parsed JSON output (asserting success)."""
    result = run(OPENDEPLOY, *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def create_group(env: dict[str, str], app: str, group: str, *options: str) -> Any:
    """``opendeploy create-deployment-group`` of ``group`` in ``app`` (with the test role), with
    ``options``; its parsed output."""
    return od(env, "create-deployment-group", "--application-name", app,
              "--deployment-group-name", group, "--service-role-arn", ROLE, *options)  # fmt: skip


def groups_by_name(cd: Any, app: str, *names: str) -> dict[str, Any]:
    """The named deployment groups of ``app`` as boto3 returns them, by name."""
    found = cd.batch_get_deployment_groups(applicationName=app, deploymentGroupNames=list(names))
    return {g["deploymentGroupName"]: g for g in found["deploymentGroupsInfo"]}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_command_table_matches_the_model() -> None:
    operations = set(service_model().operation_names)
    assert set(OPERATIONS.values()) == operations
    assert {xform_name(op, "-"): op for op in operations} == OPERATIONS
    assert {"wait", "completion"} <= set(AWS_COMMANDS)


def test_application_create_get_list_update_delete(env: dict[str, str], cd: Any) -> None:
    name, renamed = unique("app"), unique("renamed")
    created = od(env, "create-application", "--application-name", name)
    got = od(env, "get-application", "--application-name", name)
    assert got["application"]["applicationId"] == created["applicationId"]
    assert name in od(env, "list-applications")["applications"]
    assert (
        od(env, "update-application", "--application-name", name, "--new-application-name", renamed)
        is None
    )
    assert cd.get_application(applicationName=renamed)["application"]["applicationName"] == renamed
    assert od(env, "delete-application", "--application-name", renamed) is None
    gone = run(OPENDEPLOY, "get-application", "--application-name", renamed, env=env)
    assert gone.returncode == 255
    assert gone.stdout == ""
    assert gone.stderr.startswith(
        "\nAn error occurred (ApplicationDoesNotExistException) when calling the GetApplication "
        "operation: "
    )


def test_deployment_groups_take_shorthand_and_json(
    env: dict[str, str], cd: Any, tmp_path: Path
) -> None:
    app = unique("groups")
    cd.create_application(applicationName=app)
    create_group(
        env, app, "ec2",
        "--ec2-tag-filters",
        "Key=Name,Value=web,Type=KEY_AND_VALUE",
        "Key=env,Value=prod,Type=KEY_AND_VALUE",
        "--deployment-config-name", "CodeDeployDefault.HalfAtATime",
        "--auto-rollback-configuration", "enabled=true,events=DEPLOYMENT_FAILURE",
    )  # fmt: skip
    info = cd.get_deployment_group(applicationName=app, deploymentGroupName="ec2")
    group = info["deploymentGroupInfo"]
    assert group["ec2TagFilters"] == [
        {"Key": "Name", "Value": "web", "Type": "KEY_AND_VALUE"},
        {"Key": "env", "Value": "prod", "Type": "KEY_AND_VALUE"},
    ]
    assert group["deploymentConfigName"] == "CodeDeployDefault.HalfAtATime"
    assert group["autoRollbackConfiguration"] == {
        "enabled": True,
        "events": ["DEPLOYMENT_FAILURE"],
    }

    filters = tmp_path / "filters.json"
    filters.write_text('[{"Key": "role", "Value": "db", "Type": "KEY_AND_VALUE"}]')
    create_group(
        env, app, "json",
        "--on-premises-instance-tag-filters", f"file://{filters}",
        "--auto-rollback-configuration", '{"enabled": false}',
    )  # fmt: skip
    create_group(
        env, app, "tagset",
        "--on-premises-tag-set",
        "onPremisesTagSetList=[[{Key=a,Value=1,Type=KEY_AND_VALUE}],"
        "[{Key=b,Value=2,Type=KEY_AND_VALUE},{Key=c,Value=3,Type=KEY_AND_VALUE}]]",
    )  # fmt: skip
    by_name = groups_by_name(cd, app, "json", "tagset")
    assert by_name["json"]["onPremisesInstanceTagFilters"] == [
        {"Key": "role", "Value": "db", "Type": "KEY_AND_VALUE"}
    ]
    tag_set = by_name["tagset"]["onPremisesTagSet"]["onPremisesTagSetList"]
    assert [[t["Key"] for t in group] for group in tag_set] == [["a"], ["b", "c"]]

    listed = od(env, "list-deployment-groups", "--application-name", app)
    assert sorted(listed["deploymentGroups"]) == ["ec2", "json", "tagset"]
    od(
        env,
        "update-deployment-group",
        "--application-name", app,
        "--current-deployment-group-name", "json",
        "--new-deployment-group-name", "renamed",
    )  # fmt: skip
    od(env, "delete-deployment-group", "--application-name", app, "--deployment-group-name", "ec2")
    assert sorted(cd.list_deployment_groups(applicationName=app)["deploymentGroups"]) == [
        "renamed",
        "tagset",
    ]


def test_custom_deployment_config(env: dict[str, str]) -> None:
    name = unique("config")
    od(
        env,
        "create-deployment-config",
        "--deployment-config-name", name,
        "--minimum-healthy-hosts", "type=FLEET_PERCENT,value=75",
    )  # fmt: skip
    info = od(env, "get-deployment-config", "--deployment-config-name", name)
    assert info["deploymentConfigInfo"]["minimumHealthyHosts"] == {
        "type": "FLEET_PERCENT",
        "value": 75,
    }
    assert name in od(env, "list-deployment-configs")["deploymentConfigsList"]
    od(env, "delete-deployment-config", "--deployment-config-name", name)


def test_revision_deployment_stop_and_failed_wait(env: dict[str, str], cd: Any) -> None:
    app, host = unique("deploy"), unique("host")
    od(env, "create-application", "--application-name", app)
    od(
        env,
        "register-on-premises-instance",
        "--instance-name", host,
        "--iam-user-arn", f"arn:aws:iam::123456789012:user/{host}",
    )  # fmt: skip
    od(env, "add-tags-to-on-premises-instances", "--instance-names", host, "--tags",
       f"Key=app,Value={app}")  # fmt: skip
    tags = cd.get_on_premises_instance(instanceName=host)["instanceInfo"]["tags"]
    assert tags == [{"Key": "app", "Value": app}]
    create_group(
        env, app, "hosts",
        "--on-premises-instance-tag-filters", f"Key=app,Value={app},Type=KEY_AND_VALUE",
    )  # fmt: skip
    od(
        env,
        "register-application-revision",
        "--application-name", app,
        "--s3-location", "bucket=bundles,key=app.zip,bundleType=zip",
        "--description", "first",
    )  # fmt: skip
    revisions = od(env, "list-application-revisions", "--application-name", app)["revisions"]
    assert revisions == [
        {
            "revisionType": "S3",
            "s3Location": {"bucket": "bundles", "key": "app.zip", "bundleType": "zip"},
        }
    ]
    created = od(
        env,
        "create-deployment",
        "--application-name", app,
        "--deployment-group-name", "hosts",
        "--s3-location", "bucket=bundles,key=app.zip,bundleType=zip,eTag=abc123",
        "--description", "from the cli",
        "--file-exists-behavior", "OVERWRITE",
        "--ignore-application-stop-failures",
    )  # fmt: skip
    deployment_id = created["deploymentId"]
    assert deployment_id.startswith("d-")
    info = od(env, "get-deployment", "--deployment-id", deployment_id)["deploymentInfo"]
    assert info["revision"] == {
        "revisionType": "S3",
        "s3Location": {
            "bucket": "bundles",
            "key": "app.zip",
            "bundleType": "zip",
            "eTag": "abc123",
        },
    }
    assert info["description"] == "from the cli"
    assert info["fileExistsBehavior"] == "OVERWRITE"
    assert info["ignoreApplicationStopFailures"] is True
    assert deployment_id in od(env, "list-deployments", "--application-name", app,
                               "--deployment-group-name", "hosts")["deployments"]  # fmt: skip

    od(env, "stop-deployment", "--deployment-id", deployment_id)
    assert cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"] == "Stopped"
    waited = run(OPENDEPLOY, "wait", "deployment-successful", "--deployment-id", deployment_id,
                 env=env)  # fmt: skip
    assert waited.returncode == 255
    assert waited.stderr == (
        "\nWaiter DeploymentSuccessful failed: Waiter encountered a terminal failure state: "
        'For expression "deploymentInfo.status" we matched expected path: "Stopped"\n'
    )


def test_github_location_becomes_the_revision(env: dict[str, str], cd: Any) -> None:
    app = unique("github")
    cd.create_application(applicationName=app)
    od(
        env,
        "register-application-revision",
        "--application-name", app,
        "--github-location", f"repository=acme/web,commitId={'0123456789' * 4}",
    )  # fmt: skip
    revision = cd.list_application_revisions(applicationName=app)["revisions"][0]
    assert revision["gitHubLocation"]["repository"] == "acme/web"
    missing = run(OPENDEPLOY, "register-application-revision", "--application-name", app,
                  "--github-location", "repository=acme/web", env=env)  # fmt: skip
    assert missing.returncode == 255
    assert "--github-location must specify repository and commitId." in missing.stderr


def test_list_commands_paginate_like_aws_cli(env: dict[str, str], cd: Any) -> None:
    for _ in range(3):
        cd.create_application(applicationName=unique("page"))
    everything = od(env, "list-applications")["applications"]
    first = od(env, "list-applications", "--max-items", "2")
    assert first["applications"] == everything[:2]
    rest = od(env, "list-applications", "--starting-token", first["NextToken"])
    assert first["applications"] + rest["applications"] == everything
    assert "NextToken" not in rest


def test_cli_input_json_and_flags_that_override_it(
    env: dict[str, str], cd: Any, tmp_path: Path
) -> None:
    app = unique("input")
    cd.create_application(applicationName=app)
    document = tmp_path / "input.json"
    document.write_text(json.dumps({"applicationName": "not-this-one"}))
    got = od(env, "get-application", "--cli-input-json", f"file://{document}",
             "--application-name", app)  # fmt: skip
    assert got["application"]["applicationName"] == app
    inline = od(env, "get-application", "--cli-input-json", json.dumps({"applicationName": app}))
    assert inline["application"]["applicationName"] == app


def test_usage_and_parameter_errors(env: dict[str, str]) -> None:
    missing = run(OPENDEPLOY, "get-application", env=env)
    assert missing.returncode == 2
    assert "the following arguments are required: --application-name" in missing.stderr

    bad_shorthand = run(OPENDEPLOY, "create-deployment-group", "--application-name", "a",
                        "--deployment-group-name", "g", "--service-role-arn", ROLE,
                        "--ec2-tag-filters", "Key", env=env)  # fmt: skip
    assert bad_shorthand.returncode == 255
    assert bad_shorthand.stderr.startswith(
        "\nError parsing parameter '--ec2-tag-filters': Expected: '=', received: 'EOF'"
    )

    unknown_key = run(OPENDEPLOY, "create-deployment-group", "--application-name", "a",
                      "--deployment-group-name", "g", "--service-role-arn", ROLE,
                      "--ec2-tag-filters", "Key=a,Vaalue=b", env=env)  # fmt: skip
    assert unknown_key.returncode == 255
    assert unknown_key.stderr == (
        "\nParameter validation failed:\n"
        'Unknown parameter in ec2TagFilters[0]: "Vaalue", must be one of: Key, Value, Type\n'
    )

    bad_format = run(OPENDEPLOY, "list-applications", "--output", "yaml", env=env)
    assert bad_format.returncode == 2


def test_wrong_names_suggest_the_close_ones(env: dict[str, str], cd: Any) -> None:
    app = unique("storefront")
    cd.create_application(applicationName=app)
    cd.create_deployment_group(
        applicationName=app, deploymentGroupName="production", serviceRoleArn=ROLE
    )
    typo = app.replace("storefront", "storfront")
    wrong_app = run(OPENDEPLOY, "get-application", "--application-name", typo, env=env)
    assert wrong_app.returncode == 255
    assert wrong_app.stderr.splitlines()[-1] == f"Did you mean '{app}'?"

    wrong_group = run(OPENDEPLOY, "get-deployment-group", "--application-name", app,
                      "--deployment-group-name", "prodcution", env=env)  # fmt: skip
    assert wrong_group.returncode == 255
    assert "(DeploymentGroupDoesNotExistException)" in wrong_group.stderr
    assert wrong_group.stderr.splitlines()[-1] == "Did you mean 'production'?"

    wrong_config = run(OPENDEPLOY, "get-deployment-config", "--deployment-config-name",
                       "CodeDeployDefault.OneAtTime", env=env)  # fmt: skip
    assert wrong_config.stderr.splitlines()[-1].startswith(
        "Did you mean one of 'CodeDeployDefault.OneAtATime', "
    )

    nothing_close = run(OPENDEPLOY, "get-application", "--application-name", "zzzzzzzz", env=env)
    assert nothing_close.returncode == 255
    assert "Did you mean" not in nothing_close.stderr


def test_deployment_groups_take_the_json_forms(env: dict[str, str], cd: Any) -> None:
    app = unique("json-forms")
    cd.create_application(applicationName=app)
    create_group(
        env, app, "ec2",
        "--ec2-tag-filters",
        '[{"Key": "Name", "Value": "web", "Type": "KEY_AND_VALUE"},'
        ' {"Key": "env", "Type": "KEY_ONLY"}]',
    )  # fmt: skip
    create_group(
        env, app, "tagset",
        "--on-premises-tag-set",
        json.dumps({"onPremisesTagSetList": [
            [{"Key": "a", "Value": "1", "Type": "KEY_AND_VALUE"}],
            [{"Key": "b", "Value": "2", "Type": "KEY_AND_VALUE"}, {"Key": "c", "Type": "KEY_ONLY"}],
        ]}),
    )  # fmt: skip
    groups = groups_by_name(cd, app, "ec2", "tagset")
    assert groups["ec2"]["ec2TagFilters"] == [
        {"Key": "Name", "Value": "web", "Type": "KEY_AND_VALUE"},
        {"Key": "env", "Type": "KEY_ONLY"},
    ]
    assert groups["tagset"]["onPremisesTagSet"]["onPremisesTagSetList"] == [
        [{"Key": "a", "Value": "1", "Type": "KEY_AND_VALUE"}],
        [{"Key": "b", "Value": "2", "Type": "KEY_AND_VALUE"}, {"Key": "c", "Type": "KEY_ONLY"}],
    ]
    broken = run(OPENDEPLOY, "create-deployment-group", "--application-name", app,
                 "--deployment-group-name", "broken", "--service-role-arn", ROLE,
                 "--on-premises-tag-set", '{"onPremisesTagSetList": [[{"Key": "a"}]',
                 env=env)  # fmt: skip
    assert broken.returncode == 255
    assert broken.stderr.startswith("\nError parsing parameter '--on-premises-tag-set'")


def test_get_application_revision_in_both_forms(env: dict[str, str], cd: Any) -> None:
    app = unique("revision")
    cd.create_application(applicationName=app)
    location = {"bucket": "bundles", "key": "site.zip", "bundleType": "zip", "eTag": "e1"}
    od(env, "register-application-revision", "--application-name", app,
       "--s3-location", "bucket=bundles,key=site.zip,bundleType=zip,eTag=e1",
       "--description", "the site")  # fmt: skip
    got = od(env, "get-application-revision", "--application-name", app,
             "--s3-location", "bucket=bundles,key=site.zip,bundleType=zip,eTag=e1")  # fmt: skip
    assert got["applicationName"] == app
    assert got["revision"] == {"revisionType": "S3", "s3Location": location}
    assert got["revisionInfo"]["description"] == "the site"
    assert "registerTime" in got["revisionInfo"]
    as_json = od(env, "get-application-revision", "--application-name", app, "--revision",
                 json.dumps({"revisionType": "S3", "s3Location": location}))  # fmt: skip
    assert as_json["revisionInfo"] == got["revisionInfo"]
    unknown = run(OPENDEPLOY, "get-application-revision", "--application-name", app,
                  "--s3-location", "bucket=bundles,key=other.zip,bundleType=zip",
                  env=env)  # fmt: skip
    assert unknown.returncode == 255
    assert "(RevisionDoesNotExistException) when calling the GetApplicationRevision" in (
        unknown.stderr
    )


def test_region_flag_signs_for_that_region(
    env: dict[str, str], server: RunningServer, tmp_path: Path
) -> None:
    # The server checks the signature against the scope the client signed for, so a success
    # with --region means the request was signed (and its scope named) with that region.
    listed = run(OPENDEPLOY, "list-applications", "--region", "eu-west-3", env=env)
    assert listed.returncode == 0, listed.stderr
    # --region wins over the environment, as in aws-cli; the hint of a rejected signature
    # names the region used.
    wrong = {
        **env,
        "AWS_ACCESS_KEY_ID": server.access_key_id,
        "AWS_SECRET_ACCESS_KEY": "wrong",
        "AWS_DEFAULT_REGION": "us-west-2",
    }
    rejected = run(OPENDEPLOY, "list-applications", "--region", "ap-south-1", env=wrong)
    assert rejected.returncode == 255
    assert "(region ap-south-1)" in rejected.stderr
    without_flag = run(OPENDEPLOY, "list-applications", env=wrong)
    assert "(region us-west-2)" in without_flag.stderr


def test_wait_deployment_successful_returns_quietly_on_success(
    env: dict[str, str], server: RunningServer
) -> None:
    # A deployment that succeeded, written into the server's store: this module runs no
    # agents, and the waiter's first poll must see the final status (the model polls every
    # 15 s afterwards).
    app = unique("waited")
    deployment_id = _stored_deployment(server, app, status="Succeeded")
    waited = run(OPENDEPLOY, "wait", "deployment-successful", "--deployment-id", deployment_id,
                 env=env)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == "" and waited.stderr == ""
    unknown = run(OPENDEPLOY, "wait", "deployment-successful", "--deployment-id", "d-NOSUCH000",
                  env=env)  # fmt: skip
    assert unknown.returncode == 255
    assert "DeploymentDoesNotExistException" in unknown.stderr


def test_continue_deployment_errors_and_success(
    env: dict[str, str], server: RunningServer, cd: Any
) -> None:
    unknown = run(OPENDEPLOY, "continue-deployment", "--deployment-id", "d-NOSUCH000", env=env)
    assert unknown.returncode == 255
    assert unknown.stdout == ""
    assert unknown.stderr == (
        "\nAn error occurred (DeploymentDoesNotExistException) when calling the "
        "ContinueDeployment operation: The deployment d-NOSUCH000 could not be found.\n"
    )

    # An in-place deployment, kept in progress by a registered host that runs no agent.
    app, host = unique("in-place"), unique("silent")
    cd.create_application(applicationName=app)
    cd.register_on_premises_instance(
        instanceName=host, iamUserArn=f"arn:aws:iam::123456789012:user/{host}"
    )
    cd.add_tags_to_on_premises_instances(instanceNames=[host], tags=[{"Key": "h", "Value": host}])
    cd.create_deployment_group(
        applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=[{"Key": "h", "Value": host, "Type": "KEY_AND_VALUE"}],
    )  # fmt: skip
    in_place = cd.create_deployment(
        applicationName=app,
        deploymentGroupName="g",
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
        },
    )["deploymentId"]
    refused = run(OPENDEPLOY, "continue-deployment", "--deployment-id", in_place, env=env)
    cd.stop_deployment(deploymentId=in_place)
    assert refused.returncode == 255
    assert refused.stderr == (
        "\nAn error occurred (UnsupportedActionForDeploymentTypeException) when calling the "
        "ContinueDeployment operation: ContinueDeployment applies to blue/green deployments "
        "only.\n"
    )

    # Blue/green deployments are written into the store in the states ContinueDeployment cares
    # about, as the engine leaves them: Baking, and waiting in Ready (STOP_DEPLOYMENT with a
    # 48-hour wait, so the engine keeps it Ready).
    green = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    waits = {
        "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 2880}
    }
    baking = _stored_deployment(server, unique("baking"), status="Baking", deployment_style=green)
    not_ready = run(OPENDEPLOY, "continue-deployment", "--deployment-id", baking,
                    "--deployment-wait-type", "READY_WAIT", env=env)  # fmt: skip
    assert not_ready.returncode == 255
    assert "(DeploymentIsNotInReadyStateException)" in not_ready.stderr
    bad_type = run(OPENDEPLOY, "continue-deployment", "--deployment-id", baking,
                   "--deployment-wait-type", "SOON", env=env)  # fmt: skip
    assert bad_type.returncode == 255
    assert "(InvalidDeploymentWaitTypeException)" in bad_type.stderr

    ready = _stored_deployment(
        server,
        unique("ready"),
        status="Ready",
        deployment_style=green,
        blue_green_deployment_configuration=waits,
    )
    continued = run(OPENDEPLOY, "continue-deployment", "--deployment-id", ready, env=env)
    assert continued.returncode == 0, continued.stderr
    assert continued.stdout == "" and continued.stderr == ""


def _stored_deployment(server: RunningServer, app: str, *, status: str, **columns: Any) -> str:
    """An application, a group and a deployment in ``status`` written into the server's store
    (as the engine would leave it: the tests here run no agents)."""
    now = datetime.now(UTC)
    store = server_store(server)
    try:
        stored_group(store, app, "group", now=now)
        deployment_id: str = stored_deployment(
            store,
            app,
            "group",
            now=now,
            revision={
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
            },
            status=status,
            complete_time=now if status in ("Succeeded", "Failed", "Stopped") else None,
            **columns,
        )["deployment_id"]
        return deployment_id
    finally:
        store.close()
