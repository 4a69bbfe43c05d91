"""Bounded request bodies for the small JSON routes beside the API (instance credentials, hook
output): their bodies are a few bytes, and reading an unbounded one before its signature is
checked let any client grow the server by the body's size."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from opendeploy.service_errors import RequestEntityTooLargeError

#: The largest body these routes read.
SMALL_BODY_BYTES = 64 * 1024


async def small_body(request: Request, limit: int = SMALL_BODY_BYTES) -> bytes:
    """The request's body; RequestEntityTooLargeError (the rest unread) past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def too_large_response(exc: RequestEntityTooLargeError) -> JSONResponse:
    """The 413 answer, closing the connection (its body is left unread)."""
    return JSONResponse(
        {"__type": exc.code, "message": exc.message},
        status_code=exc.status,
        headers={"x-amzn-ErrorType": exc.code, "Connection": "close"},
    )


def _too_large(limit: int) -> RequestEntityTooLargeError:
    return RequestEntityTooLargeError(f"The request body is larger than {limit} bytes.")
