"""A real server and three real agents with the quickstart application, for the CLI tests.

    with deploy_cluster(tmp_path) as cluster:
        result = cluster.cli("deploy", "--application-name", APP, ...)

The group (tag ``quickstart=demo``) deploys with HalfAtATime and rolls back on failure, like the
quickstart's; the revisions are the quickstart's good and broken ones, copied under ``base``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendeploy.cli.quickstart import prepare_revisions
from opendeploy.testing.agents import RunningAgent, running_agents
from opendeploy.testing.server import RunningServer, running_server

APP = "quickstart"
GROUP = "demo"


@dataclass
class Cluster:
    server: RunningServer
    agents: list[RunningAgent]
    good: Path
    broken: Path
    client: Any

    def env(self) -> dict[str, str]:
        env = {**os.environ, **self.server.env()}
        env.pop("FORCE_COLOR", None)
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``opendeploy ARGS`` as a subprocess pointed at this server (stdout is a pipe)."""
        return subprocess.run(
            [sys.executable, "-m", "opendeploy", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def deploy(self, revision: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli(
            "deploy",
            "--application-name",
            APP,
            "--deployment-group-name",
            GROUP,
            "--file-exists-behavior",
            "OVERWRITE",
            *extra,
            str(revision),
        )


@contextmanager
def deploy_cluster(base: Path, *, pace: str = "0.05") -> Iterator[Cluster]:
    good, broken = prepare_revisions(base)
    with (
        running_server(base / "data") as server,
        running_agents(
            server,
            base / "hosts",
            3,
            tags={"quickstart": "demo"},
            agent_env=lambda _name, directory: {
                "QUICKSTART_HOST_DIR": str(directory / "proof"),
                "QUICKSTART_PACE": pace,
            },
        ) as agents,
    ):
        client = server.client()
        client.create_application(applicationName=APP)
        client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::123456789012:role/test",
            onPremisesInstanceTagFilters=[
                {"Key": "quickstart", "Value": "demo", "Type": "KEY_AND_VALUE"}
            ],
            deploymentConfigName="CodeDeployDefault.HalfAtATime",
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
        yield Cluster(server, agents, good, broken, client)


def deployment_id(stdout: str) -> str:
    """The id from ``Created deployment d-…``."""
    for line in stdout.splitlines():
        if line.startswith("Created deployment "):
            return line.split()[-1]
    raise AssertionError(f"no 'Created deployment' line in:\n{stdout}")
