"""``opendeploy server --alarms FILE --alarm-poll-seconds N``: the flags reach the settings, and a
malformed declaration stops the start with a message that says where."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from opendeploy.settings import ServerSettings


def test_alarm_flags_reach_the_settings_and_a_bad_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opendeploy.server as server_module
    from opendeploy.cli import server as server_cli

    monkeypatch.setattr(server_cli, "configure_logging", lambda level: None)
    runner = CliRunner()
    bad = tmp_path / "bad.yml"
    bad.write_text("alarms:\n  errors:\n    nagios: {}\n")
    refused = runner.invoke(
        server_cli.server, ["--data-dir", str(tmp_path / "d"), "--alarms", str(bad)]
    )
    assert refused.exit_code == 2
    assert "--alarms:" in refused.output
    assert "alarms.errors: unknown source 'nagios'" in refused.output

    built: list[ServerSettings] = []

    class Built(Exception):
        pass

    def create_server(settings: ServerSettings) -> None:
        built.append(settings)
        raise Built

    monkeypatch.setattr(server_module, "create_server", create_server)
    good = tmp_path / "good.yml"
    good.write_text("require_declared: true\n")
    args = ["--data-dir", str(tmp_path / "d"), "--alarms", str(good)]
    result = runner.invoke(server_cli.server, [*args, "--alarm-poll-seconds", "0.5"])
    assert isinstance(result.exception, Built), result.output
    assert built[-1].alarms_file == good
    assert built[-1].alarm_poll_seconds == 0.5
