"""SigV4 verification against requests signed by botocore's own signers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from opendeploy.api import sigv4
from opendeploy.service_errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)

KEY_ID = "AKIAOPENDEPLOYTEST01"
SECRET = "s3cr3t/Key+With/Chars0123456789abcdefghij"
KEYS = {KEY_ID: SECRET}
HOST = "127.0.0.1:8443"


def lookup(key_id: str) -> str | None:
    return KEYS.get(key_id)


def to_signed(request: AWSRequest) -> sigv4.SignedRequest:
    """The request as a server receives it: the HTTP client adds Host."""
    parts = urlsplit(request.url)
    headers = [(k, v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()]
    headers.append(("Host", parts.netloc))
    body = request.body or b""
    return sigv4.SignedRequest(
        method=request.method,
        raw_path=parts.path,
        raw_query=parts.query,
        headers=headers,
        body=body if isinstance(body, bytes) else body.encode(),
    )


def sign(
    body: bytes = b'{"applicationName":"web"}',
    *,
    url: str = f"http://{HOST}/",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    secret: str = SECRET,
    key_id: str = KEY_ID,
    service: str = "codedeploy",
    signer: type[SigV4Auth] = SigV4Auth,
    token: str | None = None,
) -> sigv4.SignedRequest:
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={
            "X-Amz-Target": "CodeDeploy_20141006.GetApplication",
            "Content-Type": "application/x-amz-json-1.1",
            **(headers or {}),
        },
    )
    signer(Credentials(key_id, secret, token), service, "us-east-1").add_auth(request)
    return to_signed(request)


def presign(url: str, *, expires: int = 60, s3: bool = False) -> sigv4.SignedRequest:
    request = AWSRequest(method="GET", url=url)
    signer_cls = S3SigV4QueryAuth if s3 else SigV4QueryAuth
    signer_cls(
        Credentials(KEY_ID, SECRET), "s3" if s3 else "codedeploy", "us-east-1", expires=expires
    ).add_auth(request)
    return to_signed(request)


def now() -> datetime:
    return datetime.now(UTC)


def with_header(request: sigv4.SignedRequest, name: str, value: str) -> sigv4.SignedRequest:
    headers = [(k, v) for k, v in request.headers if k.lower() != name.lower()]
    return replace(request, headers=[*headers, (name, value)])


def test_header_signed_request_verifies_and_names_the_key_region_and_service() -> None:
    verified = sigv4.verify(sign(), lookup, now=now())
    assert (verified.access_key_id, verified.region, verified.service) == (
        KEY_ID,
        "us-east-1",
        "codedeploy",
    )
    assert not verified.presigned


def test_query_string_and_path_are_canonicalized_as_botocore_signs_them() -> None:
    url = f"http://{HOST}/a/./b//c%20d/../e?z=1&a=x%2Fy&a=b&empty="
    assert sigv4.verify(sign(url=url, method="GET", body=b""), lookup, now=now())


def test_session_token_and_repeated_whitespace_in_headers_are_signed_like_any_header() -> None:
    request = sign(headers={"X-Custom": "  a   b  "}, token="session-token")
    assert sigv4.verify(request, lookup, now=now()).access_key_id == KEY_ID


def test_tampered_body_is_refused() -> None:
    request = replace(sign(), body=b'{"applicationName":"other"}')
    with pytest.raises(InvalidSignatureError, match="signature we calculated does not match"):
        sigv4.verify(request, lookup, now=now())


def test_tampered_signed_header_is_refused() -> None:
    request = with_header(sign(), "X-Amz-Target", "CodeDeploy_20141006.DeleteApplication")
    with pytest.raises(InvalidSignatureError):
        sigv4.verify(request, lookup, now=now())


def test_tampered_date_is_refused() -> None:
    request = sign()
    stamp = dict((k.lower(), v) for k, v in request.headers)["x-amz-date"]
    later = (datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + timedelta(seconds=1)).strftime(
        "%Y%m%dT%H%M%SZ"
    )
    with pytest.raises(InvalidSignatureError):
        sigv4.verify(with_header(request, "X-Amz-Date", later), lookup, now=now())


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignatureError):
        sigv4.verify(sign(secret="not-the-secret"), lookup, now=now())


def test_unknown_access_key_is_unrecognized() -> None:
    with pytest.raises(UnrecognizedClientError, match="security token included in the request"):
        sigv4.verify(sign(key_id="AKIAUNKNOWNKEY000000"), lookup, now=now())


def test_signature_older_than_15_minutes_has_expired() -> None:
    with pytest.raises(InvalidSignatureError, match="Signature expired: .* - 15 min"):
        sigv4.verify(sign(), lookup, now=now() + timedelta(minutes=16))


def test_signature_from_more_than_15_minutes_ahead_is_not_yet_current() -> None:
    with pytest.raises(InvalidSignatureError, match="not yet current"):
        sigv4.verify(sign(), lookup, now=now() - timedelta(minutes=16))


def test_skew_within_15_minutes_is_accepted() -> None:
    assert sigv4.verify(sign(), lookup, now=now() + timedelta(minutes=14))


def test_request_without_any_authentication_is_missing_the_token() -> None:
    request = sigv4.SignedRequest("POST", "/", "", [("Host", HOST)], b"{}")
    with pytest.raises(MissingAuthenticationTokenError, match="Missing Authentication Token"):
        sigv4.verify(request, lookup, now=now())


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("AWS4-HMAC-SHA256 Credential=x", "requires 'SignedHeaders'"),
        ("AWS AKIA:abc", "Unsupported Authorization algorithm"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/codedeploy, "
            "SignedHeaders=host, Signature=00",
            "Credential .* is malformed",
        ),
    ],
)
def test_malformed_authorization_is_an_incomplete_signature(
    authorization: str, message: str
) -> None:
    request = with_header(sign(), "Authorization", authorization)
    with pytest.raises(IncompleteSignatureError, match=message):
        sigv4.verify(request, lookup, now=now())


def test_host_must_be_signed() -> None:
    request = sign()
    auth = dict((k.lower(), v) for k, v in request.headers)["authorization"]
    unsigned_host = auth.replace("SignedHeaders=content-type;host;", "SignedHeaders=content-type;")
    with pytest.raises(IncompleteSignatureError, match="'Host' must be a 'SignedHeader'"):
        sigv4.verify(with_header(request, "Authorization", unsigned_host), lookup, now=now())


def test_date_header_can_stand_in_for_x_amz_date() -> None:
    request = sign(headers={"Date": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert "x-amz-date" not in {k.lower() for k, _ in request.headers}
    assert sigv4.verify(request, lookup, now=now())


def test_presigned_url_verifies() -> None:
    verified = sigv4.verify(presign(f"http://{HOST}/?Action=Get&x=a%20b"), lookup, now=now())
    assert verified.presigned and verified.access_key_id == KEY_ID


def test_presigned_url_past_its_expiry_is_refused() -> None:
    with pytest.raises(InvalidSignatureError, match="Request has expired"):
        sigv4.verify(
            presign(f"http://{HOST}/", expires=60), lookup, now=now() + timedelta(seconds=61)
        )


def test_presigned_url_with_tampered_query_is_refused() -> None:
    request = presign(f"http://{HOST}/?x=1")
    request = replace(request, raw_query=request.raw_query.replace("x=1", "x=2"))
    with pytest.raises(InvalidSignatureError):
        sigv4.verify(request, lookup, now=now())


def test_s3_presigned_url_signs_unsigned_payload_only_where_allowed() -> None:
    request = presign(f"http://{HOST}/bucket/some%20key.zip", s3=True)
    verified = sigv4.verify(
        request, lookup, now=now(), allow_unsigned_payload=True, normalize_path=False
    )
    assert verified.payload_hash == sigv4.UNSIGNED_PAYLOAD
    with pytest.raises(InvalidSignatureError):
        sigv4.verify(request, lookup, now=now(), normalize_path=False)


def test_unsigned_payload_header_only_where_allowed() -> None:
    request = sign(headers={"X-Amz-Content-SHA256": sigv4.UNSIGNED_PAYLOAD})
    assert sigv4.verify(request, lookup, now=now(), allow_unsigned_payload=True)
    with pytest.raises(InvalidSignatureError, match="UNSIGNED-PAYLOAD is not accepted"):
        sigv4.verify(request, lookup, now=now())


def test_streaming_payload_marker_only_where_allowed() -> None:
    marker = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    request = sign(headers={"X-Amz-Content-SHA256": marker})
    verified = sigv4.verify(request, lookup, now=now(), allow_streaming_payload=True)
    assert verified.payload_hash == marker
    with pytest.raises(InvalidSignatureError, match="not accepted here"):
        sigv4.verify(request, lookup, now=now())


def test_s3_signer_content_sha256_header_must_match_the_body() -> None:
    url = f"http://{HOST}/bucket/key"
    request = sign(body=b"bundle bytes", url=url, method="PUT", signer=S3SigV4Auth, service="s3")
    assert sigv4.verify(request, lookup, now=now(), normalize_path=False)
    with pytest.raises(InvalidSignatureError, match="does not match what was computed"):
        sigv4.verify(replace(request, body=b"other bytes"), lookup, now=now(), normalize_path=False)
