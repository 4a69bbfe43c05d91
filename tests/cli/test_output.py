"""``--output json|text|table`` and ``--query``: byte for byte what aws-cli v1 prints.

Both programs run against the same server with the same shared files (the server's credentials
and config, which carry the endpoint), so any difference is ours.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opendeploy.testing.server import RunningServer, running_server
from tests.cli._aws_cli import AWS, OPENDEPLOY, ROLE, run, shared_files_env

APP = f"out-{uuid.uuid4().hex[:6]}"
HOST = f"host-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server") / "data") as srv:
        cd = srv.client("codedeploy")
        cd.create_application(applicationName=APP)
        cd.create_application(applicationName=f"{APP}-second")
        cd.create_deployment_group(
            applicationName=APP,
            deploymentGroupName="web",
            serviceRoleArn=ROLE,
            onPremisesInstanceTagFilters=[{"Key": "app", "Value": APP, "Type": "KEY_AND_VALUE"}],
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
        cd.register_on_premises_instance(
            instanceName=HOST, iamUserArn=f"arn:aws:iam::123456789012:user/{HOST}"
        )
        cd.add_tags_to_on_premises_instances(
            instanceNames=[HOST], tags=[{"Key": "app", "Value": APP}]
        )
        cd.create_deployment_config(
            deploymentConfigName=f"{APP}-75",
            minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 75},
        )
        deployment = cd.create_deployment(
            applicationName=APP,
            deploymentGroupName="web",
            revision={
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
            },
            description="output test",
        )
        # Stopped at once, so that every command reads one settled state however long the
        # module takes: an InProgress deployment to a host with no agent fails at some point,
        # which could fall between aws-cli's call and ours (and did, in a parallel run).
        cd.stop_deployment(deploymentId=deployment["deploymentId"])
        deadline = time.monotonic() + 60
        while cd.get_deployment(deploymentId=deployment["deploymentId"])["deploymentInfo"][
            "status"
        ] not in ("Stopped", "Failed", "Succeeded"):
            assert time.monotonic() < deadline, "the output test's deployment did not stop"
            time.sleep(0.05)
        srv.deployment_id = deployment["deploymentId"]  # type: ignore[attr-defined]
        yield srv


COMMANDS = [
    ["get-application", "--application-name", APP],
    ["list-applications"],
    ["list-applications", "--max-items", "1"],
    ["get-deployment-group", "--application-name", APP, "--deployment-group-name", "web"],
    ["list-deployment-configs"],
    ["get-deployment-config", "--deployment-config-name", f"{APP}-75"],
    ["get-on-premises-instance", "--instance-name", HOST],
    ["get-deployment", "--deployment-id", "{deployment}"],
    ["get-deployment", "--deployment-id", "{deployment}", "--query", "deploymentInfo.revision"],
    ["list-deployments", "--application-name", APP, "--query", "deployments[0]"],
    ["get-application", "--application-name", "no-such-application"],
]


def _both(
    server: RunningServer, env: dict[str, str], args: list[str]
) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    args = [a.replace("{deployment}", server.deployment_id) for a in args]  # type: ignore[attr-defined]
    with ThreadPoolExecutor(2) as pool:
        aws = pool.submit(run, AWS, "deploy", *args, env=env)
        ours = pool.submit(run, OPENDEPLOY, *args, env=env)
        return aws.result(), ours.result()


@pytest.mark.parametrize("output", ["json", "text", "table"])
def test_output_matches_aws_cli(server: RunningServer, tmp_path: Path, output: str) -> None:
    env = shared_files_env(server, tmp_path / "home")
    pairs = []
    with ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(_both, server, env, [*args, "--output", output]) for args in COMMANDS
        ]
        pairs = [f.result() for f in futures]
    for args, (aws, ours) in zip(COMMANDS, pairs, strict=True):
        assert aws.returncode in (0, 255), aws.stderr  # the reference itself ran
        assert (ours.returncode, ours.stdout) == (aws.returncode, aws.stdout), args
        if aws.returncode != 0:
            # Ours may add a hint line after aws-cli's message; the message itself is the same.
            assert ours.stderr.startswith(aws.stderr), args


def test_default_output_comes_from_the_profile_then_json(
    server: RunningServer, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(server.config_path.read_text() + "output = text\n")
    env = shared_files_env(server, tmp_path / "home", AWS_CONFIG_FILE=str(config))
    args = ["get-application", "--application-name", APP]
    aws, ours = _both(server, env, args)
    assert ours.stdout == aws.stdout
    assert ours.stdout.startswith("APPLICATION\t")
    env["AWS_DEFAULT_OUTPUT"] = "json"
    aws, ours = _both(server, env, args)
    assert ours.stdout == aws.stdout
    assert ours.stdout.startswith("{\n    ")


def test_iso8601_timestamps_when_the_profile_asks(server: RunningServer, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(server.config_path.read_text() + "cli_timestamp_format = iso8601\n")
    env = shared_files_env(server, tmp_path / "home", AWS_CONFIG_FILE=str(config))
    aws, ours = _both(server, env, ["get-application", "--application-name", APP])
    assert ours.stdout == aws.stdout
    assert '"createTime": "20' in ours.stdout


def test_table_output_in_a_pipe_has_no_escape_codes(server: RunningServer, tmp_path: Path) -> None:
    env = shared_files_env(server, tmp_path / "home")
    ours = run(OPENDEPLOY, "list-applications", "--output", "table", env=env)
    assert ours.returncode == 0
    assert "\x1b[" not in ours.stdout
    colored = run(OPENDEPLOY, "list-applications", "--output", "table", "--color", "on", env=env)
    assert "\x1b[" in colored.stdout
