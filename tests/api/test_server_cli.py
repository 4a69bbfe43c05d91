"""``opendeploy server`` as a real process: credentials files, aws-cli v1, SIGTERM, restart."""

from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

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
