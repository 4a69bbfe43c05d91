"""S3's error codes, and the translation of SigV4 failures into them.

S3 answers errors as ``<Error><Code>…</Code><Message>…</Message>…</Error>`` with the status that
belongs to the code; botocore's S3 parser reads the code from that body (and, for HEAD, which has
no body, from the status alone). The classes below carry both, like ``service_errors`` does for
CodeDeploy; ``details`` adds S3's extra elements (``Key``, ``BucketName``, ``UploadId`` …).
"""

from __future__ import annotations

from opendeploy.errors import ServiceError
from opendeploy.service_errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)


class S3Error(ServiceError):
    """An error of the S3 subset: ``code`` and ``status`` as S3 defines them."""

    code = "InternalError"
    status = 500

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.details = details


class ServiceUnavailableError(S3Error):
    """The bundle store behind the front cannot be reached now (clients retry a 503)."""

    code = "ServiceUnavailable"
    status = 503


class AccessDeniedError(S3Error):
    """The key may not do this."""

    code = "AccessDenied"
    status = 403


class InvalidAccessKeyIdError(S3Error):
    """The access key is unknown."""

    code = "InvalidAccessKeyId"
    status = 403


class SignatureDoesNotMatchError(S3Error):
    """A signature is wrong."""

    code = "SignatureDoesNotMatch"
    status = 403


class RequestTimeTooSkewedError(S3Error):
    """The signing time is too far."""

    code = "RequestTimeTooSkewed"
    status = 403


class AuthorizationHeaderMalformedError(S3Error):
    """The Authorization header cannot be parsed."""

    code = "AuthorizationHeaderMalformed"
    status = 400


class ContentSha256MismatchError(S3Error):
    """The body does not hash to x-amz-content-sha256."""

    code = "XAmzContentSHA256Mismatch"
    status = 400


class NoSuchBucketError(S3Error):
    """The bucket does not exist."""

    code = "NoSuchBucket"
    status = 404


class NoSuchKeyError(S3Error):
    """The key does not exist."""

    code = "NoSuchKey"
    status = 404


class NoSuchVersionError(S3Error):
    """The version does not exist."""

    code = "NoSuchVersion"
    status = 404


class NoSuchUploadError(S3Error):
    """The multipart upload does not exist."""

    code = "NoSuchUpload"
    status = 404


class InvalidBucketNameError(S3Error):
    """The bucket name breaks S3's rules."""

    code = "InvalidBucketName"
    status = 400


class KeyTooLongError(S3Error):
    """The key is longer than 1024 bytes."""

    code = "KeyTooLongError"
    status = 400


class InvalidArgumentError(S3Error):
    """A parameter is invalid."""

    code = "InvalidArgument"
    status = 400


class InvalidRequestError(S3Error):
    """The request is invalid."""

    code = "InvalidRequest"
    status = 400


class InvalidPartError(S3Error):
    """A listed part was not uploaded or differs."""

    code = "InvalidPart"
    status = 400


class InvalidPartOrderError(S3Error):
    """The parts are not in ascending order."""

    code = "InvalidPartOrder"
    status = 400


class EntityTooSmallError(S3Error):
    """A part other than the last is too small."""

    code = "EntityTooSmall"
    status = 400


class EntityTooLargeError(S3Error):
    """The body is larger than allowed."""

    code = "EntityTooLarge"
    status = 400


class MalformedXMLError(S3Error):
    """The XML body is not well-formed or valid."""

    code = "MalformedXML"
    status = 400


class BadDigestError(S3Error):
    """A checksum of the body does not match."""

    code = "BadDigest"
    status = 400


class InvalidDigestError(S3Error):
    """A checksum header is malformed."""

    code = "InvalidDigest"
    status = 400


class IncompleteBodyError(S3Error):
    """The body ended early."""

    code = "IncompleteBody"
    status = 400


class InvalidChunkError(S3Error):
    """The aws-chunked body is malformed."""

    code = "InvalidRequest"
    status = 400


class MissingContentLengthError(S3Error):
    """Content-Length is required."""

    code = "MissingContentLength"
    status = 411


class InvalidRangeError(S3Error):
    """The range cannot be satisfied."""

    code = "InvalidRange"
    status = 416


class PreconditionFailedError(S3Error):
    """A precondition does not hold."""

    code = "PreconditionFailed"
    status = 412


class NotImplementedS3Error(S3Error):
    """This part of S3 is not implemented."""

    code = "NotImplemented"
    status = 501


class MethodNotAllowedError(S3Error):
    """The method is not allowed here."""

    code = "MethodNotAllowed"
    status = 405


def from_auth_error(exc: ServiceError) -> S3Error:
    """The S3 error for a SigV4 failure raised by :func:`opendeploy.api.sigv4.verify`."""
    message = exc.message
    error: S3Error
    if isinstance(exc, UnrecognizedClientError):
        error = InvalidAccessKeyIdError(
            "The AWS Access Key Id you provided does not exist in our records."
        )
    elif isinstance(exc, MissingAuthenticationTokenError):
        error = AccessDeniedError("Access Denied: the request is not signed (SigV4).")
    elif isinstance(exc, IncompleteSignatureError):
        error = AuthorizationHeaderMalformedError(message)
    elif isinstance(exc, InvalidSignatureError):
        if message.startswith(("Signature expired", "Signature not yet current")):
            error = RequestTimeTooSkewedError(
                "The difference between the request time and the current time is too large. "
                + message
            )
        elif message.startswith(("Request has expired", "Request is not yet valid")):
            error = AccessDeniedError(message)
        elif message.startswith("The provided x-amz-content-sha256"):
            error = ContentSha256MismatchError(message)
        else:
            error = SignatureDoesNotMatchError(message)
    else:
        error = AccessDeniedError(message)
    return error
