"""``opendeploy instance register|deregister``: enrol a machine as an on-premises instance.

``register NAME`` does what ``aws deploy register`` does for AWS, against an OpenDeploy server:
RegisterOnPremisesInstance (+ AddTagsToOnPremisesInstances), then asks the server for the
instance's own access key (``POST /opendeploy/v1/instance-credentials``, admin-signed), and
writes the two files the agent reads:

- ``codedeployagent.yml``: the official keys, leading colons and all (``:root_dir:``,
  ``:deploy_control_endpoint:`` = this server, ``:on_premises_config_file:`` = the second file);
- ``codedeploy.onpremises.yml``: ``iam_user_arn``, ``aws_access_key_id``,
  ``aws_secret_access_key``, ``region`` (mode 0600).

Start the agent with ``opendeploy agent --config DIR/codedeployagent.yml``. The endpoint, key
and region are found like every other CLI command (``opendeploy.cli.connection``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.cli.main import SuggestingGroup
from opendeploy.errors import OpenDeployError

__all__ = [
    "AGENT_CONFIG_NAME",
    "ON_PREMISES_CONFIG_NAME",
    "AgentFiles",
    "instance",
    "iam_user_arn_for",
    "write_agent_files",
]

AGENT_CONFIG_NAME = "codedeployagent.yml"
ON_PREMISES_CONFIG_NAME = "codedeploy.onpremises.yml"
#: The server's default account id (``opendeploy server --account-id``).
DEFAULT_ACCOUNT_ID = "000000000000"


def iam_user_arn_for(name: str, account_id: str = DEFAULT_ACCOUNT_ID) -> str:
    """The IAM-user-style identity OpenDeploy gives an instance it issues a key to."""
    return f"arn:aws:iam::{account_id}:user/opendeploy/{name}"


def _scalar(value: object) -> str:
    """A YAML scalar: JSON strings are valid double-quoted YAML, numbers and booleans as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value))


@dataclass(frozen=True)
class AgentFiles:
    """The two files :func:`write_agent_files` wrote."""

    agent_config: Path
    on_premises_config: Path
    #: The deployment-spec signer's certificate, named as the official agent's CA file.
    signer_ca: Path | None = None


def write_agent_files(
    output_dir: Path,
    *,
    endpoint: str,
    region: str,
    iam_user_arn: str,
    access_key_id: str,
    secret_access_key: str,
    root_dir: Path | None = None,
    extra: Mapping[str, object] | None = None,
    signer_certificate: str | None = None,
) -> AgentFiles:
    """Write ``codedeployagent.yml`` and ``codedeploy.onpremises.yml`` (0600) into ``output_dir``.

    Directories default to ``output_dir/{deployment-root,logs,pid}``; both the Command API and
    S3 (``:s3_endpoint_override:``) go to ``endpoint``; ``extra`` adds or overrides agent keys
    (without colons, e.g. ``{"s3_endpoint_override": "http://…"}`` for another bundle store).
    ``signer_certificate`` (the server's spec signer, PEM) is written beside them under the name
    of the official agent's CA file, for that agent to verify deployment specifications with.
    """
    output_dir = output_dir.absolute()
    output_dir.mkdir(parents=True, exist_ok=True)
    on_premises = output_dir / ON_PREMISES_CONFIG_NAME
    agent_config = output_dir / AGENT_CONFIG_NAME
    keys: dict[str, object] = {
        "log_dir": str(output_dir / "logs"),
        "pid_dir": str(output_dir / "pid"),
        "program_name": "codedeploy-agent",
        "root_dir": str((root_dir or output_dir / "deployment-root").absolute()),
        "verbose": False,
        "wait_between_runs": 1,
        "max_revisions": 5,
        "deploy_control_endpoint": endpoint,
        # Bundles come from the server's S3 store: the official agent goes to AWS's S3 without
        # this (ours falls back to the endpoint above anyway).
        "s3_endpoint_override": endpoint,
        "on_premises_config_file": str(on_premises),
    }
    keys.update(extra or {})
    secret_lines = [
        "# Written by `opendeploy instance register`: this host's identity and its own key.",
        f"iam_user_arn: {_scalar(iam_user_arn)}",
        f"aws_access_key_id: {_scalar(access_key_id)}",
        f"aws_secret_access_key: {_scalar(secret_access_key)}",
        f"region: {_scalar(region)}",
    ]
    # Created 0600 from the start: the secret is never readable by others, not even briefly.
    fd = os.open(on_premises, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("\n".join(secret_lines) + "\n")
    lines = ["# Written by `opendeploy instance register` (official codedeployagent.yml keys)."]
    lines += [f":{key}: {_scalar(value)}" for key, value in keys.items()]
    agent_config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    signer_ca = None
    if signer_certificate is not None:
        from opendeploy.api.commands.signing import SIGNER_CA_FILE

        signer_ca = output_dir / SIGNER_CA_FILE
        signer_ca.write_text(signer_certificate, encoding="ascii")
    return AgentFiles(
        agent_config=agent_config, on_premises_config=on_premises, signer_ca=signer_ca
    )


def _parse_tags(values: tuple[str, ...]) -> list[dict[str, str]]:
    """``--tags role=web,env=test --tags tier=1`` as [{Key, Value}]: commas separate tags when
    every part is KEY=VALUE (else the comma belongs to the value: ``note=a,b``)."""
    tags = []
    for value in values:
        parts = value.split(",")
        if len(parts) > 1 and not all("=" in p and not p.startswith("=") for p in parts):
            parts = [value]
        for part in parts:
            key, sep, tag_value = part.partition("=")
            if not sep or not key:
                raise click.BadParameter(f"{part!r} is not KEY=VALUE", param_hint="--tags")
            tags.append({"Key": key, "Value": tag_value})
    return tags


def _client(endpoint_url: str | None, profile: str | None, region: str | None) -> Any:
    return _connect(endpoint_url, profile, region)[0]


def _connect(
    endpoint_url: str | None, profile: str | None, region: str | None
) -> tuple[Any, str | None]:
    """A CodeDeploy client, and the CA bundle it trusts the server with (None: the system's)."""
    from opendeploy.cli.connection import ConnectionOptions, resolve_connection

    try:
        connection = resolve_connection(
            ConnectionOptions(endpoint_url=endpoint_url, profile=profile, region=region)
        )
        return connection.client("codedeploy"), connection.ca_bundle
    except (OpenDeployError, BotoCoreError) as exc:
        raise click.ClickException(str(exc)) from exc


def _call(client: Any, operation: str, **params: Any) -> Any:
    try:
        return getattr(client, operation)(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise click.ClickException(
            f"{error.get('Code')}: {error.get('Message')} (at {client.meta.endpoint_url})"
        ) from exc
    except BotoCoreError as exc:
        raise click.ClickException(f"{exc} (at {client.meta.endpoint_url})") from exc


_connection_options = [
    click.option("--endpoint-url", help="The OpenDeploy server (default: found the AWS way)."),
    click.option("--profile", help="AWS profile in the shared credentials/config files."),
    click.option("--region", help="Region to sign for (default: the profile's, or the server's)."),
]


def _with_connection_options(command: Any) -> Any:
    for option in reversed(_connection_options):
        command = option(command)
    return command


@click.group("instance", cls=SuggestingGroup)
def instance() -> None:
    """Register on-premises instances and write their agent configuration."""


@instance.command("register")
@click.argument("name")
@click.option(
    "--tags",
    "tags",
    multiple=True,
    metavar="KEY=VALUE[,KEY=VALUE…]",
    help="Tag the instance: role=web,env=test (repeatable).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    help="Where to write codedeployagent.yml and codedeploy.onpremises.yml (default: .).",
)
@click.option(
    "--root-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The agent's deployment root (default: OUTPUT_DIR/deployment-root).",
)
@click.option("--iam-user-arn", help="Identity to register (default: an opendeploy user ARN).")
@click.option(
    "--account-id",
    envvar="OPENDEPLOY_ACCOUNT_ID",
    default=DEFAULT_ACCOUNT_ID,
    show_default=True,
    help="Account id in the default IAM user ARN.",
)
@click.option(
    "--s3-endpoint-override",
    help="Where the agent downloads S3 revisions from (written as :s3_endpoint_override:).",
)
@_with_connection_options
def register(
    name: str,
    tags: tuple[str, ...],
    output_dir: Path,
    root_dir: Path | None,
    iam_user_arn: str | None,
    account_id: str,
    s3_endpoint_override: str | None,
    endpoint_url: str | None,
    profile: str | None,
    region: str | None,
) -> None:
    """Register NAME, issue its key, and write the agent's configuration files."""
    from opendeploy.clients import ClientError as RouteError
    from opendeploy.clients import request_instance_credentials

    tag_list = _parse_tags(tags)
    client, ca_bundle = _connect(endpoint_url, profile, region)
    arn = iam_user_arn or iam_user_arn_for(name, account_id)
    _call(client, "register_on_premises_instance", instanceName=name, iamUserArn=arn)
    if tag_list:
        _call(client, "add_tags_to_on_premises_instances", tags=tag_list, instanceNames=[name])
    try:
        credentials = request_instance_credentials(client, name)
    except RouteError as exc:
        raise click.ClickException(str(exc)) from exc
    files = write_agent_files(
        output_dir,
        endpoint=client.meta.endpoint_url,
        region=client.meta.region_name,
        iam_user_arn=credentials.iam_user_arn,
        access_key_id=credentials.access_key_id,
        secret_access_key=credentials.secret_access_key,
        root_dir=root_dir,
        extra={"s3_endpoint_override": s3_endpoint_override} if s3_endpoint_override else None,
        signer_certificate=credentials.spec_signer_certificate,
    )
    click.echo(f"Registered {name} as {credentials.iam_user_arn}")
    click.echo(f"agent config: {files.agent_config}")
    click.echo(f"credentials:  {files.on_premises_config} (mode 0600)")
    trust = ""
    if ca_bundle and str(client.meta.endpoint_url).startswith("https:"):
        # The agent reads no profile: it trusts the server's certificate through its environment.
        trust = f"AWS_CA_BUNDLE={ca_bundle} "
    click.echo(f"start it with: {trust}opendeploy agent --config {files.agent_config}")
    if files.signer_ca is not None:
        click.echo(
            f"official agent: copy {files.signer_ca} over its certs/{files.signer_ca.name}"
            " (see the README's official-agent section)"
        )


@instance.command("deregister")
@click.argument("name")
@_with_connection_options
def deregister(
    name: str, endpoint_url: str | None, profile: str | None, region: str | None
) -> None:
    """Deregister NAME (its agent can no longer poll; the files it has are left alone)."""
    client = _client(endpoint_url, profile, region)
    _call(client, "deregister_on_premises_instance", instanceName=name)
    click.echo(f"Deregistered {name}")
