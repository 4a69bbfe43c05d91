"""Every operation of the CodeDeploy model over the wire, against a real ``opendeploy server``.

Table-driven: each operation of the model has a case with one successful call and one call that
fails with a modeled AWS error code, sent by real boto3 in awsJson1_1 and in Smithy RPC v2 CBOR
(boto3 with a copy of the model that lists only CBOR), to one server per database (SQLite and
PostgreSQL). The table must name exactly the model's operations, so a new operation cannot be
forgotten. The same servers answer the nine paginators (the server pages after 2 items here,
through ``OPENDEPLOY_PAGE_SIZE``) and refuse badly signed requests as AWS does.

The fixtures (applications, groups, three on-premises instances, deployments) are built once per
server. No agent ever polls for the instances, so the engine starts the deployments that target
them and they stay in progress for the whole module. The blue/green deployment is written into
the store, waiting in Ready (STOP_DEPLOYMENT with a 48-hour wait).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import botocore.auth
import botocore.session
import httpx
import pytest
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, WaiterError

from opendeploy.api.handlers._common import PAGE_SIZE_ENV
from opendeploy.api.model import CODEDEPLOY_MODEL_PATH
from opendeploy.domain.configs import PREDEFINED
from opendeploy.store.database import Store
from opendeploy.testing.server import RunningServer
from tests._stored import stored_deployment
from tests.api._wire import CONTENT_TYPES, Sent, wire_client
from tests.conftest import server_on

#: Items per page of every List* operation of the module's servers.
PAGE = 2
ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
MISSING_DEPLOYMENT = "d-AAAAAAAAA"  # well-formed, never issued (ids come from a random alphabet)

MODEL = json.loads(CODEDEPLOY_MODEL_PATH.read_text())
PAGINATORS = json.loads((CODEDEPLOY_MODEL_PATH.parent / "paginators-1.json").read_text())[
    "pagination"
]


def s3_revision(key: str) -> dict[str, Any]:
    return {
        "revisionType": "S3",
        "s3Location": {"bucket": "wire", "key": key, "bundleType": "zip", "eTag": "abc"},
    }


# --- servers, clients, the shared fixtures -------------------------------------------------------


@pytest.fixture(scope="module")
def served(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str]]:
    """One server per database for the module, paging after :data:`PAGE` items."""
    data = tmp_path_factory.mktemp(f"wire-{module_backend}")
    with server_on(module_backend, data, env={PAGE_SIZE_ENV: str(PAGE)}) as pair:
        yield pair


@pytest.fixture(scope="module")
def server(served: tuple[RunningServer, str]) -> RunningServer:
    return served[0]


@pytest.fixture(scope="module", params=["json", "cbor"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def sent() -> list[Sent]:
    return []


@pytest.fixture(scope="module")
def cd(server: RunningServer, protocol: str, cbor_data_path: Path, sent: list[Sent]) -> Any:
    return wire_client(server, protocol, cbor_data_path, sent=sent)


@dataclass(frozen=True)
class World:
    """What the cases read; built once per server, never changed by a case."""

    app: str  # groups: main (in place), bluegreen, idle (selects no instance)
    apps: tuple[str, ...]  # app and two more, for ListApplications
    groups: tuple[str, ...]
    hosts: tuple[str, ...]  # registered, tagged for main and bluegreen, never polled
    deployment: str  # main's deployment: in progress on the three hosts
    blue_green: str  # bluegreen's deployment, Ready (written to the store, waiting)
    deployments: tuple[str, ...]
    config: str  # a custom configuration
    revisions: tuple[dict[str, Any], ...]  # registered to app
    tokens: tuple[str, ...]  # GitHub token names (made outside the API, as on AWS)
    spare_tokens: dict[str, str]  # per protocol, one token a case may delete

    def arn(self, resource: str) -> str:
        return f"arn:aws:codedeploy:us-east-1:000000000000:{resource}"


@pytest.fixture(scope="module")
def world(served: tuple[RunningServer, str]) -> World:
    server, url = served
    cd = server.client("codedeploy")
    tag = uuid.uuid4().hex[:6]
    app = f"wire-{tag}"
    hosts = tuple(f"wire-{tag}-host-{i}" for i in range(3))
    for host in hosts:
        cd.register_on_premises_instance(
            instanceName=host, iamUserArn=f"arn:aws:iam::123456789012:user/{host}"
        )
    cd.add_tags_to_on_premises_instances(
        instanceNames=list(hosts), tags=[{"Key": "wire", "Value": app}]
    )
    apps = (app, f"{app}-b", f"{app}-c")
    for name in apps:
        cd.create_application(applicationName=name)
    ours = [{"Key": "wire", "Value": app, "Type": "KEY_AND_VALUE"}]
    nobody = [{"Key": "wire", "Value": "nobody", "Type": "KEY_AND_VALUE"}]
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="main",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=ours,
    )
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="bluegreen",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=ours,
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITHOUT_TRAFFIC_CONTROL",
        },
    )
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="idle",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=nobody,
    )
    revisions = tuple(s3_revision(f"{app}/r{i}.zip") for i in range(3))
    for revision in revisions:
        cd.register_application_revision(applicationName=app, revision=revision)

    def deploy(group: str) -> str:
        ident: str = cd.create_deployment(
            applicationName=app, deploymentGroupName=group, revision=revisions[0]
        )["deploymentId"]
        return ident

    main, idle = deploy("main"), deploy("idle")
    config = f"wire-{tag}-config"
    cd.create_deployment_config(
        deploymentConfigName=config, minimumHealthyHosts={"type": "HOST_COUNT", "value": 0}
    )
    # GitHub connections are made in AWS's console, not through the API: write them the way the
    # server keeps them, in its own database.
    tokens = tuple(f"wire-{tag}-token-{i}" for i in range(3))
    spare = {p: f"wire-{tag}-spare-{p}" for p in CONTENT_TYPES}
    store = Store.open(url)
    try:
        for token in (*tokens, *spare.values()):
            store.github_tokens.add(name=token, token="ghp_x", now=datetime.now(UTC))
        # The blue/green deployment ContinueDeployment's cases need is written the way the
        # engine leaves one waiting in Ready (STOP_DEPLOYMENT, a 48-hour wait: it stays Ready).
        blue_green: str = stored_deployment(
            store,
            app,
            "bluegreen",
            now=datetime.now(UTC),
            status="Ready",
            deployment_style={
                "deploymentType": "BLUE_GREEN",
                "deploymentOption": "WITHOUT_TRAFFIC_CONTROL",
            },
            blue_green_deployment_configuration={
                "deploymentReadyOption": {
                    "actionOnTimeout": "STOP_DEPLOYMENT",
                    "waitTimeInMinutes": 2880,
                }
            },
            revision=revisions[0],
        )["deployment_id"]
    finally:
        store.close()
    deployments = (main, blue_green, idle)
    return World(
        app=app,
        apps=apps,
        groups=("bluegreen", "idle", "main"),
        hosts=hosts,
        deployment=deployments[0],
        blue_green=deployments[1],
        deployments=deployments,
        config=config,
        revisions=revisions,
        tokens=tokens,
        spare_tokens=spare,
    )


# --- the table: one success and one modeled error per operation ----------------------------------


class Run(NamedTuple):
    protocol: str
    uid: str  # unique per case run, for the resources a case creates


Call = Callable[[Any, World, Run], Any]


@dataclass(frozen=True)
class Case:
    ok: Call | None  # None only with ``no_success`` saying why no call can succeed
    error: Call | None  # None only when the model declares no error for the operation
    code: str | None
    no_success: str = ""


def _new_app(cd: Any, t: Run, suffix: str = "") -> str:
    name = f"c-{t.uid}{suffix}"
    cd.create_application(applicationName=name)
    return name


def _new_host(cd: Any, t: Run) -> str:
    name = f"h-{t.uid}"
    cd.register_on_premises_instance(
        instanceName=name, iamUserArn=f"arn:aws:iam::123456789012:user/{name}"
    )
    return name


def ok_add_tags(cd: Any, w: World, t: Run) -> None:
    host = _new_host(cd, t)
    cd.add_tags_to_on_premises_instances(instanceNames=[host], tags=[{"Key": "k", "Value": "v"}])
    info = cd.get_on_premises_instance(instanceName=host)["instanceInfo"]
    assert info["tags"] == [{"Key": "k", "Value": "v"}]


def ok_remove_tags(cd: Any, w: World, t: Run) -> None:
    host = _new_host(cd, t)
    cd.add_tags_to_on_premises_instances(instanceNames=[host], tags=[{"Key": "k", "Value": "v"}])
    cd.remove_tags_from_on_premises_instances(
        instanceNames=[host], tags=[{"Key": "k", "Value": "v"}]
    )
    assert cd.get_on_premises_instance(instanceName=host)["instanceInfo"].get("tags", []) == []


def ok_deregister(cd: Any, w: World, t: Run) -> None:
    host = _new_host(cd, t)
    cd.deregister_on_premises_instance(instanceName=host)
    info = cd.get_on_premises_instance(instanceName=host)["instanceInfo"]
    assert info["deregisterTime"] >= info["registerTime"]


def ok_register(cd: Any, w: World, t: Run) -> None:
    host = _new_host(cd, t)
    info = cd.get_on_premises_instance(instanceName=host)["instanceInfo"]
    assert info["instanceArn"].startswith(w.arn(f"instance/{host}_"))


def ok_create_deployment(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=[{"Key": "wire", "Value": "nobody", "Type": "KEY_AND_VALUE"}],
    )
    ident = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=s3_revision("x.zip")
    )["deploymentId"]
    assert cd.get_deployment(deploymentId=ident)["deploymentInfo"]["applicationName"] == app


def ok_stop_deployment(cd: Any, w: World, t: Run) -> Any:
    app = _new_app(cd, t)
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="g",
        serviceRoleArn=ROLE,
        onPremisesInstanceTagFilters=[{"Key": "wire", "Value": w.app, "Type": "KEY_AND_VALUE"}],
    )
    ident = cd.create_deployment(
        applicationName=app, deploymentGroupName="g", revision=s3_revision("x.zip")
    )["deploymentId"]
    status = cd.stop_deployment(deploymentId=ident)["status"]
    # Pending: the engine took longer than StopDeployment waits (5 s) on a loaded machine.
    assert status in ("Succeeded", "Pending")
    if status == "Pending":
        # The waiter ends on Stopped as a terminal failure.
        with pytest.raises(WaiterError):
            cd.get_waiter("deployment_successful").wait(
                deploymentId=ident, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
    assert cd.get_deployment(deploymentId=ident)["deploymentInfo"]["status"] == "Stopped"
    return ident


def err_stop_deployment(cd: Any, w: World, t: Run) -> None:
    # The stopped deployment of the success call: stopping it again is AWS's "already completed".
    cd.stop_deployment(
        deploymentId=cd.list_deployments(applicationName=f"c-{t.uid}", deploymentGroupName="g")[
            "deployments"
        ][0]
    )


def ok_create_group(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    ident = cd.create_deployment_group(
        applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE
    )["deploymentGroupId"]
    got = cd.get_deployment_group(applicationName=app, deploymentGroupName="g")
    assert got["deploymentGroupInfo"]["deploymentGroupId"] == ident


def ok_update_group(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.create_deployment_group(applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE)
    cd.update_deployment_group(
        applicationName=app, currentDeploymentGroupName="g", newDeploymentGroupName="h"
    )
    assert cd.list_deployment_groups(applicationName=app)["deploymentGroups"] == ["h"]


def ok_delete_group(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.create_deployment_group(applicationName=app, deploymentGroupName="g", serviceRoleArn=ROLE)
    cd.delete_deployment_group(applicationName=app, deploymentGroupName="g")
    assert cd.list_deployment_groups(applicationName=app)["deploymentGroups"] == []


def ok_create_application(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    assert cd.get_application(applicationName=app)["application"]["computePlatform"] == "Server"


def ok_update_application(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.update_application(applicationName=app, newApplicationName=f"{app}-renamed")
    assert cd.get_application(applicationName=f"{app}-renamed")["application"]


def ok_delete_application(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.delete_application(applicationName=app)
    with pytest.raises(cd.exceptions.ApplicationDoesNotExistException):
        cd.get_application(applicationName=app)


def ok_create_config(cd: Any, w: World, t: Run) -> None:
    name = f"c-{t.uid}"
    cd.create_deployment_config(
        deploymentConfigName=name, minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 50}
    )
    info = cd.get_deployment_config(deploymentConfigName=name)["deploymentConfigInfo"]
    assert info["minimumHealthyHosts"] == {"type": "FLEET_PERCENT", "value": 50}


def ok_delete_config(cd: Any, w: World, t: Run) -> None:
    name = f"c-{t.uid}"
    cd.create_deployment_config(
        deploymentConfigName=name, minimumHealthyHosts={"type": "HOST_COUNT", "value": 1}
    )
    cd.delete_deployment_config(deploymentConfigName=name)
    with pytest.raises(cd.exceptions.DeploymentConfigDoesNotExistException):
        cd.get_deployment_config(deploymentConfigName=name)


def ok_register_revision(cd: Any, w: World, t: Run) -> None:
    app = _new_app(cd, t)
    cd.register_application_revision(
        applicationName=app, revision=s3_revision("r.zip"), description="d"
    )
    assert cd.list_application_revisions(applicationName=app)["revisions"] == [s3_revision("r.zip")]


def ok_tag_resource(cd: Any, w: World, t: Run) -> None:
    arn = w.arn(f"application:{_new_app(cd, t)}")
    cd.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "x"}])
    assert cd.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "x"}]


def ok_untag_resource(cd: Any, w: World, t: Run) -> None:
    arn = w.arn(f"application:{_new_app(cd, t)}")
    cd.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    cd.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert cd.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]


def ok_delete_token(cd: Any, w: World, t: Run) -> None:
    token = w.spare_tokens[t.protocol]
    assert cd.delete_git_hub_account_token(tokenName=token)["tokenName"] == token
    names = [
        n
        for page in cd.get_paginator("list_git_hub_account_token_names").paginate()
        for n in page["tokenNameList"]
    ]
    assert token not in names and set(w.tokens) <= set(names)


def ok_batch_instances(cd: Any, w: World, t: Run) -> None:
    got = cd.batch_get_deployment_instances(deploymentId=w.deployment, instanceIds=list(w.hosts))
    assert len(got["instancesSummary"]) == 3 and got["errorMessage"] == ""


def ok_batch_targets(cd: Any, w: World, t: Run) -> None:
    got = cd.batch_get_deployment_targets(deploymentId=w.deployment, targetIds=list(w.hosts))
    ids = [target["instanceTarget"]["targetId"] for target in got["deploymentTargets"]]
    assert sorted(ids) == sorted(w.hosts)


def expect(actual: object, expected: object) -> None:
    assert actual == expected


def _page_one(items: list[Any], response: dict[str, Any]) -> None:
    """A first page of a listing that has more: :data:`PAGE` items and a token."""
    assert len(items) == PAGE and response["nextToken"]


CASES: dict[str, Case] = {
    "AddTagsToOnPremisesInstances": Case(
        ok_add_tags,
        lambda cd, w, t: cd.add_tags_to_on_premises_instances(
            instanceNames=[f"nobody-{t.uid}"], tags=[{"Key": "k", "Value": "v"}]
        ),
        "InstanceNotRegisteredException",
    ),
    "BatchGetApplicationRevisions": Case(
        lambda cd, w, t: expect(
            len(
                cd.batch_get_application_revisions(
                    applicationName=w.app, revisions=list(w.revisions)
                )["revisions"]
            ),
            3,
        ),
        lambda cd, w, t: cd.batch_get_application_revisions(
            applicationName=f"nobody-{t.uid}", revisions=list(w.revisions)
        ),
        "ApplicationDoesNotExistException",
    ),
    "BatchGetApplications": Case(
        lambda cd, w, t: expect(
            [
                a["applicationName"]
                for a in cd.batch_get_applications(applicationNames=list(w.apps))[
                    "applicationsInfo"
                ]
            ],
            list(w.apps),
        ),
        lambda cd, w, t: cd.batch_get_applications(applicationNames=[w.app, f"nobody-{t.uid}"]),
        "ApplicationDoesNotExistException",
    ),
    "BatchGetDeploymentGroups": Case(
        lambda cd, w, t: expect(
            len(
                cd.batch_get_deployment_groups(
                    applicationName=w.app, deploymentGroupNames=list(w.groups)
                )["deploymentGroupsInfo"]
            ),
            3,
        ),
        lambda cd, w, t: cd.batch_get_deployment_groups(
            applicationName=f"nobody-{t.uid}", deploymentGroupNames=["main"]
        ),
        "ApplicationDoesNotExistException",
    ),
    "BatchGetDeploymentInstances": Case(
        ok_batch_instances,
        lambda cd, w, t: cd.batch_get_deployment_instances(
            deploymentId="not-an-id", instanceIds=list(w.hosts)
        ),
        "InvalidDeploymentIdException",
    ),
    "BatchGetDeploymentTargets": Case(
        ok_batch_targets,
        lambda cd, w, t: cd.batch_get_deployment_targets(
            deploymentId=w.deployment, targetIds=[f"nobody-{t.uid}"]
        ),
        "DeploymentTargetDoesNotExistException",
    ),
    "BatchGetDeployments": Case(
        lambda cd, w, t: expect(
            [
                d["deploymentId"]
                for d in cd.batch_get_deployments(deploymentIds=list(w.deployments))[
                    "deploymentsInfo"
                ]
            ],
            list(w.deployments),
        ),
        lambda cd, w, t: cd.batch_get_deployments(deploymentIds=["not-an-id"]),
        "InvalidDeploymentIdException",
    ),
    "BatchGetOnPremisesInstances": Case(
        lambda cd, w, t: expect(
            sorted(
                i["instanceName"]
                for i in cd.batch_get_on_premises_instances(instanceNames=list(w.hosts))[
                    "instanceInfos"
                ]
            ),
            sorted(w.hosts),
        ),
        lambda cd, w, t: cd.batch_get_on_premises_instances(
            instanceNames=[f"h{i}" for i in range(26)]
        ),
        "BatchLimitExceededException",
    ),
    "ContinueDeployment": Case(
        lambda cd, w, t: cd.continue_deployment(
            deploymentId=w.blue_green, deploymentWaitType="TERMINATION_WAIT"
        ),
        lambda cd, w, t: cd.continue_deployment(
            deploymentId=w.deployment, deploymentWaitType="TERMINATION_WAIT"
        ),
        "UnsupportedActionForDeploymentTypeException",
    ),
    "CreateApplication": Case(
        ok_create_application,
        lambda cd, w, t: cd.create_application(applicationName=w.app),
        "ApplicationAlreadyExistsException",
    ),
    "CreateDeployment": Case(
        ok_create_deployment,
        lambda cd, w, t: cd.create_deployment(
            applicationName=w.app, deploymentGroupName=f"nobody-{t.uid}", revision=w.revisions[0]
        ),
        "DeploymentGroupDoesNotExistException",
    ),
    "CreateDeploymentConfig": Case(
        ok_create_config,
        lambda cd, w, t: cd.create_deployment_config(
            deploymentConfigName=w.config, minimumHealthyHosts={"type": "HOST_COUNT", "value": 0}
        ),
        "DeploymentConfigAlreadyExistsException",
    ),
    "CreateDeploymentGroup": Case(
        ok_create_group,
        lambda cd, w, t: cd.create_deployment_group(
            applicationName=w.app, deploymentGroupName="main", serviceRoleArn=ROLE
        ),
        "DeploymentGroupAlreadyExistsException",
    ),
    "DeleteApplication": Case(
        ok_delete_application,
        lambda cd, w, t: cd.delete_application(applicationName="not a name!"),
        "InvalidApplicationNameException",
    ),
    "DeleteDeploymentConfig": Case(
        ok_delete_config,
        lambda cd, w, t: cd.delete_deployment_config(
            deploymentConfigName="CodeDeployDefault.OneAtATime"
        ),
        "InvalidOperationException",
    ),
    "DeleteDeploymentGroup": Case(
        ok_delete_group,
        lambda cd, w, t: cd.delete_deployment_group(
            applicationName=w.app, deploymentGroupName="not a name!"
        ),
        "InvalidDeploymentGroupNameException",
    ),
    "DeleteGitHubAccountToken": Case(
        ok_delete_token,
        lambda cd, w, t: cd.delete_git_hub_account_token(tokenName=f"nobody-{t.uid}"),
        "GitHubAccountTokenDoesNotExistException",
    ),
    "DeleteResourcesByExternalId": Case(
        lambda cd, w, t: cd.delete_resources_by_external_id(externalId=f"stack-{t.uid}"),
        None,
        None,
    ),
    "DeregisterOnPremisesInstance": Case(
        ok_deregister,
        lambda cd, w, t: cd.deregister_on_premises_instance(instanceName="not a name!"),
        "InvalidInstanceNameException",
    ),
    "GetApplication": Case(
        lambda cd, w, t: expect(
            cd.get_application(applicationName=w.app)["application"]["applicationName"], w.app
        ),
        lambda cd, w, t: cd.get_application(applicationName=f"nobody-{t.uid}"),
        "ApplicationDoesNotExistException",
    ),
    "GetApplicationRevision": Case(
        lambda cd, w, t: expect(
            cd.get_application_revision(applicationName=w.app, revision=w.revisions[1])["revision"],
            w.revisions[1],
        ),
        lambda cd, w, t: cd.get_application_revision(
            applicationName=w.app, revision=s3_revision(f"nobody-{t.uid}.zip")
        ),
        "RevisionDoesNotExistException",
    ),
    "GetDeployment": Case(
        lambda cd, w, t: expect(
            cd.get_deployment(deploymentId=w.deployment)["deploymentInfo"]["deploymentGroupName"],
            "main",
        ),
        lambda cd, w, t: cd.get_deployment(deploymentId=MISSING_DEPLOYMENT),
        "DeploymentDoesNotExistException",
    ),
    "GetDeploymentConfig": Case(
        lambda cd, w, t: expect(
            cd.get_deployment_config(deploymentConfigName=w.config)["deploymentConfigInfo"][
                "minimumHealthyHosts"
            ],
            {"type": "HOST_COUNT", "value": 0},
        ),
        lambda cd, w, t: cd.get_deployment_config(deploymentConfigName=f"nobody-{t.uid}"),
        "DeploymentConfigDoesNotExistException",
    ),
    "GetDeploymentGroup": Case(
        lambda cd, w, t: expect(
            cd.get_deployment_group(applicationName=w.app, deploymentGroupName="bluegreen")[
                "deploymentGroupInfo"
            ]["deploymentStyle"]["deploymentType"],
            "BLUE_GREEN",
        ),
        lambda cd, w, t: cd.get_deployment_group(
            applicationName=w.app, deploymentGroupName=f"nobody-{t.uid}"
        ),
        "DeploymentGroupDoesNotExistException",
    ),
    "GetDeploymentInstance": Case(
        lambda cd, w, t: expect(
            cd.get_deployment_instance(deploymentId=w.deployment, instanceId=w.hosts[0])[
                "instanceSummary"
            ]["deploymentId"],
            w.deployment,
        ),
        lambda cd, w, t: cd.get_deployment_instance(
            deploymentId=w.deployment, instanceId=f"nobody-{t.uid}"
        ),
        "InstanceDoesNotExistException",
    ),
    "GetDeploymentTarget": Case(
        lambda cd, w, t: expect(
            cd.get_deployment_target(deploymentId=w.deployment, targetId=w.hosts[1])[
                "deploymentTarget"
            ]["instanceTarget"]["targetId"],
            w.hosts[1],
        ),
        lambda cd, w, t: cd.get_deployment_target(
            deploymentId=MISSING_DEPLOYMENT, targetId=w.hosts[1]
        ),
        "DeploymentDoesNotExistException",
    ),
    "GetOnPremisesInstance": Case(
        lambda cd, w, t: expect(
            cd.get_on_premises_instance(instanceName=w.hosts[0])["instanceInfo"]["tags"],
            [{"Key": "wire", "Value": w.app}],
        ),
        lambda cd, w, t: cd.get_on_premises_instance(instanceName=f"nobody-{t.uid}"),
        "InstanceNotRegisteredException",
    ),
    "ListApplicationRevisions": Case(
        lambda cd, w, t: _page_one(
            (r := cd.list_application_revisions(applicationName=w.app))["revisions"], r
        ),
        lambda cd, w, t: cd.list_application_revisions(applicationName=f"nobody-{t.uid}"),
        "ApplicationDoesNotExistException",
    ),
    "ListApplications": Case(
        lambda cd, w, t: _page_one((r := cd.list_applications())["applications"], r),
        lambda cd, w, t: cd.list_applications(nextToken="garbage"),
        "InvalidNextTokenException",
    ),
    "ListDeploymentConfigs": Case(
        lambda cd, w, t: _page_one((r := cd.list_deployment_configs())["deploymentConfigsList"], r),
        lambda cd, w, t: cd.list_deployment_configs(nextToken="garbage"),
        "InvalidNextTokenException",
    ),
    "ListDeploymentGroups": Case(
        lambda cd, w, t: _page_one(
            (r := cd.list_deployment_groups(applicationName=w.app))["deploymentGroups"], r
        ),
        lambda cd, w, t: cd.list_deployment_groups(applicationName=f"nobody-{t.uid}"),
        "ApplicationDoesNotExistException",
    ),
    "ListDeploymentInstances": Case(
        lambda cd, w, t: _page_one(
            (r := cd.list_deployment_instances(deploymentId=w.deployment))["instancesList"], r
        ),
        lambda cd, w, t: cd.list_deployment_instances(deploymentId=MISSING_DEPLOYMENT),
        "DeploymentDoesNotExistException",
    ),
    "ListDeploymentTargets": Case(
        lambda cd, w, t: _page_one(
            (r := cd.list_deployment_targets(deploymentId=w.deployment))["targetIds"], r
        ),
        lambda cd, w, t: cd.list_deployment_targets(deploymentId="not-an-id"),
        "InvalidDeploymentIdException",
    ),
    "ListDeployments": Case(
        lambda cd, w, t: expect(
            cd.list_deployments(applicationName=w.app, deploymentGroupName="main")["deployments"],
            [w.deployment],
        ),
        lambda cd, w, t: cd.list_deployments(
            applicationName=w.app, deploymentGroupName=f"nobody-{t.uid}"
        ),
        "DeploymentGroupDoesNotExistException",
    ),
    "ListGitHubAccountTokenNames": Case(
        lambda cd, w, t: _page_one(
            (r := cd.list_git_hub_account_token_names())["tokenNameList"], r
        ),
        lambda cd, w, t: cd.list_git_hub_account_token_names(nextToken="garbage"),
        "InvalidNextTokenException",
    ),
    "ListOnPremisesInstances": Case(
        lambda cd, w, t: expect(
            sorted(
                cd.list_on_premises_instances(
                    tagFilters=[{"Key": "wire", "Value": w.app, "Type": "KEY_AND_VALUE"}]
                )["instanceNames"]
            ),
            sorted(w.hosts)[:PAGE],
        ),
        lambda cd, w, t: cd.list_on_premises_instances(registrationStatus="Sideways"),
        "InvalidRegistrationStatusException",
    ),
    "ListTagsForResource": Case(
        lambda cd, w, t: expect(
            cd.list_tags_for_resource(ResourceArn=w.arn(f"application:{w.app}"))["Tags"], []
        ),
        lambda cd, w, t: cd.list_tags_for_resource(ResourceArn="arn:aws:s3:::bucket"),
        "InvalidArnException",
    ),
    "PutLifecycleEventHookExecutionStatus": Case(
        None,
        lambda cd, w, t: cd.put_lifecycle_event_hook_execution_status(
            deploymentId=w.deployment,
            lifecycleEventHookExecutionId=str(uuid.uuid4()),
            status="Succeeded",
        ),
        "UnsupportedActionForDeploymentTypeException",
        no_success=(
            "only Lambda and ECS hook executions can be reported; a Lambda deployment's are "
            "answered in tests/e2e/test_lambda_moto.py"
        ),
    ),
    "RegisterApplicationRevision": Case(
        ok_register_revision,
        lambda cd, w, t: cd.register_application_revision(
            applicationName=f"nobody-{t.uid}", revision=w.revisions[0]
        ),
        "ApplicationDoesNotExistException",
    ),
    "RegisterOnPremisesInstance": Case(
        ok_register,
        lambda cd, w, t: cd.register_on_premises_instance(
            instanceName=w.hosts[0], iamUserArn=f"arn:aws:iam::123456789012:user/{t.uid}"
        ),
        "InstanceNameAlreadyRegisteredException",
    ),
    "RemoveTagsFromOnPremisesInstances": Case(
        ok_remove_tags,
        lambda cd, w, t: cd.remove_tags_from_on_premises_instances(
            instanceNames=[f"nobody-{t.uid}"], tags=[{"Key": "k"}]
        ),
        "InstanceNotRegisteredException",
    ),
    "SkipWaitTimeForInstanceTermination": Case(
        lambda cd, w, t: cd.skip_wait_time_for_instance_termination(deploymentId=w.blue_green),
        lambda cd, w, t: cd.skip_wait_time_for_instance_termination(deploymentId=w.deployment),
        "UnsupportedActionForDeploymentTypeException",
    ),
    "StopDeployment": Case(
        ok_stop_deployment, err_stop_deployment, "DeploymentAlreadyCompletedException"
    ),
    "TagResource": Case(
        ok_tag_resource,
        lambda cd, w, t: cd.tag_resource(
            ResourceArn=w.arn(f"application:nobody-{t.uid}"), Tags=[{"Key": "k", "Value": "v"}]
        ),
        "ApplicationDoesNotExistException",
    ),
    "UntagResource": Case(
        ok_untag_resource,
        lambda cd, w, t: cd.untag_resource(ResourceArn="not-an-arn", TagKeys=["k"]),
        "InvalidArnException",
    ),
    "UpdateApplication": Case(
        ok_update_application,
        lambda cd, w, t: cd.update_application(applicationName=w.apps[1], newApplicationName=w.app),
        "ApplicationAlreadyExistsException",
    ),
    "UpdateDeploymentGroup": Case(
        ok_update_group,
        lambda cd, w, t: cd.update_deployment_group(
            applicationName=w.app, currentDeploymentGroupName=f"nobody-{t.uid}"
        ),
        "DeploymentGroupDoesNotExistException",
    ),
}


def test_the_table_covers_exactly_the_models_operations() -> None:
    assert set(CASES) == set(MODEL["operations"])
    for name, case in CASES.items():
        declared = {e["shape"] for e in MODEL["operations"][name].get("errors", [])}
        if case.error is None:
            assert not declared, f"{name} declares errors: its case must produce one"
        else:
            assert case.code in declared, f"{case.code} is not an error {name} declares"
        assert case.ok is not None or case.no_success, f"{name} needs a successful call"


@pytest.mark.parametrize("operation", sorted(CASES))
def test_operation_succeeds_and_fails_as_modeled(
    operation: str, cd: Any, protocol: str, world: World, sent: list[Sent]
) -> None:
    case = CASES[operation]
    run = Run(protocol, f"{protocol[0]}{uuid.uuid4().hex[:8]}")
    if case.ok is not None:
        sent.clear()
        case.ok(cd, world, run)
        assert operation in {s.operation for s in sent}
        assert {s.content_type for s in sent} == {CONTENT_TYPES[protocol]}
    if case.error is not None:
        sent.clear()
        with pytest.raises(ClientError) as caught:
            case.error(cd, world, run)
        assert caught.value.operation_name == operation
        error = caught.value.response
        assert error["Error"]["Code"] == case.code, error["Error"]
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error["Error"]["Message"]
        assert sent[-1] == Sent(operation, CONTENT_TYPES[protocol])


# --- paginators ----------------------------------------------------------------------------------


def _expected_pages(w: World) -> dict[str, tuple[dict[str, Any], set[Any], bool]]:
    """Per paginator: its arguments, the items it must return, and whether exactly those."""
    hosts = set(w.hosts)
    return {
        "ListApplicationRevisions": (
            {"applicationName": w.app},
            {json.dumps(r, sort_keys=True) for r in w.revisions},
            True,
        ),
        "ListApplications": ({}, set(w.apps), False),
        "ListDeploymentConfigs": ({}, {*PREDEFINED, w.config}, False),
        "ListDeploymentGroups": ({"applicationName": w.app}, set(w.groups), True),
        "ListDeploymentInstances": ({"deploymentId": w.deployment}, hosts, True),
        "ListDeployments": ({}, set(w.deployments), False),
        "ListDeploymentTargets": ({"deploymentId": w.deployment}, hosts, True),
        "ListGitHubAccountTokenNames": ({}, set(w.tokens), False),
        "ListOnPremisesInstances": (
            {"tagFilters": [{"Key": "wire", "Value": w.app, "Type": "KEY_AND_VALUE"}]},
            hosts,
            True,
        ),
    }


def _snake(name: str) -> str:
    from botocore import xform_name

    return str(xform_name(name))


@pytest.mark.parametrize("operation", sorted(PAGINATORS))
def test_paginator_walks_every_page(operation: str, cd: Any, world: World) -> None:
    arguments, expected, exact = _expected_pages(world)[operation]
    key = PAGINATORS[operation]["result_key"]
    pages = list(cd.get_paginator(_snake(operation)).paginate(**arguments))
    items = [
        json.dumps(item, sort_keys=True) if isinstance(item, dict) else item
        for page in pages
        for item in page[key]
    ]
    assert len(pages) >= 2
    assert all(len(page[key]) <= PAGE for page in pages)
    assert len(items) == len(set(items)), "an item came twice"
    if exact:
        assert set(items) == expected
    else:
        assert expected <= set(items)
    assert "nextToken" not in pages[-1]


def test_every_paginator_of_the_model_is_tested() -> None:
    assert set(_expected_pages(World("", (), (), (), "", "", (), "", (), (), {}))) == set(
        PAGINATORS
    )


# --- deployment instances: one naming across the deprecated and current operations --------------


def test_instance_ids_agree_between_list_batch_get_and_targets(cd: Any, world: World) -> None:
    """ListDeploymentInstances lists instance names (AWS: the EC2 id ``i-…``); InstanceSummary's
    ``instanceId`` is the instance ARN (AWS: ``arn:aws:ec2:…:instance/i-…``, as its CLI example
    of get-deployment-instance shows), the same ARN as the target's ``targetArn`` and the
    registered instance's ``instanceArn``; either form finds the instance again."""
    listed = [
        i
        for page in cd.get_paginator("list_deployment_instances").paginate(
            deploymentId=world.deployment
        )
        for i in page["instancesList"]
    ]
    assert sorted(listed) == sorted(world.hosts)
    arns = {
        info["instanceName"]: info["instanceArn"]
        for info in cd.batch_get_on_premises_instances(instanceNames=listed)["instanceInfos"]
    }
    targets = cd.batch_get_deployment_targets(deploymentId=world.deployment, targetIds=listed)
    target_arns = {
        t["instanceTarget"]["targetId"]: t["instanceTarget"]["targetArn"]
        for t in targets["deploymentTargets"]
    }
    assert target_arns == arns
    summaries = cd.batch_get_deployment_instances(
        deploymentId=world.deployment, instanceIds=listed
    )["instancesSummary"]
    assert sorted(s["instanceId"] for s in summaries) == sorted(arns.values())
    by_arn = cd.batch_get_deployment_instances(
        deploymentId=world.deployment, instanceIds=sorted(arns.values())
    )["instancesSummary"]
    assert sorted(s["instanceId"] for s in by_arn) == sorted(arns.values())
    name = listed[0]
    by_name = cd.get_deployment_instance(deploymentId=world.deployment, instanceId=name)
    again = cd.get_deployment_instance(deploymentId=world.deployment, instanceId=arns[name])
    assert by_name["instanceSummary"]["instanceId"] == arns[name]
    assert again["instanceSummary"]["instanceId"] == arns[name]
    partial = cd.batch_get_deployment_instances(
        deploymentId=world.deployment, instanceIds=[name, "nobody-here"]
    )
    assert [s["instanceId"] for s in partial["instancesSummary"]] == [arns[name]]
    assert "nobody-here" in partial["errorMessage"]


# --- SigV4 refusals by the real server -----------------------------------------------------------


def _refusal(client: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        client.list_applications()
    error: dict[str, Any] = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)
    return error


def test_unsigned_request_is_missing_the_authentication_token(
    server: RunningServer, protocol: str, cbor_data_path: Path
) -> None:
    client = wire_client(server, protocol, cbor_data_path, signature_version=UNSIGNED)
    assert _refusal(client)["Code"] == "MissingAuthenticationTokenException"


def test_unknown_access_key_is_an_unrecognized_client(
    server: RunningServer, protocol: str, cbor_data_path: Path
) -> None:
    client = wire_client(server, protocol, cbor_data_path, key_id="AKIANOTKNOWN00000000")
    assert _refusal(client)["Code"] == "UnrecognizedClientException"


def test_wrong_secret_is_an_invalid_signature(
    server: RunningServer, protocol: str, cbor_data_path: Path
) -> None:
    client = wire_client(server, protocol, cbor_data_path, secret="not-the-secret-0123456789")
    assert _refusal(client)["Code"] == "InvalidSignatureException"


@pytest.mark.parametrize("skew", [timedelta(minutes=-16), timedelta(minutes=16)])
def test_request_signed_more_than_15_minutes_off_is_refused(
    server: RunningServer,
    protocol: str,
    cbor_data_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    skew: timedelta,
) -> None:
    # The client's clock is off, not the server's: botocore stamps X-Amz-Date from this function.
    real_now = botocore.auth.get_current_datetime
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real_now() + skew)
    error = _refusal(wire_client(server, protocol, cbor_data_path))
    assert error["Code"] == "InvalidSignatureException"
    expected = "Signature expired" if skew < timedelta() else "Signature not yet current"
    assert error["Message"].startswith(expected), error["Message"]


def test_skew_within_15_minutes_is_accepted(
    server: RunningServer, protocol: str, cbor_data_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_now = botocore.auth.get_current_datetime
    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda: real_now() - timedelta(minutes=10)
    )
    assert "applications" in wire_client(server, protocol, cbor_data_path).list_applications()


class _BodySigningQueryAuth(botocore.auth.SigV4QueryAuth):  # type: ignore[misc]
    """SigV4 in the query string over a JSON body.

    botocore's query signer moves a body into the query string (the Query protocol's form
    parameters); a JSON request keeps its body, and the signature covers the body's SHA-256.
    """

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        body = request.data
        request.data = b""
        super()._modify_request_before_signing(request)
        request.data = body


def test_query_string_presigned_request_is_accepted(server: RunningServer, world: World) -> None:
    body = json.dumps({"applicationName": world.app}).encode()
    headers = {
        "X-Amz-Target": "CodeDeploy_20141006.GetApplication",
        "Content-Type": "application/x-amz-json-1.1",
    }
    request = AWSRequest(method="POST", url=f"{server.endpoint}/", data=body, headers=headers)
    credentials = Credentials(server.access_key_id, server.secret_access_key)
    _BodySigningQueryAuth(credentials, "codedeploy", server.region, expires=60).add_auth(request)
    assert "X-Amz-Signature=" in request.url and "Authorization" not in request.headers
    response = httpx.post(request.url, content=body, headers=dict(request.headers.items()))
    assert response.status_code == 200, response.text
    assert response.json()["application"]["applicationName"] == world.app
    # The same URL with another body is not what was signed.
    other = json.dumps({"applicationName": world.apps[1]}).encode()
    tampered = httpx.post(request.url, content=other, headers=dict(request.headers.items()))
    assert tampered.status_code == 400
    assert tampered.json()["__type"] == "InvalidSignatureException"


# --- aws-cli v1 across pages ---------------------------------------------------------------------


def test_aws_cli_merges_every_page(server: RunningServer, world: World) -> None:
    """aws-cli v1 follows nextToken itself and prints the items of every page as one list."""
    aws = Path(sys.executable).with_name("aws")

    def run(*args: str) -> Any:
        done = subprocess.run(
            [str(aws), "deploy", *args, "--endpoint-url", server.endpoint, "--output", "json"],
            env={**os.environ, **server.env()},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(done.stdout)

    targets = run("list-deployment-targets", "--deployment-id", world.deployment)["targetIds"]
    assert sorted(targets) == sorted(world.hosts)  # three targets: two pages of two
    hosts = run(
        "list-on-premises-instances",
        "--tag-filters",
        f"Key=wire,Value={world.app},Type=KEY_AND_VALUE",
    )["instanceNames"]
    assert sorted(hosts) == sorted(world.hosts)
