"""Deployments end to end: a real server, real agents (one process per host), real hooks.

The bundle is a zip uploaded to the server's own S3-compatible store; each host's hooks append
``<event> <version>`` to a proof file in that host's directory (``PROOF_DIR``), so the order of
the lifecycle on every host can be read back. The hosts share one machine, so they install into
one directory: deployments run one host at a time (``CodeDeployDefault.OneAtATime``) with
``OVERWRITE``, which keeps Install deterministic. Short server timeouts (``--agent-dead-after 3``)
keep the crash scenarios quick.
"""

from __future__ import annotations

import io
import os
import signal
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from opendeploy.store import tables
from opendeploy.store.database import Store
from opendeploy.testing.agents import RunningAgent, register_instance, running_agents, start_agent
from opendeploy.testing.server import RunningServer, running_server
from tests.e2e.polling import deployment_info, finished_deployment, wait_for

pytestmark = pytest.mark.e2e

APP = "shop"
GROUP = "web"
BUCKET = "bundles"
TAGS = {"role": "web"}
HOOK_EVENTS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
AGENT_EVENTS = ("DownloadBundle", "Install")
#: Short enough to keep the crash scenarios quick; a held poll records a heartbeat every second
#: (dead-after / 3), so a live agent on a loaded machine stays well inside the window.
DEAD_AFTER = 3.0
SERVER_ARGS = (
    "--agent-dead-after",
    f"{DEAD_AFTER:g}",
    "--poll-timeout",
    "2",
    "--event-start-timeout",
    "30",
)


# -- bundles -----------------------------------------------------------------------------------


def _bundle(version: str, www: Path) -> bytes:
    """A zip revision: one file for ``www`` and a proof-writing script for every hook event.

    ValidateService fails where ``$PROOF_DIR/fail-validate`` exists; AfterInstall hangs (pid in
    ``$PROOF_DIR/hang.pid``) where ``$PROOF_DIR/hang`` exists, and where ``$PROOF_DIR/hold``
    exists it waits (pid in ``hold.pid``) until ``$PROOF_DIR/release`` appears.
    """
    hooks = []
    scripts: dict[str, str] = {}
    for event in HOOK_EVENTS:
        body = f'echo "$LIFECYCLE_EVENT {version}" >> "$PROOF_DIR/events"\n'
        body += f'echo "{event} of {version} on $(basename "$PROOF_DIR")"\n'
        if event == "AfterInstall":
            body += f'cp {www}/version.txt "$PROOF_DIR/installed-version"\n'
            body += 'if [ -e "$PROOF_DIR/hang" ]; then echo $$ > "$PROOF_DIR/hang.pid"; '
            body += "exec sleep 60; fi\n"
            body += 'if [ -e "$PROOF_DIR/hold" ]; then echo $$ > "$PROOF_DIR/hold.pid"; '
            body += 'while [ ! -e "$PROOF_DIR/release" ]; do sleep 0.05; done; fi\n'
        if event == "ValidateService":
            body += 'if [ -e "$PROOF_DIR/fail-validate" ]; then echo broken >&2; exit 1; fi\n'
        scripts[f"scripts/{event}.sh"] = "#!/bin/sh\nset -e\n" + body
        hooks.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 120\n")
    appspec = (
        "version: 0.0\nos: linux\nfiles:\n"
        f"  - source: version.txt\n    destination: {www}\n"
        "file_exists_behavior: OVERWRITE\nhooks:\n" + "".join(hooks)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("appspec.yml", appspec)
        archive.writestr("version.txt", f"{version}\n")
        for name, text in scripts.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


def _upload(cluster: Cluster, version: str) -> dict[str, Any]:
    key = f"{APP}/{version}.zip"
    cluster.s3.put_object(Bucket=BUCKET, Key=key, Body=_bundle(version, cluster.www))
    return {
        "revisionType": "S3",
        "s3Location": {"bucket": BUCKET, "key": key, "bundleType": "zip"},
    }


# -- helpers ---------------------------------------------------------------------------------------


def _events(proof: Path) -> list[str]:
    path = proof / "events"
    return path.read_text().splitlines() if path.exists() else []


def _instance_events(client: Any, deployment_id: str, instance: str) -> list[tuple[str, str]]:
    target = client.get_deployment_target(deploymentId=deployment_id, targetId=instance)
    events = target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
    return [(e["lifecycleEventName"], e["status"]) for e in events]


def _proof_env(name: str, directory: Path) -> dict[str, str]:
    proof = directory / "proof"
    proof.mkdir(parents=True, exist_ok=True)
    return {"PROOF_DIR": str(proof)}


@dataclass
class Cluster:
    server: RunningServer
    agents: list[RunningAgent]
    www: Path
    #: A client of the S3 store the bundles live in.
    s3: Any


def _bundle_store(server: RunningServer) -> Any:
    """The server's own S3-compatible bundle store; agents reach it at the control endpoint."""
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[Cluster]:
    """A server, an application and group, and three agents whose hosts carry the group's tag."""
    with _cluster(tmp_path, database_url, 3) as running:
        yield running


@contextmanager
def _cluster(
    tmp_path: Path, database_url: str, hosts: int, server_args: tuple[str, ...] = SERVER_ARGS
) -> Iterator[Cluster]:
    with ExitStack() as stack:
        server = stack.enter_context(
            running_server(tmp_path / "server", database_url=database_url, extra_args=server_args)
        )
        s3 = _bundle_store(server)
        agents = stack.enter_context(
            running_agents(
                server,
                tmp_path / "hosts",
                hosts,
                tags=TAGS,
                agent_env=_proof_env,
            )
        )
        client = server.client()
        client.create_application(applicationName=APP)
        client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            deploymentConfigName="CodeDeployDefault.OneAtATime",
            onPremisesInstanceTagFilters=[
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in TAGS.items()
            ],
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
        yield Cluster(server, agents, tmp_path / "www", s3)


def _deploy(client: Any, revision: dict[str, Any], **extra: Any) -> str:
    deployment_id: str = client.create_deployment(
        applicationName=APP,
        deploymentGroupName=GROUP,
        revision=revision,
        fileExistsBehavior="OVERWRITE",
        **extra,
    )["deploymentId"]
    return deployment_id


# -- scenarios -------------------------------------------------------------------------------------


def test_deploy_fail_roll_back_and_a_new_host_catches_up(cluster: Cluster, tmp_path: Path) -> None:
    server, agents, www = cluster.server, cluster.agents, cluster.www
    client = server.client()
    proofs = [agent.directory / "proof" for agent in agents]

    # v1 succeeds on every host; boto3's own waiter sees it through.
    v1 = _upload(cluster, "v1")
    d1 = _deploy(client, v1)
    client.get_waiter("deployment_successful").wait(
        deploymentId=d1, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    overview = deployment_info(client, d1)["deploymentOverview"]
    assert overview["Succeeded"] == 3 and overview["Failed"] == 0
    expected = [f"{e} v1" for e in HOOK_EVENTS if e != "ApplicationStop"]  # first deployment
    for agent, proof in zip(agents, proofs, strict=True):
        assert _events(proof) == expected, agent.output()
        assert (proof / "installed-version").read_text() == "v1\n"
        assert [s for _, s in _instance_events(client, d1, agent.name)] == ["Succeeded"] * 7
    assert (www / "version.txt").read_text() == "v1\n"

    # v2's ValidateService fails on host-2: the deployment fails and rolls back to v1.
    (proofs[1] / "fail-validate").touch()
    v2 = _upload(cluster, "v2")
    d2 = _deploy(client, v2)
    info = finished_deployment(client, d2)
    assert info["status"] == "Failed"
    overview = info["deploymentOverview"]
    # OneAtATime goes in name order: host-1 succeeded, host-2 failed, and since host-2 was not
    # the last instance the deployment failed at once, skipping host-3.
    assert (overview["Succeeded"], overview["Failed"], overview["Skipped"]) == (1, 1, 1)
    assert (overview["Pending"], overview["InProgress"]) == (0, 0)
    host2 = dict(_instance_events(client, d2, "host-2"))
    assert host2["ValidateService"] == "Failed"
    target = client.get_deployment_target(deploymentId=d2, targetId="host-2")
    failed_event = [
        e
        for e in target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
        if e["lifecycleEventName"] == "ValidateService"
    ][0]
    assert failed_event["diagnostics"]["errorCode"] == "ScriptFailed"
    assert "broken" in failed_event["diagnostics"]["logTail"]

    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    (proofs[1] / "fail-validate").unlink()
    rollback = finished_deployment(client, rollback_id)
    assert rollback["status"] == "Succeeded", rollback.get("errorInformation")
    assert rollback["deploymentOverview"]["Succeeded"] == 3
    assert rollback["deploymentOverview"]["Failed"] == 0
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == d2
    assert (www / "version.txt").read_text() == "v1\n"
    # host-2 ran v2 up to its failed ValidateService, then the rollback's v1 lifecycle.
    host2_events = _events(proofs[1])
    assert "ValidateService v2" in host2_events
    assert host2_events[-1] == "ValidateService v1"

    # A fourth host with the group's tag gets the last good revision by itself.
    config = register_instance(
        server,
        "host-4",
        tmp_path / "hosts" / "host-4",
        tags=TAGS,
    )
    proof4 = _proof_env("host-4", config.parent)["PROOF_DIR"]
    agent4 = start_agent(config, name="host-4", env={"PROOF_DIR": proof4})
    try:
        agent4.wait_polling()

        def automatic() -> str | None:
            ids = client.list_deployments(applicationName=APP, deploymentGroupName=GROUP)
            for deployment_id in ids["deployments"]:
                if deployment_info(client, deployment_id)["creator"] == "autoscaling":
                    return str(deployment_id)
            return None

        d4 = wait_for(automatic, 30, "an automatic deployment to host-4")
        info4 = finished_deployment(client, d4)
        assert info4["status"] == "Succeeded", info4.get("errorInformation")
        assert (Path(proof4) / "installed-version").read_text() == "v1\n"
        assert client.list_deployment_targets(deploymentId=d4)["targetIds"] == ["host-4"]
    finally:
        assert agent4.stop() == 0


def test_agent_killed_mid_hook_fails_its_instance_and_reports_code_7_after_restart(
    cluster: Cluster,
) -> None:
    server, agents = cluster.server, cluster.agents
    client = server.client()
    victim = agents[0]
    proof = victim.directory / "proof"
    (proof / "hang").touch()
    revision = _upload(cluster, "v1")
    deployment_id = _deploy(client, revision, autoRollbackConfiguration={"enabled": False})

    hang_pid = wait_for(
        lambda: (proof / "hang.pid").exists() and (proof / "hang.pid").read_text().strip(),
        60,
        "host-1's AfterInstall to start",
    )
    victim.kill()
    killed = time.monotonic()
    try:
        info = finished_deployment(client, deployment_id, timeout=60)
        failed_after = time.monotonic() - killed
    finally:
        os.kill(int(hang_pid), signal.SIGKILL)
    assert info["status"] == "Failed"
    # Within the dead-agent window plus a generous margin for a loaded machine; the event was
    # running (no start timeout) and the event timeout is an hour: only the dead-agent rule fits.
    assert failed_after < DEAD_AFTER + 20, failed_after
    target = client.get_deployment_target(deploymentId=deployment_id, targetId="host-1")
    events = {
        e["lifecycleEventName"]: e
        for e in target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
    }
    assert events["AfterInstall"]["status"] == "Failed"
    message = events["AfterInstall"]["diagnostics"]["message"]
    assert message.startswith("The OpenDeploy agent on host-1 has not polled for"), message
    assert "outcome of the lifecycle event is unknown" in message
    assert events["ApplicationStart"]["status"] == "Skipped"
    tracking = victim.root_dir / "ongoing-deployment"
    assert [p.name for p in tracking.iterdir()] == [deployment_id]

    # The restarted agent tells the server about the command the crash interrupted.
    (proof / "hang").unlink()
    restarted = start_agent(victim.config_path, name="host-1", env=_proof_env("", victim.directory))
    try:
        restarted.wait_for_output("reporting it failed (code 7)")
        restarted.wait_polling()
        assert list(tracking.iterdir()) == []
        assert "refused the report" not in restarted.output()
    finally:
        assert restarted.stop() == 0


def test_sigterm_lets_the_running_hook_finish_and_a_second_signal_exits_at_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    with _cluster(tmp_path, sqlite_url, 1) as cluster:
        client = cluster.server.client()
        agent = cluster.agents[0]
        proof = agent.directory / "proof"
        (proof / "hold").touch()
        deployment_id = _deploy(
            client, _upload(cluster, "v1"), autoRollbackConfiguration={"enabled": False}
        )
        wait_for(lambda: (proof / "hold.pid").exists(), 60, "AfterInstall to start")

        agent.process.send_signal(signal.SIGTERM)
        agent.wait_for_output("waiting for the running ones")
        assert agent.process.poll() is None  # still finishing AfterInstall
        (proof / "release").touch()
        assert agent.process.wait(30) == 0
        events = dict(_instance_events(client, deployment_id, "host-1"))
        assert events["AfterInstall"] == "Succeeded"
        assert "Agent stopped" in agent.output()

        # Restarted, the agent is stopped twice while a hook holds: it leaves at once.
        (proof / "release").unlink()
        (proof / "hold.pid").unlink()
        second = start_agent(agent.config_path, name="host-1", env=_proof_env("", agent.directory))
        try:
            # The deployment went on (or failed) meanwhile; deploy again to get a holding hook.
            finished_deployment(client, deployment_id)
            again = _deploy(
                client, _upload(cluster, "v2"), autoRollbackConfiguration={"enabled": False}
            )
            wait_for(lambda: (proof / "hold.pid").exists(), 60, "AfterInstall to start again")
            second.process.send_signal(signal.SIGTERM)
            second.wait_for_output("waiting for the running ones")
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(10) == 128 + signal.SIGTERM
            assert [p.name for p in (agent.root_dir / "ongoing-deployment").iterdir()] == [again]
        finally:
            (proof / "release").touch()  # lets the orphaned hook end
            second.stop()


def test_server_killed_mid_deployment_finishes_after_restart_on_the_same_port(
    tmp_path: Path, database_url: str
) -> None:
    # The agents back off up to 30 s while the server is down; a dead-agent window wider than
    # that keeps this about the restart, not about how fast they come back.
    args = ("--agent-dead-after", "60", "--poll-timeout", "2", "--event-start-timeout", "60")
    with _cluster(tmp_path, database_url, 2, server_args=args) as cluster:
        server, agents = cluster.server, cluster.agents
        held = agents[0].directory / "proof"
        (held / "hold").touch()
        deployment_id = _deploy(server.client(), _upload(cluster, "v1"))
        wait_for(lambda: (held / "hold.pid").exists(), 60, "host-1's AfterInstall to hold")

        server.process.kill()  # SIGKILL: no shutdown, leases and open commands left as they are
        server.process.wait()
        with running_server(
            server.data_dir, database_url=database_url, extra_args=args, port=server.port
        ) as again:
            (held / "release").touch()  # the hook ends; the agent reports to the new process
            client = again.client()
            info = finished_deployment(client, deployment_id, timeout=120)
            assert info["status"] == "Succeeded", info.get("errorInformation")
            overview = info["deploymentOverview"]
            assert overview == {
                "Pending": 0,
                "InProgress": 0,
                "Succeeded": 2,
                "Failed": 0,
                "Skipped": 0,
                "Ready": 0,
            }
            for agent in agents:
                events = _instance_events(client, deployment_id, agent.name)
                assert [s for _, s in events] == ["Succeeded"] * 7, (agent.name, events)
                # Every hook ran exactly once: the crash neither lost nor repeated a command.
                ran = [e for e in HOOK_EVENTS if e != "ApplicationStop"]
                assert _events(agent.directory / "proof") == [f"{e} v1" for e in ran]
            # The outbox's events reached the log (of either process: one file) at least once,
            # none lost to the SIGKILL: every recorded event, in order.
            recorded = _outbox_events(database_url, deployment_id)
            kinds = [t for _, t in recorded]
            assert kinds[0] == "DeploymentStart" and kinds[-1] == "DeploymentSuccess", kinds
            assert sorted(kinds[1:-1]) == ["InstanceStart"] * 2 + ["InstanceSuccess"] * 2
            want = {seq for seq, _ in recorded}
            logged = wait_for(
                lambda: want <= (got := _logged_seqs(again.log_text(), deployment_id)) and got,
                30,
                "every deployment event in the server log",
            )
            assert logged == want
            for agent in agents:  # while the server is up, so they stop at once
                assert agent.stop() == 0


def _outbox_events(database_url: str, deployment_id: str) -> list[tuple[int, str]]:
    """The outbox's ``(seq, event type)`` of one deployment, in order."""
    o = tables.deployment_events
    store = Store.open(database_url)
    try:
        with store.database.read() as conn:
            rows = conn.execute(
                select(o.c.seq, o.c.event_type)
                .where(o.c.deployment_id == deployment_id)
                .order_by(o.c.seq)
            ).all()
    finally:
        store.close()
    return [(int(r.seq), str(r.event_type)) for r in rows]


def _logged_seqs(log: str, deployment_id: str) -> set[int]:
    """The seqs of the deployment's events in a server log (repeats collapse)."""
    return {
        int(line.split(" seq=")[1].split(" ")[0])
        for line in log.splitlines()
        if "logger=opendeploy.events" in line and f"deployment_id={deployment_id}" in line
    }


def test_tls_server_restarted_mid_deployment_stops_at_once_and_the_deployment_succeeds(
    tmp_path: Path, sqlite_url: str
) -> None:
    # A dead-agent window far shorter than the old 30 s wait for the agent's idle keep-alive
    # TLS connection, during which the stopping server's engine judged its agents dead.
    args = ("--tls", "--agent-dead-after", "4", "--poll-timeout", "2")
    with _cluster(tmp_path, sqlite_url, 1, server_args=args) as cluster:
        server, (agent,) = cluster.server, cluster.agents
        held = agent.directory / "proof"
        (held / "hold").touch()
        deployment_id = _deploy(server.client(), _upload(cluster, "v1"))
        wait_for(lambda: (held / "hold.pid").exists(), 60, "host-1's AfterInstall to hold")

        began = time.monotonic()
        assert server.stop(timeout=60) == 0
        stopped_in = time.monotonic() - began
        with running_server(
            server.data_dir, database_url=sqlite_url, extra_args=args, port=server.port
        ) as again:
            (held / "release").touch()
            info = finished_deployment(again.client(), deployment_id, timeout=90)
            assert info["status"] == "Succeeded", info.get("errorInformation")
            ran = [e for e in HOOK_EVENTS if e != "ApplicationStop"]
            assert _events(held) == [f"{e} v1" for e in ran]
            assert agent.stop() == 0
    assert stopped_in < 5, f"the server took {stopped_in:.1f} s to stop"
