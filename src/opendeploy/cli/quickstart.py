"""``opendeploy quickstart``: the whole story on one machine, in about half a minute.

1. start ``opendeploy server`` on a free port with its data under ``DIR/data``;
2. register three on-premises instances (``host-1`` … ``host-3``, tag ``quickstart=demo``) and
   start an agent for each, each with its own directory and deployment root under ``DIR/hosts``;
3. create the application ``quickstart`` and the deployment group ``demo`` (the tag filter,
   ``CodeDeployDefault.HalfAtATime``, automatic rollback on failure);
4. deploy the good revision (``data/quickstart/good``, also at ``examples/quickstart``) and
   follow it; then deploy the broken one (its ValidateService fails), follow it to its failure,
   and follow the automatic rollback to the good revision;
5. print what to try next, stop everything it started (also on Ctrl-C or SIGTERM), and exit 0
   when the story went as expected: good Succeeded, broken Failed, rollback Succeeded (else 1).

The three hosts share the machine, so they install into one directory (``DIR/www``, written into
the revisions' appspec when they are copied to ``DIR/revisions``) with
``file_exists_behavior=OVERWRITE``; what each host did is in ``DIR/hosts/<host>/proof/events.log``
(the hooks read ``QUICKSTART_HOST_DIR`` from their agent's environment). The children run in
their own process groups so a Ctrl-C reaches only this process, which then stops the agents
(SIGTERM to each group, SIGKILL after a grace period) and the server, in that order.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.rule import Rule

from opendeploy.cli.logs import service_errors
from opendeploy.cli.render import cli_console
from opendeploy.errors import OpenDeployError
from opendeploy.web import DASHBOARD_PATH, dashboard_hint

__all__ = ["EXAMPLES_DIR", "QuickstartError", "prepare_revisions", "quickstart"]

#: The two revisions, shipped inside the package (``examples/quickstart`` links here).
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "quickstart"
APPLICATION = "quickstart"
GROUP = "demo"
TAG = ("quickstart", "demo")
HOSTS = ("host-1", "host-2", "host-3")
CONFIG = "CodeDeployDefault.HalfAtATime"
_DEFAULT_DESTINATION = "/tmp/opendeploy-quickstart/www"
_STOP_GRACE = 10.0
_START_TIMEOUT = 60.0


class QuickstartError(OpenDeployError):
    """A step of the quickstart could not be done (the message says which and why)."""


@dataclass
class _Child:
    """A process started by the quickstart, in its own process group."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after the grace period."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            self.process.wait()


def _start(name: str, args: list[str], log_path: Path, env: dict[str, str]) -> _Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "opendeploy", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
    return _Child(name, process, log_path)


def _wait_for(child: _Child, ready: Any, what: str) -> None:
    """Wait until ``ready()`` (there is no event to block on: poll at a short interval)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while not ready():
        if child.process.poll() is not None:
            raise QuickstartError(
                f"{child.name} exited with code {child.process.returncode} before {what}; "
                f"its log is {child.log_path}:\n{child.log_path.read_text(errors='replace')}"
            )
        if time.monotonic() > deadline:
            raise QuickstartError(f"{child.name} did not {what} within {_START_TIMEOUT:.0f} s")
        time.sleep(0.05)


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_revisions(directory: Path) -> tuple[Path, Path]:
    """Copy the good and broken revisions to ``directory/revisions``, installing to ``www``."""
    destination = directory / "www"
    copies = []
    for name in ("good", "broken"):
        target = directory / "revisions" / name
        shutil.copytree(EXAMPLES_DIR / name, target)
        appspec = target / "appspec.yml"
        appspec.write_text(appspec.read_text().replace(_DEFAULT_DESTINATION, str(destination)))
        for script in (target / "scripts").iterdir():
            script.chmod(0o755)
        copies.append(target)
    return copies[0], copies[1]


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt, so every ``finally`` runs."""

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


#: Where ``opendeploy server`` serves the dashboard (``GET /`` redirects there).
def _what_next(directory: Path, data_dir: Path, port: int, ids: dict[str, str]) -> str:
    env = f"OPENDEPLOY_DATA_DIR={data_dir}"
    return "\n".join(
        [
            "What next",
            f"  Everything is in {directory} (server data: {data_dir}, hosts: {directory}/hosts,",
            f"  installed site: {directory}/www). Start the server again with:",
            f"    opendeploy server --data-dir {data_dir} --port {port} &",
            f"  and open the dashboard at http://127.0.0.1:{port}{DASHBOARD_PATH} (sign in with",
            f"  the key pair in {data_dir}/credentials; `--keep` leaves this run's server up).",
            "  then, in another shell:",
            f"    export {env}",
            f"    opendeploy list-deployments --application-name {APPLICATION} "
            f"--deployment-group-name {GROUP}",
            f"    opendeploy watch {ids.get('broken', 'd-…')}      # the summary of the failure",
            f"    opendeploy logs {ids.get('broken', 'd-…')} --event ValidateService",
            f"    opendeploy deploy --application-name {APPLICATION} "
            f"--deployment-group-name {GROUP} --file-exists-behavior OVERWRITE "
            f"{directory}/revisions/good",
            "  (the agents are stopped: start one with "
            f"`opendeploy agent --config {directory}/hosts/host-1/codedeployagent.yml`).",
            "  aws-cli and boto3 use the server with:",
            f"    export AWS_SHARED_CREDENTIALS_FILE={data_dir}/credentials "
            f"AWS_CONFIG_FILE={data_dir}/config",
            f"    aws deploy list-applications --endpoint-url http://127.0.0.1:{port}",
        ]
    )


def _run_story(
    console: Console, directory: Path, port: int, live: bool, interval: float, stack: ExitStack
) -> tuple[bool, dict[str, str]]:
    from opendeploy.cli.deploy import push_and_create
    from opendeploy.cli.instance import iam_user_arn_for, write_agent_files
    from opendeploy.cli.watch import watch_deployment
    from opendeploy.clients import codedeploy_client, request_instance_credentials

    data_dir = directory / "data"
    endpoint = f"http://127.0.0.1:{port}"
    console.print(Rule("1/4  Server and three hosts"))
    server = _start(
        "opendeploy server",
        ["server", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        directory / "server.log",
        {},
    )
    stack.callback(server.stop)
    _wait_for(server, lambda: _healthy(port), "answer on /healthz")
    # soft_wrap: paths and URLs stay whole (copyable) instead of breaking at 80 columns.
    console.print(f"server {endpoint} (data {data_dir}, log {server.log_path})", soft_wrap=True)

    from opendeploy.cli.connection import LocalServer

    local = LocalServer.read(data_dir)
    assert local.access_key_id and local.secret_access_key
    console.print(
        dashboard_hint(endpoint, data_dir, local.access_key_id), highlight=False, soft_wrap=True
    )
    client = codedeploy_client(
        endpoint_url=endpoint,
        region=local.region or "us-east-1",
        access_key_id=local.access_key_id,
        secret_access_key=local.secret_access_key,
    )
    s3 = client_s3(endpoint, local)
    agents: list[_Child] = []
    for name in HOSTS:
        host_dir = directory / "hosts" / name
        client.register_on_premises_instance(instanceName=name, iamUserArn=iam_user_arn_for(name))
        client.add_tags_to_on_premises_instances(
            instanceNames=[name], tags=[{"Key": TAG[0], "Value": TAG[1]}]
        )
        credentials = request_instance_credentials(client, name)
        files = write_agent_files(
            host_dir,
            endpoint=endpoint,
            region=local.region or "us-east-1",
            iam_user_arn=credentials.iam_user_arn,
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
        )
        agent = _start(
            f"agent {name}",
            ["agent", "--config", str(files.agent_config)],
            host_dir / "agent.log",
            {"QUICKSTART_HOST_DIR": str(host_dir / "proof")},
        )
        stack.callback(agent.stop)
        agents.append(agent)
    for agent in agents:
        _wait_for(agent, lambda a=agent: b"Polling " in a.log_path.read_bytes(), "poll")
        console.print(
            f"{agent.name} polling (root {agent.log_path.parent / 'deployment-root'})",
            soft_wrap=True,
        )

    client.create_application(applicationName=APPLICATION)
    client.create_deployment_group(
        applicationName=APPLICATION,
        deploymentGroupName=GROUP,
        serviceRoleArn="arn:aws:iam::123456789012:role/opendeploy-quickstart",
        onPremisesInstanceTagFilters=[{"Key": TAG[0], "Value": TAG[1], "Type": "KEY_AND_VALUE"}],
        deploymentConfigName=CONFIG,
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )
    console.print(
        f"application {APPLICATION}, deployment group {GROUP} "
        f"({TAG[0]}={TAG[1]}, {CONFIG}, rollback on failure)"
    )
    good, broken = prepare_revisions(directory)

    ids: dict[str, str] = {}
    results: dict[str, str] = {}
    steps = (
        ("good", good, "2/4  Deploy the good revision"),
        ("broken", broken, "3/4  Deploy a broken revision (its ValidateService fails)"),
    )
    for key, revision, title in steps:
        console.print(Rule(title))
        ids[key] = push_and_create(
            client,
            s3,
            application=APPLICATION,
            group=GROUP,
            source=revision,
            file_exists_behavior="OVERWRITE",
            description=f"quickstart: the {key} revision",
        )
        console.print(f"Created deployment {ids[key]}")
        snapshot = watch_deployment(client, ids[key], console=console, interval=interval, live=live)
        results[key] = snapshot.deployment.status
    rollback = snapshot.deployment.rollback_deployment_id
    console.print(Rule("4/4  The automatic rollback"))
    if rollback:
        ids["rollback"] = rollback
        snapshot = watch_deployment(client, rollback, console=console, interval=interval, live=live)
        results["rollback"] = snapshot.deployment.status
    else:
        console.print("No rollback deployment was created.")
    expected = {"good": "Succeeded", "broken": "Failed", "rollback": "Succeeded"}
    ok = results == expected
    console.print(Rule("Result"))
    for key, wanted in expected.items():
        got = results.get(key, "not created")
        mark = "as expected" if got == wanted else f"expected {wanted}"
        console.print(f"{key:<9} {ids.get(key, '-'):<12} {got} ({mark})", highlight=False)
    console.print(_what_next(directory, data_dir, port, ids), highlight=False, soft_wrap=True)
    return ok, ids


def client_s3(endpoint: str, local: Any) -> Any:
    """An S3 client for the server's bundle store, signed with the admin key."""
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=local.region or "us-east-1",
        aws_access_key_id=local.access_key_id,
        aws_secret_access_key=local.secret_access_key,
    )


@click.command("quickstart")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the server data, hosts and revisions (default: a new temp directory).",
)
@click.option("--port", type=int, default=0, help="Server port (default: a free one).")
@click.option("--keep", is_flag=True, help="Leave server and agents running until Ctrl-C.")
@click.option("--no-live", is_flag=True, help="Plain lines even in a terminal.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
def quickstart(
    directory: Path | None, port: int, keep: bool, no_live: bool, interval: float
) -> None:
    """Start a server and three hosts, deploy a good and a broken revision, watch the rollback.

    Stops everything it started at the end (or on Ctrl-C). Exit status: 0 when the good
    deployment succeeded, the broken one failed and its automatic rollback succeeded; 1 otherwise.

    Example: opendeploy quickstart
    """
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="opendeploy-quickstart-"))
    elif directory.exists() and any(directory.iterdir()):
        raise click.UsageError(
            f"--dir {directory}: the directory is not empty; the quickstart needs a new or "
            "empty directory (it creates a server, hosts and revisions there)."
        )
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    console = cli_console()
    ok = False
    with _signals_interrupt(), ExitStack() as stack, service_errors():
        try:
            ok, _ = _run_story(
                console, directory, port or _free_port(), not no_live, interval, stack
            )
            if keep:
                console.print("Server and agents keep running; Ctrl-C stops them.")
                signal.pause()
        except KeyboardInterrupt:
            console.print("\nInterrupted: stopping the server and the agents.")
            ok = False
        except QuickstartError as exc:
            console.print(f"quickstart: {exc}", style="red", highlight=False)
            ok = False
        finally:
            console.print("Stopping the agents and the server …")
    sys.exit(0 if ok else 1)
