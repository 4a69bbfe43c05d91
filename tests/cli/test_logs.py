"""``opendeploy logs`` as a subprocess against a real server and three real agents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opendeploy.cli.logs import fetch_output
from tests.cli.deploy_cluster import Cluster, deploy_cluster, deployment_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with deploy_cluster(tmp_path_factory.mktemp("logs")) as c:
        yield c


@pytest.fixture(scope="module")
def deployments(cluster: Cluster) -> dict[str, str]:
    good = cluster.deploy(cluster.good)
    assert good.returncode == 0, good.stdout + good.stderr
    broken = cluster.deploy(cluster.broken)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    return {"good": deployment_id(good.stdout), "broken": deployment_id(broken.stdout)}


def test_logs_prints_the_hook_output_of_one_event_as_plain_lines(
    cluster: Cluster, deployments: dict[str, str]
) -> None:
    result = cluster.cli("logs", deployments["broken"], "--event", "ValidateService")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("host-1 ValidateService | ") for line in lines)
    assert any("health check failed: VERSION is '2-broken', not a number" in x for x in lines)
    assert "\x1b" not in result.stdout


def test_logs_keeps_the_stdout_and_stderr_markers(
    cluster: Cluster, deployments: dict[str, str]
) -> None:
    result = cluster.cli("logs", deployments["broken"], "--event", "ValidateService")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("host-1 ValidateService | [stdout]") for line in lines), lines
    assert any(
        line.startswith("host-1 ValidateService | [stderr]health check failed") for line in lines
    ), lines


def test_logs_refuses_a_misspelt_event(cluster: Cluster, deployments: dict[str, str]) -> None:
    result = cluster.cli("logs", deployments["broken"], "--event", "ValidateServce")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "'ValidateServce' is not a lifecycle event. Did you mean ValidateService?" in (
        result.stderr
    )


def test_logs_refuses_an_instance_that_is_not_a_target(
    cluster: Cluster, deployments: dict[str, str]
) -> None:
    result = cluster.cli("logs", deployments["broken"], "--instance", "host-9")
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"host-9: not an instance of {deployments['broken']}" in result.stderr
    assert "host-1, host-2, host-3" in result.stderr


def test_logs_filters_by_instance(cluster: Cluster, deployments: dict[str, str]) -> None:
    result = cluster.cli("logs", deployments["broken"], "--instance", "host-1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("host-1 ") for line in lines)
    assert any("checking health of version 2-broken" in line for line in lines)
    skipped = cluster.cli("logs", deployments["broken"], "--instance", "host-2")
    assert skipped.returncode == 0 and skipped.stdout == ""


def test_the_server_answers_the_output_endpoint(
    cluster: Cluster, deployments: dict[str, str]
) -> None:
    lines, cursor = fetch_output(cluster.client, deployments["good"])
    assert cursor  # an answer, not a 404 (OutputUnavailableError)


def test_streamed_output_of_real_agents_is_recorded(
    cluster: Cluster, deployments: dict[str, str]
) -> None:
    lines, _ = fetch_output(cluster.client, deployments["good"], event="ValidateService")
    assert any(line.line == "[stdout]healthy" for line in lines)


def test_logs_of_an_unknown_deployment_exits_255(cluster: Cluster) -> None:
    result = cluster.cli("logs", "d-NOSUCHONE")
    assert result.returncode == 255
    assert "DeploymentDoesNotExist" in result.stderr
