"""``POST /opendeploy/v1/alertmanager``: an Alertmanager-compatible webhook receiver.

Alertmanager (or vmalert through it, or anything that posts its webhook JSON) delivers alerts
here; an alarm declared as ``alertmanager: {alert: NAME, labels: {...}}`` is in ALARM while a
matching alert fires, and a firing alert stops the matching deployments at once (the alarm
watcher runs a round as soon as the alerts are taken in). Authenticated by the bearer token of
the ``--alarms`` file's ``webhook.token`` (Alertmanager's ``http_config.authorization``); with
no token declared the receiver answers 404.

    receivers:
      - name: opendeploy
        webhook_configs:
          - url: http://server:8443/opendeploy/v1/alertmanager
            send_resolved: true
            http_config: {authorization: {credentials: s3cret}}
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from opendeploy.api.bodies import small_body, too_large_response
from opendeploy.engine.alarms.declarations import AlarmDeclarations
from opendeploy.engine.alarms.sources import WebhookAlerts
from opendeploy.service_errors import RequestEntityTooLargeError

ALERTMANAGER_PATH = "/opendeploy/v1/alertmanager"


def alertmanager_routes(
    alerts: WebhookAlerts,
    declarations: Callable[[], AlarmDeclarations],
    on_alerts: Callable[[], None],
) -> Sequence[BaseRoute]:
    """The receiver's route: alerts go to ``alerts``, then ``on_alerts`` (a watcher round)."""

    async def receive(request: Request) -> Response:
        token = declarations().webhook_token
        if token is None:
            return _error(404, "No Alertmanager receiver is declared (webhook.token in --alarms).")
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _error(401, "Missing or wrong bearer token.")
        try:
            body = json.loads(await small_body(request))
        except RequestEntityTooLargeError as exc:
            return too_large_response(exc)
        except ValueError:
            return _error(400, "The body is not JSON.")
        raw = body.get("alerts") if isinstance(body, dict) else None
        if not isinstance(raw, list):
            return _error(400, "Expected Alertmanager's webhook JSON, with an 'alerts' list.")
        taken = alerts.receive(a for a in raw if isinstance(a, dict))
        on_alerts()
        return JSONResponse({"received": taken})

    return [Route(ALERTMANAGER_PATH, receive, methods=["POST"])]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)
