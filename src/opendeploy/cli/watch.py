"""``opendeploy watch DEPLOYMENT_ID``: follow a deployment until it ends.

Every ``--interval`` seconds it reads GetDeployment, the deployment targets
(ListDeploymentTargets + BatchGetDeploymentTargets) and the new hook output (the server's output
endpoint), builds a :class:`~opendeploy.cli.render.Snapshot` and shows it:

- in a terminal, as a live view (rich): overview counts, a table per batch of instances with each
  lifecycle event's state and duration, the newest output lines of the running instances;
- in a pipe (or with ``--no-live``), as plain lines without escape codes: one per state change
  and one per output line (``<instance> <event> | <line>``).

At the end it prints a summary (status, duration, the failing host, event, script, error code,
message and log tail, the rollback deployment). Exit status: 0 only when the deployment
Succeeded; 1 when it Failed or was Stopped; 130 when interrupted (the deployment goes on);
255 when the service cannot be asked (unknown id, unreachable server, bad credentials).
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console

from opendeploy.cli.logs import (
    OutputUnavailableError,
    codedeploy_client,
    connection_options,
    fetch_output,
    fetch_targets,
    service_errors,
)
from opendeploy.cli.render import (
    LIVE_OUTPUT_LINES,
    OutputLine,
    Snapshot,
    cli_console,
    live_view,
    plain_lines,
    snapshot_from_api,
    summary,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "Follower",
    "exit_status",
    "watch",
    "watch_deployment",
]

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def exit_status(snapshot: Snapshot) -> int:
    """0 for a deployment that Succeeded, :data:`EXIT_FAILED` for any other end."""
    return 0 if snapshot.deployment.status == "Succeeded" else EXIT_FAILED


@dataclass
class Follower:
    """Reads one deployment's state and output, remembering where the output got to."""

    client: Any
    deployment_id: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    cursor: str | None = None
    output_available: bool = True
    recent: deque[OutputLine] = field(default_factory=lambda: deque(maxlen=LIVE_OUTPUT_LINES))

    def poll(self) -> tuple[Snapshot, list[OutputLine]]:
        """A snapshot and the output lines that are new since the last poll."""
        # Status first: output read after a terminal status is complete.
        info = self.client.get_deployment(deploymentId=self.deployment_id)["deploymentInfo"]
        targets = fetch_targets(self.client, self.deployment_id)
        new: list[OutputLine] = []
        if self.output_available:
            try:
                new, self.cursor = fetch_output(self.client, self.deployment_id, after=self.cursor)
            except OutputUnavailableError:
                self.output_available = False
        self.recent.extend(new)
        return snapshot_from_api(info, targets, self.clock(), tuple(self.recent)), new


def watch_deployment(
    client: Any,
    deployment_id: str,
    *,
    console: Console,
    interval: float = 1.0,
    live: bool = True,
    stop: threading.Event | None = None,
) -> Snapshot:
    """Follow ``deployment_id`` until it ends, showing it on ``console``; returns the last snapshot.

    The live view is used when ``live`` and the console is a terminal, plain lines otherwise.
    ``stop`` ends the wait early (the last snapshot is returned as it is).
    """
    follower = Follower(client, deployment_id)
    stop = stop or threading.Event()
    if live and console.is_terminal:
        snapshot = _follow_live(follower, console, interval, stop)
    else:
        snapshot = _follow_plain(follower, console, interval, stop)
    console.print(summary(snapshot), soft_wrap=True)
    return snapshot


def _follow_plain(
    follower: Follower, console: Console, interval: float, stop: threading.Event
) -> Snapshot:
    previous: Snapshot | None = None
    held: tuple[OutputLine, ...] = ()
    while True:
        snapshot, new = follower.poll()
        lines, held = plain_lines(previous, snapshot, [*held, *new])
        for line in lines:
            console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        console.file.flush()
        previous = snapshot
        if snapshot.finished or stop.wait(interval):
            return snapshot


def _follow_live(
    follower: Follower, console: Console, interval: float, stop: threading.Event
) -> Snapshot:
    from rich.live import Live

    snapshot, _ = follower.poll()
    with Live(live_view(snapshot), console=console, refresh_per_second=4) as view:
        while not snapshot.finished and not stop.wait(interval):
            snapshot, _ = follower.poll()
            view.update(live_view(snapshot), refresh=True)
        # The frame left on the screen: the summary printed below it states the result.
        view.update(live_view(snapshot, header=False), refresh=True)
    return snapshot


@click.command("watch")
@click.argument("deployment_id")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--no-live", is_flag=True, help="Plain lines even in a terminal.")
@connection_options
def watch(
    deployment_id: str,
    interval: float,
    no_live: bool,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
) -> None:
    """Follow a deployment until it ends: a live view in a terminal, plain lines in a pipe.

    Exit status: 0 if it Succeeded, 1 if it Failed or was Stopped, 130 on Ctrl-C (the
    deployment goes on), 255 if the service cannot be asked.

    Example: opendeploy watch d-ABCDEFGHI
    """
    console = cli_console()
    with service_errors():
        client = codedeploy_client(endpoint_url, profile, region, no_verify_ssl)
        try:
            snapshot = watch_deployment(
                client, deployment_id, console=console, interval=interval, live=not no_live
            )
        except KeyboardInterrupt:
            click.echo(
                f"\nStopped watching; {deployment_id} goes on "
                f"(`opendeploy watch {deployment_id}` to follow it again).",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_status(snapshot))
