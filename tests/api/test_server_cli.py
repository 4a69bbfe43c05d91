"""``opendeploy server`` as a real process: credentials files, aws-cli v1, SIGTERM, restart."""

from __future__ import annotations

import configparser
import io
import json
import logging
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from botocore.exceptions import SSLError, WaiterError
from cryptography import x509

from opendeploy.api.commands.signing import endpoint_subject, self_signed, subject_of
from opendeploy.server import TLS_CERT_FILE, TLS_KEY_FILE, tls_files
from opendeploy.settings import ServerSettings
from opendeploy.testing.agents import running_agents
from opendeploy.testing.server import running_server
from tests.api._openssl import compat_subject
from tests.api._web_group import deploy_to_web_group

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
        assert (
            f"dashboard {srv.endpoint}/ui/: sign in with access key ID {srv.access_key_id}" in log
        )

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
    assert "--restart-grace" in flat and "about 90 s" in flat


def test_minute_seconds_scales_the_api_s_minutes_and_reaches_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--minute-seconds`` is documented in ``--help`` and becomes
    ``ServerSettings.minute_seconds`` (and its ``minute``), 60 s unless given."""
    from click.testing import CliRunner

    import opendeploy.server as server_module
    from opendeploy.cli import server as server_cli

    built: list[ServerSettings] = []

    class Built(Exception):
        pass

    def create_server(settings: ServerSettings) -> None:
        built.append(settings)
        raise Built

    monkeypatch.setattr(server_module, "create_server", create_server)
    monkeypatch.setattr(server_cli, "configure_logging", lambda level: None)
    runner = CliRunner()
    flat = " ".join(runner.invoke(server_cli.server, ["--help"]).output.split())
    assert "--minute-seconds" in flat
    assert "scales every such wait (traffic-shift intervals, the blue/green ready and " in flat
    assert "termination waits). For tests, demos and benchmarks" in flat
    for args, seconds in (((), 60.0), (("--minute-seconds", "0.05"), 0.05)):
        result = runner.invoke(server_cli.server, ["--data-dir", str(tmp_path), *args])
        assert isinstance(result.exception, Built), result.output
        assert built[-1].minute_seconds == seconds
        assert built[-1].minute.total_seconds() == seconds
    refused = runner.invoke(
        server_cli.server, ["--data-dir", str(tmp_path), "--minute-seconds", "0"]
    )
    assert refused.exit_code == 2 and "--minute-seconds" in refused.output


def test_deployment_timeout_flag_fails_a_deployment_that_runs_too_long(
    tmp_path: Path, sqlite_url: str
) -> None:
    # The instance has no agent; dead-agent and pickup windows are long, so only the
    # deployment timeout (2 s) can end the deployment.
    args: tuple[str, ...] = ("--deployment-timeout", "2", "--agent-dead-after", "120")
    args += ("--event-start-timeout", "120")
    with running_server(tmp_path / "data", database_url=sqlite_url, extra_args=args) as srv:
        cd = srv.client()
        cd.register_on_premises_instance(
            instanceName="quiet-1", iamUserArn="arn:aws:iam::000000000000:user/quiet-1"
        )
        cd.add_tags_to_on_premises_instances(
            instanceNames=["quiet-1"], tags=[{"Key": "role", "Value": "web"}]
        )
        deployment_id = deploy_to_web_group(cd, "b", "k.zip")
        waiter = cd.get_waiter("deployment_successful")
        with pytest.raises(WaiterError, match="terminal failure state"):
            waiter.wait(deploymentId=deployment_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        info = cd.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        assert info["status"] == "Failed"
        assert info["errorInformation"]["code"] == "TIMEOUT"
        assert "longer than 2 s" in info["errorInformation"]["message"]


def _trivial_bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("appspec.yml", "version: 0.0\nos: linux\n")
    return buffer.getvalue()


def test_tls_self_signed_serves_boto3_and_a_real_agent(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'opendeploy.db'}"
    with running_server(data_dir, database_url=url, extra_args=("--tls",)) as srv:
        cert = data_dir / "tls-cert.pem"
        assert srv.endpoint.startswith("https://") and srv.ca_bundle == cert
        assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert stat.S_IMODE((data_dir / "tls-key.pem").stat().st_mode) == 0o600
        cd = srv.client(verify=str(cert))
        assert cd.list_applications()["applications"] == []
        # Without that certificate the connection is refused: it really is this server's TLS.
        with pytest.raises(SSLError):
            srv.client(verify=True).list_applications()

        # A real agent (trusting the certificate through AWS_CA_BUNDLE) polls over HTTPS,
        # fetches the bundle from the server's S3 store and completes a deployment.
        s3 = srv.client("s3")
        s3.create_bucket(Bucket="bundles")
        s3.put_object(Bucket="bundles", Key="app.zip", Body=_trivial_bundle())
        with running_agents(srv, tmp_path / "hosts", 1, tags={"role": "web"}) as agents:
            deployment_id = deploy_to_web_group(
                cd, "bundles", "app.zip", config="CodeDeployDefault.AllAtOnce"
            )
            cd.get_waiter("deployment_successful").wait(
                deploymentId=deployment_id, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
            assert "CERTIFICATE_VERIFY_FAILED" not in agents[0].output()
        # Named as the start-up check of some official agents wants the endpoint's certificate.
        assert compat_subject(cert.read_bytes()) == (
            "subject=/C=US/ST=Washington/L=Seattle/O=Amazon.com, Inc."
            "/CN=codedeploy-commands.us-east-1.amazonaws.com"
        )
        # The certificate is created once and reused by the next start.
        first = cert.read_bytes()
    with running_server(data_dir, database_url=url, extra_args=("--tls",)) as again:
        assert cert.read_bytes() == first
        assert again.client().list_applications()["applications"] == ["app"]


def test_tls_cert_and_key_files(tmp_path: Path) -> None:
    key_pem, cert_pem = self_signed("test server", ("127.0.0.1", "localhost"))
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    url = f"sqlite:///{tmp_path / 'opendeploy.db'}"
    with running_server(tmp_path / "data", database_url=url, extra_args=args) as srv:
        assert srv.endpoint.startswith("https://")
        assert srv.client(verify=str(cert)).list_applications()["applications"] == []
        assert not (tmp_path / "data" / "tls-cert.pem").exists()  # no self-signed pair made
        with pytest.raises(SSLError):
            srv.client(verify=True).list_applications()


def test_a_self_signed_certificate_of_another_name_is_kept_and_the_reason_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ServerSettings(
        data_dir=tmp_path, database_url="sqlite://", tls_self_signed=True, region="eu-west-1"
    )
    key_pem, cert_pem = self_signed("an older OpenDeploy server", ("127.0.0.1",))
    (tmp_path / TLS_CERT_FILE).write_bytes(cert_pem)
    (tmp_path / TLS_KEY_FILE).write_bytes(key_pem)
    with caplog.at_level(logging.WARNING):
        assert tls_files(settings) == (tmp_path / TLS_CERT_FILE, tmp_path / TLS_KEY_FILE)
    assert (tmp_path / TLS_CERT_FILE).read_bytes() == cert_pem  # clients trust this one
    assert "codedeploy-commands.eu-west-1.amazonaws.com" in caplog.text
    assert "official agents" in caplog.text
    # A certificate of the right name raises nothing.
    (tmp_path / TLS_CERT_FILE).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tls_files(settings)
        tls_files(settings)
    assert caplog.text == ""
    assert subject_of((tmp_path / TLS_CERT_FILE).read_bytes()) == endpoint_subject("eu-west-1")


def test_the_self_signed_certificate_covers_the_s3_domains(tmp_path: Path) -> None:
    settings = ServerSettings(
        data_dir=tmp_path,
        database_url="sqlite://",
        tls_self_signed=True,
        s3_domains=("s3.example.test",),
    )
    files = tls_files(settings)
    assert files is not None
    cert = x509.load_pem_x509_certificate(files[0].read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = names.get_values_for_type(x509.DNSName)
    assert "s3.example.test" in dns and "*.s3.example.test" in dns and "localhost" in dns


def test_every_file_of_a_fresh_data_dir_is_owner_only_whatever_the_dir_mode(
    tmp_path: Path,
) -> None:
    """Database, WAL and shared memory, keys, credentials, certificates, bundles: 0600 or
    stricter (directories 0700), in a data directory created beforehand with mode 0755 (kept,
    and named in a warning); a file left group-readable by an earlier start loses those bits."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    (data_dir / "replica-id").write_text("old-host:0123456789ab")
    (data_dir / "replica-id").chmod(0o644)
    with running_server(data_dir, extra_args=("--tls",)) as server:
        s3 = server.client("s3")
        s3.create_bucket(Bucket="modes")
        s3.put_object(Bucket="modes", Key="bundle.zip", Body=b"PK\x05\x06" + b"\0" * 18)
        server.client("codedeploy").create_application(applicationName="modes")
        names = {p.name for p in data_dir.iterdir()}
        assert {"opendeploy.db", "opendeploy.db-wal", "opendeploy.db-shm"} <= names
        assert {"credentials", "config", "tls-key.pem", "replica-id"} <= names
        assert any((data_dir / "bundles").rglob("*"))
        too_open = []
        for path in data_dir.rglob("*"):
            if path.name == "server.log":
                continue  # written by the test harness, not by the server
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                too_open.append(f"{path.relative_to(data_dir)} {mode:04o}")
        assert not too_open
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755
        assert f"the data directory {data_dir} has mode 0755" in server.log_text()
