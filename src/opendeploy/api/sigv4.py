"""AWS Signature Version 4 verification: header auth and presigned (query-string) auth.

Pure functions: the caller hands in the request as received on the wire (raw path and query, the
headers, the body), a way to look up a secret by access key id, and the current time; the result
is the verified identity or one of AWS's auth errors (``MissingAuthenticationTokenException``,
``IncompleteSignatureException``, ``InvalidSignatureException``, ``UnrecognizedClientException``).

The canonical request is rebuilt exactly as botocore's ``SigV4Auth`` builds it (and as the SigV4
specification describes it): method, URI path (dot segments and repeated slashes removed, then
URI-encoded once more, except for S3 which signs its path as sent), sorted query pairs, the signed
headers lower-cased with values trimmed and inner whitespace collapsed, the signed header names,
and the payload hash (``x-amz-content-sha256`` when the client sent it, else SHA-256 of the body).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

from opendeploy.service_errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: The streaming payload markers (aws-chunked bodies, S3 only); the chunk decoder verifies chunks.
STREAMING_PAYLOADS = frozenset(
    {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
)
#: AWS refuses requests whose signing time is further than this from the server's clock.
MAX_CLOCK_SKEW = timedelta(minutes=15)
#: The longest validity a presigned URL may claim (7 days), as AWS enforces.
MAX_PRESIGN_EXPIRES = 604800
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details."
)

#: Access key id -> secret access key, or None when the key is unknown.
SecretLookup = Callable[[str], str | None]


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request exactly as it arrived: the path and query still percent-encoded."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body: bytes

    def header_map(self) -> dict[str, str]:
        """Lower-cased names; repeated headers joined with ',', values trimmed and collapsed."""
        return _header_map(self.headers)

    @classmethod
    def from_asgi(cls, scope: Mapping[str, Any], body: bytes) -> SignedRequest:
        """The request an ASGI ``scope`` describes, with the path as the client sent it (the
        signature covers the percent-encoded path, which ``scope["path"]`` has decoded)."""
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        return cls(
            method=scope["method"],
            raw_path=raw_path.decode("latin-1"),
            raw_query=scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body=body,
        )


@dataclass(frozen=True)
class VerifiedRequest:
    """The identity SigV4 proved, and what a streaming-body decoder needs to go on verifying.

    ``payload_hash`` is the value that was signed in place of the body hash (a hex SHA-256,
    ``UNSIGNED-PAYLOAD`` or a ``STREAMING-…`` marker). ``signature`` and ``signing_key`` seed the
    chunk signatures of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` bodies; never log them.
    """

    access_key_id: str
    date: str
    region: str
    service: str
    signed_at: datetime
    payload_hash: str
    signature: str
    signing_key: bytes
    presigned: bool


class _Claim(NamedTuple):
    """What the Authorization header (or a presigned query) claims. A NamedTuple: built for
    every request, a frozen dataclass's field-by-field ``__init__`` was a visible cost."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    timestamp: str
    signed_at: datetime
    expires: int | None  # seconds; only for presigned URLs


def verify(
    request: SignedRequest,
    lookup_secret: SecretLookup,
    *,
    now: datetime,
    allow_unsigned_payload: bool = False,
    allow_streaming_payload: bool = False,
    normalize_path: bool = True,
    max_skew: timedelta = MAX_CLOCK_SKEW,
    body_sha256: str | None = None,
) -> VerifiedRequest:
    """Check the request's SigV4 signature and return who signed it.

    ``allow_unsigned_payload`` / ``allow_streaming_payload`` say whether ``UNSIGNED-PAYLOAD`` and
    the ``STREAMING-…`` markers may stand in for the body hash (S3 only; the CodeDeploy API signs
    its bodies). ``normalize_path`` is False for S3, which signs its path without normalizing.
    ``body_sha256``: the body's hex SHA-256 when the caller has it (``request.body`` is then not
    hashed); an S3 upload passes its signed ``x-amz-content-sha256`` to verify the signature
    before it receives the body, and checks the body against that hash as it arrives.
    Raises one of the auth errors of ``opendeploy.service_errors``.
    """
    headers, query, claim, presigned, secret = _check_claim(request, lookup_secret, now, max_skew)
    payload_candidates = _payload_candidates(
        request.body if body_sha256 is None else body_sha256,
        headers.get("x-amz-content-sha256"),
        presigned=presigned,
        allow_unsigned=allow_unsigned_payload,
        allow_streaming=allow_streaming_payload,
    )

    signing_key = derive_signing_key(secret, claim.date, claim.region, claim.service)
    scope = f"{claim.date}/{claim.region}/{claim.service}/aws4_request"
    path = _canonical_path(request.raw_path, normalize=normalize_path)
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in claim.signed_headers)
    signed_names = ";".join(claim.signed_headers)
    pairs = [(n, v) for n, v in query if not (presigned and unquote(n) == "X-Amz-Signature")]
    for canonical_query in _query_candidates(pairs):
        for payload_hash in payload_candidates:
            canonical_request = "\n".join(
                (
                    request.method.upper(),
                    path,
                    canonical_query,
                    canonical_headers,
                    signed_names,
                    payload_hash,
                )
            )
            expected = signature_for(signing_key, claim.timestamp, scope, canonical_request)
            if same_text(expected, claim.signature):
                return VerifiedRequest(
                    access_key_id=claim.access_key_id,
                    date=claim.date,
                    region=claim.region,
                    service=claim.service,
                    signed_at=claim.signed_at,
                    payload_hash=payload_hash,
                    signature=claim.signature,
                    signing_key=signing_key,
                    presigned=presigned,
                )
    raise InvalidSignatureError(_SIGNATURE_MISMATCH)


def check_claim(
    request: SignedRequest,
    lookup_secret: SecretLookup,
    *,
    now: datetime,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> str:
    """Everything :func:`verify` checks before it needs the body: the request is signed
    (header or presigned query), well formed, current, signs ``host`` and every header it names,
    by a known access key. Returns that key id; raises as :func:`verify` does.

    A server calls it before it reads a large body, so that an unsigned or forged request costs
    no more than its headers (the signature itself covers the body and is checked after)."""
    return _check_claim(request, lookup_secret, now, max_skew)[2].access_key_id


def _check_claim(
    request: SignedRequest, lookup_secret: SecretLookup, now: datetime, max_skew: timedelta
) -> tuple[dict[str, str], list[tuple[str, str]], _Claim, bool, str]:
    """(headers, query, claim, presigned, secret) of a request whose claim holds."""
    headers = request.header_map()
    query = _split_query(request.raw_query)
    query_names = {unquote(name) for name, _ in query}
    if "authorization" in headers:
        claim = _parse_authorization(headers["authorization"], headers)
        presigned = False
    elif "X-Amz-Algorithm" in query_names or "X-Amz-Signature" in query_names:
        claim = _parse_presigned(query)
        presigned = True
    else:
        raise MissingAuthenticationTokenError("Missing Authentication Token")

    _check_time(claim, now, max_skew)
    if "host" not in claim.signed_headers:
        raise IncompleteSignatureError(
            "'Host' must be a 'SignedHeader' in the AWS Authorization; "
            f"SignedHeaders={';'.join(claim.signed_headers)}"
        )
    missing = [name for name in claim.signed_headers if name not in headers]
    if missing:
        raise InvalidSignatureError(
            f"Signed header(s) {', '.join(missing)} are not present in the request."
        )

    secret = lookup_secret(claim.access_key_id)
    if secret is None:
        explain = getattr(lookup_secret, "explain_unknown", None)
        reason = explain(claim.access_key_id) if explain is not None else None
        raise UnrecognizedClientError(
            "The security token included in the request is invalid"
            + (f": {reason}" if reason else ".")
        )
    return headers, query, claim, presigned, secret


@functools.lru_cache(maxsize=65_536)
def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: HMAC chain over date, region, service and ``aws4_request``.

    Remembered for the most recent keys (the key changes once a day per secret): four HMACs
    per call add up over a fleet's calls. Room for every key of a 10,000-host fleet and its
    people (with 4,096, a fleet of 10,000 missed on nearly every call)."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def signature_for(signing_key: bytes, timestamp: str, scope: str, canonical_request: str) -> str:
    """Hex signature of a canonical request (string to sign built here)."""
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            timestamp,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        )
    )
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def same_text(given: str, expected: str) -> bool:
    """Constant-time equality of two strings, whatever characters they hold.

    ``hmac.compare_digest`` on ``str`` raises TypeError for non-ASCII text, which a client
    chooses (a forged signature, cookie or token): that was a 500 instead of a refusal."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased names; repeated headers joined with ',' and values trimmed and collapsed."""
    out: dict[str, str] = {}
    for name, value in headers:
        name = name.lower().strip()
        value = " ".join(value.split())
        if name in out:
            out[name] = f"{out[name]},{value}"
        else:
            out[name] = value
    return out


def _split_query(raw_query: str) -> list[tuple[str, str]]:
    if not raw_query:
        return []
    pairs = []
    for pair in raw_query.split("&"):
        name, _, value = pair.partition("=")
        pairs.append((name, value))
    return pairs


def _query_candidates(pairs: list[tuple[str, str]]) -> list[str]:
    """The canonical query string per the specification, and as botocore builds it.

    The specification decodes and re-encodes every name and value; botocore sorts the pairs as
    they appear in the URL. Both agree whenever the client encoded its query the AWS way.
    """
    if not pairs:
        return [""]  # every awsJson call: nothing to encode
    spec = "&".join(
        f"{n}={v}"
        for n, v in sorted(
            (_aws_quote(unquote(n)), _aws_quote(unquote(v))) for n, v in pairs if n or v
        )
    )
    raw = "&".join(f"{n}={v}" for n, v in sorted(pairs))
    return [spec] if raw == spec else [spec, raw]


def _aws_quote(value: str) -> str:
    return quote(value, safe="-_.~")


def _canonical_path(raw_path: str, *, normalize: bool) -> str:
    if not normalize or raw_path == "/":
        return raw_path or "/"
    return quote(_remove_dot_segments(raw_path or "/"), safe="/~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, plus the removal of empty segments that AWS services require."""
    out: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if out:
                out.pop()
        else:
            out.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    return first + "/".join(out) + last


def _parse_authorization(value: str, headers: dict[str, str]) -> _Claim:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Unsupported Authorization algorithm '{algorithm}'; only {ALGORITHM} is accepted."
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field = part.strip().partition("=")
        if sep:
            fields[name] = field
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{n}' parameter." for n in missing)
            + f" Authorization={ALGORITHM} …"
        )
    if "x-amz-date" in headers:
        timestamp = headers["x-amz-date"]
        signed_at = _parse_timestamp(timestamp, "X-Amz-Date")
    elif "date" in headers:
        signed_at = _parse_http_date(headers["date"])
        timestamp = signed_at.strftime(_TIMESTAMP_FORMAT)
    else:
        raise IncompleteSignatureError(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    return _claim(
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        timestamp,
        signed_at,
        expires=None,
    )


def _parse_presigned(query: list[tuple[str, str]]) -> _Claim:
    params = {unquote(n): unquote(v) for n, v in query}
    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [n for n in required if n not in params]
    if missing:
        raise IncompleteSignatureError(
            f"AWS query-string parameters must include {', '.join(repr(n) for n in missing)}."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignatureError(
            f"X-Amz-Algorithm '{params['X-Amz-Algorithm']}' is not supported; use {ALGORITHM}."
        )
    expires_text = params.get("X-Amz-Expires", str(MAX_PRESIGN_EXPIRES))
    if not expires_text.isdigit() or int(expires_text) > MAX_PRESIGN_EXPIRES:
        raise IncompleteSignatureError(
            f"X-Amz-Expires '{expires_text}' must be a whole number of seconds from 0 to "
            f"{MAX_PRESIGN_EXPIRES}."
        )
    timestamp = params["X-Amz-Date"]
    signed_at = _parse_timestamp(timestamp, "X-Amz-Date")
    return _claim(
        params["X-Amz-Credential"],
        params["X-Amz-SignedHeaders"],
        params["X-Amz-Signature"],
        timestamp,
        signed_at,
        expires=int(expires_text),
    )


def _claim(
    credential: str,
    signed_headers: str,
    signature: str,
    timestamp: str,
    signed_at: datetime,
    *,
    expires: int | None,
) -> _Claim:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts[:4]):
        raise IncompleteSignatureError(
            f"Credential '{credential}' is malformed; expected "
            "'<access key id>/<yyyymmdd>/<region>/<service>/aws4_request'."
        )
    access_key_id, date, region, service, _ = parts
    if date != timestamp[:8]:
        raise InvalidSignatureError(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{date}' != '{timestamp[:8]}', from '{timestamp}'."
        )
    names = _signed_names(signed_headers)
    return _Claim(
        access_key_id=access_key_id,
        date=date,
        region=region,
        service=service,
        signed_headers=names,
        signature=signature.strip().lower(),
        timestamp=timestamp,
        signed_at=signed_at,
        expires=expires,
    )


@functools.lru_cache(maxsize=256)
def _signed_names(signed_headers: str) -> tuple[str, ...]:
    """The SignedHeaders list, checked (a client sends the same few lists again and again)."""
    names = tuple(n.strip().lower() for n in signed_headers.split(";") if n.strip())
    if list(names) != sorted(set(names)):
        raise IncompleteSignatureError(
            f"SignedHeaders '{signed_headers}' must be lower-case, sorted and without repeats."
        )
    return names


def _parse_timestamp(value: str, field: str) -> datetime:
    # Parsed by hand: strptime was a visible part of verifying each of a fleet's calls.
    try:
        if len(value) != 16 or value[8] != "T" or value[15] != "Z" or not value[:8].isdigit():
            raise ValueError(value)
        if not value[9:15].isdigit():
            raise ValueError(value)
        return datetime(
            int(value[0:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[9:11]),
            int(value[11:13]),
            int(value[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        raise IncompleteSignatureError(
            f"{field} '{value}' is not a valid ISO-8601 basic timestamp (yyyyMMddTHHmmssZ)."
        ) from None


def _parse_http_date(value: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise IncompleteSignatureError(f"Date header '{value}' is not an HTTP date.") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_time(claim: _Claim, now: datetime, max_skew: timedelta) -> None:
    if claim.expires is None and now - max_skew <= claim.signed_at <= now + max_skew:
        return  # the usual case, without formatting the times for a message
    stamp = claim.signed_at.strftime(_TIMESTAMP_FORMAT)
    now_stamp = now.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)
    if claim.expires is not None:
        if claim.signed_at - now > max_skew:
            raise InvalidSignatureError(
                f"Request is not yet valid: X-Amz-Date {stamp} is later than {now_stamp} "
                "by more than 15 min."
            )
        if now > claim.signed_at + timedelta(seconds=claim.expires):
            raise InvalidSignatureError(
                f"Request has expired: X-Amz-Date {stamp} plus X-Amz-Expires "
                f"{claim.expires} s is earlier than {now_stamp}."
            )
        return
    minutes = int(max_skew.total_seconds() // 60)
    if claim.signed_at < now - max_skew:
        earliest = (now - max_skew).astimezone(UTC).strftime(_TIMESTAMP_FORMAT)
        raise InvalidSignatureError(
            f"Signature expired: {stamp} is now earlier than {earliest} "
            f"({now_stamp} - {minutes} min.)"
        )
    if claim.signed_at > now + max_skew:
        latest = (now + max_skew).astimezone(UTC).strftime(_TIMESTAMP_FORMAT)
        raise InvalidSignatureError(
            f"Signature not yet current: {stamp} is still later than {latest} "
            f"({now_stamp} + {minutes} min.)"
        )


def _payload_candidates(
    body: bytes | str,
    claimed: str | None,
    *,
    presigned: bool,
    allow_unsigned: bool,
    allow_streaming: bool,
) -> list[str]:
    """The values that may stand for the body in the canonical request.

    A claimed hex hash must be the body's; the markers only where the caller allows them.
    A presigned URL may sign ``UNSIGNED-PAYLOAD`` (S3) or the body hash (other services).
    """
    actual = body if isinstance(body, str) else hashlib.sha256(body).hexdigest()
    if claimed is None:
        if presigned and allow_unsigned:
            return [UNSIGNED_PAYLOAD, actual]
        return [actual]
    if claimed == UNSIGNED_PAYLOAD:
        if not allow_unsigned:
            raise InvalidSignatureError(
                "x-amz-content-sha256 UNSIGNED-PAYLOAD is not accepted here; sign the body."
            )
        return [claimed]
    if claimed in STREAMING_PAYLOADS:
        if not allow_streaming:
            raise InvalidSignatureError(
                f"x-amz-content-sha256 {claimed} is not accepted here; sign the body."
            )
        return [claimed]
    if not _HEX_SHA256.fullmatch(claimed):
        raise InvalidSignatureError(
            f"x-amz-content-sha256 '{claimed}' is neither a hex SHA-256 nor a known marker."
        )
    if not same_text(claimed, actual):
        raise InvalidSignatureError(
            "The provided x-amz-content-sha256 header does not match what was computed."
        )
    return [claimed]
