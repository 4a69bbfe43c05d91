"""codedeployagent.yml and codedeploy.onpremises.yml: official keys, defaults, errors, reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opendeploy.agent.config import (
    AgentConfig,
    Reloadable,
    default_agent_config,
    load_agent_config,
    load_on_premises_config,
    load_shared_credentials,
)
from opendeploy.errors import AgentConfigError

# The file the official agent package ships, in its Ruby-symbol form.
SHIPPED = """\
---
:log_aws_wire: false
:log_dir: '/var/log/aws/codedeploy-agent/'
:pid_dir: '/opt/codedeploy-agent/state/.pid/'
:program_name: codedeploy-agent
:root_dir: '/opt/codedeploy-agent/deployment-root'
:verbose: false
:wait_between_runs: 1
:proxy_uri:
:max_revisions: 5
"""


def write(tmp_path: Path, text: str, name: str = "codedeployagent.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_official_shipped_file_loads(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, SHIPPED))
    assert config.root_dir == Path("/opt/codedeploy-agent/deployment-root")
    assert config.log_dir == Path("/var/log/aws/codedeploy-agent/")
    assert config.pid_dir == Path("/opt/codedeploy-agent/state/.pid/")
    assert config.wait_between_runs == 1
    assert config.proxy_uri is None
    assert config.max_revisions == 5
    assert config.verbose is False


def test_plain_keys_equal_symbol_keys_and_unknown_keys_are_ignored(tmp_path: Path) -> None:
    config = load_agent_config(
        write(tmp_path, "root_dir: /srv/root\nverbose: true\nshared_dir: /x\nfoo: 1\n")
    )
    assert config.root_dir == Path("/srv/root")
    assert config.verbose is True


def test_code_defaults_when_keys_are_missing(tmp_path: Path) -> None:
    config = load_agent_config(write(tmp_path, ""))
    assert config.max_revisions == 5
    assert config.wait_between_runs == 30
    assert config.http_read_timeout == 80
    assert config.program_name == "codedeploy-agent"
    assert config.enable_deployments_log is True
    assert config.ongoing_deployment_tracking == "ongoing-deployment"
    assert config.hook_event_timeout_cap == 3600
    assert config.deployments_log_file.name == "codedeploy-agent-deployments.log"


def test_relative_root_dir_is_taken_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_agent_config(write(tmp_path, "root_dir: here\n"))
    assert config.root_dir == tmp_path / "here"


def test_missing_file_uses_the_official_wording(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError) as err:
        load_agent_config(tmp_path / "nope.yml")
    assert (
        str(err.value)
        == f"The config file {tmp_path / 'nope.yml'} does not exist or is not readable"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (":max_revisions: 0\n", "Invalid configuration :max_revision=0"),
        (":max_revisions: five\n", "max_revisions: 'five' is not an integer"),
        (":max_revisions: true\n", "max_revisions: True is not an integer"),
        (":verbose: yes please\n", "verbose: 'yes please' is not true or false"),
        (":children: 2\n", "Invalid number of children 2"),
        (":max_runs_per_worker: -1\n", "Invalid max_runs_per_worker -1"),
        (":hook_outputs_left_open: ignore\n", "hook_outputs_left_open: 'ignore'"),
        ("root_dir: [1]\n", "root_dir: [1] is not a path"),
        ("- a\n- b\n", "must hold a mapping"),
        ("a: [\n", "Error message:"),
    ],
)
def test_invalid_values_name_key_value_and_rule(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AgentConfigError) as err:
        load_agent_config(path)
    message = str(err.value)
    assert message.startswith(
        f"An error occurred loading the CodeDeploy agent config file at {path}. Error message: "
    )
    assert fragment in message


def test_opendeploy_extras(tmp_path: Path) -> None:
    config = load_agent_config(
        write(
            tmp_path,
            "hook_event_timeout_cap:\nhook_kill_grace_seconds: 0.5\n"
            "bundle_max_entries: 10\nhook_outputs_left_open: fail\n",
        )
    )
    assert config.hook_event_timeout_cap is None
    assert config.hook_kill_grace_seconds == 0.5
    assert config.bundle_max_entries == 10
    assert config.hook_outputs_left_open == "fail"


def test_no_file_means_the_official_root_for_root_and_a_per_user_root_otherwise(
    tmp_path: Path,
) -> None:
    config = default_agent_config(None)
    if config.config_file is None:  # no /etc/codedeploy-agent/conf/codedeployagent.yml here
        if os.geteuid() == 0:
            # Not under root's private home, where runas users could not read the scripts.
            assert config.root_dir == Path("/opt/codedeploy-agent/deployment-root")
            assert config.log_dir == Path("/var/log/aws/codedeploy-agent")
        else:
            assert "opendeploy" in str(config.root_dir)
            assert config.root_dir.name == "deployment-root"
    given = default_agent_config(write(tmp_path, "root_dir: /x\n"))
    assert given.root_dir == Path("/x")
    assert given.config_file == tmp_path / "codedeployagent.yml"


def test_agent_config_is_frozen_and_keyword_only() -> None:
    config = AgentConfig(max_revisions=2)
    with pytest.raises(AttributeError):
        config.max_revisions = 3  # type: ignore[misc]


# -- on-premises ---------------------------------------------------------------------------------


def test_on_premises_iam_user(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "---\nregion: eu-west-1\niam_user_arn: arn:aws:iam::1:user/host\n"
        "aws_access_key_id: AKIA\naws_secret_access_key: s3cr3t\n",
        "codedeploy.onpremises.yml",
    )
    config = load_on_premises_config(path)
    assert config.region == "eu-west-1"
    assert config.host_identifier == "arn:aws:iam::1:user/host"
    assert config.aws_secret_access_key == "s3cr3t"


def test_on_premises_iam_session(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "region: us-east-1\niam_session_arn: arn:aws:sts::1:assumed-role/r/s\n"
        "aws_credentials_file: /etc/codedeploy-agent/conf/credentials\n",
    )
    config = load_on_premises_config(path)
    assert config.aws_credentials_file == Path("/etc/codedeploy-agent/conf/credentials")
    assert config.aws_access_key_id is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "region: r\niam_user_arn: a\niam_session_arn: b\n",
            "On Premises config cannot contain both 'iam_user_arn' and 'iam_session_arn' keys.",
        ),
        (
            "region: r\niam_user_arn: a\naws_access_key_id: k\n",
            "'aws_secret_access_key' key is required when 'iam_user_arn' is provided.",
        ),
        (
            "iam_session_arn: a\naws_credentials_file: f\n",
            "'region' key is required when 'iam_session_arn' is provided.",
        ),
    ],
)
def test_on_premises_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AgentConfigError) as err:
        load_on_premises_config(write(tmp_path, text))
    assert str(err.value) == message


def test_on_premises_invalid_format(tmp_path: Path) -> None:
    path = write(tmp_path, "just a string\n")
    with pytest.raises(AgentConfigError) as err:
        load_on_premises_config(path)
    assert str(err.value) == (
        "The deployment failed because the format of the following on-premises configuration "
        f"file is invalid: {path}"
    )


def test_shared_credentials(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\naws_session_token = C\n",
        "credentials",
    )
    creds = load_shared_credentials(path)
    assert (creds.aws_access_key_id, creds.aws_secret_access_key) == ("A", "B")
    assert creds.aws_session_token == "C"
    with pytest.raises(AgentConfigError, match=r"has no \[other\] profile"):
        load_shared_credentials(path, "other")


# -- reload ---------------------------------------------------------------------------------------


def test_reloadable_reloads_only_when_the_file_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "[default]\naws_access_key_id = A\naws_secret_access_key = B\n", "c")
    loads: list[Path] = []

    def loader(p: Path) -> str:
        loads.append(p)
        return load_shared_credentials(p).aws_access_key_id

    creds = Reloadable(path, loader)
    assert creds.get() == "A"
    assert creds.get() == "A"
    assert len(loads) == 1
    assert not creds.changed()
    # Rotate the credentials the way a writer should: a new file renamed over the old one.
    new = write(tmp_path, "[default]\naws_access_key_id = A2\naws_secret_access_key = B2\n", "n")
    os.replace(new, path)
    assert creds.changed()
    assert creds.get() == "A2"
    assert len(loads) == 2


def test_reloadable_keeps_failing_until_the_file_is_fixed(tmp_path: Path) -> None:
    path = write(tmp_path, "max_revisions: 0\n")
    config = Reloadable(path, load_agent_config)
    with pytest.raises(AgentConfigError):
        config.get()
    fixed = write(tmp_path, "max_revisions: 3\n", "fixed.yml")
    os.replace(fixed, path)
    assert config.get().max_revisions == 3
