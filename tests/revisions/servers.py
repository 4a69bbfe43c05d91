"""Real servers for the bundle-source tests: moto's S3 server and ``git daemon``, on loopback.

Each is started as its own process on a free port, waited for by polling the port (bounded), and
killed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from opendeploy.revisions.sources import S3Credentials

CREDENTIALS = S3Credentials("testing", "testing")
MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Return once something accepts connections on ``port``; fail if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # polling a port: there is no event to wait for
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextlib.contextmanager
def _process(args: list[str], port: int, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **kwargs,
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run ``moto_server`` on a free loopback port; yield its endpoint URL."""
    port = free_port()
    env = dict(os.environ)
    env["S3_UPLOAD_PART_MIN_SIZE"] = str(256 * 1024)  # small multipart uploads keep tests fast
    with _process([str(MOTO_SERVER), "-p", str(port), "-H", "127.0.0.1"], port, env=env):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def git_daemon(base_path: Path) -> Iterator[str]:
    """Serve every repository under ``base_path`` with ``git daemon``; yield ``git://…:port``."""
    port = free_port()
    args = ["git", "daemon", f"--base-path={base_path}", "--export-all", "--reuseaddr"]
    args += [f"--port={port}", "--listen=127.0.0.1"]
    with _process(args, port):
        yield f"git://127.0.0.1:{port}"


def s3(endpoint: str, credentials: S3Credentials = CREDENTIALS) -> Any:
    """A plain boto3 client for setting up buckets and objects."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(retries={"max_attempts": 1}),
    )
