"""The ``opendeploy`` CLI against a ``--tls`` server whose certificate is self-signed.

The certificate is trusted the ways aws-cli and boto3 trust one: the profile's ``ca_bundle``,
``AWS_CA_BUNDLE``, or (for the local server) the ``ca_bundle`` the server wrote into its own
config. Each way runs the real command, including ``instance register``, whose instance key
request goes beside the botocore calls.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendeploy.testing.server import RunningServer, running_server
from tests.cli._aws_cli import OPENDEPLOY, clean_env, local_server_env, run, shared_files_env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("tls-server"), extra_args=("--tls",)) as srv:
        assert srv.endpoint.startswith("https://") and srv.ca_bundle is not None
        yield srv


def _register(name: str, env: dict[str, str], out: Path, *extra: str) -> None:
    result = run(
        OPENDEPLOY, "instance", "register", name, "--output-dir", str(out), *extra, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" not in result.stderr
    assert f"Registered {name}" in result.stdout


def test_profile_ca_bundle_is_honoured(server: RunningServer, tmp_path: Path) -> None:
    env = shared_files_env(server, tmp_path / "home")
    assert "ca_bundle" in server.config_path.read_text()
    _register("tls-profile", env, tmp_path / "host")
    listed = run(OPENDEPLOY, "list-on-premises-instances", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "tls-profile" in listed.stdout


def test_aws_ca_bundle_is_honoured(server: RunningServer, tmp_path: Path) -> None:
    env = clean_env(
        tmp_path / "home",
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID=server.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.secret_access_key,
        AWS_DEFAULT_REGION=server.region,
        AWS_CA_BUNDLE=str(server.ca_bundle),
    )
    _register("tls-env", env, tmp_path / "host")
    apps = run(OPENDEPLOY, "list-applications", env=env)
    assert apps.returncode == 0, apps.stderr


def test_local_server_certificate_is_trusted(server: RunningServer, tmp_path: Path) -> None:
    env = local_server_env(server, tmp_path / "home")
    _register("tls-local", env, tmp_path / "host")


def test_register_says_how_the_agent_trusts_the_server(
    server: RunningServer, tmp_path: Path
) -> None:
    env = shared_files_env(server, tmp_path / "home")
    out = tmp_path / "host"
    result = run(OPENDEPLOY, "instance", "register", "tls-hint", "--output-dir", str(out), env=env)
    assert result.returncode == 0, result.stderr
    assert (
        f"start it with: AWS_CA_BUNDLE={server.ca_bundle} opendeploy agent --config "
        f"{out.absolute() / 'codedeployagent.yml'}"
    ) in result.stdout
    # And the agent started that way polls the server over TLS.
    agent = subprocess.Popen(
        [str(OPENDEPLOY), "agent", "--config", str(out / "codedeployagent.yml")],
        env={**env, "AWS_CA_BUNDLE": str(server.ca_bundle)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        log = out / "logs" / "codedeploy-agent.log"
        deadline = time.monotonic() + 30
        while "Polling" not in (log.read_text() if log.exists() else ""):
            assert agent.poll() is None and time.monotonic() < deadline, "the agent never polled"
            time.sleep(0.1)
        time.sleep(1.0)
        text = log.read_text()
        assert "Cannot reach InstanceService" not in text and "CERTIFICATE" not in text, text
        info = server.client().get_on_premises_instance(instanceName="tls-hint")["instanceInfo"]
        assert info["instanceName"] == "tls-hint"
    finally:
        agent.terminate()
        agent.wait(timeout=30)


def test_untrusted_certificate_still_fails(server: RunningServer, tmp_path: Path) -> None:
    env = clean_env(
        tmp_path / "home",
        AWS_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID=server.access_key_id,
        AWS_SECRET_ACCESS_KEY=server.secret_access_key,
        AWS_DEFAULT_REGION=server.region,
    )
    result = run(OPENDEPLOY, "list-applications", env=env)
    assert result.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr or "certificate" in result.stderr.lower()
    # --no-verify-ssl is the way out, as in aws-cli.
    result = run(OPENDEPLOY, "list-applications", "--no-verify-ssl", env=env)
    assert result.returncode == 0, result.stderr


def test_tags_separated_by_commas_are_several_tags(server: RunningServer, tmp_path: Path) -> None:
    env = shared_files_env(server, tmp_path / "home")
    _register("tls-tags", env, tmp_path / "host", "--tags", "role=web,env=test", "--tags", "n=a,b")
    info = server.client().get_on_premises_instance(instanceName="tls-tags")["instanceInfo"]
    assert {(t["Key"], t["Value"]) for t in info["tags"]} == {
        ("role", "web"),
        ("env", "test"),
        ("n", "a,b"),
    }
