"""Register on-premises instances and run real ``opendeploy agent`` processes, for tests.

    with running_server(tmp_path / "data") as srv, running_agents(
        srv, tmp_path / "hosts", 3, tags={"role": "web"}
    ) as agents:
        ...  # three registered instances, each agent has polled the server once

Each agent gets its own directory (``codedeployagent.yml``, ``codedeploy.onpremises.yml``,
``deployment-root/``, ``logs/``) and runs as its own process. "Has polled" is an event, not a
guess: the agent logs ``Polling <endpoint> for commands`` when its first PollHostCommand goes
out, and a reader thread on the agent's stderr sets an event when that line appears.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opendeploy.errors import OpenDeployError

__all__ = [
    "AgentStartError",
    "RunningAgent",
    "register_instance",
    "running_agents",
    "start_agent",
]

_POLLING_MARK = "Polling "


class AgentStartError(OpenDeployError, RuntimeError):
    """The agent process exited or did not poll in time."""


@dataclass
class RunningAgent:
    """One ``opendeploy agent`` process and where its files are."""

    name: str
    directory: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    output_path: Path
    #: Where this process's output starts in ``output_path`` (a restarted agent appends).
    output_offset: int = 0
    polled: threading.Event = field(default_factory=threading.Event)
    #: Notified for every output line (see :meth:`wait_for_output`).
    lines: threading.Condition = field(default_factory=threading.Condition)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def root_dir(self) -> Path:
        return self.directory / "deployment-root"

    @property
    def log_path(self) -> Path:
        """The agent log (official name: ``<log_dir>/codedeploy-agent.log``)."""
        return self.directory / "logs" / "codedeploy-agent.log"

    def output(self) -> str:
        """Everything this process wrote to stdout/stderr so far (earlier runs' excluded)."""
        if not self.output_path.exists():
            return ""
        with self.output_path.open("rb") as handle:
            handle.seek(self.output_offset)
            return handle.read().decode(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Block until ``text`` appears in the agent's output (raise after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.lines:
            while text not in self.output():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and self._reader is None):
                    raise AgentStartError(
                        f"agent {self.name} did not write {text!r} within {timeout:.0f} s\n"
                        f"--- output ---\n{self.output()}"
                    )
                self.lines.wait(min(remaining, 1.0))

    def wait_polling(self, timeout: float = 30.0) -> None:
        """Block until the first PollHostCommand went out (raise if the process died first)."""
        if not self.polled.wait(timeout):
            state = "exited" if self.process.poll() is not None else "is running"
            raise AgentStartError(
                f"agent {self.name} {state} but did not poll within {timeout:.0f} s\n"
                f"--- output ---\n{self.output()}"
            )

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._join_reader()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the agent dies as in a crash (its hooks' processes are left running)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._join_reader()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None


def register_instance(
    server: Any,
    name: str,
    directory: Path,
    *,
    tags: Mapping[str, str] | None = None,
    extra_config: Mapping[str, object] | None = None,
) -> Path:
    """Register ``name`` on ``server`` (a ``RunningServer``), issue its key, write its files.

    Does in-process what ``opendeploy instance register`` does; returns the agent config path.
    """
    from opendeploy.cli.instance import iam_user_arn_for, write_agent_files
    from opendeploy.clients import codedeploy_client, request_instance_credentials

    ca_bundle = getattr(server, "ca_bundle", None)
    client = codedeploy_client(
        endpoint_url=server.endpoint,
        region=server.region,
        access_key_id=server.access_key_id,
        secret_access_key=server.secret_access_key,
        verify=str(ca_bundle) if ca_bundle is not None else None,
    )
    client.register_on_premises_instance(instanceName=name, iamUserArn=iam_user_arn_for(name))
    if tags:
        client.add_tags_to_on_premises_instances(
            instanceNames=[name], tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )
    credentials = request_instance_credentials(
        client, name, verify=str(ca_bundle) if ca_bundle is not None else None
    )
    files = write_agent_files(
        directory,
        endpoint=server.endpoint,
        region=server.region,
        iam_user_arn=credentials.iam_user_arn,
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        extra=extra_config,
        signer_certificate=credentials.spec_signer_certificate,
    )
    return files.agent_config


def _pump(stream: IO[bytes], path: Path, agent: RunningAgent) -> None:
    with path.open("ab") as sink:
        for line in iter(stream.readline, b""):
            with agent.lines:
                sink.write(line)
                sink.flush()
                agent.lines.notify_all()
            if not agent.polled.is_set() and _POLLING_MARK.encode() in line:
                agent.polled.set()
    stream.close()


def start_agent(
    config_path: Path,
    *,
    name: str | None = None,
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
) -> RunningAgent:
    """Start ``opendeploy agent --config config_path`` (returns at once; see ``wait_polling``).

    The process runs in the config file's directory, with ``env`` added to this environment
    (hook scripts inherit both).
    """
    directory = config_path.parent
    output_path = directory / "agent-output.log"
    offset = output_path.stat().st_size if output_path.exists() else 0
    process = subprocess.Popen(
        [sys.executable, "-m", "opendeploy", "agent", "--config", str(config_path), *extra_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=directory,
        env={**os.environ, **(env or {})},
    )
    agent = RunningAgent(
        name=name or directory.name,
        directory=directory,
        config_path=config_path,
        process=process,
        output_path=output_path,
        output_offset=offset,
    )
    assert process.stdout is not None
    agent._reader = threading.Thread(
        target=_pump,
        args=(process.stdout, output_path, agent),
        name=f"agent-output-{agent.name}",
        daemon=True,
    )
    agent._reader.start()
    return agent


@contextmanager
def running_agents(
    server: Any,
    base_dir: Path,
    count: int,
    *,
    name_prefix: str = "host",
    tags: Mapping[str, str] | None = None,
    extra_config: Mapping[str, object] | None = None,
    extra_args: tuple[str, ...] = (),
    agent_env: Callable[[str, Path], Mapping[str, str]] | None = None,
    timeout: float = 30.0,
) -> Iterator[list[RunningAgent]]:
    """Register ``count`` instances (``<prefix>-1`` …), start their agents, wait for each poll.

    ``agent_env(name, directory)`` gives extra environment variables per agent. An HTTPS
    server's certificate is trusted through ``AWS_CA_BUNDLE``. Every agent is stopped on exit
    (SIGTERM, then SIGKILL).
    """
    ca_bundle = getattr(server, "ca_bundle", None)
    with ExitStack() as stack:
        agents: list[RunningAgent] = []
        for index in range(1, count + 1):
            name = f"{name_prefix}-{index}"
            config_path = register_instance(
                server, name, base_dir / name, tags=tags, extra_config=extra_config
            )
            env = dict(agent_env(name, config_path.parent)) if agent_env else {}
            if ca_bundle is not None:
                env.setdefault("AWS_CA_BUNDLE", str(ca_bundle))
            agent = start_agent(config_path, name=name, extra_args=extra_args, env=env)
            stack.callback(agent.stop)
            agents.append(agent)
        for agent in agents:
            agent.wait_polling(timeout)
        yield agents
