"""The notifiers: SNS through boto3, and webhooks (signed JSON POSTs). Each sends one delivery
once and says how it went; retrying is the dispatcher's (``retry.RetryPolicy``).

A webhook gets an SNS-like envelope, byte for byte the same on every attempt::

    {"Type": "Notification", "MessageId": "<idempotency key>", "TopicArn": "<triggerTargetArn>",
     "Subject": "SUCCEEDED: AWS CodeDeploy d-… in us-east-1 to app", "Message": "<AWS's JSON>",
     "Timestamp": "<the event's time, ISO 8601>", "EventType": "DeploymentSuccess",
     "EventTriggerName": "…"}

with headers ``X-OpenDeploy-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``,
``X-OpenDeploy-Idempotency-Key`` (= MessageId), ``X-OpenDeploy-Event`` and
``X-OpenDeploy-Attempt``. Only a 2xx answer counts; a redirect is not followed (a signed
notification is not re-sent to wherever a server points) and fails the attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from opendeploy.engine.notifications.declaration import Webhook

SIGNATURE_HEADER = "X-OpenDeploy-Signature"
KEY_HEADER = "X-OpenDeploy-Idempotency-Key"
EVENT_HEADER = "X-OpenDeploy-Event"
ATTEMPT_HEADER = "X-OpenDeploy-Attempt"
#: The SNS message attribute that carries the idempotency key (SNS's own MessageId differs on
#: every Publish, so a subscriber cannot drop repeats by it).
SNS_KEY_ATTRIBUTE = "opendeploy.idempotency-key"
#: The longest one SNS Publish may take: two attempts (botocore's), each with 5 s to connect
#: and 5 s to read.
SNS_SEND_SECONDS = 20.0
#: How much of an error answer goes into the delivery log.
_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification to send (as claimed from the delivery log)."""

    id: int
    trigger_name: str
    target: str
    event_type: str
    subject: str
    message: str
    idempotency_key: str
    occurred_at: datetime
    attempt: int
    deployment_id: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str | None = None


class Sender(Protocol):
    def send(self, delivery: Delivery) -> SendResult: ...


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-OpenDeploy-Signature`` value of ``body``: check it with ``hmac.compare_digest``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def webhook_body(delivery: Delivery) -> bytes:
    envelope = {
        "Type": "Notification",
        "MessageId": delivery.idempotency_key,
        "TopicArn": delivery.target,
        "Subject": delivery.subject,
        "Message": delivery.message,
        "Timestamp": delivery.occurred_at.isoformat().replace("+00:00", "Z"),
        "EventType": delivery.event_type,
        "EventTriggerName": delivery.trigger_name,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


class WebhookSender:
    """POSTs to the declared webhook of the delivery's topic ARN."""

    def __init__(self, hooks: dict[str, Webhook], *, ssl_context: ssl.SSLContext | None = None):
        self.hooks = hooks
        self.ssl_context = ssl_context or ssl.create_default_context()

    def send(self, delivery: Delivery) -> SendResult:
        hook = self.hooks.get(delivery.target)
        if hook is None:
            return SendResult(False, error=f"no webhook is declared for {delivery.target} any more")
        body = webhook_body(delivery)
        url = urlsplit(hook.url)
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(
                url.hostname or "", url.port, timeout=hook.timeout_seconds, context=self.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(
                url.hostname or "", url.port, timeout=hook.timeout_seconds
            )
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "OpenDeploy-Notifications/1",
            SIGNATURE_HEADER: signature(hook.secret, body),
            KEY_HEADER: delivery.idempotency_key,
            EVENT_HEADER: delivery.event_type,
            ATTEMPT_HEADER: str(delivery.attempt),
        }
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(_ERROR_CHARS).decode("utf-8", "replace")
            status = response.status
        except (OSError, http.client.HTTPException) as e:
            return SendResult(
                False, error=f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            )
        finally:
            conn.close()
        if 200 <= status < 300:
            return SendResult(True, status)
        if 300 <= status < 400:
            where = response.getheader("Location") or "-"
            return SendResult(False, status, f"HTTP {status} redirect to {where} not followed")
        return SendResult(False, status, f"HTTP {status}: {answer.strip()[:_ERROR_CHARS]}")


class SnsSender:
    """Publishes to the topic through boto3, in the topic's region (standard configuration:
    credentials chain, ``AWS_ENDPOINT_URL_SNS``)."""

    def __init__(self) -> None:
        self._config = Config(
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=SNS_SEND_SECONDS / 4,
            read_timeout=SNS_SEND_SECONDS / 4,
        )
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, region: str) -> Any:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                client = boto3.session.Session().client(
                    "sns", region_name=region, config=self._config
                )
                self._clients[region] = client
            return client

    def send(self, delivery: Delivery) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        arn = delivery.target
        region = arn.split(":")[3] if arn.count(":") >= 5 else "us-east-1"
        params: dict[str, Any] = {
            "TopicArn": arn,
            "Subject": delivery.subject,
            "Message": delivery.message,
            "MessageAttributes": {
                SNS_KEY_ATTRIBUTE: {"DataType": "String", "StringValue": delivery.idempotency_key}
            },
        }
        if arn.endswith(".fifo"):
            # SNS itself drops a repeat within its 5-minute deduplication window.
            params["MessageGroupId"] = delivery.deployment_id or "opendeploy"
            params["MessageDeduplicationId"] = delivery.idempotency_key
        try:
            self._client(region).publish(**params)
        except ClientError as e:
            error = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return SendResult(False, status, f"{error.get('Code')}: {error.get('Message')}")
        except BotoCoreError as e:
            return SendResult(False, error=f"{type(e).__name__}: {e}")
        return SendResult(True, 200)
