"""The Lambda Runtime API for one function process (what ``awslambdaric`` talks to).

Each function process gets a listener of its own on a loopback port (its
``AWS_LAMBDA_RUNTIME_API``), so the connection says which process is asking and no token is
needed. Endpoints (API version 2018-06-01):

- ``GET /2018-06-01/runtime/invocation/next``: held until an invocation is handed to the
  process; answered with the event as body and the ``Lambda-Runtime-*`` headers;
- ``POST /2018-06-01/runtime/invocation/{id}/response`` and ``…/{id}/error``: the result;
- ``POST /2018-06-01/runtime/init/error``: the function failed to initialise (bad handler,
  import error); the process exits after it.

A minimal HTTP/1.1 server on asyncio streams (keep-alive, Content-Length or chunked bodies,
``Expect: 100-continue``): the runtime client is libcurl inside ``awslambdaric``, and this is
the whole of what it sends. Gotcha: awslambdaric 4.2.2 crashes (SIGSEGV) on a next-invocation
answer without ``Lambda-Runtime-Trace-Id``; it is always sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("opendeploy.functions.runtime")

_PREFIX = "/2018-06-01/runtime/"
#: The largest body a function may post (Lambda's synchronous response limit is 6 MB).
MAX_BODY = 6 * 1024 * 1024


@dataclass
class Invocation:
    """One invocation handed to a function process."""

    request_id: str
    payload: bytes
    invoked_arn: str
    timeout_seconds: float
    client_context: str | None = None
    #: Set when the process has taken the invocation (its timeout counts from then).
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    #: (body, function error or None), once the process answers.
    result: asyncio.Future[tuple[bytes, str | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    deadline_ms: int = 0


class RuntimeApi:
    """The Runtime API one process talks to: hands it invocations and collects their results."""

    def __init__(self, on_init_error: Callable[[bytes], None]) -> None:
        self._queue: asyncio.Queue[Invocation] = asyncio.Queue()
        self._current: Invocation | None = None
        self._on_init_error = on_init_error
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        #: Set at the process's first request for an invocation (it has initialised).
        self.asked = asyncio.Event()
        #: The process broke the protocol: it is not to be used again.
        self.broken = False
        self.port = 0

    async def start(self) -> int:
        """Listen on a free loopback port; returns it (start the process only after this)."""
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def submit(self, invocation: Invocation) -> None:
        """Queue ``invocation`` for the process's next request."""
        self._queue.put_nowait(invocation)

    # -- HTTP ------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                request = await _read_request(reader, writer)
                if request is None:
                    return
                method, path, body = request
                status, headers, payload = await self._route(method, path, body)
                head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                head.append(f"Content-Length: {len(payload)}")
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except _TooLarge:
            # Lambda's answer to a result over its limit; the connection is dropped unread, and
            # the process is not given another invocation (its client failed mid-request).
            self.broken = True
            current = self._current
            if current is not None and not current.result.done():
                message = (
                    "Response payload size exceeded maximum allowed payload size "
                    f"({MAX_BODY} bytes)."
                )
                error = {"errorType": "Function.ResponseSizeTooLarge", "errorMessage": message}
                current.result.set_result((json.dumps(error).encode(), "Unhandled"))
            return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:
            # The process is gone or the server stops: the connection's task ends quietly
            # (asyncio logs a cancelled client-connected task as an error).
            return
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _route(
        self, method: str, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if not path.startswith(_PREFIX):
            return _error(404, "Runtime.UnknownPath", f"unknown path {path}")
        rest = path[len(_PREFIX) :]
        if method == "GET" and rest == "invocation/next":
            return await self._next()
        if method == "POST" and rest == "init/error":
            self._on_init_error(body)
            return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'
        parts = rest.split("/")
        if method == "POST" and len(parts) == 3 and parts[0] == "invocation":
            request_id, kind = parts[1], parts[2]
            current = self._current
            if current is None or current.request_id != request_id:
                return _error(400, "InvalidRequestID", f"unknown request id {request_id}")
            if kind not in ("response", "error"):
                return _error(404, "Runtime.UnknownPath", f"unknown path {path}")
            if not current.result.done():
                current.result.set_result((body, "Unhandled" if kind == "error" else None))
            self._current = None
            return 202, {"Content-Type": "application/json"}, b'{"status":"OK"}'
        return _error(404, "Runtime.UnknownPath", f"unknown path {path}")

    async def _next(self) -> tuple[int, dict[str, str], bytes]:
        self.asked.set()
        while True:
            invocation = await self._queue.get()
            if not invocation.result.done():  # not given up on while it waited
                break
        self._current = invocation
        invocation.deadline_ms = int((time.time() + invocation.timeout_seconds) * 1000)
        invocation.delivered.set()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
            "Lambda-Runtime-Trace-Id": _trace_id(invocation.request_id),
        }
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        return 200, headers, invocation.payload


def _trace_id(request_id: str) -> str:
    """An X-Ray-shaped trace header (awslambdaric needs one; nothing traces here)."""
    digits = request_id.replace("-", "")
    return f"Root=1-{int(time.time()):08x}-{digits[:24]};Parent={digits[24:32]};Sampled=0"


def _error(status: int, kind: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"errorType": kind, "errorMessage": message}).encode()
    return status, {"Content-Type": "application/json"}, body


class _TooLarge(ValueError):
    """A request body over :data:`MAX_BODY`."""


_REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 413: "Too Large"}


async def _read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[str, str, bytes] | None:
    """(method, path, body) of the next request on the connection; None when it closes."""
    line = await reader.readline()
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif headers.get("content-length"):
        size = int(headers["content-length"])
        if size > MAX_BODY:
            raise _TooLarge()
        body = await reader.readexactly(size)
    return method, target.split("?", 1)[0], body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY:
            raise _TooLarge()
