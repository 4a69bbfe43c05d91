"""``opendeploy local``: the ``codedeploy-local`` command, with the same long and short options.

In a terminal each event is shown as it runs, with its hook output and duration, and a summary
table at the end (rich). In a pipe or a file the same information is printed as plain lines with
no escape codes, so logs and CI output stay readable. Exit status 0 on success; 1 on an invalid
option (one ``ERROR: …`` line) or a failed event (event, script and error code on stderr).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opendeploy.agent.config import AgentConfig, default_agent_config
from opendeploy.agent.executor import EventResult, EventStatus
from opendeploy.agent.local import (
    BUNDLE_TYPES,
    DEFAULT_DEPLOYMENT_GROUP_ID,
    DEFAULT_DEPLOYMENT_GROUP_NAME,
    LocalDeploymentResult,
    LocalOptions,
    deploy_local,
)
from opendeploy.agent.spec import DeploymentSpec
from opendeploy.cli.agent import _AgentFormatter
from opendeploy.cli.render import cli_console
from opendeploy.errors import OpenDeployError

__all__ = ["PlainReporter", "RichReporter", "local"]


class PlainReporter:
    """Plain lines, one per event, hook output prefixed with its event (for pipes and files)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def message(self, text: str) -> None:
        self._print(text)

    def started(self, spec: DeploymentSpec, folder: Path, events: Sequence[str]) -> None:
        self._print(f"Deployment {spec.deployment_id}: events {', '.join(events)}")

    def event_started(self, event: str) -> None:
        self._print(f"{event}: started")

    def output(self, event: str, stream: str, line: str) -> None:
        self._print(f"{event} [{stream}] {line}")

    def event_finished(self, result: EventResult) -> None:
        self._print(f"{result.event}: {_status_text(result)} ({result.duration:.2f}s)")

    def summary(self, result: LocalDeploymentResult) -> None:
        state = "succeeded" if result.succeeded else "failed"
        self._print(
            f"Deployment {result.spec.deployment_id} {state} in {result.duration:.2f}s "
            f"({len(result.results)} of {len(result.events)} events run)"
        )


class RichReporter:
    """Rich output for a terminal: a line per event with status and duration, then a table."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def message(self, text: str) -> None:
        self.console.print(escape(text), style="dim", highlight=False, soft_wrap=True)

    def started(self, spec: DeploymentSpec, folder: Path, events: Sequence[str]) -> None:
        self.console.print(
            f"[bold]Deployment {escape(spec.deployment_id)}[/] "
            f"of [cyan]{escape(spec.application_name)}[/] "
            f"to group [cyan]{escape(spec.deployment_group_id)}[/]"
        )

    def event_started(self, event: str) -> None:
        self.console.print(f"[bold blue]▶[/] {escape(event)}", highlight=False)

    def output(self, event: str, stream: str, line: str) -> None:
        style = "red" if stream == "stderr" else "default"
        self.console.print(f"  │ {escape(line)}", style=style, highlight=False, soft_wrap=True)

    def event_finished(self, result: EventResult) -> None:
        marks = {
            EventStatus.SUCCEEDED: "[yellow]![/]" if result.ignored_failure else "[green]✓[/]",
            EventStatus.FAILED: "[bold red]✗[/]",
            EventStatus.SKIPPED: "[dim]–[/]",
        }
        self.console.print(
            f"{marks[result.status]} {escape(result.event)} "
            f"[dim]{escape(_status_text(result))} {result.duration:.2f}s[/]",
            highlight=False,
        )

    def summary(self, result: LocalDeploymentResult) -> None:
        table = Table(title=f"Deployment {result.spec.deployment_id}", title_justify="left")
        table.add_column("Event")
        table.add_column("Status")
        table.add_column("Duration", justify="right")
        for item in result.results:
            colour = {"Succeeded": "green", "Failed": "red", "Skipped": "dim"}[item.status.value]
            if item.ignored_failure:
                colour = "yellow"
            table.add_row(
                item.event, f"[{colour}]{escape(_status_text(item))}[/]", f"{item.duration:.2f}s"
            )
        for event in result.events[len(result.results) :]:
            table.add_row(event, "[dim]not run[/]", "")
        self.console.print(table)
        state = "[bold green]succeeded[/]" if result.succeeded else "[bold red]failed[/]"
        self.console.print(f"Deployment {state} in {result.duration:.2f}s", highlight=False)


def _status_text(result: EventResult) -> str:
    if result.ignored_failure:
        return f"failed ({result.error_code.value}), ignored"
    if result.status is EventStatus.SKIPPED:
        return "skipped (nothing to run)"
    if result.status is EventStatus.FAILED:
        return f"failed ({result.error_code.value})"
    return "succeeded"


def _failure_lines(result: LocalDeploymentResult) -> list[str]:
    failure = result.failure
    assert failure is not None
    lines = [
        f"Deployment {result.spec.deployment_id} failed at event {failure.event}"
        + (f", script {failure.script_name}" if failure.script_name else "")
        + f": {failure.error_code.value}",
        failure.message,
    ]
    return lines


#: The official local mode's log file name, under ``log_dir``.
LOCAL_LOG_NAME = "codedeploy-local.log"


class _LocalLogHandler(logging.FileHandler):
    """The log file handler, remembering the package logger's level to restore it after."""

    previous_level: int = logging.NOTSET


def _open_local_log(config: AgentConfig) -> _LocalLogHandler | None:
    """Log the deployment to ``<log_dir>/codedeploy-local.log`` as the official agent does.

    Level DEBUG with ``verbose`` (hook output lines too), else INFO; the official agent log's
    line format. A log directory that cannot be written costs a warning, not the deployment.
    """
    path = config.log_dir / LOCAL_LOG_NAME
    try:
        config.log_dir.mkdir(parents=True, exist_ok=True)
        handler = _LocalLogHandler(path, encoding="utf-8")
    except OSError as exc:
        click.echo(
            f"WARNING: cannot write the local deployment log {path} (log_dir): "
            f"{exc.strerror or exc}",
            err=True,
        )
        return None
    handler.setFormatter(_AgentFormatter("codedeploy-local"))
    level = logging.DEBUG if config.verbose else logging.INFO
    handler.setLevel(level)
    package = logging.getLogger("opendeploy")
    package.addHandler(handler)
    # The package logger passes records at this level on (restored by _close_local_log).
    handler.previous_level = package.level
    package.setLevel(min(level, package.getEffectiveLevel()))
    return handler


def _close_local_log(handler: _LocalLogHandler) -> None:
    package = logging.getLogger("opendeploy")
    package.removeHandler(handler)
    package.setLevel(handler.previous_level)
    handler.close()


@click.command("local", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-l",
    "--bundle-location",
    metavar="LOCATION",
    help="Bundle directory or archive (path or file:// URL). Default: the current directory.",
)
@click.option(
    "-t",
    "--type",
    "bundle_type",
    default="directory",
    show_default=True,
    metavar="|".join(BUNDLE_TYPES),
    help="Bundle type.",
)
@click.option(
    "-b",
    "--file-exists-behavior",
    default="DISALLOW",
    show_default=True,
    metavar="DISALLOW|OVERWRITE|RETAIN",
    help="What Install does with files already at a destination (the appspec's setting wins).",
)
@click.option(
    "-g",
    "--deployment-group",
    default=DEFAULT_DEPLOYMENT_GROUP_ID,
    show_default=True,
    help="Deployment group id: the directory under the deployment root (stable across runs).",
)
@click.option(
    "-d",
    "--deployment-group-name",
    default=DEFAULT_DEPLOYMENT_GROUP_NAME,
    show_default=True,
    help="DEPLOYMENT_GROUP_NAME given to hooks.",
)
@click.option(
    "-a",
    "--application-name",
    help="APPLICATION_NAME given to hooks. Default: the bundle location.",
)
@click.option(
    "-e",
    "--events",
    metavar="EVENT,…",
    help="Events to run, in order (custom events allowed); DownloadBundle and Install are added.",
)
@click.option(
    "-c",
    "--agent-configuration-file",
    type=click.Path(path_type=Path),
    help="codedeployagent.yml. Default: /etc/codedeploy-agent/conf/codedeployagent.yml if it "
    "exists, else the official /opt/codedeploy-agent/deployment-root for root and a per-user "
    "deployment root for other users.",
)
@click.option(
    "-A",
    "--appspec-filename",
    help="AppSpec file name in the bundle. Default: appspec.yml, then appspec.yaml.",
)
@click.option(
    "--ignore-application-stop-failures",
    is_flag=True,
    help="Continue when ApplicationStop, BeforeBlockTraffic or AfterBlockTraffic fails.",
)
def local(
    bundle_location: str | None,
    bundle_type: str,
    file_exists_behavior: str,
    deployment_group: str,
    deployment_group_name: str,
    application_name: str | None,
    events: str | None,
    agent_configuration_file: Path | None,
    appspec_filename: str | None,
    ignore_application_stop_failures: bool,
) -> None:
    """Deploy a revision on this machine, without a server (like codedeploy-local)."""
    console = cli_console(file=sys.stdout)
    reporter: PlainReporter | RichReporter = (
        RichReporter(console) if console.is_terminal else PlainReporter(sys.stdout)
    )
    options = LocalOptions(
        bundle_location=bundle_location,
        bundle_type=bundle_type,
        file_exists_behavior=file_exists_behavior,
        deployment_group_id=deployment_group,
        deployment_group_name=deployment_group_name,
        application_name=application_name,
        events=events,
        appspec_filename=appspec_filename,
        ignore_application_stop_failures=ignore_application_stop_failures,
    )
    log_handler: _LocalLogHandler | None = None
    try:
        config = default_agent_config(agent_configuration_file)
        log_handler = _open_local_log(config)
        result = deploy_local(options, config=config, reporter=reporter)
    except OpenDeployError as exc:
        if log_handler is not None:  # else logging's last resort would print it a second time
            logging.getLogger("opendeploy").error("%s", exc)
        click.echo(f"ERROR: {exc}", err=True)
        sys.exit(1)
    finally:
        if log_handler is not None:
            _close_local_log(log_handler)
    reporter.summary(result)
    if not result.succeeded:
        for line in _failure_lines(result):
            click.echo(line, err=True)
        sys.exit(1)
