"""Virtual-hosted-style S3 requests (``<bucket>.<domain>``) under ``--s3-domain``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from opendeploy.api.s3.virtual_hosts import bucket_from_host, normalize_domain
from tests.revisions.s3_front_server import REGION, FrontServer, front_server

DOMAIN = "s3.opendeploy.test"


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("bundles.s3.opendeploy.test", "bundles"),
        ("bundles.s3.opendeploy.test:8443", "bundles"),
        ("Bundles.S3.OpenDeploy.Test.", "bundles"),
        ("bundles.s3.opendeploy.test.:8443", "bundles"),
        ("my.dotted.bucket.s3.opendeploy.test", "my.dotted.bucket"),
        ("s3.opendeploy.test", None),  # the domain itself: path-style
        ("s3.opendeploy.test:8443", None),
        ("xs3.opendeploy.test", None),
        ("bundles.other.test", None),
        ("127.0.0.1:8443", None),
        ("[::1]:8443", None),
        ("", None),
    ],
)
def test_bucket_from_host(host: str, bucket: str | None) -> None:
    assert bucket_from_host(host, [normalize_domain(" S3.OpenDeploy.Test. ")]) == bucket


@pytest.fixture
def front(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The server with ``--s3-domain s3.opendeploy.test``; names under it resolve to loopback
    in this process (as a wildcard DNS record would make them)."""
    real = socket.getaddrinfo

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with front_server(tmp_path / "data", database_url, s3_domains=(DOMAIN,)) as server:
        yield server


def _virtual(front: FrontServer) -> Any:
    port = urlsplit(front.endpoint).port
    return boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{port}",
        region_name=REGION,
        aws_access_key_id=front.access_key_id,
        aws_secret_access_key=front.secret_access_key,
        config=Config(s3={"addressing_style": "virtual"}),
    )


def test_virtual_hosted_requests_reach_the_bucket(front: FrontServer) -> None:
    s3 = _virtual(front)
    sent: list[str] = []
    s3.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    put = s3.put_object(Bucket="bundles", Key="app/v1.zip", Body=b"bundle bytes")
    assert sent[-1].startswith(f"http://bundles.{DOMAIN}:")  # virtual-hosted, really
    assert urlsplit(sent[-1]).path == "/app/v1.zip"
    got = s3.get_object(Bucket="bundles", Key="app/v1.zip")
    assert got["Body"].read() == b"bundle bytes" and got["ETag"] == put["ETag"]
    assert s3.head_object(Bucket="bundles", Key="app/v1.zip")["ContentLength"] == 12
    listed = s3.list_objects_v2(Bucket="bundles")
    assert [o["Key"] for o in listed["Contents"]] == ["app/v1.zip"]
    # Path-style goes on working beside it, on the same objects.
    assert front.s3().get_object(Bucket="bundles", Key="app/v1.zip")["Body"].read() == (
        b"bundle bytes"
    )
    # The signature still covers what the client signed: a wrong secret is refused.
    port = urlsplit(front.endpoint).port
    forged = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://{DOMAIN}:{port}",
        region_name=REGION,
        aws_access_key_id=front.access_key_id,
        aws_secret_access_key=front.secret_access_key + "x",
        config=Config(s3={"addressing_style": "virtual"}),
    )
    with pytest.raises(ClientError) as refused:
        forged.get_object(Bucket="bundles", Key="app/v1.zip")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_a_buckets_host_is_the_s3_fronts_whatever_the_path(front: FrontServer) -> None:
    # POST / signed for S3 on a bucket's name (DeleteObjects) is S3's, not the CodeDeploy API's:
    # the front answers in S3's terms that it does not do it.
    with pytest.raises(ClientError) as unsupported:
        _virtual(front).delete_objects(Bucket="bundles", Delete={"Objects": [{"Key": "a"}]})
    assert unsupported.value.response["Error"]["Code"] == "NotImplemented"
    # Unsigned, GET / on the server's own name sends a browser to the dashboard; on a bucket's
    # name it is no page of the dashboard's.
    port = urlsplit(front.endpoint).port
    assert httpx.get(f"http://{DOMAIN}:{port}/").status_code == 307
    assert httpx.get(f"http://bundles.{DOMAIN}:{port}/").status_code == 404
