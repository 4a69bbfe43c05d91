"""Smithy RPC v2 CBOR: ``POST /service/<Service>/operation/<Operation>``, CBOR bodies.

Requests carry ``smithy-protocol: rpc-v2-cbor``; responses must too (Smithy specification).
Timestamps are CBOR tag 1 (epoch seconds, a float when there are milliseconds); blobs are CBOR
byte strings. Errors are CBOR maps with ``__type`` and ``message``, as botocore's
``RpcV2CBORParser`` reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cbor2

from opendeploy.api.protocols.base import WireProtocol
from opendeploy.api.shapes import Codec
from opendeploy.service_errors import SerializationError

CONTENT_TYPE = "application/cbor"
PROTOCOL_HEADER = ("smithy-protocol", "rpc-v2-cbor")


def _loads(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise SerializationError(f"The request body is not valid CBOR: {exc}") from exc
    if not isinstance(document, dict):
        raise SerializationError(
            f"The request body must be a CBOR map, not {type(document).__name__}."
        )
    return document


def _dumps(document: Any) -> bytes:
    encoded: bytes = cbor2.dumps(document)
    return encoded


def _timestamp_in(value: Any) -> datetime:
    if isinstance(value, datetime):  # cbor2 decodes tag 1 (and tag 0) itself
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a CBOR timestamp (tag 1), got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _timestamp_out(value: datetime) -> cbor2.CBORTag:
    seconds = value.timestamp()
    millis = round(seconds * 1000)
    epoch: int | float = millis // 1000 if millis % 1000 == 0 else millis / 1000
    return cbor2.CBORTag(1, epoch)


def _blob_in(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"expected a CBOR byte string, got {value!r}")
    return bytes(value)


def _blob_out(value: bytes) -> bytes:
    return value


RPC_V2_CBOR = WireProtocol(
    name="rpcv2Cbor",
    content_type=CONTENT_TYPE,
    loads=_loads,
    dumps=_dumps,
    codec=Codec(
        timestamp_in=_timestamp_in,
        timestamp_out=_timestamp_out,
        blob_in=_blob_in,
        blob_out=_blob_out,
    ),
    response_headers=(PROTOCOL_HEADER,),
)
