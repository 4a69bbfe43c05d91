"""``GET /opendeploy/v1/deployments/{id}/output``: the hook output the agents streamed, by cursor.

An OpenDeploy addition to the CodeDeploy API (which only exposes a lifecycle event's last 4 KiB
as ``diagnostics.logTail``), for ``opendeploy watch``/``logs`` and the dashboard. Signed with
SigV4 (service ``codedeploy``) by an **admin** key, like ``/opendeploy/v1/instance-credentials``.

Query parameters, all optional: ``instance`` (a target id, i.e. the instance name; repeatable),
``event`` (a lifecycle event name), ``after`` (the ``nextCursor`` of the previous answer, for the
same filters). The answer::

    {"deploymentId": "d-…",
     "lines": [{"instanceId": "host-1", "lifecycleEvent": "BeforeInstall", "line": "…"}, …],
     "nextCursor": "…"}

lists, in dispatch order of the host commands (one per instance and event), the lines added
since ``after``. The cursor is opaque to clients: ``<k>.<o1>.<o2>…`` where the first ``k``
matching commands are finished and fully read and ``o1, o2 …`` are the characters read of the
following ones, so it stays short however long the deployment runs. A command keeps only its
newest 64 KiB of output (``store.commands.OUTPUT_LIMIT_CHARS``); a reader that falls behind a
command writing more than that may miss lines of it. Errors use the AWS JSON error shape.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opendeploy.api import sigv4
from opendeploy.api.bodies import small_body, too_large_response
from opendeploy.api.errors import to_wire_error
from opendeploy.service_errors import (
    AccessDeniedError,
    DeploymentDoesNotExistError,
    InvalidInputError,
    InvalidSignatureError,
    RequestEntityTooLargeError,
)

if TYPE_CHECKING:
    from opendeploy.store.database import Store

__all__ = ["PATH", "Cursor", "output_routes", "read_output"]

log = logging.getLogger("opendeploy.api")

PATH = "/opendeploy/v1/deployments/{deployment_id}/output"
SIGNING_NAME = "codedeploy"
#: Statuses after which a command's output no longer grows.
_FINISHED = frozenset({"Succeeded", "Failed", "Closed"})
_MAX_TARGETS = 100_000


@dataclass(frozen=True)
class Cursor:
    """How far a reader got: ``done`` leading commands read in full, then per-command offsets."""

    done: int = 0
    offsets: tuple[int, ...] = ()

    def encode(self) -> str:
        return ".".join(str(n) for n in (self.done, *self.offsets))

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        """Parse ``after``; the message names the parameter and the expected form."""
        if not text:
            return cls()
        try:
            numbers = [int(part) for part in text.split(".")]
        except ValueError:
            numbers = [-1]
        if any(n < 0 for n in numbers):
            raise InvalidInputError(
                f"after: {text!r} is not a cursor (a nextCursor returned by this endpoint)."
            )
        return cls(numbers[0], tuple(numbers[1:]))


def read_output(
    store: Store,
    deployment_id: str,
    *,
    instances: Sequence[str] = (),
    event: str | None = None,
    after: Cursor = Cursor(),
) -> tuple[list[dict[str, str]], Cursor]:
    """The lines added since ``after`` for the matching commands, and the cursor to go on from."""
    if store.deployments.get(deployment_id) is None:
        raise DeploymentDoesNotExistError(f"The deployment {deployment_id} could not be found.")
    names = list(instances)
    if not names:
        names, _ = store.deployments.list_target_ids(deployment_id, offset=0, limit=_MAX_TARGETS)
    commands: list[dict[str, Any]] = []
    for name in names:
        for command in store.commands.output(deployment_id, name):
            if event is None or command["lifecycle_event"] == event:
                commands.append({**command, "instance_name": name})
    # One order for every reader: dispatch time, then id (the store's order within a target).
    commands.sort(key=lambda c: (c["dispatched_at"], c["command_id"]))

    lines: list[dict[str, str]] = []
    offsets: list[int] = []
    done = min(after.done, len(commands))
    still_leading = True
    for index, command in enumerate(commands[done:]):
        text = command["output"] or ""
        start = after.offsets[index] if index < len(after.offsets) else 0
        if start > len(text):  # the stored output was cut to its newest part meanwhile
            start = 0
        for line in text[start:].splitlines():
            lines.append(
                {
                    "instanceId": str(command["instance_name"]),
                    "lifecycleEvent": str(command["lifecycle_event"]),
                    "line": line,
                }
            )
        if still_leading and command["status"] in _FINISHED:
            done += 1
        else:
            still_leading = False
            offsets.append(len(text))
    return lines, Cursor(done, tuple(offsets))


def serve_admin_json(
    store: Store,
    lookup_secret: sigv4.SecretLookup,
    signed: sigv4.SignedRequest,
    now: datetime,
    *,
    operation: str,
    reading: str,
    answer: Callable[[], dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    """One of the server's own JSON routes, as the API answers: SigV4 scoped to CodeDeploy and
    an admin key, then ``answer()``; any refusal as AWS's error document (status, body)."""
    request_id = str(uuid.uuid4())
    try:
        verified = sigv4.verify(signed, lookup_secret, now=now)
        if verified.service != SIGNING_NAME:
            raise InvalidSignatureError(
                f"Credential should be scoped to correct service: '{SIGNING_NAME}'."
            )
        if store.commands.key_kind(verified.access_key_id) != "admin":
            raise AccessDeniedError(
                f"Access key {verified.access_key_id} may not read {reading}: "
                "an admin key is required."
            )
        return 200, answer()
    except Exception as exc:
        error = to_wire_error(exc, request_id)
        if error.is_fault:
            log.error("fault request_id=%s op=%s", request_id, operation, exc_info=exc)
        return error.status, {"__type": error.code, "message": error.message}


def json_response(status: int, document: dict[str, Any]) -> Response:
    """``document`` as JSON, with AWS's error-type header on a refusal."""
    headers = {"x-amzn-ErrorType": document["__type"]} if status != 200 else None
    return JSONResponse(document, status_code=status, headers=headers)


def output_routes(
    store: Store,
    lookup_secret: sigv4.SecretLookup,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseRoute]:
    """The output route, verifying SigV4 with ``lookup_secret`` (admin keys only)."""

    def serve(
        signed: sigv4.SignedRequest, deployment_id: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        def answer() -> dict[str, Any]:
            lines, cursor = read_output(
                store,
                deployment_id,
                instances=params["instances"],
                event=params["event"],
                after=Cursor.decode(params["after"]),
            )
            return {"deploymentId": deployment_id, "lines": lines, "nextCursor": cursor.encode()}

        return serve_admin_json(
            store,
            lookup_secret,
            signed,
            clock(),
            operation="DeploymentOutput",
            reading="deployment output",
            answer=answer,
        )

    async def endpoint(request: Request) -> Response:
        try:
            body = await small_body(request)
        except RequestEntityTooLargeError as exc:
            return too_large_response(exc)
        signed = sigv4.SignedRequest.from_asgi(request.scope, body)
        params = {
            "instances": request.query_params.getlist("instance"),
            "event": request.query_params.get("event") or None,
            "after": request.query_params.get("after"),
        }
        deployment_id = str(request.path_params["deployment_id"])
        return json_response(*await run_in_threadpool(serve, signed, deployment_id, params))

    return [Route(PATH, endpoint, methods=["GET"])]
