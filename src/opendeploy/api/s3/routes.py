"""The S3 wire: path-style requests -> SigV4 -> :class:`BundleBuckets` -> S3 responses.

Requests reach these routes when they are signed for service ``s3`` (header or presigned), so
they share the CodeDeploy API's host and port without taking its paths (``POST /`` with
``X-Amz-Target`` is the CodeDeploy and Command APIs) or anyone else's (the dashboard, other
OpenDeploy routes signed for ``codedeploy``).

Operations: ListBuckets (``GET /``), CreateBucket, HeadBucket, GetBucketLocation,
GetBucketVersioning (always ``Enabled``), ListObjectsV2 and ListObjects (prefix, delimiter,
paging), PutObject, GetObject (``Range``, ``versionId``, ``If-Match``/``If-None-Match``),
HeadObject, DeleteObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
AbortMultipartUpload. Anything else answers ``NotImplemented`` (501).

Permissions: admin keys may do everything; instance keys may read (GetObject, HeadObject,
HeadBucket, GetBucketLocation), which is what an agent needs to download its bundle.

Upload bodies stream into a temporary file in fixed memory; ``aws-chunked`` bodies are decoded
on the way (chunk signatures and trailing checksums checked). A body signed by its hex SHA-256
can only be authenticated once it has been read, so it is spooled first and verified from the
file (mapped, not loaded); every other request is authenticated before its body is read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import parse_qsl, quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from opendeploy.api import sigv4
from opendeploy.api.s3 import chunked
from opendeploy.api.s3.body import KNOWN_CHECKSUMS, BodySpool
from opendeploy.api.s3.errors import (
    AccessDeniedError,
    IncompleteBodyError,
    InvalidArgumentError,
    InvalidRangeError,
    InvalidRequestError,
    MissingContentLengthError,
    NotImplementedS3Error,
    PreconditionFailedError,
    S3Error,
    ServiceUnavailableError,
    SignatureDoesNotMatchError,
    from_auth_error,
)
from opendeploy.api.s3.objects import BundleBuckets
from opendeploy.api.s3.xml import Node, document, error_document, iso_time
from opendeploy.api.s3.xml import parse_complete_multipart as _parse_complete
from opendeploy.errors import ServiceError
from opendeploy.revisions.blobstore import BlobStoreUnavailableError
from opendeploy.store.bundle_objects import ObjectRecord

if TYPE_CHECKING:
    from opendeploy.revisions.blobstore import BlobStore
    from opendeploy.settings import ServerSettings
    from opendeploy.store.database import Store

log = logging.getLogger("opendeploy.api.s3")

#: S3's limit for one PutObject / UploadPart body.
MAX_UPLOAD = 5 * 1024**3
#: Bodies of the other requests (CompleteMultipartUpload lists up to 10,000 parts).
MAX_SMALL_BODY = 2 * 1024 * 1024
_WRITE_BATCH = 1024 * 1024
_READ_CHUNK = 256 * 1024
_READ_ONLY = frozenset({"GetObject", "HeadObject", "HeadBucket", "GetBucketLocation"})
_NOT_IMPLEMENTED_QUERY = frozenset(
    {"acl", "tagging", "policy", "cors", "lifecycle", "uploads", "delete", "restore", "select"}
)


def s3_routes(
    *,
    store: Store,
    blobs: BlobStore,
    settings: ServerSettings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseRoute]:
    """The routes of the S3 front of the bundle store, for ``create_app(extra_routes=…)``."""
    front = S3Front(
        buckets=BundleBuckets(store.bundle_objects, blobs, clock=clock),
        lookup_secret=store.access_keys.get_secret,
        key_kind=store.bundle_objects.access_key_kind,
        spool_dir=settings.data_dir / "s3-uploads",
        region=settings.region,
        clock=clock,
    )
    methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
    return [
        _S3Route("/", front.handle, methods=["GET", "HEAD"]),
        _S3Route("/{bucket}", front.handle, methods=methods),
        _S3Route("/{bucket}/{key:path}", front.handle, methods=methods),
    ]


class _S3Route(Route):
    """A route that only matches requests signed (header or query) for service ``s3``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or not _signed_for_s3(scope):
            return Match.NONE, {}
        return super().matches(scope)


def _signed_for_s3(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return b"/s3/aws4_request" in value
    query = scope.get("query_string", b"")
    return b"X-Amz-Credential=" in query and (
        b"%2Fs3%2Faws4_request" in query or b"/s3/aws4_request" in query
    )


@dataclass(frozen=True)
class _Call:
    """One request, resolved to an S3 operation."""

    request: Request
    operation: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    request_id: str


class S3Front:
    """Serves the S3 operations (see the module docstring)."""

    def __init__(
        self,
        *,
        buckets: BundleBuckets,
        lookup_secret: sigv4.SecretLookup,
        key_kind: Callable[[str], str | None],
        spool_dir: Path,
        region: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.buckets = buckets
        self._lookup_secret = lookup_secret
        self._key_kind = key_kind
        self._spool_dir = spool_dir
        self._region = region
        self._clock = clock

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16].upper()
        operation, principal = "-", "-"
        try:
            call = _resolve(request, request_id)
            operation = call.operation
            verified, response = await self._serve(call)
            principal = verified
        except S3Error as exc:
            response = self._error(request, exc, request_id)
        except ServiceError as exc:  # SigV4 failures
            response = self._error(request, from_auth_error(exc), request_id)
        except BlobStoreUnavailableError as exc:
            log.warning(
                "bundle store unavailable request_id=%s op=%s: %s", request_id, operation, exc
            )
            response = self._error(request, ServiceUnavailableError(str(exc)), request_id)
        except Exception as exc:
            log.error("fault request_id=%s op=%s", request_id, operation, exc_info=exc)
            error = S3Error(f"We encountered an internal error. Please try again. ({request_id})")
            response = self._error(request, error, request_id)
        response.headers["x-amz-request-id"] = request_id
        response.headers["x-amz-id-2"] = request_id
        if response.status_code >= 400 and _has_body(request):
            # Maybe refused before its body was read (an upload is verified first): the
            # connection cannot carry another request (a client that sent "Expect:
            # 100-continue" never sends that body, one that did not is still sending it).
            response.headers["Connection"] = "close"
        log.info(
            "request op=%s status=%d ms=%.1f request_id=%s principal=%s protocol=s3",
            operation,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
            principal,
        )
        return response

    def _error(self, request: Request, exc: S3Error, request_id: str) -> Response:
        headers = {"Content-Type": "application/xml"}
        if exc.details.get("DeleteMarker") == "true":
            headers["x-amz-delete-marker"] = "true"
            if "VersionId" in exc.details:
                headers["x-amz-version-id"] = exc.details["VersionId"]
        if request.method == "HEAD":  # S3 answers HEAD errors with the status alone
            return Response(b"", status_code=exc.status, headers=headers)
        body = error_document(exc.code, exc.message, request_id, exc.details)
        return Response(body, status_code=exc.status, headers=headers)

    # -- authentication ----------------------------------------------------------------------

    def _verify(
        self, call: _Call, body: bytes, body_sha256: str | None = None
    ) -> sigv4.VerifiedRequest:
        signed = sigv4.SignedRequest.from_asgi(call.request.scope, body)
        verified = sigv4.verify(
            signed,
            self._lookup_secret,
            now=self._clock(),
            allow_unsigned_payload=True,
            allow_streaming_payload=True,
            normalize_path=False,
            body_sha256=body_sha256,
        )
        if verified.service != "s3":
            raise SignatureDoesNotMatchError(
                f"Credential should be scoped to correct service: 's3', not '{verified.service}'."
            )
        kind = self._key_kind(verified.access_key_id)
        if kind != "admin" and call.operation not in _READ_ONLY:
            raise AccessDeniedError(
                f"Access Denied: {call.operation} needs an admin key; "
                f"{verified.access_key_id} is an {kind or 'unknown'} key."
            )
        return verified

    # -- dispatch ----------------------------------------------------------------------------

    async def _serve(self, call: _Call) -> tuple[str, Response]:
        if call.operation in ("PutObject", "UploadPart"):
            return await self._upload(call)
        body = await _small_body(call.request)
        verified = await run_in_threadpool(self._verify, call, body)
        if call.operation in ("GetObject", "HeadObject"):
            return verified.access_key_id, await self._get(call)
        response = await run_in_threadpool(self._simple, call, body)
        return verified.access_key_id, response

    def _simple(self, call: _Call, body: bytes) -> Response:
        b = self.buckets
        if call.operation == "ListBuckets":
            return _xml(
                document(
                    "ListAllMyBucketsResult",
                    [
                        ("Owner", [("ID", "opendeploy"), ("DisplayName", "opendeploy")]),
                        (
                            "Buckets",
                            [
                                ("Bucket", [("Name", name), ("CreationDate", iso_time(created))])
                                for name, created in b.buckets()
                            ],
                        ),
                    ],
                )
            )
        if call.operation == "CreateBucket":
            b.create_bucket(call.bucket)
            return Response(b"", headers={"Location": f"/{call.bucket}"})
        if call.operation == "HeadBucket":
            b.head_bucket(call.bucket)
            return Response(b"", headers={"x-amz-bucket-region": self._region})
        if call.operation == "GetBucketLocation":
            b.head_bucket(call.bucket)
            region = "" if self._region == "us-east-1" else self._region
            return _xml(document("LocationConstraint", region))
        if call.operation == "GetBucketVersioning":
            b.head_bucket(call.bucket)
            return _xml(document("VersioningConfiguration", [("Status", "Enabled")]))
        if call.operation in ("ListObjectsV2", "ListObjects"):
            return self._list(call)
        if call.operation == "DeleteObject":
            result = b.delete_object(call.bucket, call.key, call.query.get("versionId"))
            headers = {}
            if result.version_id:
                headers["x-amz-version-id"] = result.version_id
            if result.delete_marker:
                headers["x-amz-delete-marker"] = "true"
            return Response(b"", status_code=204, headers=headers)
        if call.operation == "CreateMultipartUpload":
            upload_id = b.create_upload(
                call.bucket, call.key, content_type=call.headers.get("content-type")
            )
            return _xml(
                document(
                    "InitiateMultipartUploadResult",
                    [("Bucket", call.bucket), ("Key", call.key), ("UploadId", upload_id)],
                )
            )
        if call.operation == "CompleteMultipartUpload":
            parts = _parse_complete(body)
            record = b.complete_upload(call.bucket, call.key, call.query["uploadId"], parts)
            return _xml(
                document(
                    "CompleteMultipartUploadResult",
                    [
                        ("Location", f"/{call.bucket}/{quote(call.key)}"),
                        ("Bucket", call.bucket),
                        ("Key", call.key),
                        ("ETag", f'"{record.etag}"'),
                    ],
                ),
                headers={"x-amz-version-id": record.version_id},
            )
        if call.operation == "AbortMultipartUpload":
            b.abort_upload(call.bucket, call.key, call.query["uploadId"])
            return Response(b"", status_code=204)
        raise NotImplementedS3Error(
            f"{call.operation} is not implemented by OpenDeploy's bundle store, which answers "
            "only the S3 subset that bundle uploads and downloads use."
        )

    def _list(self, call: _Call) -> Response:
        q = call.query
        v2 = call.operation == "ListObjectsV2"
        max_keys = _int_param(q, "max-keys", 1000, 0, 1000)
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        url = q.get("encoding-type") == "url"
        if v2:
            token = q.get("continuation-token")
            after = _decode_token(token) if token else q.get("start-after", "")
        else:
            after = q.get("marker", "")
        entries, truncated = self.buckets.list_objects(
            call.bucket, prefix=prefix, after=after, max_keys=max_keys, delimiter=delimiter
        )

        def enc(text: str) -> str:
            return quote(text, safe="/") if url else text

        children: list[Node] = [("Name", call.bucket), ("Prefix", enc(prefix))]
        if v2:
            children.append(("KeyCount", str(len(entries))))
            if "continuation-token" in q:
                children.append(("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                children.append(("StartAfter", enc(q["start-after"])))
        else:
            children.append(("Marker", enc(after)))
        children.append(("MaxKeys", str(max_keys)))
        if delimiter:
            children.append(("Delimiter", enc(delimiter)))
        if url:
            children.append(("EncodingType", "url"))
        children.append(("IsTruncated", "true" if truncated else "false"))
        if truncated and entries:
            last = entries[-1]
            last_name = last if isinstance(last, str) else last.key
            if v2:
                children.append(("NextContinuationToken", _encode_token(last_name)))
            else:
                children.append(("NextMarker", enc(last_name)))
        for entry in entries:
            if isinstance(entry, str):
                children.append(("CommonPrefixes", [("Prefix", enc(entry))]))
            else:
                children.append(
                    (
                        "Contents",
                        [
                            ("Key", enc(entry.key)),
                            ("LastModified", iso_time(entry.created_at)),
                            ("ETag", f'"{entry.etag}"'),
                            ("Size", str(entry.size)),
                            ("StorageClass", "STANDARD"),
                        ],
                    )
                )
        return _xml(document("ListBucketResult", children))

    # -- downloads ---------------------------------------------------------------------------

    async def _get(self, call: _Call) -> Response:
        record = await run_in_threadpool(
            self.buckets.get_object, call.bucket, call.key, call.query.get("versionId")
        )
        headers = _object_headers(record)
        etag = headers["ETag"]
        if_match = call.headers.get("if-match")
        if if_match is not None and etag not in _etags(if_match) and if_match.strip() != "*":
            raise PreconditionFailedError(
                "At least one of the pre-conditions you specified did not hold: If-Match "
                f"{if_match} against ETag {etag}.",
                Condition="If-Match",
            )
        if_none = call.headers.get("if-none-match")
        if if_none is not None and (etag in _etags(if_none) or if_none.strip() == "*"):
            return Response(b"", status_code=304, headers={"ETag": etag})
        start, end = 0, record.size - 1
        status = 200
        range_header = call.headers.get("range")
        if range_header and call.query.get("partNumber") is None:
            parsed = _parse_range(range_header, record.size)
            if parsed is not None:
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{record.size}"
        length = max(end - start + 1, 0)
        headers["Content-Length"] = str(length)
        if call.operation == "HeadObject":
            return Response(b"", status_code=status, headers=headers)
        stream = await run_in_threadpool(self.buckets.open, record)
        return StreamingResponse(
            _read_range(stream, start, length), status_code=status, headers=headers
        )

    # -- uploads -----------------------------------------------------------------------------

    async def _upload(self, call: _Call) -> tuple[str, Response]:
        headers = call.headers
        claimed = headers.get("x-amz-content-sha256")
        encodings = [e.strip() for e in headers.get("content-encoding", "").split(",")]
        is_chunked = "aws-chunked" in encodings or (claimed or "") in chunked.MODES
        if "content-length" not in headers and "transfer-encoding" not in headers:
            raise MissingContentLengthError("You must provide the Content-Length HTTP header.")
        hex_signed = (
            claimed is not None
            and claimed not in sigv4.STREAMING_PAYLOADS
            and (claimed != sigv4.UNSIGNED_PAYLOAD)
        )
        # Verified before a byte of the body is read (a signed hex hash stands for the body until
        # the body is checked against it): a forged upload costs its headers, not a spool file.
        verified = await run_in_threadpool(self._verify, call, b"", claimed if hex_signed else None)
        decoder: chunked.AwsChunkedDecoder | None = None
        if is_chunked:
            decoder = _decoder(claimed, verified)
        spool = await run_in_threadpool(BodySpool, self._spool_dir, max_size=MAX_UPLOAD)
        try:
            await _receive(call.request, spool, decoder)
            trailers = decoder.finish() if decoder is not None else {}
            verified = await run_in_threadpool(
                self._check_upload, call, spool, trailers, verified, claimed if hex_signed else None
            )
            if call.operation == "PutObject":
                record = await run_in_threadpool(
                    self.buckets.put_object,
                    call.bucket,
                    call.key,
                    spool,
                    content_type=headers.get("content-type"),
                )
                out = {"ETag": f'"{record.etag}"', "x-amz-version-id": record.version_id}
            else:
                part_number = _int_param(call.query, "partNumber", 0, 1, 10_000)
                etag = await run_in_threadpool(
                    self.buckets.upload_part,
                    call.bucket,
                    call.key,
                    call.query["uploadId"],
                    part_number,
                    spool,
                )
                out = {"ETag": f'"{etag}"'}
            for name, value in _checksum_values(headers, trailers).items():
                out[name] = value
        finally:
            await run_in_threadpool(spool.close)
        return verified.access_key_id, Response(b"", headers=out)

    def _check_upload(
        self,
        call: _Call,
        spool: BodySpool,
        trailers: dict[str, str],
        verified: sigv4.VerifiedRequest,
        hex_claim: str | None,
    ) -> sigv4.VerifiedRequest:
        headers = call.headers
        if hex_claim is not None:
            spool.check_content_sha256(hex_claim)
        declared = headers.get("x-amz-decoded-content-length")
        if declared is not None and declared.isdigit() and int(declared) != spool.size:
            raise IncompleteBodyError(
                f"You did not provide the number of bytes specified by "
                f"x-amz-decoded-content-length: {declared} declared, {spool.size} received."
            )
        spool.check_content_md5(headers.get("content-md5"))
        spool.check_checksums(_checksum_values(headers, trailers))
        return verified


def _resolve(request: Request, request_id: str) -> _Call:
    """Name the S3 operation a request is (path-style addressing)."""
    bucket = request.path_params.get("bucket", "")
    key = request.path_params.get("key", "")
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    headers = {k.lower(): v for k, v in request.headers.items()}
    method = request.method
    operation = "Unsupported"
    not_implemented = _NOT_IMPLEMENTED_QUERY & query.keys()
    if not bucket:
        operation = "ListBuckets"
    elif not key:
        if method == "PUT" and not query:
            operation = "CreateBucket"
        elif method == "HEAD":
            operation = "HeadBucket"
        elif method == "GET" and "location" in query:
            operation = "GetBucketLocation"
        elif method == "GET" and "versioning" in query:
            operation = "GetBucketVersioning"
        elif method == "GET" and not not_implemented:
            operation = "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    elif method == "PUT":
        if "uploadId" in query and "partNumber" in query:
            operation = "UploadPart"
        elif (
            not not_implemented
            and "x-amz-copy-source" not in headers
            and not query.keys() - {"versionId"}
        ):
            operation = "PutObject"
    elif method in ("GET", "HEAD") and not not_implemented and "uploadId" not in query:
        operation = "GetObject" if method == "GET" else "HeadObject"
    elif method == "DELETE":
        operation = "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    elif method == "POST":
        if "uploads" in query:
            operation = "CreateMultipartUpload"
        elif "uploadId" in query:
            operation = "CompleteMultipartUpload"
    return _Call(request, operation, bucket, key, query, headers, request_id)


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def _small_body(request: Request) -> bytes:
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_SMALL_BODY:
            raise InvalidRequestError(
                f"The request body is larger than {MAX_SMALL_BODY} bytes, the limit for this "
                "operation."
            )
    return bytes(body)


async def _receive(
    request: Request, spool: BodySpool, decoder: chunked.AwsChunkedDecoder | None
) -> None:
    """Stream the request body into ``spool`` (decoding aws-chunked), writing in batches."""
    batch = bytearray()
    async for piece in request.stream():
        batch += decoder.feed(piece) if decoder is not None else piece
        if len(batch) >= _WRITE_BATCH:
            await run_in_threadpool(spool.write, bytes(batch))
            batch.clear()
    if batch:
        await run_in_threadpool(spool.write, bytes(batch))


def _decoder(
    claimed: str | None, verified: sigv4.VerifiedRequest | None
) -> chunked.AwsChunkedDecoder:
    if claimed not in chunked.MODES:
        raise InvalidRequestError(
            f"Content-Encoding aws-chunked needs x-amz-content-sha256 to be one of "
            f"{', '.join(sorted(chunked.MODES))}, not {claimed!r}."
        )
    assert claimed is not None and verified is not None
    signing = chunked.ChunkSigning(
        signing_key=verified.signing_key,
        timestamp=verified.signed_at.strftime("%Y%m%dT%H%M%SZ"),
        scope=f"{verified.date}/{verified.region}/{verified.service}/aws4_request",
        seed_signature=verified.signature,
    )
    return chunked.AwsChunkedDecoder(claimed, signing)


def _checksum_values(headers: dict[str, str], trailers: dict[str, str]) -> dict[str, str]:
    values = {
        name: value
        for name, value in headers.items()
        if name.startswith("x-amz-checksum-")
        and name.removeprefix("x-amz-checksum-") in KNOWN_CHECKSUMS
    }
    values.update((k, v) for k, v in trailers.items() if k.startswith("x-amz-checksum-"))
    return values


def _object_headers(record: ObjectRecord) -> dict[str, str]:
    return {
        "ETag": f'"{record.etag}"',
        "Content-Type": record.content_type,
        "Last-Modified": format_datetime(record.created_at.astimezone(UTC), usegmt=True),
        "x-amz-version-id": record.version_id,
        "Accept-Ranges": "bytes",
    }


def _etags(header: str) -> set[str]:
    return {f'"{tag.strip().strip(chr(34))}"' for tag in header.split(",")}


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range; None to serve the whole object."""
    unit, _, spec = header.strip().partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # S3 ignores what it does not support and sends the whole object
    first, sep, last = spec.strip().partition("-")
    if not sep:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0:
                raise InvalidRangeError(
                    "The requested range is not satisfiable", RangeRequested=header
                )
            return max(size - suffix, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or (last and end < start):
        raise InvalidRangeError(
            "The requested range is not satisfiable",
            RangeRequested=header,
            ActualObjectSize=str(size),
        )
    return start, min(end, size - 1)


async def _read_range(stream: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        if start:
            await run_in_threadpool(_skip, stream, start)
        remaining = length
        while remaining > 0:
            data = await run_in_threadpool(stream.read, min(_READ_CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await run_in_threadpool(stream.close)


def _skip(stream: BinaryIO, count: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if stream.seekable():
            stream.seek(count)
            return
    while count > 0:
        data = stream.read(min(_READ_CHUNK, count))
        if not data:
            return
        count -= len(data)


def _xml(body: bytes, *, headers: dict[str, str] | None = None) -> Response:
    return Response(body, media_type="application/xml", headers=headers)


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        if default < low:
            raise InvalidArgumentError(f"{name} is required.", ArgumentName=name)
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise InvalidArgumentError(
            f"{name} must be an integer from {low} to {high}: got {text!r}.",
            ArgumentName=name,
            ArgumentValue=text,
        )
    return int(text)


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(unquote(token).encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidArgumentError(
            f"The continuation token provided is incorrect: {token!r}.",
            ArgumentName="continuation-token",
        ) from None


__all__ = ["S3Front", "s3_routes"]
