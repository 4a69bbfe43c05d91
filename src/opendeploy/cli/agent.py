"""``opendeploy agent``: run the host agent in the foreground until SIGTERM/SIGINT.

Logs go to ``<log_dir>/<program_name>.log`` in the official agent's line format (rotated daily,
seven kept) and to stderr. The first SIGTERM or SIGINT stops polling and lets the commands in
flight finish (at most ``--stop-timeout`` seconds, default the config's
``kill_agent_max_wait_time_seconds``), then exits 0; a second signal exits at once. Several
agents can run on one machine, each with its own configuration file and ``root_dir``; with
``pid_dir`` set, a lock file there keeps a second agent off the same configuration.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import logging.handlers
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

import click

from opendeploy.agent.config import AgentConfig, default_agent_config
from opendeploy.errors import AgentConfigError

__all__ = ["agent", "configure_agent_logging"]

_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}


class _AgentFormatter(logging.Formatter):
    """``2023-09-07T19:50:40 INFO  [codedeploy-agent(8798)]: <logger>: <message>`` (official)."""

    def __init__(self, program_name: str) -> None:
        super().__init__()
        self._program = program_name

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        level = _LEVEL_NAMES.get(record.levelname, record.levelname)
        line = (
            f"{stamp} {level:<5} [{self._program}({record.process})]: "
            f"{record.name}: {record.getMessage()}"
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_agent_logging(config: AgentConfig) -> Path:
    """Send the ``opendeploy`` loggers to the agent log file and stderr; returns the file."""
    config.log_dir.mkdir(parents=True, exist_ok=True)
    path = config.log_dir / f"{config.program_name}.log"
    formatter = _AgentFormatter(config.program_name)
    file_handler = logging.handlers.TimedRotatingFileHandler(
        path, when="midnight", backupCount=7, encoding="utf-8"
    )
    stderr_handler = logging.StreamHandler(sys.stderr)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [file_handler, stderr_handler]
    root.setLevel(logging.DEBUG if config.verbose else logging.INFO)
    # botocore's own DEBUG output is the wire log's job, not the agent log's.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    return path


def _lock_pid_file(config: AgentConfig) -> IO[str] | None:
    """With ``pid_dir``: take ``<program_name>.pid.lock`` and write ``<program_name>.pid``."""
    if config.pid_dir is None:
        return None
    config.pid_dir.mkdir(parents=True, exist_ok=True)
    lock_path = config.pid_dir / f"{config.program_name}.pid.lock"
    handle = lock_path.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise click.ClickException(
            f"another agent holds {lock_path} (pid_dir: {config.pid_dir}); give each agent its "
            "own pid_dir or program_name"
        ) from exc
    (config.pid_dir / f"{config.program_name}.pid").write_text(f"{os.getpid()}\n")
    return handle


@click.command("agent")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="codedeployagent.yml (default: /etc/codedeploy-agent/conf/codedeployagent.yml).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    help="Seconds to let running commands finish after SIGTERM "
    "(default: kill_agent_max_wait_time_seconds from the config).",
)
def agent(config_path: Path | None, stop_timeout: float | None) -> None:
    """Poll the OpenDeploy (or CodeDeploy) server for host commands and run them."""
    from opendeploy.agent.poller import Poller

    try:
        config = default_agent_config(config_path)
    except AgentConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if config.config_file is None:
        raise click.ClickException(
            "no agent configuration: pass --config PATH/codedeployagent.yml "
            "(opendeploy instance register writes one)"
        )
    log_file = configure_agent_logging(config)
    lock = _lock_pid_file(config)
    poller = Poller(config)

    received = itertools.count()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Counted first thing: a second signal may arrive while this handler still runs (and
        # Python then runs the handler again, nested), so no check may come after a log call.
        if next(received) > 0:
            # No logging here: the interrupted code may hold the handlers' locks.
            os.write(2, f"Second {signal.Signals(signum).name}: exiting now\n".encode())
            os._exit(128 + signum)
        poller.request_stop()
        logging.getLogger("opendeploy.agent").info(
            "%s received: no new commands; waiting for the running ones",
            signal.Signals(signum).name,
        )

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger("opendeploy.agent").info(
        "opendeploy agent %s, config %s, log %s", os.getpid(), config.config_file, log_file
    )
    finished = poller.run(stop_timeout=stop_timeout)
    logging.getLogger("opendeploy.agent").info("Agent stopped")
    logging.shutdown()
    if lock is not None:
        lock.close()
    if not finished:
        # Workers are not daemon threads: leave without waiting for the abandoned command.
        os._exit(0)
    if poller.fatal is not None:
        click.echo(poller.fatal, err=True)
        sys.exit(1)
