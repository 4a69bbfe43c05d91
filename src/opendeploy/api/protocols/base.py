"""What a wire protocol provides to the application: body codec, shape codec and headers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opendeploy.api.shapes import Codec


@dataclass(frozen=True)
class WireProtocol:
    """One protocol: how documents are read and written and which headers responses carry.

    ``loads`` raises ``SerializationError`` for a body that is not a document of the protocol.
    """

    name: str
    content_type: str
    loads: Callable[[bytes], dict[str, Any]]
    dumps: Callable[[Any], bytes]
    codec: Codec
    response_headers: tuple[tuple[str, str], ...] = ()

    def headers(self, request_id: str, error_code: str | None = None) -> dict[str, str]:
        """Response headers: content type, request id, the protocol's own, and the error type."""
        headers = {"Content-Type": self.content_type, "x-amzn-RequestId": request_id}
        headers.update(self.response_headers)
        if error_code is not None:
            headers["x-amzn-ErrorType"] = error_code
        return headers

    def error_body(self, code: str, message: str) -> bytes:
        """The error document both botocore parsers read: ``__type`` and ``message``."""
        return self.dumps({"__type": code, "message": message})
