"""Which bundle store a server uses: its data directory (the default) or an S3 bucket.

``--bundle-store s3://BUCKET[/PREFIX]`` puts pushed bundles in an S3-compatible bucket, which
every replica of one database reads alike (a bundle pushed to one is downloaded through any
other). The client has boto3's standard configuration: credentials from the usual chain, the
endpoint from ``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``), the region from ``AWS_REGION``
or ``AWS_DEFAULT_REGION`` (else the server's). Agents still download through the server's S3
front, which reads the bucket: they need neither the store's address nor its credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.errors import BundleError
from opendeploy.revisions.blobstore import BlobStore, LocalBlobStore, S3BlobStore
from opendeploy.revisions.sources.s3 import s3_client

#: The content-addressed bundle store under the data directory (the default).
BUNDLES_DIR = "bundles"
#: Attempts (the first included) of each call to the store: a slow or restarting store is
#: retried by botocore before a push or a download fails.
STORE_ATTEMPTS = 4


class BundleStoreError(BundleError, ValueError):
    """``--bundle-store`` is malformed, or the store cannot be reached when the server starts."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_bundle_store(value: str) -> S3Location:
    """``s3://BUCKET[/PREFIX]`` as a location; :class:`BundleStoreError` for anything else."""
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise BundleStoreError(
            f"{value!r}: expected s3://BUCKET or s3://BUCKET/PREFIX (the data directory is the"
            " default store)"
        )
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return S3Location(parts.netloc, prefix)


def open_bundle_store(value: str | None, data_dir: Path, region: str) -> BlobStore:
    """The store ``--bundle-store`` names (None: ``<data_dir>/bundles``), checked reachable."""
    if value is None:
        return LocalBlobStore(data_dir / BUNDLES_DIR)
    location = parse_bundle_store(value)
    client = s3_client(
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or region,
        connect_timeout=5.0,
        max_attempts=STORE_ATTEMPTS,
    )
    try:
        client.head_bucket(Bucket=location.bucket)
    except (ClientError, BotoCoreError) as exc:
        endpoint = client.meta.endpoint_url
        raise BundleStoreError(
            f"the bundle store {location} at {endpoint} cannot be used: {exc} (the endpoint"
            " comes from AWS_ENDPOINT_URL_S3, the credentials from boto3's usual chain; the"
            " bucket must exist)"
        ) from exc
    return S3BlobStore(location.bucket, location.prefix, client=client)
