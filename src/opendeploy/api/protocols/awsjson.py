"""awsJson1_1: ``POST /``, ``X-Amz-Target: <prefix>.<Operation>``, JSON bodies.

Timestamps are epoch seconds (botocore sends integers, other SDKs floats; responses are floats
with milliseconds, as AWS's own examples show); blobs are base64 strings.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from opendeploy.api.protocols.base import WireProtocol
from opendeploy.api.shapes import Codec
from opendeploy.service_errors import SerializationError

CONTENT_TYPE = "application/x-amz-json-1.1"


def _loads(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}  # operations without input may send nothing at all
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SerializationError(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SerializationError(
            f"The request body must be a JSON object, not {type(document).__name__}."
        )
    return document


def _dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=True).encode("utf-8")


def _timestamp_in(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected epoch seconds, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _timestamp_out(value: datetime) -> float:
    return round(value.timestamp(), 3)


def _blob_in(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected a base64 string, got {value!r}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def _blob_out(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


AWS_JSON_1_1 = WireProtocol(
    name="awsJson1_1",
    content_type=CONTENT_TYPE,
    loads=_loads,
    dumps=_dumps,
    codec=Codec(
        timestamp_in=_timestamp_in,
        timestamp_out=_timestamp_out,
        blob_in=_blob_in,
        blob_out=_blob_out,
    ),
)


def parse_target(target: str) -> tuple[str, str] | None:
    """``CodeDeploy_20141006.CreateApplication`` -> (prefix, operation); None if malformed."""
    prefix, dot, operation = target.strip().rpartition(".")
    if not dot or not prefix or not operation:
        return None
    return prefix, operation
