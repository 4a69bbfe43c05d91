"""Bundles in an S3 bucket: AWS itself or any S3-compatible store (MinIO, Ceph, OpenDeploy's own).

The official agent streams ``GetObject`` to ``bundle.tar`` and compares the object's ETag with the
one in the deployment spec, quotes stripped (agent-behaviour §1.6). This source does the same and
more: the download goes to a temporary file that replaces ``dest_file`` only when it is complete and
verified, and for a single-part upload (an ETag of 32 hex digits) the MD5 of the bytes written must
equal the ETag, so a bundle damaged in transit is never unpacked. Multipart ETags
(``<md5 of part md5s>-<parts>``) and encrypted objects (SSE-KMS, SSE-C) have ETags that are not
the content's MD5; for those only the header is compared.

The S3 client gets its own endpoint, region, proxy and timeouts (:func:`s3_client`): users of the
official agent have one ``proxy_uri`` for everything, and asked for a separate one for S3.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import normalize_bundle_type

__all__ = ["S3Credentials", "S3Location", "S3Source", "parse_s3_location", "s3_client"]

_CHUNK = 1024 * 1024
_MD5_ETAG = re.compile(r"[0-9a-fA-F]{32}")
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NoSuchVersion", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
}
_S3_FORMAT = "not in the expected format of 's3://bucket/key'"


@dataclass(frozen=True)
class S3Credentials:
    """A static access key for S3 (the secret and session token stay out of ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def s3_client(
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    proxy: str | None = None,
    session: boto3.session.Session | None = None,
    profile: str | None = None,
    credentials: S3Credentials | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    max_attempts: int = 3,
) -> Any:
    """Build a boto3 S3 client for bundles.

    ``endpoint_url`` points at any S3-compatible store (botocore then addresses buckets
    path-style); ``proxy`` is used for S3 only, whatever ``HTTPS_PROXY`` says. Credentials come
    from ``credentials``, else ``session``, else ``profile``, else boto3's usual chain
    (environment, shared files, instance metadata). ``max_attempts`` counts the first try.

    With explicit ``credentials`` (what the agent passes) the client is reused: building one costs
    tens of milliseconds of CPU (botocore loads and parses its models), more than the rest of a
    small bundle's download, and boto3 clients are thread-safe. New credentials (a rotated key)
    make a new client.
    """
    if credentials is not None and session is None and profile is None:
        return _cached_client(
            endpoint_url,
            region,
            proxy,
            credentials,
            connect_timeout,
            read_timeout,
            max_attempts,
        )
    return _new_client(
        endpoint_url=endpoint_url,
        region=region,
        proxy=proxy,
        session=session,
        profile=profile,
        credentials=credentials,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_attempts=max_attempts,
    )


@functools.lru_cache(maxsize=8)
def _cached_client(
    endpoint_url: str | None,
    region: str,
    proxy: str | None,
    credentials: S3Credentials,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> Any:
    return _new_client(
        endpoint_url=endpoint_url,
        region=region,
        proxy=proxy,
        session=None,
        profile=None,
        credentials=credentials,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_attempts=max_attempts,
    )


def _new_client(
    *,
    endpoint_url: str | None,
    region: str,
    proxy: str | None,
    session: boto3.session.Session | None,
    profile: str | None,
    credentials: S3Credentials | None,
    connect_timeout: float,
    read_timeout: float,
    max_attempts: int,
) -> Any:
    if session is None:
        session = (
            boto3.session.Session(profile_name=profile) if profile else boto3.session.Session()
        )
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        proxies={"http": proxy, "https": proxy} if proxy else None,
    )
    keys: dict[str, str | None] = {}
    if credentials is not None:
        keys = {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
    return session.client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config, **keys
    )


@dataclass(frozen=True, kw_only=True)
class S3Location:
    """A parsed ``s3://bucket/key[?versionId=…&etag=…]`` location."""

    bucket: str
    key: str
    version: str | None = None
    etag: str | None = None


def parse_s3_location(location: str) -> S3Location:
    """Parse codedeploy-local's S3 form, ``s3://bucket/key[?versionId=…&etag=…]``.

    The key is taken literally up to the first ``?`` (as aws-cli reads ``s3://`` paths: no
    percent-decoding), so a key that itself holds ``?`` cannot be written this way. Any query
    parameter other than ``versionId`` and ``etag`` is refused, so a typo is not silently ignored.
    """
    rest = location[len("s3://") :] if location.lower().startswith("s3://") else None
    if rest is None:
        raise BundleError(f"s3 location {location} {_S3_FORMAT}")
    path, _, query = rest.partition("?")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise BundleError(f"s3 location {location} {_S3_FORMAT}")
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in ("versionId", "etag"):
            raise BundleError(
                f"s3 location {location}: unknown query parameter {name!r}; "
                "only versionId and etag are allowed"
            )
        params[name] = value
    return S3Location(
        bucket=bucket,
        key=key,
        version=params.get("versionId") or None,
        etag=params.get("etag") or None,
    )


class S3Source:
    """A bundle stored as one S3 object, optionally pinned to a version and an ETag.

    Build it with the endpoint settings (a client is made on first use), or hand it a ready
    ``client`` (for instance one made by :func:`s3_client`, shared between fetches).
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        bundle_type: str,
        *,
        version: str | None = None,
        etag: str | None = None,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        credentials: S3Credentials | None = None,
        profile: str | None = None,
        session: boto3.session.Session | None = None,
        proxy: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        client: Any = None,
    ) -> None:
        kind = normalize_bundle_type(bundle_type)
        if kind == "directory":
            raise BundleError(
                f"BundleType: {bundle_type} is not possible for an S3 object; use tar, tgz or zip"
            )
        if not bucket or not key:
            raise BundleError(f"S3 bundle needs a bucket and a key (got {bucket!r}, {key!r})")
        self.bucket = bucket
        self.key = key
        self._bundle_type = kind
        self.version = version
        self.etag = etag
        self.endpoint_url = endpoint_url
        self._client = client
        self._client_options: dict[str, Any] = {
            "endpoint_url": endpoint_url,
            "region": region,
            "proxy": proxy,
            "session": session,
            "profile": profile,
            "credentials": credentials,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_attempts": max_attempts,
        }

    @classmethod
    def from_location(cls, location: str, bundle_type: str, **options: Any) -> S3Source:
        """An S3Source for an ``s3://bucket/key[?versionId=…&etag=…]`` location."""
        loc = parse_s3_location(location)
        return cls(loc.bucket, loc.key, bundle_type, version=loc.version, etag=loc.etag, **options)

    @property
    def bundle_type(self) -> str:
        return self._bundle_type

    def __repr__(self) -> str:
        return (
            f"S3Source(bucket={self.bucket!r}, key={self.key!r}, bundle_type={self.bundle_type!r},"
            f" version={self.version!r}, etag={self.etag!r}, endpoint_url={self.endpoint_url!r})"
        )

    def revision_env(self) -> dict[str, str | None]:
        """The hook variables of an S3 revision; ``None`` means "unset it" (official agent)."""
        return {
            "BUNDLE_BUCKET": self.bucket,
            "BUNDLE_KEY": self.key,
            "BUNDLE_VERSION": self.version,
            "BUNDLE_ETAG": self.etag,
        }

    def fetch(self, dest_file: Path) -> None:
        """Stream the object to ``dest_file``, checking its ETag (and MD5 where it is one)."""
        client = self._get_client()
        args = {"Bucket": self.bucket, "Key": self.key}
        if self.version:
            args["VersionId"] = self.version
        with self._errors(client):
            response = client.get_object(**args)
        body = response["Body"]
        try:
            actual = _unquote(response.get("ETag", ""))
            if self.etag is not None and _unquote(self.etag) != actual:
                # The official agent's wording (agent-behaviour §1.6).
                raise BundleError(
                    f"Expected deployment artifact bundle etag {_unquote(self.etag)} "
                    f"but was actually {actual}"
                )
            encrypted = response.get("ServerSideEncryption") == "aws:kms" or bool(
                response.get("SSECustomerAlgorithm")
            )
            # Only a single-part, unencrypted object's ETag is the MD5 of its bytes.
            md5 = actual.lower() if _MD5_ETAG.fullmatch(actual) and not encrypted else None
            with self._errors(client):
                _stream_to(body, dest_file, md5=md5, name=self._name())
        finally:
            body.close()

    def _get_client(self) -> Any:
        if self._client is None:
            self._client = s3_client(**self._client_options)
        return self._client

    def _name(self) -> str:
        version = f" (version {self.version})" if self.version else ""
        return f"s3://{self.bucket}/{self.key}{version}"

    @contextlib.contextmanager
    def _errors(self, client: Any) -> Iterator[None]:
        """Translate botocore's errors into one BundleError that names endpoint and object."""
        endpoint = getattr(client.meta, "endpoint_url", self.endpoint_url)
        where = f"{self._name()} at {endpoint}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            message = error.get("Message") or code or status
            if code in _NOT_FOUND or status == "404":
                raise BundleError(f"{where} does not exist: {code or status} {message}") from exc
            if code in _DENIED or status == "403":
                raise BundleError(
                    f"access to {where} was refused ({code or status}: {message}); check the "
                    "credentials and that they may s3:GetObject (and s3:GetObjectVersion)"
                ) from exc
            raise BundleError(f"cannot download {where}: {code or status} {message}") from exc
        except NoCredentialsError as exc:
            raise BundleError(
                f"cannot download {where}: no AWS credentials were found for S3 "
                "(set a key, a profile, or the AWS_* environment variables)"
            ) from exc
        except BotoConnectionError as exc:
            # The official agent appends the same hint to connection failures.
            raise BundleError(
                f"cannot connect to the S3 endpoint {endpoint} to download {self._name()}: "
                f"{exc}. Try using s3 endpoint override."
            ) from exc
        except BotoCoreError as exc:
            raise BundleError(f"cannot download {where}: {exc}") from exc


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


def _stream_to(body: Any, dest_file: Path, *, md5: str | None, name: str) -> None:
    """Copy the response body to ``dest_file`` in chunks; replace it only if the MD5 matches.

    The bytes go to a temporary file beside ``dest_file`` that is renamed over it at the end, so
    a failed or damaged download leaves whatever was there before.
    """
    if dest_file.is_dir() and not dest_file.is_symlink():
        raise BundleError(f"cannot fetch bundle to {dest_file}: it is a directory")
    dest_file.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp = tempfile.mkstemp(dir=dest_file.parent, prefix=f".{dest_file.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if md5 is not None and digest.hexdigest() != md5:
            raise BundleError(
                f"{name}: the MD5 of the downloaded bytes is {digest.hexdigest()} but the "
                f"object's ETag is {md5}; the download is damaged (try again)"
            )
        os.replace(tmp, dest_file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
