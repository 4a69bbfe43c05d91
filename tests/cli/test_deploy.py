"""``opendeploy deploy`` as a subprocess against a real server and three real agents."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.deploy_cluster import Cluster, deploy_cluster, deployment_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with deploy_cluster(tmp_path_factory.mktemp("deploy")) as c:
        yield c


def test_deploy_pushes_creates_and_follows_to_success_in_plain_lines(cluster: Cluster) -> None:
    result = cluster.deploy(cluster.good, "--description", "first")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b" not in out
    dep = deployment_id(out)
    lines = out.splitlines()
    for host in ("host-1", "host-2", "host-3"):
        assert f"{host} ValidateService Succeeded" in out
        assert f"{host} Succeeded" in lines
    assert f"Deployment {dep} Succeeded in " in out
    # The deployment's own first line comes before any instance's; its end is said once.
    assert lines[0] == f"Created deployment {dep}" and lines[1].startswith(f"{dep} ")
    assert f"{dep} Succeeded (" not in out
    info = cluster.client.get_deployment(deploymentId=dep)["deploymentInfo"]
    assert info["description"] == "first"
    assert info["deploymentConfigName"] == "CodeDeployDefault.HalfAtATime"
    assert info["revision"]["s3Location"]["bucket"] == "opendeploy-bundles"
    proof = Path(cluster.agents[0].directory, "proof", "events.log").read_text()
    assert f"ValidateService {dep}" in proof


def test_deploy_of_a_broken_revision_exits_1_with_the_failure_and_the_rollback(
    cluster: Cluster,
) -> None:
    result = cluster.deploy(cluster.broken)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "\x1b" not in out
    dep = deployment_id(out)
    assert "host-1 ValidateService Failed" in out
    assert (
        "Failed on host-1 at ValidateService, script scripts/validate.sh, error ScriptFailed" in out
    )
    assert "health check failed: VERSION is '2-broken', not a number" in out
    rollback = cluster.client.get_deployment(deploymentId=dep)["deploymentInfo"]["rollbackInfo"]
    rollback_id = rollback["rollbackDeploymentId"]
    assert f"Rollback: {rollback_id}" in out
    # The rollback it announces is followed to its end; the exit status stays the deployment's.
    after = out.split(f"Following the rollback {rollback_id}", 1)[1]
    assert f"Deployment {rollback_id} Succeeded in " in after
    info = cluster.client.get_deployment(deploymentId=rollback_id)["deploymentInfo"]
    assert info["status"] == "Succeeded"


def test_deploy_errors_exit_255_with_the_service_message(cluster: Cluster) -> None:
    result = cluster.cli(
        "deploy",
        "--application-name",
        "nope",
        "--deployment-group-name",
        "demo",
        str(cluster.good),
    )
    assert result.returncode == 255
    assert "ApplicationDoesNotExist" in result.stderr
    missing = cluster.cli(
        "deploy",
        "--application-name",
        "quickstart",
        "--deployment-group-name",
        "demo",
        str(cluster.good / "site"),
    )
    assert missing.returncode == 255
    assert "appspec.yml was not found" in missing.stderr


def _revision_count(cluster: Cluster) -> int:
    pages = cluster.client.get_paginator("list_application_revisions").paginate(
        applicationName="quickstart"
    )
    return sum(len(page["revisions"]) for page in pages)


def _bundles_under(cluster: Cluster, prefix: str) -> list[str]:
    s3 = cluster.server.client("s3")
    try:
        answer = s3.list_objects_v2(Bucket="opendeploy-bundles", Prefix=prefix)
    except s3.exceptions.NoSuchBucket:
        return []
    return [item["Key"] for item in answer.get("Contents", [])]


def test_deploy_and_push_check_names_before_uploading(cluster: Cluster) -> None:
    before, uploaded = _revision_count(cluster), _bundles_under(cluster, "quickstart/")
    result = cluster.cli(
        "deploy",
        "--application-name",
        "quickstart",
        "--deployment-group-name",
        "no-such-group",
        str(cluster.good),
    )
    assert result.returncode == 255
    assert "DeploymentGroupDoesNotExist" in result.stderr
    assert _revision_count(cluster) == before
    assert _bundles_under(cluster, "quickstart/") == uploaded
    pushed = cluster.cli("push", "--application-name", "no-such-app", "--source", str(cluster.good))
    assert pushed.returncode != 0
    assert "ApplicationDoesNotExist" in pushed.stderr
    assert _bundles_under(cluster, "no-such-app/") == []


def test_deploy_passes_the_create_deployment_options(cluster: Cluster, tmp_path: Path) -> None:
    source = tmp_path / "good"
    shutil.copytree(cluster.good, source)
    (source / "site" / ".hidden").write_text("not for the hosts\n")
    result = cluster.deploy(
        source,
        "--ignore-application-stop-failures",
        "--auto-rollback-configuration",
        "enabled=false",
        "--ignore-hidden-files",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    info = cluster.client.get_deployment(deploymentId=deployment_id(result.stdout))[
        "deploymentInfo"
    ]
    assert info["ignoreApplicationStopFailures"] is True
    assert info["autoRollbackConfiguration"] == {"enabled": False}
    www = cluster.good.parent.parent / "www"
    assert (www / "index.html").exists() and not (www / ".hidden").exists()
    bad = cluster.deploy(source, "--auto-rollback-configuration", "enabled=maybe")
    assert bad.returncode == 255 and "enabled" in bad.stderr


def test_update_outdated_instances_only_leaves_out_the_up_to_date_hosts(cluster: Cluster) -> None:
    group = cluster.client.get_deployment_group(
        applicationName="quickstart", deploymentGroupName="demo"
    )["deploymentGroupInfo"]
    last = group["lastSuccessfulDeployment"]["deploymentId"]
    revision = cluster.client.get_deployment(deploymentId=last)["deploymentInfo"]["revision"]
    # A host added since (no agent): the only one not running that revision yet.
    cluster.client.register_on_premises_instance(
        instanceName="host-new", iamUserArn="arn:aws:iam::123456789012:user/host-new"
    )
    cluster.client.add_tags_to_on_premises_instances(
        instanceNames=["host-new"], tags=[{"Key": "quickstart", "Value": "demo"}]
    )
    try:
        created = cluster.cli(
            "create-deployment",
            "--application-name",
            "quickstart",
            "--deployment-group-name",
            "demo",
            "--revision",
            json.dumps(revision),
            "--update-outdated-instances-only",
            "--query",
            "deploymentId",
            "--output",
            "text",
        )
        assert created.returncode == 0, created.stderr
        dep = created.stdout.strip()
        targets = cluster.cli("list-deployment-targets", "--deployment-id", dep)
        assert json.loads(targets.stdout)["targetIds"] == ["host-new"]
        status = cluster.client.get_deployment(deploymentId=dep)["deploymentInfo"]["status"]
        if status not in ("Succeeded", "Failed", "Stopped"):
            cluster.client.stop_deployment(deploymentId=dep)
    finally:
        cluster.client.deregister_on_premises_instance(instanceName="host-new")
