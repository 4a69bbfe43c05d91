"""``POST /opendeploy/v1/instance-credentials``: issue an access key bound to one instance.

Signed (SigV4, service ``codedeploy``) with an **admin** key; body ``{"instanceName": "<name>"}``.
The instance must be registered first (RegisterOnPremisesInstance). The answer,
``{"accessKeyId", "secretAccessKey", "iamUserArn", "instanceName"}``, is what an agent's
on-premises configuration needs: ``iamUserArn`` is the instance's registered IAM ARN (its
session ARN if it was registered with one), which the agent sends as its HostIdentifier.
Errors use the AWS JSON error shape (``__type``, ``message``), HTTP 400 (500 for faults).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opendeploy.api import sigv4
from opendeploy.api.bodies import small_body, too_large_response
from opendeploy.api.errors import to_wire_error
from opendeploy.service_errors import (
    AccessDeniedError,
    InstanceNameRequiredError,
    InstanceNotRegisteredError,
    InvalidInputError,
    InvalidSignatureError,
    RequestEntityTooLargeError,
)

if TYPE_CHECKING:
    from opendeploy.store.database import Store

log = logging.getLogger("opendeploy.api")

PATH = "/opendeploy/v1/instance-credentials"
SIGNING_NAME = "codedeploy"


def issue(
    store: Store, key_id: str, body: bytes, signer_certificate: str | None = None
) -> dict[str, Any]:
    """Check the caller is an admin, parse the body, and issue the instance key.

    With ``signer_certificate`` (the deployment-spec signer's PEM), the answer carries it as
    ``specSignerCertificate``: the CA file official agents verify specifications with."""
    if store.commands.key_kind(key_id) != "admin":
        raise AccessDeniedError(
            f"Access key {key_id} may not issue instance credentials: an admin key is required."
        )
    try:
        document = json.loads(body or b"{}")
    except ValueError as exc:
        raise InvalidInputError(f"The request body is not JSON: {exc}") from None
    name = document.get("instanceName") if isinstance(document, dict) else None
    if not name or not isinstance(name, str):
        raise InstanceNameRequiredError("instanceName is required (a registered instance name).")
    instance = store.instances.get(name)
    if instance is None or instance["deregister_time"] is not None:
        raise InstanceNotRegisteredError(f"The on-premises instance {name} is not registered.")
    key_id, secret = store.access_keys.create(principal=instance["instance_arn"], kind="instance")
    log.info("issued instance key instance=%s access_key_id=%s", name, key_id)
    answer = {
        "accessKeyId": key_id,
        "secretAccessKey": secret,
        "iamUserArn": instance["iam_user_arn"] or instance["iam_session_arn"],
        "instanceName": name,
    }
    if signer_certificate is not None:
        answer["specSignerCertificate"] = signer_certificate
    return answer


def instance_credentials_route(
    store: Store,
    lookup_secret: sigv4.SecretLookup,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    signer_certificate: str | None = None,
) -> Route:
    """The route, verifying SigV4 with ``lookup_secret`` (see :func:`issue`)."""

    def serve(signed: sigv4.SignedRequest) -> tuple[int, dict[str, Any]]:
        request_id = str(uuid.uuid4())
        try:
            verified = sigv4.verify(signed, lookup_secret, now=clock())
            if verified.service != SIGNING_NAME:
                raise InvalidSignatureError(
                    f"Credential should be scoped to correct service: '{SIGNING_NAME}'."
                )
            return 200, issue(store, verified.access_key_id, signed.body, signer_certificate)
        except Exception as exc:
            error = to_wire_error(exc, request_id)
            if error.is_fault:
                log.error("fault request_id=%s op=InstanceCredentials", request_id, exc_info=exc)
            return error.status, {"__type": error.code, "message": error.message}

    async def endpoint(request: Request) -> Response:
        try:
            body = await small_body(request)
        except RequestEntityTooLargeError as exc:
            return too_large_response(exc)
        signed = sigv4.SignedRequest.from_asgi(request.scope, body)
        status, document = await run_in_threadpool(serve, signed)
        headers = {"x-amzn-ErrorType": document["__type"]} if status != 200 else None
        return JSONResponse(document, status_code=status, headers=headers)

    return Route(PATH, endpoint, methods=["POST"])
