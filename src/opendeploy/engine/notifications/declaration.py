"""Which trigger targets are webhooks: the server's notifications declaration (beyond AWS).

A deployment group's ``triggerConfigurations`` name an SNS topic ARN as ``triggerTargetArn``,
as with AWS (aws-cli, boto3 and Terraform keep working). ``opendeploy server --notifications
FILE`` turns some of those ARNs into webhooks: the events of a trigger naming a declared ARN are
POSTed to its URL instead of being published to SNS. Any other ARN is published through boto3
(standard configuration: credentials chain, ``AWS_ENDPOINT_URL_SNS``). The file is YAML (or
JSON)::

    webhooks:
      - topic: arn:aws:sns:us-east-1:000000000000:deploys   # the triggerTargetArn to route
        url: https://chat.example.com/hooks/deploys
        secret_env: DEPLOYS_WEBHOOK_SECRET   # or secret: …, or secret_file: /path (first line)
        timeout_seconds: 10                  # per attempt (default 10)

The secret signs each POST (``X-OpenDeploy-Signature: sha256=<hex HMAC-SHA256 of the body>``);
it lives only in the file or the environment, never in the database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from opendeploy.errors import OpenDeployError

DEFAULT_TIMEOUT_SECONDS = 10.0
#: ``arn:<partition>:sns:<region>:<account>:<topic>`` (a FIFO topic's name ends in ``.fifo``).
SNS_TOPIC_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
)


class NotificationDeclarationError(OpenDeployError, ValueError):
    """The notifications declaration file is unreadable or breaks a rule (says where)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    topic: str
    url: str
    secret: bytes = field(repr=False)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Notifications:
    """The declared webhooks, by the topic ARN they stand for."""

    webhooks: Mapping[str, Webhook] = field(default_factory=dict)

    def webhook(self, target_arn: str) -> Webhook | None:
        return self.webhooks.get(target_arn)


def load(path: Path) -> Notifications:
    """Read and check the declaration at ``path``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise NotificationDeclarationError(f"{path}: {e}") from e
    return parse(raw or {}, where=str(path))


def parse(raw: Any, *, where: str = "notifications") -> Notifications:
    if not isinstance(raw, dict):
        raise NotificationDeclarationError(f"{where}: a mapping with 'webhooks' expected")
    unknown = set(raw) - {"webhooks"}
    if unknown:
        raise NotificationDeclarationError(f"{where}: unknown keys {sorted(unknown)}")
    hooks: dict[str, Webhook] = {}
    for i, entry in enumerate(raw.get("webhooks") or []):
        at = f"{where}: webhooks[{i}]"
        hook = _webhook(entry, at)
        if hook.topic in hooks:
            raise NotificationDeclarationError(f"{at}.topic: {hook.topic} is declared twice")
        hooks[hook.topic] = hook
    return Notifications(hooks)


def _webhook(entry: Any, at: str) -> Webhook:
    if not isinstance(entry, dict):
        raise NotificationDeclarationError(f"{at}: a mapping expected")
    unknown = set(entry) - {
        "topic",
        "url",
        "secret",
        "secret_env",
        "secret_file",
        "timeout_seconds",
    }
    if unknown:
        raise NotificationDeclarationError(f"{at}: unknown keys {sorted(unknown)}")
    topic = str(entry.get("topic") or "")
    if not SNS_TOPIC_ARN.match(topic):
        raise NotificationDeclarationError(
            f"{at}.topic: {topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME): "
            "the triggerTargetArn groups name must be one for AWS clients to accept it"
        )
    url = str(entry.get("url") or "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotificationDeclarationError(f"{at}.url: {url!r} is not an http(s) URL")
    timeout = entry.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise NotificationDeclarationError(f"{at}.timeout_seconds: {timeout!r} is not > 0")
    return Webhook(topic, url, _secret(entry, at), float(timeout))


def _secret(entry: Mapping[str, Any], at: str) -> bytes:
    given = [k for k in ("secret", "secret_env", "secret_file") if entry.get(k)]
    if len(given) != 1:
        raise NotificationDeclarationError(
            f"{at}: exactly one of secret, secret_env, secret_file is needed (the webhook's "
            "signing key)"
        )
    key = given[0]
    if key == "secret":
        return str(entry["secret"]).encode()
    if key == "secret_env":
        value = os.environ.get(str(entry["secret_env"]))
        if not value:
            raise NotificationDeclarationError(
                f"{at}.secret_env: the environment variable {entry['secret_env']} is not set"
            )
        return value.encode()
    try:
        lines = Path(str(entry["secret_file"])).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise NotificationDeclarationError(f"{at}.secret_file: {e}") from e
    if not lines or not lines[0].strip():
        raise NotificationDeclarationError(f"{at}.secret_file: the file is empty")
    return lines[0].strip().encode()
