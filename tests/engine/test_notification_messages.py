"""The pure parts of notifications: AWS's message shape, the webhook declaration, the backoff,
the signature; and the server's JSON log lines and /metrics token."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opendeploy.cli.server import JsonLinesFormatter
from opendeploy.engine.events import DeliveredEvent, DeploymentEvent, TriggerEvent
from opendeploy.engine.notifications.declaration import NotificationDeclarationError, parse
from opendeploy.engine.notifications.messages import (
    DeploymentFacts,
    LifecycleFact,
    build,
    idempotency_key,
    java_date,
)
from opendeploy.engine.notifications.retry import RetryPolicy
from opendeploy.engine.notifications.senders import signature

T0 = datetime(2022, 10, 14, 8, 38, 46, tzinfo=UTC)
T1 = T0 + timedelta(minutes=7, seconds=32)
ARN = "arn:aws:sns:eu-west-2:111122223333:deploys"


def _facts(**kw: object) -> DeploymentFacts:
    values: dict[str, object] = {
        "deployment_id": "d-ABC",
        "application_name": "temporary-status",
        "deployment_group_name": "dg",
        "status": "Succeeded",
        "create_time": T0,
        "complete_time": T1,
        "overview": {"Succeeded": 1, "Failed": 0, "Skipped": 0, "InProgress": 0, "Pending": 0},
    }
    values.update(kw)
    return DeploymentFacts(**values)  # type: ignore[arg-type]


def _build(event: DeploymentEvent, facts: DeploymentFacts, seq: int = 7) -> tuple[str, dict]:  # type: ignore[type-arg]
    note = build(
        DeliveredEvent(seq, event),
        facts,
        "send-deploy-events",
        region="eu-west-2",
        account_id="111122223333",
    )
    return note.subject, json.loads(note.message)


def test_java_date_is_how_codedeploy_writes_times() -> None:
    assert java_date(T0) == "Fri Oct 14 08:38:46 UTC 2022"
    assert java_date(None) is None


def test_a_success_message_is_the_one_aws_publishes() -> None:
    subject, message = _build(
        DeploymentEvent("d-ABC", TriggerEvent.DEPLOYMENT_SUCCESS, "Succeeded", T1), _facts()
    )
    assert subject == "SUCCEEDED: AWS CodeDeploy d-ABC in eu-west-2 to temporary-status"
    assert message == {
        "region": "eu-west-2",
        "accountId": "111122223333",
        "eventTriggerName": "send-deploy-events",
        "applicationName": "temporary-status",
        "deploymentId": "d-ABC",
        "deploymentGroupName": "dg",
        "createTime": "Fri Oct 14 08:38:46 UTC 2022",
        "completeTime": "Fri Oct 14 08:46:18 UTC 2022",
        "status": "SUCCEEDED",
        "deploymentOverview": ('{"Succeeded":1,"Failed":0,"Skipped":0,"InProgress":0,"Pending":0}'),
        "rollbackInformation": "{}",
    }


def test_a_start_has_no_complete_time_nor_overview() -> None:
    _, message = _build(
        DeploymentEvent("d-ABC", TriggerEvent.DEPLOYMENT_START, "InProgress", T0),
        _facts(status="Succeeded"),  # where the deployment is by the time it is built
    )
    assert message["status"] == "IN_PROGRESS"
    assert message["completeTime"] is None
    assert "deploymentOverview" not in message


def test_a_failure_carries_its_error_and_a_rollback_its_message() -> None:
    error = {"code": "HEALTH_CONSTRAINTS", "message": "The overall deployment failed"}
    _, failed = _build(
        DeploymentEvent(
            "d-ABC",
            TriggerEvent.DEPLOYMENT_FAILURE,
            "Failed",
            T1,
            detail={"errorInformation": error},
        ),
        _facts(status="Failed"),
    )
    assert failed["status"] == "FAILED"
    assert json.loads(failed["errorInformation"]) == {
        "ErrorCode": "HEALTH_CONSTRAINTS",
        "ErrorMessage": "The overall deployment failed",
    }
    _, rollback = _build(
        DeploymentEvent("d-R", TriggerEvent.DEPLOYMENT_SUCCESS, "Succeeded", T1),
        _facts(
            deployment_id="d-R",
            rollback_info={
                "rollbackTriggeringDeploymentId": "d-M",
                "rollbackMessage": "Deployment d-R is triggered to roll back deployment d-M.",
            },
        ),
    )
    assert json.loads(rollback["rollbackInformation"]) == {
        "RollbackMessage": "Deployment d-R is triggered to roll back deployment d-M.",
        "RollbackTriggeringDeploymentId": "d-M",
    }


def test_an_instance_event_names_the_instance_and_its_lifecycle() -> None:
    facts = _facts(
        target_arns={"web-1": "arn:aws:codedeploy:eu-west-2:111122223333:instance/web-1_X"},
        lifecycle={
            "web-1": [
                LifecycleFact("ApplicationStop", "Succeeded", T0, T0 + timedelta(seconds=1)),
                LifecycleFact("DownloadBundle", "Pending", None, None),
            ]
        },
    )
    subject, message = _build(
        DeploymentEvent("d-ABC", TriggerEvent.INSTANCE_FAILURE, "Failed", T1, "web-1"), facts
    )
    assert subject.startswith("FAILED: AWS CodeDeploy d-ABC")
    assert message["instanceId"] == "arn:aws:codedeploy:eu-west-2:111122223333:instance/web-1_X"
    assert message["instanceStatus"] == "Failed"
    assert message["lastUpdatedAt"] == "Fri Oct 14 08:46:18 UTC 2022"
    assert json.loads(message["lifecycleEvents"]) == [
        {
            "LifecycleEvent": "ApplicationStop",
            "LifecycleEventStatus": "Succeeded",
            "StartTime": "Fri Oct 14 08:38:46 UTC 2022",
            "EndTime": "Fri Oct 14 08:38:47 UTC 2022",
        },
        {
            "LifecycleEvent": "DownloadBundle",
            "LifecycleEventStatus": "Pending",
            "StartTime": None,
            "EndTime": None,
        },
    ]


def test_subjects_fit_sns_and_keys_are_stable_per_event_and_trigger() -> None:
    subject, _ = _build(
        DeploymentEvent("d-ABC", TriggerEvent.DEPLOYMENT_STOP, "Stopped", T1),
        _facts(application_name="a" * 100),
    )
    assert len(subject) == 100
    assert idempotency_key("d-A", 1, "t") == idempotency_key("d-A", 1, "t")
    assert (
        len(
            {
                idempotency_key("d-A", 1, "t"),
                idempotency_key("d-A", 1, "u"),
                idempotency_key("d-A", 2, "t"),
                idempotency_key("d-B", 1, "t"),
            }
        )
        == 4
    )


def test_the_declaration_maps_topic_arns_to_signed_webhooks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    (tmp_path / "secret").write_text("from-file\n")
    declared = parse(
        {
            "webhooks": [
                {"topic": ARN, "url": "https://chat.example/hook", "secret_env": "HOOK_SECRET"},
                {
                    "topic": ARN + "-2",
                    "url": "http://127.0.0.1:9/x",
                    "secret_file": str(tmp_path / "secret"),
                    "timeout_seconds": 2,
                },
            ]
        }
    )
    hook = declared.webhook(ARN)
    assert hook is not None and hook.secret == b"from-env" and hook.timeout_seconds == 10
    second = declared.webhook(ARN + "-2")
    assert second is not None and second.secret == b"from-file"
    assert declared.webhook("arn:aws:sns:eu-west-2:111122223333:other") is None


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"topic": "https://x", "url": "https://x", "secret": "s"}, "is not an SNS topic ARN"),
        ({"topic": ARN, "url": "ftp://x", "secret": "s"}, "is not an http(s) URL"),
        ({"topic": ARN, "url": "https://x"}, "exactly one of secret"),
        ({"topic": ARN, "url": "https://x", "secret_env": "NOT_SET_ANYWHERE"}, "is not set"),
        ({"topic": ARN, "url": "https://x", "secret": "s", "timeout_seconds": 0}, "is not > 0"),
        ({"topic": ARN, "url": "https://x", "secret": "s", "retries": 3}, "unknown keys"),
    ],
)
def test_a_bad_declaration_says_where_and_why(entry: dict[str, object], says: str) -> None:
    with pytest.raises(NotificationDeclarationError, match=r"webhooks\[0\]") as caught:
        parse({"webhooks": [entry]})
    assert says in str(caught.value)


def test_a_topic_declared_twice_is_refused() -> None:
    entry = {"topic": ARN, "url": "https://x", "secret": "s"}
    with pytest.raises(NotificationDeclarationError, match="declared twice"):
        parse({"webhooks": [entry, entry]})


def test_the_backoff_doubles_up_to_its_cap_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=6, first_delay_seconds=2, max_delay_seconds=10)
    delays = [
        (at - T0).total_seconds() if (at := policy.next_attempt(n, T0)) else None
        for n in range(1, 7)
    ]
    assert delays == [2, 4, 8, 10, 10, None]


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"Type":"Notification"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature(b"k", body) == f"sha256={expected}"


def test_json_log_lines_carry_the_message_and_its_fields() -> None:
    record = logging.LogRecord(
        "opendeploy.api",
        logging.INFO,
        __file__,
        1,
        "request op=%s status=%d ms=%.1f",
        ("CreateDeployment", 200, 1.25),
        None,
    )
    line = json.loads(JsonLinesFormatter().format(record))
    assert line["message"] == "request op=CreateDeployment status=200 ms=1.2"
    assert (line["level"], line["logger"], line["op"], line["status"]) == (
        "INFO",
        "opendeploy.api",
        "CreateDeployment",
        "200",
    )
    assert line["ts"].endswith("Z")


def test_a_claim_outlasts_the_slowest_batch() -> None:
    from opendeploy.engine.notifications.dispatcher import BATCH, CONCURRENCY, _lease_for

    slow = parse({"webhooks": [{"topic": ARN, "url": "http://x", "secret": "s",
                                "timeout_seconds": 60}]})  # fmt: skip
    # 32 sends, 8 at a time, each up to 60 s: 240 s at worst, claimed for twice that.
    assert _lease_for(slow) == 2 * (BATCH // CONCURRENCY) * 60
    assert _lease_for(parse({})) >= 2 * (BATCH // CONCURRENCY) * 20  # SNS: 2 tries of 5 + 5 s
