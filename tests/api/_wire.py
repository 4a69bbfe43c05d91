"""boto3 clients of a real server in either wire protocol, for the tests that drive one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import boto3
import botocore.session
from botocore.config import Config

from opendeploy.testing.server import RunningServer

#: The Content-Type each protocol's requests carry.
CONTENT_TYPES = {"json": "application/x-amz-json-1.1", "cbor": "application/cbor"}


class Sent(NamedTuple):
    operation: str
    content_type: str


def wire_client(
    server: RunningServer,
    protocol: str,
    data_path: Path,
    *,
    key_id: str | None = None,
    secret: str | None = None,
    sent: list[Sent] | None = None,
    **config: Any,
) -> Any:
    """A boto3 CodeDeploy client speaking ``protocol`` to ``server`` (admin key by default)."""
    core = botocore.session.get_session()
    if protocol == "cbor":
        core.set_config_variable("data_path", str(data_path))
    client = boto3.session.Session(botocore_session=core).client(
        "codedeploy",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=key_id or server.access_key_id,
        aws_secret_access_key=secret or server.secret_access_key,
        # One attempt: a retried 5xx would hide a server fault behind a slow pass.
        config=Config(retries={"total_max_attempts": 1}, **config),
    )
    if sent is not None:

        def record(request: Any, event_name: str, **_: Any) -> None:
            content_type = request.headers.get("Content-Type", b"")
            if isinstance(content_type, bytes):
                content_type = content_type.decode()
            sent.append(Sent(event_name.rsplit(".", 1)[-1], content_type))

        client.meta.events.register("before-send.codedeploy.*", record)
    return client
