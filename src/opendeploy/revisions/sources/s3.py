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
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from opendeploy.errors import BundleError
from opendeploy.revisions.archive import normalize_bundle_type

if TYPE_CHECKING:
    # boto3 (with s3transfer) costs ~0.5 s to import: the agent and `opendeploy local` load it
    # only when they fetch a bundle from S3, not on every start.
    import boto3

__all__ = ["S3Credentials", "S3Location", "S3Source", "parse_s3_location", "s3_client"]

_CHUNK = 1024 * 1024
#: The backoff between download attempts (see S3Source.fetch): 0.25 s doubling up to 4 s.
_RETRY_BASE = 0.25
_RETRY_CAP = 4.0

log = logging.getLogger("opendeploy.revisions.s3")
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
        import boto3.session

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
        retry_seconds: float = 0.0,
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
        self.retry_seconds = retry_seconds
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
        """Stream the object to ``dest_file``, checking its ETag (and MD5 where it is one).

        With ``retry_seconds``, a download that fails on the way (the store unreachable or
        restarting, the connection cut, a 5xx) is tried again with backoff for that long,
        resuming where it stopped (a ranged GET that must match the ETag first seen, else it
        starts over); refusals (403, 404, a wrong ETag) fail at once.

        The bytes go to a temporary file beside ``dest_file`` that is renamed over it at the
        end, so a failed or damaged download leaves whatever was there before.
        """
        client = self._get_client()
        if dest_file.is_dir() and not dest_file.is_symlink():
            raise BundleError(f"cannot fetch bundle to {dest_file}: it is a directory")
        dest_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=dest_file.parent, prefix=f".{dest_file.name}.", suffix=".part"
        )
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        try:
            with os.fdopen(fd, "wb") as out:
                progress = _Progress(out)
                while True:
                    try:
                        with self._errors(client):
                            self._get_into(client, progress)
                        break
                    except BundleError as exc:
                        attempt += 1
                        delay = min(_RETRY_CAP, _RETRY_BASE * 2 ** (attempt - 1))
                        cause = exc.__cause__
                        if cause is None or not _transient(cause):
                            raise
                        if time.monotonic() + delay > deadline:
                            raise
                        log.warning(
                            "%s (attempt %d, %d bytes so far); retrying in %.2f s",
                            exc,
                            attempt,
                            progress.written,
                            delay,
                        )
                        time.sleep(delay)
            md5 = progress.md5
            if md5 is not None and progress.digest.hexdigest() != md5:
                raise BundleError(
                    f"{self._name()}: the MD5 of the downloaded bytes is "
                    f"{progress.digest.hexdigest()} but the object's ETag is {md5}; the download "
                    "is damaged (try again)"
                )
            os.replace(tmp, dest_file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _get_into(self, client: Any, progress: _Progress) -> None:
        """One GET of the object (of the rest of it, after a first attempt) into ``progress``."""
        args = {"Bucket": self.bucket, "Key": self.key}
        if self.version:
            args["VersionId"] = self.version
        resuming = progress.written > 0 and progress.etag is not None
        if resuming:
            args["Range"] = f"bytes={progress.written}-"
            args["IfMatch"] = f'"{progress.etag}"'
        try:
            response = client.get_object(**args)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if resuming and status in (412, 416):
                progress.restart()  # the object changed, or the range is off: start over
            raise
        body = response["Body"]
        try:
            if resuming and not response.get("ContentRange"):
                progress.restart()  # the whole object came back, not the rest
            actual = _unquote(response.get("ETag", ""))
            if progress.etag is None:
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
                progress.md5 = (
                    actual.lower() if _MD5_ETAG.fullmatch(actual) and not encrypted else None
                )
                progress.etag = actual or None
            for chunk in body.iter_chunks(_CHUNK):
                progress.add(chunk)
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


class _Progress:
    """A download's bytes so far: the open temporary file, their MD5, the object's ETag."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0
        self.digest = hashlib.md5(usedforsecurity=False)
        self.etag: str | None = None
        self.md5: str | None = None

    def add(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.out.write(chunk)
        self.written += len(chunk)

    def restart(self) -> None:
        self.out.seek(0)
        self.out.truncate()
        self.written = 0
        self.digest = hashlib.md5(usedforsecurity=False)
        self.etag = None
        self.md5 = None


def _transient(exc: BaseException) -> bool:
    """Whether a failed download may succeed if tried again (not a refusal)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status in (408, 412, 416, 429)
    return isinstance(exc, BotoCoreError) and not isinstance(exc, NoCredentialsError)
