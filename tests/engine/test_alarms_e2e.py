"""Alarms and analysis gates through a real server, scripted agents and VictoriaMetrics.

One server (SQLite) and one VictoriaMetrics per module; each test has its own application,
instances (tagged with the test's name) and metric series. The server's ``--alarms`` file
declares every alarm and gate the tests use.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendeploy.api.alertmanager import ALERTMANAGER_PATH
from tests.engine._metrics import VictoriaMetrics, alertmanager, raise_alert, victoria_metrics
from tests.engine.agent_sim import (
    AGENT_EVENTS,
    ROLE,
    S3_V1,
    S3_V2,
    Cluster,
    ScriptedAgent,
    running_cluster,
    settings_for,
)
from tests.revisions.servers import free_port

TOKEN = "s3cret-token"


def _declarations(vm: str) -> str:
    down = f"http://127.0.0.1:{free_port()}"
    return f"""
webhook: {{token: {TOKEN}}}
alarms:
  shop-errors:
    prometheus: {{url: "{vm}", query: 'errors{{app="stop"}}', above: 5}}
  source-down:
    prometheus: {{url: "{down}", query: up, above: 0}}
  paged:
    alertmanager: {{alert: HighLatency, labels: {{service: paged}}}}
  relayed:
    alertmanager: {{alert: ErrorBurst}}
gates:
  - application: gated
    deployment_group: prod
    name: error-ratio
    prometheus: {{url: "{vm}", query: 'ratio{{app="gated"}}'}}
    max: 0.05
    hold_seconds: 0.3
    timeout_seconds: 60
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, VictoriaMetrics]]:
    tmp = tmp_path_factory.mktemp("alarms")
    with victoria_metrics(tmp) as vm:
        alarms = tmp / "alarms.yml"
        alarms.write_text(_declarations(vm.url))
        settings = settings_for(
            tmp,
            f"sqlite:///{tmp / 'opendeploy.db'}",
            alarms_file=alarms,
            alarm_poll_seconds=0.1,
            poll_timeout_seconds=1.0,
            agent_dead_after_seconds=120.0,
            event_start_timeout_seconds=120.0,
        )
        with running_cluster(settings) as cluster:
            yield cluster, vm


def _group(
    cluster: Cluster,
    app: str,
    alarms: list[str],
    *,
    ignore_poll_failure: bool = False,
    rollback: bool = False,
    config: str = "CodeDeployDefault.OneAtATime",
) -> None:
    cd = cluster.cd
    cd.create_application(applicationName=app)
    extra: dict[str, Any] = {}
    if alarms:
        extra["alarmConfiguration"] = {
            "enabled": True,
            "ignorePollAlarmFailure": ignore_poll_failure,
            "alarms": [{"name": n} for n in alarms],
        }
    if rollback:
        extra["autoRollbackConfiguration"] = {
            "enabled": True,
            "events": ["DEPLOYMENT_STOP_ON_ALARM"],
        }
    cd.create_deployment_group(
        applicationName=app,
        deploymentGroupName="prod",
        serviceRoleArn=ROLE,
        deploymentConfigName=config,
        onPremisesInstanceTagFilters=[{"Key": "app", "Value": app, "Type": "KEY_AND_VALUE"}],
        **extra,
    )


def _agents(cluster: Cluster, app: str, n: int) -> list[ScriptedAgent]:
    return [cluster.add_instance(f"{app}-{i}", {"app": app}) for i in range(1, n + 1)]


def test_an_alarm_mid_deployment_stops_it_and_rolls_back(
    env: tuple[Cluster, VictoriaMetrics],
) -> None:
    cluster, vm = env
    vm.push('errors{app="stop"}', 0)
    _group(cluster, "stop", ["shop-errors"], rollback=True)
    (agent,) = _agents(cluster, "stop", 1)
    good = cluster.deploy("stop", S3_V1)
    agent.run(len(AGENT_EVENTS))
    cluster.wait_status(good, "Succeeded")

    bad = cluster.deploy("stop", S3_V2)
    agent.run(3)  # ApplicationStop, DownloadBundle, BeforeInstall
    fired = time.monotonic()
    vm.push('errors{app="stop"}', 9)
    info = cluster.wait_status(bad, "Stopped", "Failed", "Succeeded", timeout=30)
    reaction = time.monotonic() - fired
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert info["errorInformation"]["message"].startswith(
        "One or more alarms have been activated according to the Amazon CloudWatch metrics"
    )
    assert info["errorInformation"]["message"].endswith("Activated alarms: <shop-errors>")
    assert reaction < 10, reaction
    target = cluster.targets(bad)[agent.name]
    statuses = {e["lifecycleEventName"]: e["status"] for e in target["lifecycleEvents"]}
    assert statuses["BeforeInstall"] == "Succeeded"
    assert statuses["Install"] in ("Skipped", "Failed")
    assert statuses["ValidateService"] == "Skipped"

    # DEPLOYMENT_STOP_ON_ALARM: a rollback to v1, which the still-firing alarm does not stop.
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    rollback = cluster.info(rollback_id)
    assert rollback["creator"] == "codeDeployRollback"
    assert rollback["revision"]["s3Location"]["key"] == "app-v1.zip"
    agent.run(len(AGENT_EVENTS))
    assert cluster.wait_status(rollback_id, "Succeeded", "Stopped", "Failed")["status"] == (
        "Succeeded"
    )


def test_ignore_poll_alarm_failure_both_ways(env: tuple[Cluster, VictoriaMetrics]) -> None:
    """An alarm whose source is down stops the deployment unless ignorePollAlarmFailure."""
    cluster, _ = env
    _group(cluster, "strict", ["source-down"], ignore_poll_failure=False)
    _group(cluster, "lenient", ["source-down"], ignore_poll_failure=True)
    (strict,) = _agents(cluster, "strict", 1)
    (lenient,) = _agents(cluster, "lenient", 1)
    stopped = cluster.deploy("strict", S3_V1)
    info = cluster.wait_status(stopped, "Stopped", "Failed", "Succeeded", timeout=30)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "could not be read" in info["errorInformation"]["message"]
    assert "<source-down>" in info["errorInformation"]["message"]
    assert cluster.targets(stopped)[strict.name]["status"] in ("Skipped", "Failed")

    went_on = cluster.deploy("lenient", S3_V1)
    lenient.run(len(AGENT_EVENTS))
    assert cluster.wait_status(went_on, "Succeeded", "Stopped", "Failed")["status"] == "Succeeded"


def test_a_gate_holds_the_next_batch_until_the_metric_recovers(
    env: tuple[Cluster, VictoriaMetrics],
) -> None:
    cluster, vm = env
    vm.push('ratio{app="gated"}', 0.01)
    _group(cluster, "gated", [])
    first, second = _agents(cluster, "gated", 2)
    dep = cluster.deploy("gated", S3_V1)
    first.run(3)
    vm.push('ratio{app="gated"}', 0.5)  # the first batch makes it worse
    first.run(len(AGENT_EVENTS) - 3)

    def gate_line() -> str:
        return " ".join(cluster.info(dep)["deploymentStatusMessages"])

    deadline = time.monotonic() + 20
    while "outside" not in gate_line():
        assert time.monotonic() < deadline, gate_line()
        time.sleep(0.1)  # the watcher's reading shows in GetDeployment; no event to wait on
    assert "Analysis gate error-ratio" in gate_line()
    # The second instance gets nothing while the gate holds (a poll is held 1 s).
    assert second.poll() is None
    assert cluster.info(dep)["status"] == "InProgress"

    vm.push('ratio{app="gated"}', 0.0)
    second.run(len(AGENT_EVENTS), timeout=30)
    assert cluster.wait_status(dep, "Succeeded", "Failed", "Stopped")["status"] == "Succeeded"


def _post_alerts(
    cluster: Cluster, alerts: list[dict[str, Any]], token: str | None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()
    request = urllib.request.Request(
        cluster.endpoint + ALERTMANAGER_PATH, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_the_alertmanager_receiver_stops_matching_deployments_at_once(
    env: tuple[Cluster, VictoriaMetrics],
) -> None:
    cluster, _ = env
    _group(cluster, "paged", ["paged"])
    (agent,) = _agents(cluster, "paged", 1)
    dep = cluster.deploy("paged", S3_V1)
    agent.run(2)
    alert = {"status": "firing", "labels": {"alertname": "HighLatency", "service": "paged"}}
    assert _post_alerts(cluster, [alert], None)[0] == 401
    assert _post_alerts(cluster, [alert], "wrong")[0] == 401
    assert cluster.info(dep)["status"] == "InProgress"
    other = {"status": "firing", "labels": {"alertname": "HighLatency", "service": "other"}}
    assert _post_alerts(cluster, [other], TOKEN) == (200, {"received": 1})
    sent = time.monotonic()
    assert _post_alerts(cluster, [alert], TOKEN) == (200, {"received": 1})
    info = cluster.wait_status(dep, "Stopped", "Failed", "Succeeded", timeout=10)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["message"].endswith("Activated alarms: <paged>")
    assert time.monotonic() - sent < 5
    resolved = {**alert, "status": "resolved"}
    assert _post_alerts(cluster, [resolved], TOKEN)[0] == 200


def test_a_real_alertmanager_delivers_to_the_receiver(
    env: tuple[Cluster, VictoriaMetrics], tmp_path: Path
) -> None:
    cluster, _ = env
    _group(cluster, "relayed", ["relayed"])
    (agent,) = _agents(cluster, "relayed", 1)
    receiver = cluster.endpoint + ALERTMANAGER_PATH
    with alertmanager(tmp_path, receiver, TOKEN) as am:
        dep = cluster.deploy("relayed", S3_V1)
        agent.run(2)
        raised = time.monotonic()
        raise_alert(am, {"alertname": "ErrorBurst", "severity": "page"})
        info = cluster.wait_status(dep, "Stopped", "Failed", "Succeeded", timeout=20)
    assert info["status"] == "Stopped"
    assert info["errorInformation"]["message"].endswith("Activated alarms: <relayed>")
    assert time.monotonic() - raised < 10


def test_alarm_configurations_are_checked_when_saved(
    env: tuple[Cluster, VictoriaMetrics], tmp_path: Path
) -> None:
    cluster, _ = env
    cd = cluster.cd
    cd.create_application(applicationName="checked")

    def create(config: dict[str, Any]) -> str:
        try:
            cd.create_deployment_group(
                applicationName="checked",
                deploymentGroupName=f"g{time.monotonic_ns()}",
                serviceRoleArn=ROLE,
                alarmConfiguration=config,
            )
        except ClientError as e:
            return f"{e.response['Error']['Code']}: {e.response['Error']['Message']}"
        return "created"

    assert create({"enabled": True, "alarms": []}).startswith("InvalidAlarmConfigException")
    dup = {"enabled": True, "alarms": [{"name": "a"}, {"name": "a"}]}
    assert create(dup).startswith("InvalidAlarmConfigException")
    many = {"enabled": True, "alarms": [{"name": f"a{i}"} for i in range(11)]}
    assert create(many).startswith("AlarmsLimitExceededException")
    # Undeclared names are CloudWatch alarms, as with AWS ...
    assert create({"enabled": True, "alarms": [{"name": "cw-alarm"}]}) == "created"
    # ... until the declarations say names must be declared.
    path = cluster.settings.alarms_file
    assert path is not None
    original = path.read_text()
    try:
        path.write_text("require_declared: true\n" + original)
        refused = create({"enabled": True, "alarms": [{"name": "cw-alarm"}]})
        assert refused.startswith("InvalidAlarmConfigException: Alarm cw-alarm is not declared")
        assert "declared alarms: paged, relayed, shop-errors, source-down" in refused
        assert create({"enabled": True, "alarms": [{"name": "paged"}]}) == "created"
        path.write_text("alarms: [oops]\n")
        assert "cannot be used" in create({"enabled": True, "alarms": [{"name": "paged"}]})
    finally:
        path.write_text(original)
