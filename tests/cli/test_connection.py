"""Where the CLI connects and with which key: resolution order, and the errors that name them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opendeploy.cli.connection import (
    DEFAULT_ENDPOINT,
    ConnectionOptions,
    CredentialsNotFoundError,
    local_data_dir,
    resolve_connection,
)
from opendeploy.testing.server import RunningServer, free_port, running_server
from tests.cli._aws_cli import OPENDEPLOY, clean_env, local_server_env, run


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean process environment (botocore reads os.environ) with HOME in tmp_path."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "OPENDEPLOY_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return tmp_path


def _local_server_files(data_dir: Path, endpoint: str = "http://127.0.0.1:9999") -> None:
    data_dir.mkdir(parents=True)
    (data_dir / "credentials").write_text(
        "[default]\naws_access_key_id = AKIALOCAL\naws_secret_access_key = local-secret\n"
    )
    (data_dir / "config").write_text(f"[default]\nregion = eu-west-3\nendpoint_url = {endpoint}\n")


def _shared_files(home: Path, *, endpoint: str | None = None) -> tuple[Path, Path]:
    credentials, config = home / "credentials", home / "config"
    home.mkdir(parents=True, exist_ok=True)
    credentials.write_text(
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s\n"
        "[team]\naws_access_key_id = AKIATEAM\naws_secret_access_key = t\n"
    )
    lines = ["[default]", "region = ap-south-1"]
    if endpoint:
        lines.append(f"endpoint_url = {endpoint}")
    lines += ["[profile team]", "region = sa-east-1", "endpoint_url = http://team:1"]
    config.write_text("\n".join(lines) + "\n")
    return credentials, config


def test_default_data_dir_is_the_servers(environment: Path) -> None:
    from opendeploy.server import default_data_dir

    assert local_data_dir() == default_data_dir()


def test_a_local_server_is_found_without_any_setting(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local_server_files(environment / "data")
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "data"))
    connection = resolve_connection(ConnectionOptions())
    assert connection.endpoint_url == "http://127.0.0.1:9999"
    assert connection.access_key_id == "AKIALOCAL"
    assert connection.region == "eu-west-3"
    assert str(environment / "data" / "credentials") in connection.credentials_source
    client = connection.client()
    assert client.meta.endpoint_url == "http://127.0.0.1:9999"
    assert client._request_signer._credentials.access_key == "AKIALOCAL"


def test_local_server_key_beats_a_default_profile_for_the_local_endpoint(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local_server_files(environment / "data")
    credentials, config = _shared_files(environment / "aws")
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "data"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    connection = resolve_connection(ConnectionOptions())
    assert (connection.endpoint_url, connection.access_key_id) == (
        "http://127.0.0.1:9999",
        "AKIALOCAL",
    )
    # An explicit profile is the user's choice: its key and its endpoint.
    team = resolve_connection(ConnectionOptions(profile="team"))
    assert (team.endpoint_url, team.access_key_id, team.region) == (
        "http://team:1",
        "AKIATEAM",
        "sa-east-1",
    )
    assert team.credentials_source == f"profile 'team' in {credentials}"


def test_endpoint_order_flag_env_opendeploy_profile_local(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local_server_files(environment / "data")
    credentials, config = _shared_files(environment / "aws", endpoint="http://profile:1")
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "data"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))

    def endpoint(endpoint_url: str | None = None) -> tuple[str | None, str]:
        connection = resolve_connection(ConnectionOptions(endpoint_url=endpoint_url))
        return connection.endpoint_url, connection.endpoint_source

    assert endpoint()[0] == "http://profile:1"
    assert endpoint()[1] == f"profile 'default' in {config}"
    monkeypatch.setenv("OPENDEPLOY_ENDPOINT", "http://opendeploy:1")
    assert endpoint() == ("http://opendeploy:1", "OPENDEPLOY_ENDPOINT")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://aws-env:1")
    assert endpoint() == ("http://aws-env:1", "AWS_ENDPOINT_URL")
    assert endpoint(endpoint_url="http://flag:1") == ("http://flag:1", "--endpoint-url")


def test_environment_keys_and_region_win(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _local_server_files(environment / "data")
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "data"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    connection = resolve_connection(ConnectionOptions())
    assert connection.access_key_id == "AKIAENV"
    assert connection.credentials_source == "the environment (AWS_ACCESS_KEY_ID)"
    assert connection.region == "us-west-2"
    assert resolve_connection(ConnectionOptions(region="eu-north-1")).region == "eu-north-1"


def test_nothing_configured_names_every_place_looked(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "nothing"))
    with pytest.raises(CredentialsNotFoundError, match="opendeploy server"):
        resolve_connection(ConnectionOptions())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("server") / "data") as srv:
        yield srv


def test_cli_finds_a_local_server_from_its_data_dir(server: RunningServer, tmp_path: Path) -> None:
    listed = run(OPENDEPLOY, "list-applications", env=local_server_env(server, tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == '{\n    "applications": []\n}\n'


def test_unreachable_server_names_the_url_and_how_to_start_one(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = clean_env(
        tmp_path,
        OPENDEPLOY_ENDPOINT=url,
        AWS_ACCESS_KEY_ID="AKIAX",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="1",
    )
    result = run(OPENDEPLOY, "list-applications", env=env)
    assert result.returncode == 255
    assert result.stderr == (
        f'\nCould not connect to the endpoint URL: "{url}/"\n'
        f"No OpenDeploy server answers at {url}/ (endpoint from OPENDEPLOY_ENDPOINT). Start one "
        "with `opendeploy server`, or point --endpoint-url or OPENDEPLOY_ENDPOINT at a running "
        "server.\n"
    )


def test_rejected_signature_names_the_key_and_its_file(
    server: RunningServer, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[ops]\naws_access_key_id = {server.access_key_id}\naws_secret_access_key = wrong\n"
    )
    env = clean_env(
        tmp_path / "home",
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_DEFAULT_REGION=server.region,
    )
    result = run(OPENDEPLOY, "list-applications", "--profile", "ops",
                 "--endpoint-url", server.endpoint, env=env)  # fmt: skip
    assert result.returncode == 255
    assert "An error occurred (InvalidSignatureException) when calling the ListApplications" in (
        result.stderr
    )
    assert (
        f"rejected the request signed with access key {server.access_key_id} from profile 'ops' "
        f"in {credentials}"
    ) in result.stderr

    env.update(AWS_ACCESS_KEY_ID="AKIANOBODY", AWS_SECRET_ACCESS_KEY="x")
    unknown = run(OPENDEPLOY, "list-applications", "--endpoint-url", server.endpoint, env=env)
    assert unknown.returncode == 255
    assert "access key AKIANOBODY from the environment (AWS_ACCESS_KEY_ID)" in unknown.stderr


def test_unknown_profile_is_reported_like_aws_cli(server: RunningServer, tmp_path: Path) -> None:
    result = run(OPENDEPLOY, "list-applications", "--profile", "nope",
                 env=local_server_env(server, tmp_path))  # fmt: skip
    assert result.returncode == 255
    assert result.stderr == "\nThe config profile (nope) could not be found\n"


def test_default_endpoint_when_nothing_is_configured(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAX")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("OPENDEPLOY_DATA_DIR", str(environment / "empty"))
    connection = resolve_connection(ConnectionOptions())
    assert connection.endpoint_url == DEFAULT_ENDPOINT
    assert connection.endpoint_source == "the default endpoint of `opendeploy server`"
