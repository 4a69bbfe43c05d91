"""The engine worker end to end: real server (in process, real sockets), real Command API client.

Scripted agents (``agent_sim``) play the hosts; every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from sqlalchemy import update

from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.worker import EngineWorker
from opendeploy.store import tables
from opendeploy.store.engine_store import load
from opendeploy.testing.server import running_server
from tests.engine.agent_sim import (
    AGENT_EVENTS,
    S3_V1,
    S3_V2,
    Cluster,
    ScriptedAgent,
    command_client,
    running_cluster,
    settings_for,
)


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Any:
    with running_cluster(settings_for(tmp_path, database_url)) as c:
        yield c


def _events(target: dict[str, Any]) -> list[dict[str, Any]]:
    return list(target["lifecycleEvents"])


def _run_all(agents: list[ScriptedAgent], fail: str | None = None) -> None:
    """Each agent in its own thread runs the seven events (polls block while others run)."""
    with ThreadPoolExecutor(len(agents)) as pool:
        for f in [pool.submit(a.run, len(AGENT_EVENTS), fail) for a in agents]:
            f.result()  # each agent gives up after run()'s timeout


def test_one_instance_runs_every_event_in_order(tmp_path: Path, database_url: str) -> None:
    # Polls are held 20 s: had any of the seven commands waited for a poll to time out instead
    # of waking it, the run would take over 20 s; the 10 s bound leaves a loaded machine room.
    settings = settings_for(tmp_path, database_url, poll_timeout_seconds=20.0)
    with running_cluster(settings) as cluster:
        _one_instance_runs_every_event_in_order(cluster)


def _one_instance_runs_every_event_in_order(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    started = time.monotonic()
    assert agent.run(len(AGENT_EVENTS)) == AGENT_EVENTS
    info = cluster.wait_status(dep, "Succeeded")
    assert time.monotonic() - started < 10
    assert info["deploymentOverview"]["Succeeded"] == 1
    assert info["startTime"] <= info["completeTime"]
    target = cluster.targets(dep)["web-1"]
    assert target["status"] == "Succeeded"
    events = _events(target)
    assert [e["lifecycleEventName"] for e in events] == AGENT_EVENTS
    assert all(e["status"] == "Succeeded" for e in events)
    assert all(e["diagnostics"]["errorCode"] == "Success" for e in events)
    times = [t for e in events for t in (e["startTime"], e["endTime"])]
    assert times == sorted(times)
    # The deprecated per-instance API shows the same events.
    inst = cluster.cd.get_deployment_instance(deploymentId=dep, instanceId="web-1")
    inst = inst["instanceSummary"]
    assert [e["status"] for e in inst["lifecycleEvents"]] == ["Succeeded"] * 7
    # The instance ARN (``…:instance/<name>_<suffix>``) names the same instance.
    arn = cluster.cd.get_on_premises_instance(instanceName="web-1")["instanceInfo"]["instanceArn"]
    by_arn = cluster.cd.get_deployment_instance(deploymentId=dep, instanceId=arn)
    assert by_arn["instanceSummary"]["lifecycleEvents"] == inst["lifecycleEvents"]
    # The group remembers its last successful deployment.
    group = cluster.cd.get_deployment_group(applicationName="shop", deploymentGroupName="prod")
    assert group["deploymentGroupInfo"]["lastSuccessfulDeployment"]["deploymentId"] == dep


def test_three_instances_one_at_a_time(cluster: Cluster) -> None:
    agents = [cluster.add_instance(f"web-{i}", {"app": "web"}) for i in range(3)]
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    _run_all(agents)
    info = cluster.wait_status(dep, "Succeeded")
    assert info["deploymentOverview"]["Succeeded"] == 3
    spans = sorted(
        (_events(t)[0]["startTime"], _events(t)[-1]["endTime"])
        for t in cluster.targets(dep).values()
    )
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start  # strictly one instance after the other


def _max_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best


def test_half_at_a_time_paces_two_of_four(cluster: Cluster) -> None:
    agents = [cluster.add_instance(f"web-{i}", {"app": "web"}) for i in range(4)]
    cluster.group("shop", config="CodeDeployDefault.HalfAtATime")
    dep = cluster.deploy("shop", S3_V1)
    _run_all(agents)
    cluster.wait_status(dep, "Succeeded")
    spans = [
        (_events(t)[0]["startTime"], _events(t)[-1]["endTime"])
        for t in cluster.targets(dep).values()
    ]
    assert _max_overlap(spans) == 2


def test_failure_rolls_back_to_last_successful_revision(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop", rollback=True)
    good = cluster.deploy("shop", S3_V1)
    agent.run(7)
    cluster.wait_status(good, "Succeeded")

    bad = cluster.deploy("shop", S3_V2)
    assert agent.run(5, fail="AfterInstall")[-1] == "AfterInstall"
    failed = cluster.wait_status(bad, "Failed")
    assert failed["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"
    events = {e["lifecycleEventName"]: e for e in _events(cluster.targets(bad)["web-1"])}
    diag = events["AfterInstall"]["diagnostics"]
    assert events["AfterInstall"]["status"] == "Failed"
    assert diag["errorCode"] == "ScriptFailed" and diag["logTail"] == "[stderr]boom\n"
    assert diag["scriptName"] == "scripts/AfterInstall.sh"
    assert events["ApplicationStart"]["status"] == "Skipped"

    rollback_id = failed["rollbackInfo"]["rollbackDeploymentId"]
    rollback = cluster.info(rollback_id)
    assert rollback["creator"] == "codeDeployRollback"
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == bad
    assert rollback["revision"]["s3Location"]["key"] == "app-v1.zip"
    assert agent.run(7) == AGENT_EVENTS
    cluster.wait_status(rollback_id, "Succeeded")


def _hold_one_command(agent: ScriptedAgent) -> dict[str, Any]:
    command = agent.poll()
    while command is None:
        command = agent.poll()
    assert agent.ack(command) == "InProgress"
    return command


def test_stop_without_rollback(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop", rollback=True)
    dep = cluster.deploy("shop", S3_V1)
    command = _hold_one_command(agent)
    answer = cluster.cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=False)
    assert answer["status"] == "Succeeded"
    info = cluster.info(dep)
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    assert not (info.get("rollbackInfo") or {}).get("rollbackDeploymentId")
    event = _events(cluster.targets(dep)["web-1"])[0]
    assert event["status"] == "Failed"  # it was running; its outcome no longer counts
    agent.complete(command)  # late: accepted and ignored
    assert cluster.targets(dep)["web-1"]["status"] == "Failed"
    cd = cluster.cd
    with pytest.raises(cd.exceptions.DeploymentAlreadyCompletedException):
        cd.stop_deployment(deploymentId=dep)


def test_stop_with_rollback(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    good = cluster.deploy("shop", S3_V1)
    agent.run(7)
    cluster.wait_status(good, "Succeeded")
    dep = cluster.deploy("shop", S3_V2)
    _hold_one_command(agent)
    assert cluster.cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=True)["status"] == (
        "Succeeded"
    )
    info = cluster.info(dep)
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    assert cluster.info(rollback_id)["rollbackInfo"]["rollbackTriggeringDeploymentId"] == dep
    assert agent.run(7) == AGENT_EVENTS
    cluster.wait_status(rollback_id, "Succeeded")


def test_agent_that_stops_polling_fails_within_dead_after(
    tmp_path: Path, database_url: str
) -> None:
    # The bound is far below the event start timeout (30 s), so the failure can only come from
    # the dead-agent rule, with room for a loaded machine.
    settings = settings_for(tmp_path, database_url, agent_dead_after_seconds=2.0)
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop")
        dep = cluster.deploy("shop", S3_V1)
        agent.run(1)  # ApplicationStop; then the agent goes quiet
        quiet = time.monotonic()
        info = cluster.wait_status(dep, "Failed", timeout=20)
        # Not before the window (less the touch throttle), and well inside the margin after.
        assert 1.0 <= time.monotonic() - quiet < 2.0 + 8.0
        assert info["errorInformation"]["code"] == "AGENT_ISSUE"
        events = _events(cluster.targets(dep)["web-1"])
        assert events[1]["status"] == "Failed"
        assert events[1]["diagnostics"]["message"].startswith("The OpenDeploy agent on web-1")
        assert "has not polled" in events[1]["diagnostics"]["message"]
        # The verdict is recorded on the instance (the dashboard's instance data shows it)...
        store = cluster.server.store
        assert store.instances.get_many(["web-1"])[0]["unreachable_since"] is not None
        # ...and the agent's next call clears it.
        assert agent.poll() is None
        assert store.instances.get_many(["web-1"])[0]["unreachable_since"] is None


def test_an_agent_whose_held_poll_connection_drops_is_judged_from_that_moment(
    tmp_path: Path, database_url: str
) -> None:
    # A SIGKILLed agent leaves its long poll behind. Polls are held 30 s here: had the server
    # gone on counting the orphaned poll as a live agent, the failure would come after it timed
    # out (30 s + dead_after); it must come about dead_after (2 s) after the connection closed.
    settings = settings_for(
        tmp_path, database_url, agent_dead_after_seconds=2.0, poll_timeout_seconds=30.0
    )
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"}, read_timeout=1)
        cluster.group("shop")
        dep = cluster.deploy("shop", S3_V1)
        command = None
        while command is None:
            with contextlib.suppress(ReadTimeoutError):
                command = agent.poll()
        assert agent.ack(command) == "InProgress"
        # ApplicationStop "runs"; the agent's next poll is held (nothing more for it) until
        # its client gives up after 1 s and closes the connection, as a killed process would.
        with pytest.raises(ReadTimeoutError):
            agent.poll()
        cut = time.monotonic()
        info = cluster.wait_status(dep, "Failed", timeout=40)
        assert time.monotonic() - cut < 2.0 + 10.0
        assert info["errorInformation"]["code"] == "AGENT_ISSUE"
        message = _events(cluster.targets(dep)["web-1"])[0]["diagnostics"]["message"]
        assert "has not polled" in message


def test_held_poll_keeps_a_busy_agent_alive(tmp_path: Path, database_url: str) -> None:
    # The held poll (5 s) lasts well over dead_after (2 s); both are wide enough that a loaded
    # machine's slow heartbeat writes cannot make a live agent look dead.
    settings = settings_for(
        tmp_path, database_url, agent_dead_after_seconds=2.0, poll_timeout_seconds=5.0
    )
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop")
        dep = cluster.deploy("shop", S3_V1)
        command = _hold_one_command(agent)
        # While its script runs the agent holds a poll (nothing more for it) longer than
        # agent_dead_after: the held poll must keep counting as "seen".
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(agent.poll).result(timeout=30) is None
        assert cluster.info(dep)["status"] == "InProgress"
        agent.complete(command)
        assert agent.run(6) == AGENT_EVENTS[1:]
        cluster.wait_status(dep, "Succeeded")


def test_server_killed_mid_deployment_finishes_after_restart(
    tmp_path: Path, sqlite_url: str
) -> None:
    # On SQLite only: tests/e2e/test_deployments.py kills a server mid-deployment on both
    # databases (with real agents, a hook in flight), so a second run here proves nothing more.
    database_url = sqlite_url
    data = tmp_path / "data"
    args = ("--poll-timeout", "1", "--agent-dead-after", "30")
    first = running_server(data, database_url=database_url, extra_args=args)
    with first as srv:
        cluster = Cluster(
            srv.endpoint,
            settings_for(tmp_path, database_url),
            srv.access_key_id,
            srv.secret_access_key,
            None,
        )
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop")
        dep = cluster.deploy("shop", S3_V1)
        assert agent.run(3) == AGENT_EVENTS[:3]
        srv.process.kill()
        srv.process.wait()
    creds = agent.client._request_signer._credentials
    with running_server(data, database_url=database_url, extra_args=args) as srv:
        agent.client = command_client(
            srv.endpoint, creds.access_key, creds.secret_key, "OPENDEPLOY-t"
        )
        assert agent.run(4) == AGENT_EVENTS[3:]
        cd = srv.client("codedeploy")
        deadline = time.monotonic() + 30
        while cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"] != "Succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.05)  # another process: nothing to wait on but the API


def test_new_instance_gets_the_last_successful_revision_on_first_poll(cluster: Cluster) -> None:
    first = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    first.run(7)
    cluster.wait_status(dep, "Succeeded")
    newcomer = cluster.add_instance("web-2", {"app": "web"})
    other = cluster.add_instance("db-1", {"app": "db"})
    command = newcomer.poll()
    assert command is not None and command["CommandName"] == "ApplicationStop"
    auto = command["DeploymentExecutionId"].rsplit("/", 1)[-1]
    assert auto != dep
    assert other.poll() is None  # its tags match no group
    info = cluster.info(auto)
    assert info["creator"] == "autoscaling"
    assert info["revision"]["s3Location"]["key"] == "app-v1.zip"
    assert list(cluster.targets(auto)) == ["web-2"]
    newcomer.complete(command)
    assert newcomer.run(6) == AGENT_EVENTS[1:]
    cluster.wait_status(auto, "Succeeded")
    # Later polls of a known instance do not deploy again.
    assert newcomer.poll() is None


#: An AppSpec naming no function: the deployment fails (INVALID_LAMBDA_CONFIGURATION).
NO_FUNCTION = "version: 0.0\nResources: []\n"
#: A valid AppSpec (the function does not exist anywhere: nothing in these tests reaches it).
ONE_FUNCTION = (
    "version: 0.0\nResources:\n  - fn:\n      Type: AWS::Lambda::Function\n"
    "      Properties: {Name: fn, Alias: live, CurrentVersion: '1', TargetVersion: '2'}\n"
)


def _lambda_group(cluster: Cluster, content: str = NO_FUNCTION) -> Any:
    cd = cluster.cd
    cd.create_application(applicationName="fn", computePlatform="Lambda")
    cd.create_deployment_group(
        applicationName="fn",
        deploymentGroupName="live",
        serviceRoleArn="arn:aws:iam::123456789012:role/CodeDeploy",
        deploymentConfigName="CodeDeployDefault.LambdaAllAtOnce",
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
    )
    revision = {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"content": content},
    }
    return lambda: cd.create_deployment(
        applicationName="fn", deploymentGroupName="live", revision=revision
    )["deploymentId"]


def test_a_lambda_appspec_naming_no_function_fails_at_once_and_frees_its_group(
    cluster: Cluster,
) -> None:
    create = _lambda_group(cluster)
    first = create()
    info = cluster.wait_status(first, "Failed", "Stopped", "Succeeded")
    assert info["status"] == "Failed"
    assert info["errorInformation"]["code"] == "INVALID_LAMBDA_CONFIGURATION"
    assert "The AppSpec names no resource" in info["errorInformation"]["message"]
    assert "completeTime" in info
    # The group is free again: the next deployment is accepted (no DeploymentLimitExceeded).
    second = create()
    assert cluster.wait_status(second, "Failed", "Stopped", "Succeeded")["status"] == "Failed"
    cd = cluster.cd  # one client: each has its own exception classes
    with pytest.raises(cd.exceptions.DeploymentAlreadyCompletedException):
        cd.stop_deployment(deploymentId=second)


def test_stop_finishes_a_lambda_deployment_the_engine_has_not_seen(cluster: Cluster) -> None:
    create = _lambda_group(cluster, ONE_FUNCTION)
    # With the engine thread stopped, a deployment stays Created and the stop stays pending...
    cluster.server.engine.stop()
    dep = create()
    cd = cluster.cd  # one client: each has its own exception classes
    assert cd.stop_deployment(deploymentId=dep)["status"] == "Pending"
    with pytest.raises(cd.exceptions.ClientError) as refused:
        create()
    assert refused.value.response["Error"]["Code"] == "DeploymentLimitExceededException"
    # ...until an engine (here a second worker on the same store) looks: then it is Stopped.
    worker = EngineWorker(cluster.server.store, cluster.settings, notifier=HostNotifier())
    assert worker.run_once() == 1
    info = cluster.info(dep)
    assert info["status"] == "Stopped" and info["errorInformation"]["code"] == "MANUAL_STOP"
    later = create()
    assert worker.run_once() == 1
    assert cluster.info(later)["status"] == "InProgress"  # its first server step dispatched


def test_a_host_holding_a_poll_here_is_alive_whatever_the_store_says(cluster: Cluster) -> None:
    """A server far behind with its batched seen-writes must not take its lag for dead agents."""
    cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    store = cluster.server.store
    instances = tables.on_premises_instances
    with store.database.write() as conn:
        conn.execute(
            update(instances)
            .where(instances.c.name == "web-1")
            .values(last_seen_at=datetime.now(UTC) - timedelta(hours=1))
        )
    now = datetime.now(UTC)
    with store.database.read() as conn:
        quiet = load(conn, dep, now)
        holding = load(conn, dep, now, holding=frozenset({"web-1"}))
    assert quiet is not None and holding is not None
    assert quiet.snapshot.targets[0].last_seen_at != now
    assert holding.snapshot.targets[0].last_seen_at == now
