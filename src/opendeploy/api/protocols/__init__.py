"""The wire protocols of the CodeDeploy model, as codecs for one shared operation table.

``awsjson`` (awsJson1_1: what boto3 and aws-cli v1 send) and ``rpcv2cbor`` (Smithy RPC v2
CBOR) differ only in how bodies, timestamps, blobs and headers are written; both expose a
``WireProtocol`` that ``api.app`` drives.
"""

from __future__ import annotations

from opendeploy.api.protocols.base import WireProtocol

__all__ = ["WireProtocol"]
