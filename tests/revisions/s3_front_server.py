"""The real server composition (CodeDeploy API, Command API, S3 front of the bundle store), served
in this process with uvicorn on a free loopback port, plus boto3/aws-cli helpers for it."""

from __future__ import annotations

import configparser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from opendeploy.revisions.blobstore import LocalBlobStore
from opendeploy.server import BUNDLES_DIR, create_server
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store
from opendeploy.testing.server import serve_in_thread

REGION = "us-east-1"


@dataclass
class FrontServer:
    endpoint: str
    store: Store
    blobs: LocalBlobStore
    access_key_id: str
    secret_access_key: str
    data_dir: Path

    def s3(self, *, key: tuple[str, str] | None = None, **config: Any) -> Any:
        """A boto3 S3 client for this server (admin key unless ``key`` is given)."""
        key_id, secret = key or (self.access_key_id, self.secret_access_key)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, **config),
        )

    def codedeploy(self) -> Any:
        return boto3.session.Session().client(
            "codedeploy",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def aws_env(self, home: Path) -> dict[str, str]:
        """Environment for aws-cli / opendeploy: shared files with the admin key, the endpoint."""
        credentials = configparser.ConfigParser()
        credentials["default"] = {
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }
        config = configparser.ConfigParser()
        config["default"] = {"region": REGION}
        home.mkdir(parents=True, exist_ok=True)
        with (home / "credentials").open("w") as f:
            credentials.write(f)
        with (home / "config").open("w") as f:
            config.write(f)
        return {
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": REGION,
        }


@contextmanager
def front_server(data_dir: Path, database_url: str, **settings: Any) -> Iterator[FrontServer]:
    """The real ``opendeploy server`` composition, served in this process (``settings``: more
    :class:`ServerSettings` fields)."""
    server = create_server(
        ServerSettings(data_dir=data_dir, database_url=database_url, region=REGION, **settings)
    )
    with serve_in_thread(server.app) as endpoint:
        yield FrontServer(
            endpoint,
            server.store,
            LocalBlobStore(data_dir / BUNDLES_DIR),
            server.credentials.access_key_id,
            server.credentials.secret_access_key,
            data_dir,
        )


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def serve_tls(app: Any, cert: Path, key: Path, *, timeout: float = 10.0) -> Iterator[str]:
    """Like ``serve_in_thread``, over HTTPS (uvicorn offers no start event to wait on)."""
    import threading
    import time

    import uvicorn

    from opendeploy.testing.server import free_port

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
