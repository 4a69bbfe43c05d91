"""``opendeploy deploy``: push a directory, create the deployment and follow it, in one command.

The bundle is zipped and uploaded exactly as ``opendeploy push`` does (same checks, same default
location ``s3://opendeploy-bundles/<application>/<uuid>.zip``), registered as a revision, deployed
with CreateDeployment, and then followed as ``opendeploy watch`` does. Exit status: 0 only when
the deployment Succeeded, 1 when it Failed or was Stopped, 130 on Ctrl-C while following (the
deployment goes on), 255 when a request fails.
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from opendeploy.cli.logs import codedeploy_client, connection_options, service_errors
from opendeploy.cli.push import (
    DEFAULT_BUCKET,
    parse_s3_location,
    upload_bundle,
    write_bundle,
)
from opendeploy.cli.watch import EXIT_INTERRUPTED, exit_status, watch_deployment

__all__ = ["deploy", "push_and_create"]

FILE_EXISTS_BEHAVIORS = ("DISALLOW", "OVERWRITE", "RETAIN")


def push_and_create(
    codedeploy: Any,
    s3: Any,
    *,
    application: str,
    group: str,
    source: Path,
    s3_location: str | None = None,
    deployment_config: str | None = None,
    file_exists_behavior: str | None = None,
    description: str | None = None,
) -> str:
    """Zip ``source``, upload and register it, create the deployment; returns its id."""
    if s3_location:
        bucket, key = parse_s3_location(s3_location)
    else:
        bucket, key = DEFAULT_BUCKET, f"{application}/{uuid.uuid4()}.zip"
    with tempfile.TemporaryDirectory(prefix="opendeploy-deploy-") as tmp:
        bundle = Path(tmp) / "bundle.zip"
        with bundle.open("wb") as out:
            write_bundle(source, out)
        etag, version = upload_bundle(s3, bundle, bucket, key)
    location: dict[str, str] = {"bucket": bucket, "key": key, "bundleType": "zip", "eTag": etag}
    if version:
        location["version"] = version
    revision = {"revisionType": "S3", "s3Location": location}
    codedeploy.register_application_revision(
        applicationName=application,
        revision=revision,
        description=description or f"opendeploy deploy of {source.resolve()}",
    )
    params: dict[str, Any] = {
        "applicationName": application,
        "deploymentGroupName": group,
        "revision": revision,
    }
    if deployment_config:
        params["deploymentConfigName"] = deployment_config
    if file_exists_behavior:
        params["fileExistsBehavior"] = file_exists_behavior
    if description:
        params["description"] = description
    return str(codedeploy.create_deployment(**params)["deploymentId"])


@click.command("deploy")
@click.option("--application-name", required=True, help="The application to deploy.")
@click.option("--deployment-group-name", required=True, help="The deployment group to deploy to.")
@click.argument(
    "directory",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--deployment-config-name", help="e.g. CodeDeployDefault.HalfAtATime.")
@click.option(
    "--file-exists-behavior",
    type=click.Choice(FILE_EXISTS_BEHAVIORS),
    help="What Install does with files that are already there (default: the group's, DISALLOW).",
)
@click.option("--description", help="Description of the revision and the deployment.")
@click.option(
    "--s3-location",
    help=f"s3://<bucket>/<key> for the bundle (default: s3://{DEFAULT_BUCKET}/<app>/<uuid>.zip).",
)
@click.option("--interval", default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--no-live", is_flag=True, help="Plain lines even in a terminal.")
@click.option("--no-watch", is_flag=True, help="Print the deployment id and return at once.")
@connection_options
def deploy(
    application_name: str,
    deployment_group_name: str,
    directory: Path,
    deployment_config_name: str | None,
    file_exists_behavior: str | None,
    description: str | None,
    s3_location: str | None,
    interval: float,
    no_live: bool,
    no_watch: bool,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
    no_verify_ssl: bool,
) -> None:
    """Push DIRECTORY (default: .), deploy it to a deployment group and follow the deployment.

    Exit status: 0 if it Succeeded, 1 if it Failed or was Stopped, 255 if a request fails.

    Example: opendeploy deploy --application-name web --deployment-group-name prod ./build
    """
    console = Console()
    with service_errors():
        codedeploy = codedeploy_client(endpoint_url, profile, region, no_verify_ssl)
        # The S3 client goes to the same endpoint with the same key (the server's bundle store).
        s3 = codedeploy_client(endpoint_url, profile, region, no_verify_ssl, service="s3")
        deployment_id = push_and_create(
            codedeploy,
            s3,
            application=application_name,
            group=deployment_group_name,
            source=directory,
            s3_location=s3_location,
            deployment_config=deployment_config_name,
            file_exists_behavior=file_exists_behavior,
            description=description,
        )
        click.echo(f"Created deployment {deployment_id}")
        if no_watch:
            return
        try:
            snapshot = watch_deployment(
                codedeploy, deployment_id, console=console, interval=interval, live=not no_live
            )
        except KeyboardInterrupt:
            click.echo(
                f"\nStopped watching; {deployment_id} goes on "
                f"(`opendeploy watch {deployment_id}` to follow it again).",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_status(snapshot))
