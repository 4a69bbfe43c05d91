"""A real HAProxy in front of tiny HTTP backends, and a load generator through it (tests only).

Each backend plays one host's application: it answers its revision (``v1`` …) after a short
pause, so that requests are in flight when a host is taken out, and can be stopped (its port then
refuses connections, as an application stopped by ApplicationStop) and started again with a new
revision. HAProxy runs with its runtime API on a unix socket, as the load balancer declaration
names it, and without health checks, retries or redispatch: a request sent to a stopped backend
fails at once (503), which is what the zero-downtime tests count (a retry would hide it: HAProxy
waits a second between retries, by when the backend may be back).
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opendeploy.engine.effectors.haproxy import RuntimeApi
from opendeploy.testing.server import free_port

#: How long a backend takes to answer: requests are in flight when a host leaves.
ANSWER_SECONDS = 0.02


class Backend:
    """One host's HTTP application on a fixed loopback port."""

    def __init__(self, name: str, revision: str = "v1") -> None:
        self.name = name
        self.port = free_port()
        self.revision = revision
        self._server: ThreadingHTTPServer | None = None
        #: Open client connections (HAProxy keeps idle ones to reuse): a stop closes them too.
        self._connections: set[socket.socket] = set()

    def start(self, revision: str | None = None) -> None:
        if revision is not None:
            self.revision = revision
        if self._server is not None:
            return
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                time.sleep(ANSWER_SECONDS)  # the application's own work
                body = backend.revision.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        connections = self._connections

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request: Any) -> None:
                connections.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # HAProxy's connection reuse resets idle connections: not an error here

        self._server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop as an application does: the port refuses connections, and the open ones
        (HAProxy's kept-alive connections included) are closed, requests in flight with them."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


@dataclass
class HAProxy:
    process: subprocess.Popen[bytes]
    port: int
    socket: Path
    backend: str = "be"

    def command(self, line: str) -> str:
        """One runtime API command, through the provider's own client."""
        return RuntimeApi(self.socket).command(line)

    def states(self) -> dict[str, str]:
        """Server name -> its admin state as ``show servers state`` numbers it (0 ready,
        1 maint, 8 drain …)."""
        out: dict[str, str] = {}
        for line in self.command(f"show servers state {self.backend}").splitlines():
            parts = line.split()
            if len(parts) > 6 and parts[0].isdigit():
                out[parts[3]] = parts[6]
        return out


@contextmanager
def running_haproxy(
    tmp_path: Path,
    backends: list[Backend],
    *,
    disabled: frozenset[str] = frozenset(),
    balance: str = "roundrobin",
) -> Iterator[HAProxy]:
    """HAProxy over ``backends``; those named in ``disabled`` start out of rotation (``maint``,
    as a blue/green deployment's replacement hosts before AllowTraffic). ``balance random``
    gives shares that follow the weights at once (roundrobin catches up on a raised weight in
    a burst, components.md §A)."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(binary).exists(), "haproxy is not installed (scripts/install installs it)"
    port, sock = free_port(), tmp_path / "haproxy.sock"
    servers = "\n".join(
        f"    server {b.name} 127.0.0.1:{b.port}" + (" disabled" if b.name in disabled else "")
        for b in backends
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {sock} mode 600 level admin
    stats timeout 2m
defaults
    mode http
    retries 0
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance {balance}
{servers}
"""
    )
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            assert time.monotonic() < deadline, "HAProxy did not open its runtime API socket"
            time.sleep(0.01)
        yield HAProxy(process, port, sock)
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


@dataclass
class LoadGenerator:
    """Sends GET / through the load balancer back to back, counting answers and failures."""

    port: int
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LoadGenerator:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/")
                answer = conn.getresponse()
                body = answer.read().decode()
                if answer.status == 200:
                    self.answers[body] += 1
                else:
                    self.failures.append(f"{answer.status} {body[:60]!r}")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)
