"""An HTTP proxy in front of a server that can lose answers, for tests of lost network replies.

    with AnswerDroppingProxy(server.endpoint) as proxy:
        proxy.drop("PutHostCommandAcknowledgement", times=1)
        ...  # point the agent at proxy.endpoint

Requests go through unchanged (the ``Host`` header too, so SigV4 signatures made for the
proxy's address still hold at the server, which checks the Host it receives). For an operation
told to :meth:`drop`, the request reaches the server and the server answers, but the proxy
closes the client's connection instead of passing the answer on: the client sees the connection
cut after its request was taken, exactly the case where retrying must be safe. For one told to
:meth:`cut`, the answer's status, headers and first bytes go through, then the connection
closes (a download cut midway). Requests without ``X-Amz-Target`` (S3) are named by their
method (``GET``, ``PUT`` …).
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

__all__ = ["AnswerDroppingProxy"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})


class AnswerDroppingProxy:
    """A plain-HTTP forwarding proxy on a free loopback port (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"upstream: {upstream!r} is not an http:// URL")
        self._upstream = (parts.hostname, parts.port or 80)
        self._lock = threading.Lock()
        self._to_drop: Counter[str] = Counter()
        self._to_cut: dict[str, list[int]] = {}
        #: (operation, Range header or None) of every request, in order.
        self.requests: list[tuple[str, str | None]] = []
        #: Operation -> answers dropped so far.
        self.dropped: Counter[str] = Counter()
        #: Operation -> requests forwarded (dropped ones included).
        self.seen: Counter[str] = Counter()
        proxy = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("X-Amz-Target", "")
                operation = target.rsplit(".", 1)[-1] if target else self.command
                upstream = http.client.HTTPConnection(*proxy._upstream, timeout=300)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                with proxy._lock:
                    proxy.requests.append((operation, self.headers.get("Range")))
                if proxy._take_drop(operation):
                    self.close_connection = True
                    return  # the answer is lost: the connection closes without it
                cut = proxy._take_cut(operation)
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload if cut is None else payload[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="answer-dropping-proxy", daemon=True
        )

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def drop(self, operation: str, *, times: int = 1) -> None:
        """Lose the server's next ``times`` answers to ``operation`` (an ``X-Amz-Target``
        operation name such as ``PutHostCommandAcknowledgement``)."""
        with self._lock:
            self._to_drop[operation] += times

    def cut(self, operation: str, *, after_bytes: int, times: int = 1) -> None:
        """Pass on only the first ``after_bytes`` of the next ``times`` answers to
        ``operation`` (declaring their whole length), then close the connection."""
        with self._lock:
            self._to_cut.setdefault(operation, []).extend([after_bytes] * times)

    def _take_cut(self, operation: str) -> int | None:
        with self._lock:
            pending = self._to_cut.get(operation)
            return pending.pop(0) if pending else None

    def _take_drop(self, operation: str) -> bool:
        with self._lock:
            self.seen[operation] += 1
            if self._to_drop[operation] <= 0:
                return False
            self._to_drop[operation] -= 1
            self.dropped[operation] += 1
            return True

    def __enter__(self) -> AnswerDroppingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
