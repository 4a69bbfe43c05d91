"""Pacing, stopping, bundle sources and deregistration end to end: one real server, real agents.

One server and four agents (``host-1`` … ``host-4``, tag ``role=web``) are started once per
database (SQLite, PostgreSQL) and every scenario runs against them in turn, which keeps the file
quick. Pacing is read back from the lifecycle event start/end times the server records
(BatchGetDeploymentTargets), never from sleeps in the test: a host is "in flight" from its first
event's start to its last event's end. Every hook appends ``<event> <deployment id>`` to a proof
file in its host's directory (``PROOF_DIR``), so what ran where can be read back too.

The hosts share one machine, so the pacing bundle installs no files (concurrent hosts would
install into one directory); the GitHub revision, which does install a file, deploys one host at a
time.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from opendeploy.testing.agents import RunningAgent, register_instance, running_agents, start_agent
from opendeploy.testing.server import RunningServer, running_server
from tests.conftest import scratch_postgres_database
from tests.e2e.polling import finished_deployment, wait_for
from tests.revisions.servers import git_daemon

pytestmark = pytest.mark.e2e

AWS = Path(sys.executable).parent / "aws"
ROLE = "arn:aws:iam::000000000000:role/opendeploy"
BUCKET = "bundles"
TAGS = {"role": "web"}
HOSTS = 4
HOOK_EVENTS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
#: Long enough that hosts deployed together measurably overlap, short enough to stay quick.
HOOK_SLEEP = "0.5"
#: Short enough for quick failure scenarios, wide enough that a live agent's held-poll heartbeats
#: (every dead-after / 3) keep it alive on a loaded machine.
SERVER_ARGS = ("--agent-dead-after", "3", "--poll-timeout", "2", "--event-start-timeout", "30")


# -- databases (module scope: one server per database) --------------------------------------------


@pytest.fixture(scope="module")
def module_database_url(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url`` in tests/conftest.py, but shared by every test of this module."""
    if module_backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'opendeploy.db'}"
        return
    with scratch_postgres_database() as url:
        yield url


# -- the fleet ------------------------------------------------------------------------------------


@dataclass
class Fleet:
    server: RunningServer
    agents: list[RunningAgent]
    #: Where ``git daemon`` serves repositories from (``<git_root>/acme/web`` is ``acme/web``).
    git_root: Path
    base: Path
    database_url: str

    @functools.cached_property
    def client(self) -> Any:
        """The admin's CodeDeploy client, made once (building one costs 0.1-0.4 s)."""
        return self.server.client()

    def proof(self, agent: RunningAgent) -> Path:
        return agent.directory / "proof"


def _proof_env(name: str, directory: Path) -> dict[str, str]:
    proof = directory / "proof"
    proof.mkdir(parents=True, exist_ok=True)
    return {"PROOF_DIR": str(proof)}


@pytest.fixture(scope="module")
def fleet(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A git daemon, a server with a bucket, and four agents fetching GitHub revisions from it."""
    base = tmp_path_factory.mktemp("fleet")
    git_root = base / "git"
    git_root.mkdir()
    with ExitStack() as stack:
        git_url = stack.enter_context(git_daemon(git_root))
        server = stack.enter_context(
            running_server(
                base / "server", database_url=module_database_url, extra_args=SERVER_ARGS
            )
        )
        server.client("s3").create_bucket(Bucket=BUCKET)
        agents = stack.enter_context(
            running_agents(
                server,
                base / "hosts",
                HOSTS,
                tags=TAGS,
                extra_config={"git_base_url": git_url},
                agent_env=_proof_env,
            )
        )
        yield Fleet(server, agents, git_root, base, module_database_url)


# -- bundles --------------------------------------------------------------------------------------


def _hook_script(event: str) -> str:
    """A hook that proves it ran; BeforeInstall takes a moment; AfterInstall can be held.

    AfterInstall waits (pid in ``hold.pid``) while ``$PROOF_DIR/hold`` exists until
    ``$PROOF_DIR/release`` appears, then touches ``$PROOF_DIR/released``.
    """
    body = 'echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID" >> "$PROOF_DIR/events"\n'
    if event == "BeforeInstall":
        body += f"sleep {HOOK_SLEEP}\n"
    if event == "AfterInstall":
        body += 'if [ -e "$PROOF_DIR/hold" ]; then echo $$ > "$PROOF_DIR/hold.pid"; '
        body += 'while [ ! -e "$PROOF_DIR/release" ]; do sleep 0.05; done; '
        body += 'touch "$PROOF_DIR/released"; fi\n'
    return "#!/bin/sh\nset -e\n" + body


def _appspec(files: str = "") -> str:
    hooks = "".join(
        f"  {e}:\n    - location: scripts/{e}.sh\n      timeout: 60\n" for e in HOOK_EVENTS
    )
    return f"version: 0.0\nos: linux\n{files}hooks:\n{hooks}"


def _write_source(root: Path, files: str = "", extra: dict[str, str] | None = None) -> Path:
    """A revision's directory: appspec.yml, the hook scripts (executable) and ``extra`` files."""
    (root / "scripts").mkdir(parents=True)
    (root / "appspec.yml").write_text(_appspec(files))
    for event in HOOK_EVENTS:
        script = root / "scripts" / f"{event}.sh"
        script.write_text(_hook_script(event))
        script.chmod(0o755)
    for name, text in (extra or {}).items():
        (root / name).write_text(text)
    return root


def _zip(root: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(root)))
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _s3_revision(fleet: Fleet, key: str) -> dict[str, Any]:
    """Upload the hook bundle (no files section) once under ``key``; its S3 revision."""
    source = fleet.base / "sources" / key
    if not source.exists():
        fleet.server.client("s3").put_object(
            Bucket=BUCKET, Key=key, Body=_zip(_write_source(source))
        )
    return {"revisionType": "S3", "s3Location": {"bucket": BUCKET, "key": key, "bundleType": "zip"}}


# -- helpers --------------------------------------------------------------------------------------


def _application(client: Any, app: str, group: str, config: str, tags: dict[str, str]) -> None:
    client.create_application(applicationName=app)
    client.create_deployment_group(
        applicationName=app,
        deploymentGroupName=group,
        serviceRoleArn=ROLE,
        deploymentConfigName=config,
        onPremisesInstanceTagFilters=[
            {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in tags.items()
        ],
    )


def _targets(client: Any, deployment_id: str) -> dict[str, dict[str, Any]]:
    """Every instance target of a deployment (BatchGetDeploymentTargets), by instance name."""
    ids = client.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    targets = client.batch_get_deployment_targets(deploymentId=deployment_id, targetIds=ids)
    return {
        t["instanceTarget"]["targetId"]: t["instanceTarget"] for t in targets["deploymentTargets"]
    }


def _span(target: dict[str, Any]) -> tuple[datetime, datetime]:
    """When a host was in flight: its first event's start to its last event's end."""
    events = target["lifecycleEvents"]
    starts = [e["startTime"] for e in events if "startTime" in e]
    ends = [e["endTime"] for e in events if "endTime" in e]
    assert starts and ends, target
    return min(starts), max(ends)


def _max_in_flight(spans: list[tuple[datetime, datetime]]) -> int:
    """The most spans open at one instant (a span ending when another starts does not overlap)."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def _hook_runs(fleet: Fleet, agent: RunningAgent, deployment_id: str) -> list[str]:
    path = fleet.proof(agent) / "events"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[0] for line in lines if line.endswith(f" {deployment_id}")]


# -- 1. pacing ------------------------------------------------------------------------------------

PACE_APP = "pace"
PACE_GROUP = "web"


@pytest.fixture(scope="module")
def pace_app(fleet: Fleet) -> str:
    _application(fleet.client, PACE_APP, PACE_GROUP, "CodeDeployDefault.OneAtATime", TAGS)
    fleet.client.create_deployment_config(
        deploymentConfigName="Fleet75",
        minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 75},
    )
    return PACE_APP


def _start_pacing(fleet: Fleet, config: str) -> str:
    """Deploy the hook bundle to the pacing group with ``config``; the deployment's id."""
    deployment_id: str = fleet.client.create_deployment(
        applicationName=PACE_APP,
        deploymentGroupName=PACE_GROUP,
        revision=_s3_revision(fleet, "pace.zip"),
        deploymentConfigName=config,
    )["deploymentId"]
    return deployment_id


def _paced(fleet: Fleet, config: str) -> tuple[list[tuple[datetime, datetime]], str]:
    return _checked_pacing(fleet, _start_pacing(fleet, config))


def _checked_pacing(
    fleet: Fleet, deployment_id: str
) -> tuple[list[tuple[datetime, datetime]], str]:
    """Wait for a pacing deployment to succeed everywhere; each host's in-flight span."""
    client = fleet.client
    info = finished_deployment(client, deployment_id)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert info["deploymentOverview"]["Succeeded"] == HOSTS
    targets = _targets(client, deployment_id)
    assert sorted(targets) == [a.name for a in fleet.agents]
    for agent in fleet.agents:
        assert _hook_runs(fleet, agent, deployment_id)[-4:] == list(HOOK_EVENTS[1:])
    return [_span(t) for t in targets.values()], deployment_id


def _waits_for_another(spans: list[tuple[datetime, datetime]]) -> bool:
    """Whether some host started only after another had ended (a later batch)."""
    return any(start >= end for start, _ in spans for _, end in spans)


def test_all_at_once_runs_every_host_together(fleet: Fleet, pace_app: str) -> None:
    spans, _ = _paced(fleet, "CodeDeployDefault.AllAtOnce")
    assert _max_in_flight(spans) == HOSTS, spans


def test_half_at_a_time_keeps_exactly_two_hosts_in_flight(fleet: Fleet, pace_app: str) -> None:
    # host-1 and host-2 (the first pair in name order) are both held in AfterInstall: at that
    # moment both are in flight, whatever the machine's speed, so the peak is exactly two.
    client = fleet.client
    proofs = [fleet.proof(agent) for agent in fleet.agents[:2]]
    for proof in proofs:
        (proof / "hold").touch()
    try:
        deployment_id = _start_pacing(fleet, "CodeDeployDefault.HalfAtATime")
        for proof in proofs:
            pid = proof / "hold.pid"
            wait_for(pid.exists, 30, f"{proof.parent.name}'s AfterInstall to hold")
        # Nobody else may start while the pair is held: half the fleet must stay healthy.
        statuses = {name: t["status"] for name, t in _targets(client, deployment_id).items()}
        assert (statuses["host-3"], statuses["host-4"]) == ("Pending", "Pending"), statuses
    finally:
        for proof in proofs:
            (proof / "release").touch()
    spans, _ = _checked_pacing(fleet, deployment_id)
    for proof in proofs:
        wait_for((proof / "released").exists, 30, "the held hook to end")
        for name in ("hold", "hold.pid", "release", "released"):
            (proof / name).unlink()
    assert _max_in_flight(spans) == 2, spans
    assert _waits_for_another(spans), spans


def test_one_at_a_time_never_overlaps(fleet: Fleet, pace_app: str) -> None:
    spans, _ = _paced(fleet, "CodeDeployDefault.OneAtATime")
    assert _max_in_flight(spans) == 1, spans


def test_custom_fleet_percent_75_keeps_three_of_four_healthy(fleet: Fleet, pace_app: str) -> None:
    spans, _ = _paced(fleet, "Fleet75")
    assert _max_in_flight(spans) == 1, spans


# -- 2. stop --------------------------------------------------------------------------------------


def test_stop_ends_the_held_hosts_event(fleet: Fleet, pace_app: str) -> None:
    client = fleet.client
    held = fleet.agents[0]
    proof = fleet.proof(held)
    (proof / "hold").touch()
    try:
        deployment_id = _start_pacing(fleet, "CodeDeployDefault.AllAtOnce")
        wait_for(lambda: (proof / "hold.pid").exists(), 30, f"{held.name}'s AfterInstall to hold")
        answer = client.stop_deployment(deploymentId=deployment_id)
        assert answer["status"] in ("Pending", "Succeeded"), answer
        info = finished_deployment(client, deployment_id, timeout=30)
        assert info["status"] == "Stopped"
        assert info["errorInformation"]["code"] == "MANUAL_STOP"
        target = _targets(client, deployment_id)[held.name]
        assert target["status"] == "Failed"
        events = {e["lifecycleEventName"]: e for e in target["lifecycleEvents"]}
        assert events["AfterInstall"]["status"] == "Failed"
        assert "endTime" in events["AfterInstall"]
        assert events["ApplicationStart"]["status"] == "Skipped"
    finally:
        (proof / "release").touch()
    wait_for(lambda: (proof / "released").exists(), 30, "the held hook to end")
    for name in ("hold", "hold.pid", "release", "released"):
        (proof / name).unlink()
    # The rest of the held lifecycle never runs: the server stopped sending its commands.
    assert "ApplicationStart" not in _hook_runs(fleet, held, deployment_id)


# -- 3. GitHub revision from a git server ---------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def test_github_revision_from_a_git_daemon(fleet: Fleet) -> None:
    www = fleet.base / "www-git"
    work = _write_source(
        fleet.base / "git-work",
        files=f"files:\n  - source: index.html\n    destination: {www}\n",
        extra={"index.html": "from git\n"},
    )
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "web")
    sha = _git(work, "rev-parse", "HEAD")
    bare = fleet.git_root / "acme" / "web"
    bare.parent.mkdir()
    _git(fleet.base, "clone", "-q", "--bare", str(work), str(bare))

    client = fleet.client
    # One host at a time: every host installs index.html into the same directory.
    _application(client, "git", "web", "CodeDeployDefault.OneAtATime", TAGS)
    deployment_id: str = client.create_deployment(
        applicationName="git",
        deploymentGroupName="web",
        revision={
            "revisionType": "GitHub",
            "gitHubLocation": {"repository": "acme/web", "commitId": sha},
        },
        fileExistsBehavior="OVERWRITE",
    )["deploymentId"]
    info = finished_deployment(client, deployment_id)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert info["deploymentOverview"]["Succeeded"] == HOSTS
    assert (www / "index.html").read_text() == "from git\n"
    for agent in fleet.agents:
        assert _hook_runs(fleet, agent, deployment_id)[-1] == "ValidateService"


# -- 4. deregistering an instance mid-deployment ---------------------------------------------------


def test_deregistering_an_instance_stops_its_commands(fleet: Fleet) -> None:
    client = fleet.client
    solo = {"role": "solo"}
    config = register_instance(fleet.server, "solo-1", fleet.base / "hosts" / "solo-1", tags=solo)
    env = _proof_env("solo-1", config.parent)
    proof = Path(env["PROOF_DIR"])
    (proof / "hold").touch()
    agent = start_agent(config, name="solo-1", env=env)
    try:
        agent.wait_polling()
        _application(client, "solo", "solo", "CodeDeployDefault.OneAtATime", solo)
        deployment_id: str = client.create_deployment(
            applicationName="solo",
            deploymentGroupName="solo",
            revision=_s3_revision(fleet, "pace.zip"),
        )["deploymentId"]
        wait_for(lambda: (proof / "hold.pid").exists(), 30, "solo-1's AfterInstall to hold")

        client.deregister_on_premises_instance(instanceName="solo-1")
        # Its key is revoked: the open event fails at once, naming the deregistration (not a
        # silent agent, which would take the dead-agent window).
        info = finished_deployment(client, deployment_id, timeout=30)
        assert info["status"] == "Failed"
        assert info["deploymentOverview"]["Failed"] == 1
        events = {
            e["lifecycleEventName"]: e
            for e in _targets(client, deployment_id)["solo-1"]["lifecycleEvents"]
        }
        assert events["AfterInstall"]["status"] == "Failed"
        message = events["AfterInstall"]["diagnostics"]["message"]
        assert "The instance solo-1 was deregistered" in message, message
        assert "has not polled" not in message
        assert events["ApplicationStart"]["status"] == "Skipped"
        (proof / "release").touch()
        wait_for(lambda: (proof / "released").exists(), 30, "the held hook to end")
        # The agent's polls are refused from now on; no further command reaches it.
        agent.wait_for_output("The security token included in the request is invalid", timeout=30)
        assert _hook_runs(fleet, agent, deployment_id) == ["BeforeInstall", "AfterInstall"]
    finally:
        (proof / "release").touch()
        agent.stop()


# -- 5. unmodified aws-cli v1 ---------------------------------------------------------------------


def _aws(fleet: Fleet, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AWS), *args],
        env={**os.environ, **fleet.server.env()},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_PUSH_HINT = re.compile(
    r"--s3-location bucket=(?P<bucket>[^,]+),key=(?P<key>[^,]+),"
    r"bundleType=zip,eTag=(?P<etag>[^, ]+)(?:,version=(?P<version>\S+))? "
)


# aws-cli's waiter polls every 15 s; the scenario is about the client, not the store, so it runs
# on the SQLite fleet only (the same steps run through boto3 on both databases).
@pytest.mark.parametrize("module_backend", ["sqlite"], indirect=True)
def test_unmodified_aws_cli_drives_a_deployment(fleet: Fleet) -> None:
    assert fleet.database_url.startswith("sqlite")

    def ok(*args: str) -> str:
        result = _aws(fleet, *args)
        assert result.returncode == 0, f"aws {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    ok("s3", "mb", "s3://cli-bundles")
    ok("deploy", "create-application", "--application-name", "cli")
    ok(
        "deploy", "create-deployment-group",
        "--application-name", "cli",
        "--deployment-group-name", "web",
        "--service-role-arn", ROLE,
        "--deployment-config-name", "CodeDeployDefault.AllAtOnce",
        "--on-premises-instance-tag-filters", "Key=role,Value=web,Type=KEY_AND_VALUE",
    )  # fmt: skip
    source = _write_source(fleet.base / "cli-source")
    pushed = ok(
        "deploy", "push",
        "--application-name", "cli",
        "--s3-location", "s3://cli-bundles/cli/app.zip",
        "--source", str(source),
    )  # fmt: skip
    hint = _PUSH_HINT.search(pushed)
    assert hint, pushed
    location = f"bucket={hint['bucket']},key={hint['key']},bundleType=zip,eTag={hint['etag']}"
    if hint["version"]:
        location += f",version={hint['version']}"
    created = ok(
        "deploy", "create-deployment",
        "--application-name", "cli",
        "--deployment-group-name", "web",
        "--s3-location", location,
        "--output", "json",
    )  # fmt: skip
    deployment_id = json.loads(created)["deploymentId"]
    ok("deploy", "wait", "deployment-successful", "--deployment-id", deployment_id)
    got = json.loads(ok("deploy", "get-deployment", "--deployment-id", deployment_id))
    assert got["deploymentInfo"]["status"] == "Succeeded"
    assert got["deploymentInfo"]["deploymentOverview"]["Succeeded"] == HOSTS
    for agent in fleet.agents:
        assert _hook_runs(fleet, agent, deployment_id)[-4:] == list(HOOK_EVENTS[1:])
