"""Triggers' notifications end to end: a real server (in process) delivers every
trigger event kind to an SNS topic of a ``moto_server`` process (which POSTs it to an HTTP
subscription on loopback) and to a declared webhook; failed webhooks are retried and logged;
``/metrics`` is scraped by a real Prometheus. One server (SQLite) for the module."""

from __future__ import annotations

import hmac
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from opendeploy.cli.notifications import fetch_deliveries, render_line
from opendeploy.engine.events import DeploymentEvent, TriggerEvent
from opendeploy.engine.notifications.senders import SNS_KEY_ATTRIBUTE, signature
from opendeploy.store import engine_store
from opendeploy.store.notifications import NotificationLog
from tests.engine.agent_sim import AGENT_EVENTS, S3_V1, Cluster, running_cluster, settings_for
from tests.engine.receiver import Received, Receiver, running_receiver
from tests.revisions.servers import free_port, moto_server, wait_for_port

ACCOUNT = "000000000000"
SECRET = "s3cret-for-tests"


def _arn(name: str) -> str:
    return f"arn:aws:sns:us-east-1:{ACCOUNT}:{name}"


ALL_KINDS = [str(k) for k in TriggerEvent]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Prometheus scraping the targets written to its file_sd file (its first scrape comes
    about 6 s after start, so it starts with the module and scrapes by the last test)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (scripts/install)")
    root = tmp_path_factory.mktemp("prometheus")
    targets = root / "targets.json"
    targets.write_text("[]")
    (root / "prometheus.yml").write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {
                        "job_name": "opendeploy",
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", targets
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


@pytest.fixture(scope="module")
def sns(receiver: Receiver) -> Iterator[dict[str, str]]:
    """moto's SNS with a topic whose HTTP subscription is the receiver's ``/sns``; the server's
    boto3 finds it through the standard ``AWS_ENDPOINT_URL_SNS``."""
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ENDPOINT_URL_SNS": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }.items():
            mp.setenv(name, value)
        client = boto3.client("sns", region_name="us-east-1", endpoint_url=endpoint)
        topic = client.create_topic(Name="deploys")["TopicArn"]
        client.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{receiver.url}/sns")
        # moto leaves message attributes out of HTTP notifications; its SQS copy keeps them.
        sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
        queue = sqs.create_queue(QueueName="deploys")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        client.subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"]
        )
        yield {"endpoint": endpoint, "topic": topic, "queue": queue}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    receiver: Receiver,
    sns: dict[str, str],
    prometheus: tuple[str, Path],
) -> Iterator[Cluster]:
    """One in-process server on SQLite (the delivery log's PostgreSQL paths are
    tests/store/test_notifications.py's)."""
    tmp = tmp_path_factory.mktemp("notify")
    declaration = tmp / "notifications.yml"
    declaration.write_text(
        json.dumps(
            {
                "webhooks": [
                    {"topic": _arn("hook-main"), "url": f"{receiver.url}/hook", "secret": SECRET},
                    {
                        "topic": _arn("hook-flaky"),
                        "url": f"{receiver.url}/flaky",
                        "secret": SECRET,
                        "timeout_seconds": 0.3,
                    },
                    {"topic": _arn("hook-down"), "url": f"{receiver.url}/down", "secret": SECRET},
                ]
            }
        )
    )
    settings = settings_for(
        tmp,
        f"sqlite:///{tmp / 'opendeploy.db'}",
        account_id=ACCOUNT,
        notifications_file=declaration,
        notification_first_retry_seconds=0.05,
        notification_max_attempts=4,
    )
    with running_cluster(settings) as c:
        prometheus[1].write_text(json.dumps([{"targets": [c.endpoint.removeprefix("http://")]}]))
        yield c


def _triggers(*pairs: tuple[str, str, list[str]]) -> list[dict[str, Any]]:
    return [{"triggerName": n, "triggerTargetArn": a, "triggerEvents": e} for n, a, e in pairs]


def _seed(cluster: Cluster, events: list[DeploymentEvent]) -> None:
    """Put events in the outbox as the engine's commit does (kinds a simple deployment lacks)."""
    with cluster.server.store.database.write() as conn:
        engine_store.record_events(conn, events)
    cluster.server.outbox.wake()


def _of(requests: list[Received], path: str, deployment_id: str) -> list[Received]:
    return [
        r
        for r in requests
        if r.path == path and deployment_id in json.loads(r.json()["Message"])["deploymentId"]
    ]


def test_every_trigger_event_reaches_sns_and_the_webhook(
    cluster: Cluster, receiver: Receiver, sns: dict[str, str]
) -> None:
    tag = ("app", "every")
    agent = cluster.add_instance(f"every-{tag[1]}", dict([tag]))
    cluster.group("every", tag=tag)
    cluster.cd.update_deployment_group(
        applicationName="every",
        currentDeploymentGroupName="prod",
        triggerConfigurations=_triggers(
            ("to-sns", sns["topic"], ALL_KINDS), ("to-hook", _arn("hook-main"), ALL_KINDS)
        ),
    )
    dep = cluster.deploy("every", S3_V1)
    agent.run(len(AGENT_EVENTS))
    cluster.wait_status(dep, "Succeeded")
    now = datetime.now(UTC)
    name = agent.name
    _seed(
        cluster,
        [
            DeploymentEvent(dep, TriggerEvent.INSTANCE_READY, "Ready", now, name),
            DeploymentEvent(dep, TriggerEvent.DEPLOYMENT_READY, "Ready", now),
            DeploymentEvent(dep, TriggerEvent.INSTANCE_FAILURE, "Failed", now, name),
            DeploymentEvent(
                dep,
                TriggerEvent.DEPLOYMENT_FAILURE,
                "Failed",
                now,
                detail={"errorInformation": {"code": "HEALTH_CONSTRAINTS", "message": "too few"}},
            ),
            DeploymentEvent(
                dep,
                TriggerEvent.DEPLOYMENT_ROLLBACK,
                "Failed",
                now,
                detail={"rollbackMessage": "Deployment d-R is triggered to roll back"},
            ),
            DeploymentEvent(dep, TriggerEvent.DEPLOYMENT_STOP, "Stopped", now),
        ],
    )

    def kinds(path: str, requests: list[Received]) -> Counter[str]:
        return Counter(
            r.json()["EventType"] if path == "/hook" else _sns_kind(r)
            for r in _of(requests, path, dep)
        )

    got = receiver.wait_for(
        lambda rs: (
            set(kinds("/hook", rs)) == set(ALL_KINDS)
            and set(kinds("/sns", [r for r in rs if r.json().get("Type") == "Notification"]))
            == set(ALL_KINDS)
        )
    )
    hooks = _of(got, "/hook", dep)
    # Nothing failed: each (event, trigger) once, told apart by its idempotency key.
    keys = Counter(r.headers["X-OpenDeploy-Idempotency-Key"] for r in hooks)
    assert set(keys.values()) == {1}
    for r in hooks:
        assert hmac.compare_digest(
            r.headers["X-OpenDeploy-Signature"], signature(SECRET.encode(), r.body)
        )
        assert r.json()["MessageId"] == r.headers["X-OpenDeploy-Idempotency-Key"]
    by_kind = {r.json()["EventType"]: r.json() for r in hooks}
    success = by_kind["DeploymentSuccess"]
    assert success["Subject"] == f"SUCCEEDED: AWS CodeDeploy {dep} in us-east-1 to every"
    message = json.loads(success["Message"])
    assert message["eventTriggerName"] == "to-hook"
    assert message["status"] == "SUCCEEDED"
    assert message["accountId"] == ACCOUNT
    assert message["deploymentGroupName"] == "prod"
    assert json.loads(message["deploymentOverview"]) == {
        "Succeeded": 1,
        "Failed": 0,
        "Skipped": 0,
        "InProgress": 0,
        "Pending": 0,
    }
    assert message["completeTime"].endswith(f"UTC {now.year}")
    failure = json.loads(by_kind["DeploymentFailure"]["Message"])
    assert json.loads(failure["errorInformation"]) == {
        "ErrorCode": "HEALTH_CONSTRAINTS",
        "ErrorMessage": "too few",
    }
    instance = json.loads(by_kind["InstanceSuccess"]["Message"])
    assert instance["instanceId"].startswith("arn:aws:codedeploy:us-east-1:")
    assert instance["instanceId"].split("/")[1].startswith(f"{agent.name}_")
    assert instance["instanceStatus"] == "Succeeded"
    lifecycle = json.loads(instance["lifecycleEvents"])
    assert [e["LifecycleEvent"] for e in lifecycle][:2] == ["ApplicationStop", "DownloadBundle"]
    assert {e["LifecycleEventStatus"] for e in lifecycle} == {"Succeeded"}
    # SNS got the same message (its own trigger name), with the key as a message attribute.
    sns_success = next(
        r.json() for r in _of(got, "/sns", dep) if _sns_kind(r) == "DeploymentSuccess"
    )
    assert sns_success["Subject"] == success["Subject"]
    assert json.loads(sns_success["Message"]) == {**message, "eventTriggerName": "to-sns"}
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=sns["endpoint"])
    copies: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=sns["queue"], MaxNumberOfMessages=10).get(
        "Messages"
    ):
        for m in batch:
            sqs.delete_message(QueueUrl=sns["queue"], ReceiptHandle=m["ReceiptHandle"])
            body = json.loads(m["Body"])
            if json.loads(body["Message"])["deploymentId"] == dep:
                copies.append(body)
    keys_sent = {c["MessageAttributes"][SNS_KEY_ATTRIBUTE]["Value"] for c in copies}
    assert len(keys_sent) == len(copies) == 10


def _sns_kind(r: Received) -> str:
    """The event kind of an SNS notification, from its message (status and instance)."""
    body = r.json()
    if body.get("Type") != "Notification":
        return "-"
    message = json.loads(body["Message"])
    if "instanceId" in message:
        return {
            "InProgress": "InstanceStart",
            "Succeeded": "InstanceSuccess",
            "Failed": "InstanceFailure",
            "Ready": "InstanceReady",
        }[message["instanceStatus"]]
    if "RollbackMessage" in message.get("rollbackInformation", ""):
        return "DeploymentRollback"
    return {
        "IN_PROGRESS": "DeploymentStart",
        "SUCCEEDED": "DeploymentSuccess",
        "FAILED": "DeploymentFailure",
        "STOPPED": "DeploymentStop",
        "READY": "DeploymentReady",
    }[message["status"]]


def test_a_failing_webhook_is_retried_with_the_same_key_then_logged(
    cluster: Cluster, receiver: Receiver
) -> None:
    # 500, then too slow for its 0.3 s timeout, then a redirect (not followed), then 200.
    receiver.script("/flaky", 500, ("sleep", 0.6), "redirect", 200)
    receiver.script("/down", 500)
    cluster.cd.create_application(applicationName="flaky")
    cluster.cd.create_deployment_group(
        applicationName="flaky",
        deploymentGroupName="prod",
        serviceRoleArn="arn:aws:iam::123456789012:role/CodeDeploy",
        onPremisesInstanceTagFilters=[{"Key": "nobody", "Value": "x", "Type": "KEY_AND_VALUE"}],
        triggerConfigurations=_triggers(
            ("flaky", _arn("hook-flaky"), ["DeploymentFailure"]),
            ("down", _arn("hook-down"), ["DeploymentFailure"]),
        ),
    )
    # No instance matches: the deployment fails at once (DeploymentStart, DeploymentFailure).
    dep = cluster.deploy("flaky", S3_V1)
    cluster.wait_status(dep, "Failed")
    log = NotificationLog(cluster.server.store, "test")

    def settled() -> bool:
        rows = log.recent(deployment_id=dep)
        return len(rows) == 2 and all(r.status != "Pending" for r in rows)

    deadline = time.monotonic() + 30
    while not settled():  # the sender's retries run on their own clock (0.05 s, doubling)
        assert time.monotonic() < deadline, log.recent(deployment_id=dep)
        time.sleep(0.05)
    rows = {r.trigger_name: r for r in log.recent(deployment_id=dep)}
    assert rows["flaky"].status == "Delivered"
    assert rows["flaky"].attempts == 4
    assert rows["flaky"].last_status_code == 200
    assert rows["down"].status == "Failed"
    assert rows["down"].attempts == 4
    assert rows["down"].last_status_code == 500
    assert rows["down"].last_error == "HTTP 500: receiver says no"
    flaky = _of(receiver.requests, "/flaky", dep)
    assert [r.headers["X-OpenDeploy-Attempt"] for r in flaky] == ["1", "2", "3", "4"]
    assert len({r.headers["X-OpenDeploy-Idempotency-Key"] for r in flaky}) == 1
    assert len({r.body for r in flaky}) == 1  # the same bytes, the same signature
    # Nothing went to where the redirect pointed.
    assert not [r for r in receiver.requests if r.path == "/elsewhere"]
    # The log, as `opendeploy notifications` and the dashboard show it.
    listed = fetch_deliveries(cluster.cd, {"deploymentId": dep, "status": "Failed"})
    assert [render_line(d) for d in listed] == [
        f"{listed[0]['occurredAt']} {dep} DeploymentFailure -> down (webhook) Failed x4 "
        "HTTP 500 | HTTP 500: receiver says no"
    ]
    with httpx.Client(base_url=cluster.endpoint, timeout=30) as web:
        signed_in = web.post(
            "/ui/login",
            data={
                "access_key_id": cluster.admin_key,
                "secret_access_key": cluster.admin_secret,
                "next": "/ui/",
            },
        )
        assert signed_in.status_code == 303
        page = web.get("/ui/notifications", params={"deployment": dep}).text
    assert page.count(f'<a href="/ui/deployments/{dep}">') == 2
    assert "<code>HTTP 500: receiver says no</code>" in page
    assert "Delivered" in page and "Failed" in page


def test_triggers_are_checked_as_aws_checks_them(cluster: Cluster) -> None:
    cd = cluster.cd
    cd.create_application(applicationName="checked")
    base = {
        "applicationName": "checked",
        "deploymentGroupName": "prod",
        "serviceRoleArn": "arn:aws:iam::123456789012:role/CodeDeploy",
    }
    cases = [
        (
            _triggers(("t", "https://chat.example/hook", ["DeploymentStart"])),
            "InvalidTriggerConfigException",
            "is not a valid Topic ARN",
        ),
        (
            _triggers(("t", _arn("a"), ["DeploymentStart"]), ("t", _arn("b"), ["DeploymentStop"])),
            "InvalidTriggerConfigException",
            "names two triggers",
        ),
        (
            _triggers(*[(f"t{i}", _arn(f"a{i}"), ["DeploymentStart"]) for i in range(11)]),
            "TriggerTargetsLimitExceededException",
            "(10)",
        ),
    ]
    for triggers, code, says in cases:
        with pytest.raises(cd.exceptions.ClientError) as caught:
            cd.create_deployment_group(**base, triggerConfigurations=triggers)
        assert caught.value.response["Error"]["Code"] == code
        assert says in caught.value.response["Error"]["Message"]


def test_metrics_are_served_and_scraped_by_prometheus(
    cluster: Cluster, prometheus: tuple[str, Path]
) -> None:
    with urllib.request.urlopen(f"{cluster.endpoint}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert 'opendeploy_deployments{platform="Server",status="Succeeded"}' in text
    assert 'opendeploy_api_requests_total{error="",operation="PollHostCommand"}' in text
    assert "opendeploy_notifications_total" in text
    assert 'opendeploy_agents{state="polling"}' in text
    assert "opendeploy_lifecycle_event_duration_seconds_bucket" in text
    base = prometheus[0]
    instance = cluster.endpoint.removeprefix("http://")
    query = f'opendeploy_notifications_total{{instance="{instance}",result="delivered"}}'
    found: list[Any] = []
    done = threading.Event()
    deadline = time.monotonic() + 30
    while not done.is_set():
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as answer:
            found = json.load(answer)["data"]["result"]
        if found:
            break
        assert time.monotonic() < deadline, "Prometheus never scraped /metrics"
        done.wait(0.25)  # Prometheus offers no event for "scraped": ask again
    assert sum(float(r["value"][1]) for r in found) >= 1
