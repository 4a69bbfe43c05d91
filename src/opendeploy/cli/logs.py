"""``opendeploy logs DEPLOYMENT_ID``: print the hook output the agents recorded.

The lines come from the server's output endpoint (``api/output_routes.py``), one per line as
``<instance> <event> | <line>``, so ``grep``/``awk`` work on it. ``--follow`` keeps printing new
lines until the deployment ends. Each line keeps its stream's marker (``[stdout]``/``[stderr]``,
as in scripts.log and the log tails). When the server recorded no streamed output (or does not offer
the endpoint), the lifecycle events' ``diagnostics.logTail`` from the public API is printed
instead, with a note on stderr. Exit status: 0; 2 for an ``--event`` that is no lifecycle event or
an ``--instance`` that is not one of the deployment's; 255 when the service cannot be asked
(like every other command).

This module also holds what the other deployment commands share: the connection options
(:func:`connection_options`), the signed output client (:func:`fetch_output`), target listing
(:func:`fetch_targets`) and the error boundary (:func:`service_errors`).
"""

from __future__ import annotations

import difflib
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click

from opendeploy.cli.render import TERMINAL_STATUSES, OutputLine, output_line
from opendeploy.errors import OpenDeployError

__all__ = [
    "EXIT_SERVICE_ERROR",
    "OutputUnavailableError",
    "codedeploy_client",
    "connection_options",
    "fetch_output",
    "fetch_targets",
    "logs",
    "service_errors",
]

EXIT_SERVICE_ERROR = 255  # aws-cli's status for a failed command
OUTPUT_PATH = "/opendeploy/v1/deployments/{deployment_id}/output"
#: BatchGetDeploymentTargets takes at most this many ids.
_BATCH = 25

F = TypeVar("F", bound=Callable[..., Any])


class OutputUnavailableError(OpenDeployError):
    """The server has no output endpoint (an older or a non-OpenDeploy server)."""


def connection_options(command: F) -> F:
    """The aws-cli-like connection flags every deployment command takes."""
    for decorator in reversed(
        (
            click.option(
                "--endpoint-url", help="The OpenDeploy server (default: found the AWS way)."
            ),
            click.option("--profile", help="AWS profile in the shared credentials/config files."),
            click.option("--region", help="Region to sign for (default: the profile's/server's)."),
            click.option("--no-verify-ssl", is_flag=True, help="Do not verify the certificate."),
        )
    ):
        command = decorator(command)
    return command


def codedeploy_client(
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
    service: str = "codedeploy",
) -> Any:
    """A botocore client for these flags (resolved like every opendeploy command)."""
    from opendeploy.cli.connection import ConnectionOptions, resolve_connection

    options = ConnectionOptions(
        endpoint_url=endpoint_url, profile=profile, region=region, verify_ssl=not no_verify_ssl
    )
    return resolve_connection(options).client(service)


def fail(message: str) -> NoReturn:
    """Print like aws-cli (a blank line, then the message) on stderr and exit 255."""
    click.echo(f"\n{message}", err=True)
    sys.exit(EXIT_SERVICE_ERROR)


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn botocore's and our own errors into one message on stderr and status 255."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        fail(str(exc))
    except (BotoCoreError, OpenDeployError) as exc:
        fail(str(exc))


def fetch_targets(client: Any, deployment_id: str) -> list[dict[str, Any]]:
    """Every deployment target (ListDeploymentTargets, then BatchGetDeploymentTargets)."""
    ids: list[str] = []
    for page in client.get_paginator("list_deployment_targets").paginate(
        deploymentId=deployment_id
    ):
        ids.extend(page.get("targetIds") or ())
    targets: list[dict[str, Any]] = []
    for start in range(0, len(ids), _BATCH):
        answer = client.batch_get_deployment_targets(
            deploymentId=deployment_id, targetIds=ids[start : start + _BATCH]
        )
        targets.extend(answer.get("deploymentTargets") or ())
    return targets


def signed_get(
    client: Any,
    path: str,
    query: Sequence[tuple[str, str]],
    operation: str,
    *,
    missing: Callable[[str], Exception] | None = None,
) -> dict[str, Any]:
    """GET one of the server's own JSON routes, as ``client`` calls the API: signed with its
    credentials (SigV4, service ``codedeploy``) and sent through its HTTP session, so TLS
    verification and proxies are the client's. A refusal raises botocore's ClientError (named
    ``operation``, as the CLI reports API errors); a 404 raises ``missing(url)`` if given."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.exceptions import ClientError

    url = client.meta.endpoint_url.rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(list(query))
    request = AWSRequest(method="GET", url=url)
    # botocore's own accessor (used by its presigners): the credentials the chain resolved.
    credentials = client._get_credentials()
    if credentials is None:
        raise OpenDeployError(f"no AWS credentials to sign the request to {url} with")
    SigV4Auth(credentials.get_frozen_credentials(), "codedeploy", client.meta.region_name).add_auth(
        request
    )
    # The endpoint's session applies the client's verify/ca_bundle and proxy settings.
    response = client._endpoint.http_session.send(request.prepare())
    if response.status_code == 404 and missing is not None:
        raise missing(url)
    try:
        document = json.loads(response.content or b"{}")
    except ValueError:
        document = {}
    if response.status_code != 200:
        code = document.get("__type", f"HTTP {response.status_code}")
        raise ClientError(
            {"Error": {"Code": code, "Message": document.get("message", "")}}, operation
        )
    return dict(document)


def fetch_output(
    client: Any,
    deployment_id: str,
    *,
    instances: Sequence[str] = (),
    event: str | None = None,
    after: str | None = None,
) -> tuple[list[OutputLine], str]:
    """New output lines since the cursor ``after``, and the next cursor (see
    :func:`signed_get`)."""
    query: list[tuple[str, str]] = [("instance", name) for name in instances]
    if event:
        query.append(("event", event))
    if after:
        query.append(("after", after))
    path = OUTPUT_PATH.format(deployment_id=urllib.parse.quote(deployment_id, safe=""))
    document = signed_get(
        client,
        path,
        query,
        "GetDeploymentOutput",
        missing=lambda url: OutputUnavailableError(
            f"{url}: the server has no output endpoint (HTTP 404)"
        ),
    )
    lines = [
        OutputLine(str(item["instanceId"]), str(item["lifecycleEvent"]), str(item["line"]))
        for item in document.get("lines") or ()
    ]
    return lines, str(document.get("nextCursor") or "")


def log_tail_lines(
    targets: Sequence[dict[str, Any]], instances: Sequence[str], event: str | None
) -> list[OutputLine]:
    """The lifecycle events' ``logTail`` lines (what the public API keeps) as output lines."""
    lines: list[OutputLine] = []
    for target in targets:
        body = target.get("instanceTarget") or {}
        name = str(body.get("targetId", ""))
        if instances and name not in instances:
            continue
        for item in body.get("lifecycleEvents") or ():
            if event and item.get("lifecycleEventName") != event:
                continue
            tail = (item.get("diagnostics") or {}).get("logTail") or ""
            for line in tail.splitlines():
                lines.append(OutputLine(name, str(item.get("lifecycleEventName")), line))
    return lines


def _check_event(event: str | None) -> None:
    """A misspelt ``--event`` would match nothing and print nothing: refuse it, naming the
    events there are (the closest first)."""
    from opendeploy.domain.lifecycle import LifecycleEvent

    names = [str(e) for e in LifecycleEvent]
    if event is None or event in names:
        return
    close = difflib.get_close_matches(event, names, n=1, cutoff=0.5) or difflib.get_close_matches(
        event.lower(), [n.lower() for n in names], n=1, cutoff=0.5
    )
    hint = ""
    if close:
        match = next(n for n in names if n.lower() == close[0].lower())
        hint = f" Did you mean {match}?"
    raise click.BadParameter(
        f"{event!r} is not a lifecycle event.{hint} The events: {', '.join(names)}.",
        param_hint="--event",
    )


def _check_instances(client: Any, deployment_id: str, instances: Sequence[str]) -> None:
    """Every ``--instance`` must be a target of the deployment (else nothing would print)."""
    targets: list[str] = []
    for page in client.get_paginator("list_deployment_targets").paginate(
        deploymentId=deployment_id
    ):
        targets.extend(page.get("targetIds") or ())
    unknown = [name for name in instances if name not in targets]
    if unknown:
        shown = ", ".join(targets[:20]) + (
            f" and {len(targets) - 20} more" if len(targets) > 20 else ""
        )
        raise click.BadParameter(
            f"{', '.join(unknown)}: not an instance of {deployment_id} "
            f"(its instances: {shown or 'none'}).",
            param_hint="--instance",
        )


def _print(lines: Sequence[OutputLine]) -> None:
    for line in lines:
        click.echo(output_line(line))


@click.command("logs")
@click.argument("deployment_id")
@click.option("--instance", "instances", multiple=True, help="Only this instance (repeatable).")
@click.option("--event", help="Only this lifecycle event, e.g. ValidateService.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until it ends.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@connection_options
def logs(
    deployment_id: str,
    instances: tuple[str, ...],
    event: str | None,
    follow: bool,
    interval: float,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
) -> None:
    """Print the hook output recorded for a deployment, as `<instance> <event> | <line>`.

    Example: opendeploy logs d-ABCDEFGHI --instance web-1 --event ValidateService
    """
    _check_event(event)
    with service_errors():
        client = codedeploy_client(endpoint_url, profile, region, no_verify_ssl)
        client.get_deployment(deploymentId=deployment_id)  # unknown ids fail here, aws-cli style
        if instances:
            _check_instances(client, deployment_id, instances)
        cursor: str | None = None
        printed = 0
        try:
            while True:
                # Read the status first: output fetched after a terminal status is complete.
                status = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"][
                    "status"
                ]
                lines, cursor = fetch_output(
                    client, deployment_id, instances=instances, event=event, after=cursor
                )
                _print(lines)
                printed += len(lines)
                if not follow or status in TERMINAL_STATUSES:
                    break
                time.sleep(interval)
        except OutputUnavailableError:
            printed = 0
        if printed == 0:
            tails = log_tail_lines(fetch_targets(client, deployment_id), instances, event)
            if tails:
                click.echo(
                    "No streamed output recorded; these are the lifecycle events' log tails.",
                    err=True,
                )
                _print(tails)
