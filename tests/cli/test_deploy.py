"""``opendeploy deploy`` as a subprocess against a real server and three real agents."""

from __future__ import annotations

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
    assert f"Rollback: {rollback['rollbackDeploymentId']}" in out


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
