"""``GET /opendeploy/v1/notifications``: the notification delivery log (beyond AWS).

For ``opendeploy notifications`` (the dashboard reads the same log at ``/ui/notifications``).
Signed with SigV4 (service ``codedeploy``) by an **admin** key, as the output endpoint. Query
parameters, all optional: ``deploymentId``, ``status`` (``Pending``, ``Delivered``, ``Failed``),
``limit`` (1–1000, default 100). The answer, newest first::

    {"deliveries": [{"id": 12, "deploymentId": "d-…", "instanceId": null,
                     "eventType": "DeploymentSuccess", "triggerName": "chat",
                     "targetKind": "webhook", "target": "arn:aws:sns:…", "status": "Delivered",
                     "attempts": 1, "lastStatusCode": 200, "lastError": null,
                     "occurredAt": "…", "lastAttemptAt": "…", "deliveredAt": "…",
                     "nextAttemptAt": "…", "idempotencyKey": "…"}, …]}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from opendeploy.api import sigv4
from opendeploy.api.output_routes import json_response, serve_admin_json
from opendeploy.service_errors import InvalidInputError
from opendeploy.store.notifications import DELIVERED, FAILED, PENDING, LoggedDelivery

if TYPE_CHECKING:
    from opendeploy.store.database import Store
    from opendeploy.store.notifications import NotificationLog

__all__ = ["PATH", "notification_routes", "wire"]

PATH = "/opendeploy/v1/notifications"
MAX_LIMIT = 1000


def wire(d: LoggedDelivery) -> dict[str, Any]:
    """A delivery as the endpoint answers it (camelCase, ISO 8601 times)."""

    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t is not None else None

    return {
        "id": d.id,
        "deploymentId": d.deployment_id,
        "instanceId": d.instance_id,
        "eventType": d.event_type,
        "triggerName": d.trigger_name,
        "targetKind": d.target_kind,
        "target": d.target,
        "status": d.status,
        "attempts": d.attempts,
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "occurredAt": iso(d.occurred_at),
        "lastAttemptAt": iso(d.last_attempt_at),
        "deliveredAt": iso(d.delivered_at),
        "nextAttemptAt": iso(d.next_attempt_at),
        "idempotencyKey": d.idempotency_key,
    }


def _limit(text: str | None) -> int:
    if text is None:
        return 100
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidInputError(f"limit: {text!r} is not a whole number from 1 to {MAX_LIMIT}.")
    return int(text)


def notification_routes(
    store: Store,
    deliveries: NotificationLog,
    lookup_secret: sigv4.SecretLookup,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseRoute]:
    """The route, verifying SigV4 with ``lookup_secret`` (admin keys only)."""

    def serve(signed: sigv4.SignedRequest, params: dict[str, str | None]) -> tuple[int, Any]:
        def answer() -> dict[str, Any]:
            status = params["status"]
            if status is not None and status not in (PENDING, DELIVERED, FAILED):
                raise InvalidInputError(
                    f"status: {status!r} is not one of {PENDING}, {DELIVERED}, {FAILED}."
                )
            rows = deliveries.recent(
                limit=_limit(params["limit"]),
                deployment_id=params["deploymentId"],
                status=status,
            )
            return {"deliveries": [wire(r) for r in rows]}

        return serve_admin_json(
            store,
            lookup_secret,
            signed,
            clock(),
            operation="ListNotifications",
            reading="the notification log",
            answer=answer,
        )

    async def endpoint(request: Request) -> Response:
        signed = sigv4.SignedRequest.from_asgi(request.scope, b"")
        params = {
            name: request.query_params.get(name) or None
            for name in ("deploymentId", "status", "limit")
        }
        return json_response(*await run_in_threadpool(serve, signed, params))

    return [Route(PATH, endpoint, methods=["GET"])]
