"""Start a real ``opendeploy server`` process for tests and benchmarks.

    with running_server(tmp_path / "data", database_url=url) as srv:
        client = srv.client("codedeploy")
        client.list_applications()

The process listens on a free loopback port, keeps its data (and its log, ``server.log``) in the
given directory, and is stopped with SIGTERM (then SIGKILL after a grace period) on exit.
"""

from __future__ import annotations

import configparser
import functools
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendeploy.errors import OpenDeployError

__all__ = [
    "RunningServer",
    "ServerStartError",
    "free_port",
    "running_server",
    "serve_in_thread",
    "start_server",
]


class ServerStartError(OpenDeployError, RuntimeError):
    """The server process exited or did not answer /healthz in time."""


@dataclass
class RunningServer:
    """A server process and what a client needs to reach it."""

    process: subprocess.Popen[bytes]
    endpoint: str
    data_dir: Path
    access_key_id: str
    secret_access_key: str
    region: str
    credentials_path: Path
    config_path: Path
    log_path: Path
    #: The certificate clients verify TLS with (``--tls``: the one the server creates in its
    #: data directory; ``--tls-cert``: that file); None for plain HTTP.
    ca_bundle: Path | None = None
    _log_file: Any = field(repr=False, default=None)

    @property
    def port(self) -> int:
        """The port the server listens on (restart with ``port=`` to keep the endpoint)."""
        return int(self.endpoint.rsplit(":", 1)[1])

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS clients (aws-cli, boto3) at this server."""
        env = {
            "AWS_SHARED_CREDENTIALS_FILE": str(self.credentials_path),
            "AWS_CONFIG_FILE": str(self.config_path),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": self.region,
        }
        if self.ca_bundle is not None:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return env

    def client(self, service: str = "codedeploy", **kwargs: Any) -> Any:
        """A boto3 client for ``service`` signed with the admin key, at this server."""
        if self.ca_bundle is not None:
            kwargs.setdefault("verify", str(self.ca_bundle))
        with _SESSION_LOCK:  # a session is not thread-safe; the clients it makes are
            return _session().client(
                service,
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                **kwargs,
            )

    def log_text(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode


_SESSION_LOCK = threading.Lock()


@functools.cache
def _session() -> Any:
    """One boto3 session for every client of this process: a new session loads its models
    again (0.15-0.5 s a client on a loaded machine; ~0.01 s from a shared one). Each client
    still has its own endpoint, credentials and config."""
    import boto3.session

    return boto3.session.Session()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    region: str = "us-east-1",
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    port: int | None = None,
) -> RunningServer:
    """Start ``opendeploy server`` and return once /healthz answers (or raise, process stopped).

    ``port``: listen there instead of on a free port, e.g. to restart a server on the endpoint
    its agents were configured with (``srv.port``). Without it, a port that another process took
    between ``free_port`` and the server's bind (tests in parallel, other suites on the machine)
    is replaced by a new one, up to three times.
    """
    for attempt in range(1, 4):
        try:
            return _start_server(
                data_dir,
                database_url=database_url,
                region=region,
                extra_args=extra_args,
                env=env,
                timeout=timeout,
                port=port or free_port(),
            )
        except _PortTaken:
            if port is not None or attempt == 3:
                raise
    raise AssertionError("unreachable")


class _PortTaken(ServerStartError):
    """The server could not bind its port: another process listens there."""


def _start_server(
    data_dir: Path,
    *,
    database_url: str | None,
    region: str,
    extra_args: tuple[str, ...],
    env: Mapping[str, str] | None,
    timeout: float,
    port: int,
) -> RunningServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "opendeploy",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--region",
        region,
        *extra_args,
    ]
    if database_url is not None:
        args += ["--database-url", database_url]
    tls_cert = _option_value(extra_args, "--tls-cert")
    ca_bundle = None
    if tls_cert is not None:
        ca_bundle = Path(tls_cert)
    elif "--tls" in extra_args:
        ca_bundle = data_dir / "tls-cert.pem"  # created by the server on its first start
    scheme = "https" if ca_bundle is not None else "http"
    log_path = data_dir / "server.log"
    log_file = log_path.open("ab")
    log_start = log_file.tell()
    process = subprocess.Popen(
        args,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    server = RunningServer(
        process=process,
        endpoint=f"{scheme}://127.0.0.1:{port}",
        data_dir=data_dir,
        access_key_id="",
        secret_access_key="",
        region=region,
        credentials_path=data_dir / "credentials",
        config_path=data_dir / "config",
        log_path=log_path,
        ca_bundle=ca_bundle,
        _log_file=log_file,
    )
    try:
        _wait_healthy(process, port, timeout, tls=ca_bundle is not None)
        credentials = configparser.ConfigParser()
        credentials.read(server.credentials_path)
        server.access_key_id = credentials["default"]["aws_access_key_id"]
        server.secret_access_key = credentials["default"]["aws_secret_access_key"]
    except BaseException as exc:
        server.stop()
        if isinstance(exc, ServerStartError):
            with log_path.open("rb") as log:
                log.seek(log_start)
                this_start = log.read().decode(errors="replace")
            error = _PortTaken if "address already in use" in this_start else ServerStartError
            raise error(f"{exc}\n--- server.log ---\n{server.log_text()}") from None
        raise
    return server


def _option_value(args: tuple[str, ...], option: str) -> str | None:
    """The value of ``option`` in ``args`` (``--opt value`` or ``--opt=value``), if given."""
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _wait_healthy(
    process: subprocess.Popen[bytes], port: int, timeout: float, *, tls: bool = False
) -> None:
    deadline = time.monotonic() + timeout
    # Liveness only: the certificate may not exist yet when the first probe goes out (the
    # server creates it), so the probe does not verify it; clients do (``ca_bundle``).
    unverified = ssl._create_unverified_context() if tls else None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"opendeploy server exited with code {process.returncode}")
        try:
            conn: http.client.HTTPConnection
            if unverified is not None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=unverified)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        # Nothing to wait on but the socket: poll at a short, fixed interval.
        time.sleep(0.05)
    raise ServerStartError(f"opendeploy server did not answer /healthz within {timeout:.0f} s")


@contextmanager
def running_server(
    data_dir: Path,
    *,
    database_url: str | None = None,
    region: str = "us-east-1",
    extra_args: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[RunningServer]:
    """``start_server`` as a context manager that always stops the process."""
    server = start_server(
        data_dir,
        database_url=database_url,
        region=region,
        extra_args=extra_args,
        env=env,
        port=port,
    )
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_in_thread(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port in this process.

    Yields the endpoint URL once the socket listens; on exit asks uvicorn to finish and waits.
    Cheaper than a process when a test builds its own app (test handlers, an injected clock).
    """
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    # uvicorn sets `started` once its sockets listen; it offers no event to block on.
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerStartError(f"in-process uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
