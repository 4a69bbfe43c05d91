"""``opendeploy instance register|deregister`` against a real server process, and the files it
writes read back by the agent's own configuration loaders."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendeploy.agent.config import load_agent_config, load_on_premises_config
from opendeploy.api.commands.signing import SIGNER_CA_FILE
from opendeploy.cli.instance import write_agent_files
from opendeploy.clients import agent_version, command_client
from opendeploy.testing.server import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        tmp_path_factory.mktemp("server"), extra_args=("--poll-timeout", "0.2")
    ) as srv:
        yield srv


def _cli(server: RunningServer, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **server.env()}
    # The endpoint comes from --endpoint-url in these tests, the key from the server's files.
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "opendeploy", "instance", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_register_writes_files_the_agent_reads_and_the_key_works(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "host"
    result = _cli(
        server,
        "register",
        "web-1",
        "--tags",
        "role=web",
        "--tags",
        "env=test",
        "--output-dir",
        str(out),
        "--endpoint-url",
        server.endpoint,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "opendeploy agent --config" in result.stdout

    config = load_agent_config(out / "codedeployagent.yml")
    assert config.deploy_control_endpoint == server.endpoint
    # Bundles too: without the override the official agent would fetch them from AWS's S3.
    assert config.s3_endpoint_override == server.endpoint
    assert config.on_premises_config_file == out.absolute() / "codedeploy.onpremises.yml"
    assert config.root_dir == out.absolute() / "deployment-root"
    assert config.log_dir == out.absolute() / "logs"
    assert config.wait_between_runs == 1 and config.max_revisions == 5
    # The official spelling, leading colons and all, so the official agent reads it too.
    assert ":deploy_control_endpoint: " in (out / "codedeployagent.yml").read_text()
    # And the CA file the official agent checks signed specifications with: the server's signer.
    signer_ca = out / SIGNER_CA_FILE
    assert signer_ca.read_bytes() == (server.data_dir / SIGNER_CA_FILE).read_bytes()
    assert "BEGIN CERTIFICATE" in signer_ca.read_text() and "KEY" not in signer_ca.read_text()
    assert f"official agent: copy {signer_ca}" in result.stdout

    secret_file = out / "codedeploy.onpremises.yml"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    on_premises = load_on_premises_config(secret_file)
    info = server.client().get_on_premises_instance(instanceName="web-1")["instanceInfo"]
    assert on_premises.iam_user_arn == info["iamUserArn"]
    assert on_premises.region == server.region
    assert {(t["Key"], t["Value"]) for t in info["tags"]} == {("role", "web"), ("env", "test")}

    # The issued key signs Command API calls as this host.
    assert on_premises.aws_access_key_id and on_premises.aws_secret_access_key
    client = command_client(
        endpoint_url=server.endpoint,
        access_key_id=on_premises.aws_access_key_id,
        secret_access_key=on_premises.aws_secret_access_key,
        region=on_premises.region,
        agent_version=agent_version(),
    )
    answer = client.poll_host_command(HostIdentifier=on_premises.host_identifier)
    assert answer.get("HostCommand") is None

    result = _cli(server, "deregister", "web-1", "--endpoint-url", server.endpoint, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = server.client().get_on_premises_instance(instanceName="web-1")["instanceInfo"]
    assert info.get("deregisterTime") is not None


def test_register_twice_names_the_error_and_the_server(
    server: RunningServer, tmp_path: Path
) -> None:
    args = ("register", "web-2", "--output-dir", str(tmp_path), "--endpoint-url", server.endpoint)
    assert _cli(server, *args, cwd=tmp_path).returncode == 0
    again = _cli(server, *args, cwd=tmp_path)
    assert again.returncode == 1
    assert "InstanceNameAlreadyRegisteredException" in again.stderr
    assert server.endpoint in again.stderr


def test_tags_must_be_key_value(server: RunningServer, tmp_path: Path) -> None:
    result = _cli(
        server,
        "register",
        "web-3",
        "--tags",
        "novalue",
        "--endpoint-url",
        server.endpoint,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "'novalue' is not KEY=VALUE" in result.stderr


def test_written_files_round_trip_with_extra_keys(tmp_path: Path) -> None:
    out = tmp_path / "odd dir: #1"
    files = write_agent_files(
        out,
        endpoint="https://deploy.example:8443",
        region="eu-west-1",
        iam_user_arn="arn:aws:iam::123456789012:user/opendeploy/a",
        access_key_id="AKID",
        secret_access_key='se"cr#et: x',
        root_dir=tmp_path / "root",
        extra={"s3_endpoint_override": "http://127.0.0.1:9000", "verbose": True},
    )
    config = load_agent_config(files.agent_config)
    assert config.root_dir == tmp_path / "root"
    assert config.s3_endpoint_override == "http://127.0.0.1:9000"
    assert config.verbose is True
    assert config.pid_dir == out / "pid"
    on_premises = load_on_premises_config(files.on_premises_config)
    assert on_premises.aws_secret_access_key == 'se"cr#et: x'
    assert on_premises.region == "eu-west-1"


def test_agent_of_a_deregistered_instance_says_so_and_stops(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "host"
    args = ("--output-dir", str(out), "--endpoint-url", server.endpoint)
    assert _cli(server, "register", "gone-1", *args, cwd=tmp_path).returncode == 0
    agent = subprocess.Popen(
        [sys.executable, "-m", "opendeploy", "agent", "--config", str(out / "codedeployagent.yml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **server.env()},
    )
    try:
        log = out / "logs" / "codedeploy-agent.log"
        deadline = time.monotonic() + 30
        while "Polling" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the agent never polled"
            time.sleep(0.1)
        result = _cli(
            server, "deregister", "gone-1", "--endpoint-url", server.endpoint, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        _, stderr = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 1
    assert "on-premises instance gone-1, deregistered at" in stderr
    assert "Not retrying; register the instance again" in stderr
    assert "Cannot reach InstanceService" not in log.read_text()


def test_agent_with_the_key_of_an_earlier_registration_says_so(
    server: RunningServer, tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    url = ("--endpoint-url", server.endpoint)
    first = _cli(server, "register", "again-1", "--output-dir", str(old), *url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert _cli(server, "deregister", "again-1", *url, cwd=tmp_path).returncode == 0
    again = _cli(server, "register", "again-1", "--output-dir", str(new), *url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    # The agent still configured with the first registration's key.
    agent = subprocess.run(
        [sys.executable, "-m", "opendeploy", "agent", "--config", str(old / "codedeployagent.yml")],
        capture_output=True,
        text=True,
        env={**os.environ, **server.env()},
        timeout=60,
    )
    assert agent.returncode == 1
    assert "instance again-1 as it was before it was deregistered and registered again" in (
        agent.stderr
    )
