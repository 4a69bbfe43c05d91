"""The Lambda API's errors, as AWS Lambda names them (``x-amzn-ErrorType``) with its statuses.

They are :class:`~opendeploy.errors.ServiceError`s: the Lambda routes render ``code`` as the
error type and ``message`` as the body's ``message`` (REST-JSON, which botocore reads)."""

from __future__ import annotations

from opendeploy.errors import ServiceError


class LambdaError(ServiceError):
    """Base of the Lambda API's errors. ``kind`` is the body's ``Type`` (User or Service)."""

    kind = "User"


class ResourceNotFoundError(LambdaError):
    """The function, version or alias does not exist."""

    code = "ResourceNotFoundException"
    status = 404


class ResourceConflictError(LambdaError):
    """The resource already exists, or an operation on it is in progress."""

    code = "ResourceConflictException"
    status = 409


class InvalidParameterValueError(LambdaError):
    """A parameter's value is not acceptable."""

    code = "InvalidParameterValueException"
    status = 400


class InvalidRequestContentError(LambdaError):
    """The request body could not be parsed as JSON, or is not what the operation takes."""

    code = "InvalidRequestContentException"
    status = 400


class PreconditionFailedError(LambdaError):
    """The RevisionId given is not the resource's current one."""

    code = "PreconditionFailedException"
    status = 412


class RequestTooLargeError(LambdaError):
    """The request payload is larger than Lambda accepts."""

    code = "RequestTooLargeException"
    status = 413


class CodeStorageExceededError(LambdaError):
    """The code zip is larger than this host accepts."""

    code = "CodeStorageExceededException"
    status = 400


class TooManyRequestsError(LambdaError):
    """No execution environment of the function became free in time."""

    code = "TooManyRequestsException"
    status = 429


class LambdaAccessDeniedError(LambdaError):
    """The caller's key may not use the Lambda API (or the host is not enabled)."""

    code = "AccessDeniedException"
    status = 403


class ValidationError(LambdaError):
    """A parameter breaks a constraint of the API model."""

    code = "ValidationException"
    status = 400


class UnsupportedOperationError(LambdaError):
    """An operation of the Lambda API this function host does not implement."""

    code = "InvalidRequestContentException"
    status = 400
