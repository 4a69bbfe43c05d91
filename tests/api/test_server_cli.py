"""``opendeploy server`` as a real process: credentials files, aws-cli v1, SIGTERM, restart."""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import WaiterError

from opendeploy.testing.server import running_server

AWS_CLI = Path(sys.executable).parent / "aws"


def _aws(server_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server_env)
    return subprocess.run(
        [str(AWS_CLI), *args, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_server_writes_private_credentials_that_aws_cli_uses(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, database_url=database_url, region="eu-west-3") as srv:
        for path in (srv.credentials_path, srv.config_path):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        credentials = configparser.ConfigParser()
        credentials.read(srv.credentials_path)
        assert credentials["default"]["aws_access_key_id"] == srv.access_key_id
        config = configparser.ConfigParser()
        config.read(srv.config_path)
        assert config["default"]["region"] == "eu-west-3"
        log = srv.log_text()
        assert f"credentials: {srv.credentials_path}" in log
        assert f"config: {srv.config_path}" in log

        env = {
            "AWS_SHARED_CREDENTIALS_FILE": str(srv.credentials_path),
            "AWS_CONFIG_FILE": str(srv.config_path),
        }
        listed = _aws(env, "deploy", "list-applications", "--endpoint-url", srv.endpoint)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["applications"] == []

        refused = _aws(
            {**env, "AWS_SECRET_ACCESS_KEY": "wrong", "AWS_ACCESS_KEY_ID": srv.access_key_id},
            "deploy",
            "list-applications",
            "--endpoint-url",
            srv.endpoint,
        )
        assert refused.returncode != 0
        assert "InvalidSignatureException" in refused.stderr
        first_key = srv.access_key_id
        assert srv.stop() == 0  # SIGTERM is a clean stop
    assert "op=ListApplications status=200" in srv.log_text()

    with running_server(data_dir, database_url=database_url) as again:
        assert again.access_key_id == first_key  # the admin key survives restarts


def test_timeouts_are_flags_whose_help_names_the_official_defaults() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "opendeploy", "server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    flat = " ".join(shown.split())
    assert "--deployment-timeout" in flat and "default for an in-place deployment: 12 hours" in flat
    assert "--event-timeout" in flat and "one hour" in flat


def test_deployment_timeout_flag_fails_a_deployment_that_runs_too_long(
    tmp_path: Path, sqlite_url: str
) -> None:
    # The instance has no agent; dead-agent and pickup windows are long, so only the
    # deployment timeout (2 s) can end the deployment.
    args = ("--deployment-timeout", "2", "--agent-dead-after", "120")
    args += ("--event-start-timeout", "120")
    with running_server(tmp_path / "data", database_url=sqlite_url, extra_args=args) as srv:
        cd = srv.client()
        cd.register_on_premises_instance(
            instanceName="quiet-1", iamUserArn="arn:aws:iam::000000000000:user/quiet-1"
        )
        cd.add_tags_to_on_premises_instances(
            instanceNames=["quiet-1"], tags=[{"Key": "role", "Value": "web"}]
        )
        cd.create_application(applicationName="app")
        cd.create_deployment_group(
            applicationName="app",
            deploymentGroupName="web",
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            onPremisesInstanceTagFilters=[{"Key": "role", "Value": "web", "Type": "KEY_AND_VALUE"}],
        )
        deployment_id = cd.create_deployment(
            applicationName="app",
            deploymentGroupName="web",
            revision={
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
            },
        )["deploymentId"]
        waiter = cd.get_waiter("deployment_successful")
        with pytest.raises(WaiterError, match="terminal failure state"):
            waiter.wait(deploymentId=deployment_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        assert info["status"] == "Failed"
        assert info["errorInformation"]["code"] == "TIMEOUT"
        assert "longer than 2 s" in info["errorInformation"]["message"]
