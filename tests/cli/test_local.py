"""``opendeploy local``: option checks (official messages), exit codes and both renderers."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.local import LocalOptions, deploy_local, order_events
from opendeploy.cli.local import PlainReporter, RichReporter, local
from opendeploy.cli.main import main

APPSPEC = """\
version: 0.0
os: linux
hooks:
  ApplicationStart:
    - location: start.sh
  ValidateService:
    - location: check.sh
"""


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    path = tmp_path / "bundle"
    path.mkdir()
    (path / "appspec.yml").write_text(APPSPEC)
    for name, body in (("start.sh", "echo started"), ("check.sh", "echo bad >&2; exit 2")):
        (path / name).write_text(f"#!/bin/sh\n{body}\n")
        (path / name).chmod(0o755)
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yml"
    path.write_text(f"root_dir: {tmp_path / 'root'}\nlog_dir: {tmp_path / 'log'}\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["local", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-t", "rar"],
            "ERROR: type rar is not a valid type. Must be one of tgz,tar,zip,directory",
        ),
        (
            ["-l", "http://example.com/b.zip", "-t", "zip"],
            "ERROR: location http://example.com/b.zip cannot be http, only encrypted (https) url "
            "endpoints supported",
        ),
        (
            ["-l", "s3://bucket-only", "-t", "zip"],
            "ERROR: s3 location s3://bucket-only not in the expected format of 's3://bucket/key'",
        ),
        (
            ["-l", "ftp://x/y"],
            "ERROR: unknown location ftp://x/y cannot be determined to be S3, Github, or a local "
            "file / directory",
        ),
        (
            ["-e", "Install,DownloadBundle"],
            "ERROR: The only events that can be specified before DownloadBundle are "
            "BeforeBlockTraffic,AfterBlockTraffic,ApplicationStop. Please fix the order of your "
            "specified events: Install,DownloadBundle",
        ),
        (
            ["-e", "DownloadBundle,ValidateService,Install"],
            "ERROR: The only events that can be specified before Install are BeforeBlockTraffic,"
            "AfterBlockTraffic,ApplicationStop,DownloadBundle,BeforeInstall. Please fix the order "
            "of your specified events: DownloadBundle,ValidateService,Install",
        ),
        (["-b", "MERGE"], "ERROR: The deployment failed because an invalid option was specified"),
        (["-g", "../escape"], "ERROR: --deployment-group: '../escape' must be a non-empty name"),
    ],
)
def test_invalid_options_print_one_error_line_and_exit_1(
    bundle: Path, config_file: Path, args: list[str], message: str
) -> None:
    code, out, err = run("-c", str(config_file), "-l", str(bundle), *args)
    assert code == 1
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1


def test_location_that_does_not_exist(config_file: Path, tmp_path: Path) -> None:
    code, _, err = run("-c", str(config_file), "-l", str(tmp_path / "nope"))
    assert code == 1
    assert "is specified as a file or directory which does not exist" in err


def test_missing_configuration_file(bundle: Path, tmp_path: Path) -> None:
    code, _, err = run("-c", str(tmp_path / "none.yml"), "-l", str(bundle))
    assert code == 1
    assert "does not exist or is not readable" in err


def test_failure_names_event_script_and_code_on_stderr(bundle: Path, config_file: Path) -> None:
    code, out, err = run("-c", str(config_file), "-l", str(bundle), "-a", "my-app")
    assert code == 1
    assert err.splitlines()[0].endswith(
        "failed at event ValidateService, script check.sh: ScriptFailed"
    )
    assert "ApplicationStart [stdout] started" in out
    assert "ValidateService [stderr] bad" in out
    assert "Your local deployment failed while trying to execute your script at" in out
    assert "\x1b" not in out + err


def test_success_exits_0_with_the_official_lines(bundle: Path, config_file: Path) -> None:
    (bundle / "check.sh").write_text("#!/bin/sh\necho fine\n")
    code, out, err = run(
        "--agent-configuration-file", str(config_file), "--bundle-location", str(bundle)
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Starting to execute deployment from within folder ")
    assert "AppSpec file valid. Local deployment successful" in lines
    assert any(line.startswith("See the deployment log at ") for line in lines)
    assert lines[-1].startswith("Deployment d-") and "succeeded" in lines[-1]


def test_help_lists_the_official_short_options() -> None:
    result = CliRunner().invoke(local, ["--help"])
    assert result.exit_code == 0
    for flag in ("-l,", "-t,", "-b,", "-g,", "-d,", "-a,", "-e,", "-c,", "-A,"):
        assert flag in result.stdout


def test_order_events_rules() -> None:
    assert order_events(None)[0] == "BeforeBlockTraffic"
    assert order_events("ApplicationStart,Custom") == (
        "DownloadBundle",
        "Install",
        "ApplicationStart",
        "Custom",
    )
    assert order_events("ApplicationStop,DownloadBundle,BeforeInstall") == (
        "DownloadBundle",
        "ApplicationStop",
        "Install",
        "BeforeInstall",
    )


def test_rich_reporter_renders_events_and_a_summary(bundle: Path, tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system=None)
    result = deploy_local(
        LocalOptions(bundle_location=str(bundle)),
        config=AgentConfig(root_dir=tmp_path / "root"),
        reporter=RichReporter(console),
    )
    RichReporter(console).summary(result)
    text = buffer.getvalue()
    assert "▶ ApplicationStart" in text
    assert "│ started" in text
    assert "✗ ValidateService" in text
    assert "failed (ScriptFailed)" in text
    assert "not run" in text  # BeforeAllowTraffic and AfterAllowTraffic
    assert "Deployment failed in" in text


def test_plain_reporter_lines(bundle: Path, tmp_path: Path) -> None:
    buffer = io.StringIO()
    reporter = PlainReporter(buffer)
    result = deploy_local(
        LocalOptions(bundle_location=str(bundle), events="ApplicationStart"),
        config=AgentConfig(root_dir=tmp_path / "root"),
        reporter=reporter,
    )
    reporter.summary(result)
    lines = buffer.getvalue().splitlines()
    assert "DownloadBundle: succeeded" in "\n".join(lines)
    assert "ApplicationStart [stdout] started" in lines
    assert lines[-1].endswith("(3 of 3 events run)")


LOG_LINE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (INFO |DEBUG|WARN |ERROR) \[codedeploy-local\(\d+\)\]: "


@pytest.mark.parametrize("verbose", [False, True])
def test_the_deployment_is_logged_to_codedeploy_local_log(
    bundle: Path, tmp_path: Path, verbose: bool
) -> None:
    config = tmp_path / "agent.yml"
    config.write_text(
        f"root_dir: {tmp_path / 'root'}\nlog_dir: {tmp_path / 'log'}\n"
        f"verbose: {'true' if verbose else 'false'}\n"
    )
    code, _out, _err = run("-l", str(bundle), "-c", str(config), "-e", "ApplicationStart")
    assert code == 0
    lines = (tmp_path / "log" / "codedeploy-local.log").read_text().splitlines()
    assert all(re.match(LOG_LINE, line) for line in lines), lines
    text = "\n".join(lines)
    assert "opendeploy.agent.local: Starting deployment d-" in text
    assert "opendeploy.agent.local: ApplicationStart: Succeeded in " in text
    # verbose: DEBUG, which includes every hook output line, as the official log level rule.
    assert ("ApplicationStart [stdout] started" in text) is verbose
    assert logging.getLogger("opendeploy").handlers == []  # nothing left behind in-process


def test_a_failure_is_logged_and_an_unwritable_log_dir_only_warns(
    bundle: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    config = tmp_path / "agent.yml"
    config.write_text(f"root_dir: {tmp_path / 'root'}\nlog_dir: {blocked / 'log'}\n")
    code, out, err = run("-l", str(bundle), "-c", str(config), "-e", "ApplicationStart")
    assert code == 0
    assert err.startswith(f"WARNING: cannot write the local deployment log {blocked}/log/")
    config.write_text(f"root_dir: {tmp_path / 'root'}\nlog_dir: {tmp_path / 'log'}\n")
    code, _out, _err = run("-l", str(bundle), "-c", str(config))
    assert code == 1
    log = (tmp_path / "log" / "codedeploy-local.log").read_text()
    assert "ERROR [codedeploy-local(" in log
    assert "ValidateService: failed after " in log
    assert "(ScriptFailed, script check.sh): Script at specified location: check.sh failed" in log
