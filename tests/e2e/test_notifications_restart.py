"""A server SIGKILLed while notifications are queued and in flight loses none: restarted on its
data directory, it sends again what it had claimed (with the same idempotency key) and what was
still queued, and nothing more. A real server process (restarted in process) and a real webhook
receiver on loopback; ``--log-format json`` on the way."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from opendeploy.engine.notifications.senders import KEY_HEADER
from opendeploy.settings import ServerSettings
from opendeploy.store.notifications import NotificationLog
from opendeploy.testing.server import start_server
from tests.engine.agent_sim import running_cluster
from tests.engine.receiver import Received, running_receiver

pytestmark = pytest.mark.e2e

TOPIC = "arn:aws:sns:us-east-1:000000000000:deploys"
KINDS = ["DeploymentStart", "DeploymentFailure"]


def _keys(requests: list[Received], path: str) -> Counter[str]:
    return Counter(r.headers[KEY_HEADER] for r in requests if r.path == path)


def test_a_killed_server_loses_no_notification_and_resends_with_the_same_key(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{(data / 'opendeploy.db').resolve()}"
    with running_receiver() as receiver:
        receiver.script("/hook", "hold")  # every POST hangs until the test lets go
        declaration = tmp_path / "notifications.yml"
        declaration.write_text(
            json.dumps(
                {"webhooks": [{"topic": TOPIC, "url": f"{receiver.url}/hook", "secret": "k"}]}
            )
        )
        args = ("--notifications", str(declaration), "--log-format", "json")
        first = start_server(data, database_url=url, extra_args=args)
        try:
            cd = first.client()
            cd.create_application(applicationName="shop")
            deployments = []
            for i in range(3):  # one group each: a group runs one deployment at a time
                cd.create_deployment_group(
                    applicationName="shop",
                    deploymentGroupName=f"prod-{i}",
                    serviceRoleArn="arn:aws:iam::123456789012:role/CodeDeploy",
                    onPremisesInstanceTagFilters=[
                        {"Key": "nobody", "Value": "x", "Type": "KEY_AND_VALUE"}
                    ],
                    triggerConfigurations=[
                        {"triggerName": "chat", "triggerTargetArn": TOPIC, "triggerEvents": KINDS}
                    ],
                )
                # No instance matches: the deployment starts and fails at once (2 events).
                answer = cd.create_deployment(
                    applicationName="shop",
                    deploymentGroupName=f"prod-{i}",
                    revision={
                        "revisionType": "S3",
                        "s3Location": {"bucket": "b", "key": "k", "bundleType": "zip"},
                    },
                )
                deployments.append(answer["deploymentId"])
            receiver.wait_for(lambda rs: len(_keys(rs, "/hook")) >= 2)
        finally:
            first.process.kill()  # SIGKILL: no last delivery pass, claims left as they were
            first.process.wait()
            first.stop()
        log_lines = first.log_text().splitlines()
        receiver.release()  # the held requests answer a dead sender

        # The restart: the same data directory (so the same replica id, which takes its claims
        # back at once), in this process this time (a second process start costs seconds). The
        # topic now leads to /again: what the killed server sent, whenever the receiver got to
        # it, is on /hook; what the restarted one sends, on /again.
        declaration.write_text(
            json.dumps(
                {"webhooks": [{"topic": TOPIC, "url": f"{receiver.url}/again", "secret": "k"}]}
            )
        )
        settings = ServerSettings(
            data_dir=data.resolve(), database_url=url, notifications_file=declaration
        )
        with running_cluster(settings) as restarted:
            log = NotificationLog(restarted.server.store, "test")
            receiver.wait_for(lambda rs: len(_keys(rs, "/again")) == 2 * len(deployments))
            deadline = time.monotonic() + 20
            while any(r.status != "Delivered" for r in log.recent()):
                assert time.monotonic() < deadline, log.recent()
                time.sleep(0.02)  # the 200 is recorded just after the receiver sees the POST
            rows = log.recent()

    before, after = _keys(receiver.requests, "/hook"), _keys(receiver.requests, "/again")
    # Every event of every deployment arrived once after the restart; those the killed server
    # had sent came again with the same key; nothing else came twice.
    assert before
    assert set(before) <= set(after)
    assert len(after) == 6
    assert set(after.values()) == {1}
    assert set(before.values()) == {1}
    assert sorted((r.deployment_id, r.event_type, r.status) for r in rows) == sorted(
        (d, kind, "Delivered") for d in deployments for kind in KINDS
    )
    assert all(r.attempts == 1 for r in rows)  # the killed attempt was never recorded
    # --log-format json: one JSON object per line, key=value pairs as fields.
    requests = [json.loads(x) for x in log_lines if x.startswith("{")]
    assert any(r.get("op") == "CreateDeployment" and r["level"] == "INFO" for r in requests)
