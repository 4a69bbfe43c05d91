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

from opendeploy.cli.logs import codedeploy_client, connection_options, service_errors
from opendeploy.cli.push import (
    DEFAULT_BUCKET,
    parse_s3_location,
    upload_bundle,
    write_bundle,
)
from opendeploy.cli.render import cli_console
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
    ignore_hidden_files: bool = False,
    options: dict[str, Any] | None = None,
) -> str:
    """Zip ``source``, upload and register it, create the deployment; returns its id.

    The application and the group are checked first (GetDeploymentGroup), so a misspelt name
    fails before anything is uploaded or registered. ``options`` are more CreateDeployment
    members (``ignoreApplicationStopFailures``, ``autoRollbackConfiguration`` …).
    """
    codedeploy.get_deployment_group(applicationName=application, deploymentGroupName=group)
    if s3_location:
        bucket, key = parse_s3_location(s3_location)
    else:
        bucket, key = DEFAULT_BUCKET, f"{application}/{uuid.uuid4()}.zip"
    with tempfile.TemporaryDirectory(prefix="opendeploy-deploy-") as tmp:
        bundle = Path(tmp) / "bundle.zip"
        with bundle.open("wb") as out:
            write_bundle(source, out, ignore_hidden=ignore_hidden_files)
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
    params.update(options or {})
    return str(codedeploy.create_deployment(**params)["deploymentId"])


def _auto_rollback(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    from opendeploy.cli.aws_commands import parse_member

    parsed: dict[str, Any] = parse_member("CreateDeployment", "autoRollbackConfiguration", value)
    return parsed


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
    "--ignore-application-stop-failures",
    is_flag=True,
    help="Go on when the previous revision's ApplicationStop (or Before/AfterBlockTraffic) fails.",
)
@click.option(
    "--auto-rollback-configuration",
    metavar="enabled=BOOL,events=EVENT,…",
    help="Override the group's automatic rollback, aws-cli shorthand or JSON, e.g. "
    "enabled=true,events=DEPLOYMENT_FAILURE,DEPLOYMENT_STOP_ON_REQUEST.",
)
@click.option(
    "--update-outdated-instances-only",
    is_flag=True,
    help="Deploy only to the instances that do not run the group's target revision yet.",
)
@click.option(
    "--ignore-hidden-files",
    is_flag=True,
    help="Leave out files and directories whose names start with '.' (as push does).",
)
@click.option(
    "--no-follow-rollback",
    is_flag=True,
    help="Do not follow the automatic rollback of a failed deployment.",
)
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
    ignore_application_stop_failures: bool,
    auto_rollback_configuration: str | None,
    update_outdated_instances_only: bool,
    ignore_hidden_files: bool,
    no_follow_rollback: bool,
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

    When it fails and an automatic rollback starts, the rollback is followed too (the exit
    status stays the deployment's). Exit status: 0 if it Succeeded, 1 if it Failed or was
    Stopped, 255 if a request fails.

    Example: opendeploy deploy --application-name web --deployment-group-name prod ./build
    """
    console = cli_console()
    options: dict[str, Any] = {}
    if ignore_application_stop_failures:
        options["ignoreApplicationStopFailures"] = True
    if update_outdated_instances_only:
        options["updateOutdatedInstancesOnly"] = True
    rollback_config = _auto_rollback(auto_rollback_configuration)
    if rollback_config is not None:
        options["autoRollbackConfiguration"] = rollback_config
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
            ignore_hidden_files=ignore_hidden_files,
            options=options,
        )
        click.echo(f"Created deployment {deployment_id}")
        if no_watch:
            return
        try:
            following = deployment_id
            snapshot = watch_deployment(
                codedeploy, deployment_id, console=console, interval=interval, live=not no_live
            )
            rollback = snapshot.deployment.rollback_deployment_id
            if rollback and not no_follow_rollback:
                following = rollback
                click.echo(f"\nFollowing the rollback {rollback}")
                watch_deployment(
                    codedeploy, rollback, console=console, interval=interval, live=not no_live
                )
        except KeyboardInterrupt:
            click.echo(
                f"\nStopped watching; {following} goes on "
                f"(`opendeploy watch {following}` to follow it again).",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    sys.exit(exit_status(snapshot))
