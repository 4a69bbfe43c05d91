"""``opendeploy notifications``: the notification delivery log (SNS topics and webhooks).

One line per delivery, newest first: when the event happened, the deployment (and instance),
the event, the trigger and where it goes, the status, the attempts, and the last error. From the
server's ``/opendeploy/v1/notifications`` endpoint, signed with the admin key like every command.
"""

from __future__ import annotations

import json
from typing import Any

import click

from opendeploy.cli.logs import codedeploy_client, connection_options, service_errors, signed_get

PATH = "/opendeploy/v1/notifications"


def fetch_deliveries(client: Any, query: dict[str, str]) -> list[dict[str, Any]]:
    """The log's rows, signed with the client's credentials and sent through its session."""
    document = signed_get(client, PATH, list(query.items()), "ListNotifications")
    return list(document.get("deliveries") or [])


def render_line(d: dict[str, Any]) -> str:
    """``<time> <deployment>[/<instance>] <event> -> <trigger> (<kind>) <status> ×<attempts>``
    and the last error, if any."""
    where = d["deploymentId"] + (f"/{d['instanceId']}" if d.get("instanceId") else "")
    line = (
        f"{d['occurredAt']} {where} {d['eventType']} -> {d['triggerName']} ({d['targetKind']}) "
        f"{d['status']} x{d['attempts']}"
    )
    if d.get("lastStatusCode"):
        line += f" HTTP {d['lastStatusCode']}"
    if d.get("lastError") and d["status"] != "Delivered":
        line += f" | {d['lastError']}"
    return line


@click.command("notifications")
@click.option("--deployment-id", help="Only this deployment's notifications.")
@click.option(
    "--status",
    type=click.Choice(["Pending", "Delivered", "Failed"]),
    help="Only deliveries in this state.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@connection_options
def notifications(
    deployment_id: str | None,
    status: str | None,
    limit: int,
    output: str,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
) -> None:
    """List notifications sent for deployment triggers (SNS, webhooks): status, attempts, errors."""
    query = {"limit": str(limit)}
    if deployment_id:
        query["deploymentId"] = deployment_id
    if status:
        query["status"] = status
    with service_errors():
        client = codedeploy_client(endpoint_url, profile, region, no_verify_ssl)
        rows = fetch_deliveries(client, query)
    if output == "json":
        click.echo(json.dumps({"deliveries": rows}, indent=2))
        return
    for row in rows:
        click.echo(render_line(row))
