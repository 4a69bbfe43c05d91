"""The Lambda REST API subset of the built-in function host (``/2015-03-31/functions…``).

boto3's ``lambda`` client and ``aws lambda --endpoint-url`` work unchanged: requests are
REST-JSON (the operation is the method and path; parameters in the path, the query and a JSON
body), signed with SigV4 for service ``lambda`` by an admin key. Errors are Lambda's: the status,
``x-amzn-ErrorType`` and ``{"Type": "User", "Message": …}``.

Operations: CreateFunction, GetFunction, GetFunctionConfiguration, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, ListFunctions, PublishVersion,
ListVersionsByFunction, Create/Get/Update/Delete/ListAliases, Invoke (RequestResponse, Event,
DryRun). Everything but the invocation itself runs in one blocking call off the event loop.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opendeploy.api import sigv4
from opendeploy.api.app import UNCHECKED_BODY_BYTES
from opendeploy.blocking import run_blocking
from opendeploy.errors import ServiceError
from opendeploy.functions.errors import (
    InvalidParameterValueError,
    InvalidRequestContentError,
    LambdaAccessDeniedError,
    LambdaError,
    RequestTooLargeError,
    UnsupportedOperationError,
)
from opendeploy.functions.host import FunctionHost
from opendeploy.functions.names import split_function_name
from opendeploy.functions.routing import SpreadDraws
from opendeploy.functions.service import FunctionService
from opendeploy.store.functions import FunctionVersion

log = logging.getLogger("opendeploy.api.lambda")

PREFIX = "/2015-03-31/functions"
#: Lambda's limits: a synchronous invocation's payload, an asynchronous one's, and a request
#: carrying a zip (50 MB, base64 in JSON).
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_EVENT_PAYLOAD = 256 * 1024
MAX_REQUEST = 70 * 1024 * 1024

#: The message for a server started without the function host.
DISABLED = (
    "The built-in function host is not enabled on this server: start it with "
    "`opendeploy server --function-host` (or point AWS_ENDPOINT_URL_LAMBDA at AWS Lambda)."
)


@dataclass(frozen=True)
class _Invoke:
    """What the blocking part of an Invoke resolved: the version to run and how."""

    record: FunctionVersion
    invoked_arn: str
    invocation_type: str


def lambda_routes(
    *,
    service: FunctionService | None,
    host: FunctionHost | None,
    lookup_secret: sigv4.SecretLookup,
    key_kind: Callable[[str], str | None],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseRoute]:
    """The Lambda API's routes for ``create_app(extra_routes=…)``; with no ``service`` (the host
    not enabled) every request is refused with a message saying how to enable it."""
    front = _LambdaFront(service, host, lookup_secret, key_kind, clock)
    return [
        Route(PREFIX, front.handle, methods=["GET", "POST"]),
        Route(PREFIX + "/", front.handle, methods=["GET", "POST"]),
        Route(PREFIX + "/{name}", front.handle, methods=["GET", "DELETE"]),
        Route(PREFIX + "/{name}/{part}", front.handle, methods=["GET", "POST", "PUT"]),
        Route(PREFIX + "/{name}/aliases/{alias}", front.handle, methods=["GET", "PUT", "DELETE"]),
    ]


class _LambdaFront:
    def __init__(
        self,
        service: FunctionService | None,
        host: FunctionHost | None,
        lookup_secret: sigv4.SecretLookup,
        key_kind: Callable[[str], str | None],
        clock: Callable[[], datetime],
    ) -> None:
        self._service = service
        self._host = host
        self._lookup_secret = lookup_secret
        self._key_kind = key_kind
        self._clock = clock
        #: One sequence of routing draws per alias, so that each alias's split is even on its
        #: own whatever else is invoked between (functions.routing).
        self._draws: dict[tuple[str, str | None], SpreadDraws] = {}

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        operation = "-"
        try:
            operation = _operation(request)
            if self._service is None or self._host is None:
                raise LambdaAccessDeniedError(DISABLED)
            if _declared_length(request) > UNCHECKED_BODY_BYTES:
                # A large body (a zip) is read only for a current signature by a known key.
                signed = sigv4.SignedRequest.from_asgi(request.scope, b"")
                await run_blocking(
                    functools.partial(
                        sigv4.check_claim, signed, self._lookup_secret, now=self._clock()
                    ),
                    control=True,
                )
            body = await _body(request, MAX_REQUEST)
            # Invocations (by the thousand) use the shared pool; the control operations the
            # pool kept for people's calls.
            outcome = await run_blocking(
                self._prepare, request, operation, body, control=operation != "Invoke"
            )
            if isinstance(outcome, _Invoke):
                response = await self._invoke(request, outcome, body)
            else:
                status, document = outcome
                response = Response(
                    b"" if document is None else json.dumps(document).encode(),
                    status_code=status,
                    media_type="application/json",
                )
        except ServiceError as exc:
            response = _error(exc)
        except Exception as exc:
            log.error("fault request_id=%s op=%s", request_id, operation, exc_info=exc)
            response = _error(LambdaError(f"An internal error occurred ({request_id})."))
            response.status_code = 500
            response.headers["x-amzn-ErrorType"] = "ServiceException"
        response.headers["x-amzn-RequestId"] = request_id
        # Invocations come by the thousand (a deployment's traffic through an alias): logged
        # at DEBUG unless they fail, like the agents' own calls.
        quiet = operation == "Invoke" and response.status_code < 400
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "request op=%s status=%d ms=%.1f request_id=%s protocol=lambda",
            operation,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            request_id,
        )
        return response

    # -- the blocking part -----------------------------------------------------------------

    def _prepare(
        self, request: Request, operation: str, body: bytes
    ) -> tuple[int, dict[str, Any] | None] | _Invoke:
        """Authenticate, then run the operation (or resolve what an Invoke runs)."""
        signed = sigv4.SignedRequest.from_asgi(request.scope, body)
        verified = sigv4.verify(signed, self._lookup_secret, now=self._clock())
        if verified.service != "lambda":
            raise LambdaAccessDeniedError(
                f"Credential should be scoped to correct service: 'lambda', not "
                f"'{verified.service}'."
            )
        if self._key_kind(verified.access_key_id) != "admin":
            raise LambdaAccessDeniedError(
                f"User: {verified.access_key_id} is not authorized to perform: "
                f"lambda:{operation} (only admin keys use the Lambda API)"
            )
        service = self._service
        assert service is not None
        query = request.query_params
        qualifier = query.get("Qualifier")
        raw_name = request.path_params.get("name")
        if operation == "Invoke":
            return self._resolve_invoke(request, service, raw_name or "", qualifier, body)
        if operation == "CreateFunction":
            params = _json(body)
            name, _ = split_function_name(str(params.get("FunctionName") or ""))
            return 201, service.create_function(name, params)
        if operation == "ListFunctions":
            return 200, service.list_functions(dict(query))
        name, qualifier = split_function_name(raw_name or "", qualifier)
        alias_name = request.path_params.get("alias")
        match operation:
            case "GetFunction":
                return 200, service.get_function(name, qualifier)
            case "GetFunctionConfiguration":
                return 200, service.get_configuration(name, qualifier)
            case "DeleteFunction":
                service.delete_function(name, qualifier)
                return 204, None
            case "UpdateFunctionCode":
                return 200, service.update_code(name, _json(body))
            case "UpdateFunctionConfiguration":
                return 200, service.update_configuration(name, _json(body))
            case "PublishVersion":
                return 201, service.publish_version(name, _json(body))
            case "ListVersionsByFunction":
                return 200, service.list_versions(name, dict(query))
            case "CreateAlias":
                return 201, service.create_alias(name, _json(body))
            case "ListAliases":
                return 200, service.list_aliases(name, dict(query))
            case "GetAlias":
                return 200, service.get_alias(name, alias_name or "")
            case "UpdateAlias":
                return 200, service.update_alias(name, alias_name or "", _json(body))
            case "DeleteAlias":
                service.delete_alias(name, alias_name or "")
                return 204, None
        raise UnsupportedOperationError(f"{operation} is not supported by this function host.")

    def _resolve_invoke(
        self,
        request: Request,
        service: FunctionService,
        raw_name: str,
        qualifier: str | None,
        body: bytes,
    ) -> _Invoke:
        name, qualifier = split_function_name(raw_name, qualifier)
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            raise InvalidParameterValueError(
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to "
                "satisfy constraint: Member must satisfy enum value set: [Event, "
                "RequestResponse, DryRun]"
            )
        limit = MAX_EVENT_PAYLOAD if kind == "Event" else MAX_SYNC_PAYLOAD
        if len(body) > limit:
            raise RequestTooLargeError(
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )
        if body:
            try:
                json.loads(body)
            except ValueError as exc:
                raise InvalidRequestContentError(
                    f"Could not parse request body into json: Could not parse payload into json:"
                    f" {exc}"
                ) from None
        draws = self._draws.get((name, qualifier))
        if draws is None:
            draws = self._draws.setdefault((name, qualifier), SpreadDraws())
        record = service.resolve_invocation(name, qualifier, draws())
        return _Invoke(record, service.arns.function(name, qualifier), kind)

    # -- the invocation --------------------------------------------------------------------

    async def _invoke(self, request: Request, plan: _Invoke, body: bytes) -> Response:
        host = self._host
        assert host is not None
        payload = body or b"{}"
        headers = {"X-Amz-Executed-Version": plan.record.version}
        if plan.invocation_type == "DryRun":
            return Response(b"", status_code=204, headers=headers)
        if plan.invocation_type == "Event":
            host.invoke_later(plan.record, payload, invoked_arn=plan.invoked_arn)
            return Response(b"", status_code=202, headers=headers)
        context = request.headers.get("x-amz-client-context")
        result = await host.invoke(
            plan.record,
            payload,
            invoked_arn=plan.invoked_arn,
            client_context=base64.b64decode(context).decode() if context else None,
        )
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        return Response(
            result.payload, status_code=200, headers=headers, media_type="application/json"
        )


_PARTS = {
    ("GET", "configuration"): "GetFunctionConfiguration",
    ("PUT", "configuration"): "UpdateFunctionConfiguration",
    ("PUT", "code"): "UpdateFunctionCode",
    ("GET", "versions"): "ListVersionsByFunction",
    ("POST", "versions"): "PublishVersion",
    ("GET", "aliases"): "ListAliases",
    ("POST", "aliases"): "CreateAlias",
    ("POST", "invocations"): "Invoke",
}
_ALIAS_OPERATIONS = {"GET": "GetAlias", "PUT": "UpdateAlias", "DELETE": "DeleteAlias"}


def _operation(request: Request) -> str:
    """The Lambda operation a request's method and route name."""
    params = request.path_params
    method = request.method
    if "alias" in params:
        return _ALIAS_OPERATIONS[method]
    if "part" in params:
        operation = _PARTS.get((method, params["part"]))
        if operation is None:
            raise UnsupportedOperationError(
                f"{method} {request.url.path} is not an operation of this function host."
            )
        return operation
    if "name" in params:
        return "GetFunction" if method == "GET" else "DeleteFunction"
    return "ListFunctions" if method == "GET" else "CreateFunction"


def _declared_length(request: Request) -> int:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"Request must be smaller than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLargeError(f"Request must be smaller than {limit} bytes")
    return bytes(body)


def _json(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidRequestContentError(f"Could not parse request body into json: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequestContentError("Could not parse request body into json: not an object")
    return document


def _error(exc: ServiceError) -> Response:
    kind = getattr(exc, "kind", "User")
    status = exc.status if isinstance(exc, LambdaError) else max(exc.status, 403)
    body = json.dumps({"Type": kind, "Message": exc.message})
    return Response(
        body.encode(),
        status_code=status,
        headers={"x-amzn-ErrorType": exc.code},
        media_type="application/json",
    )
