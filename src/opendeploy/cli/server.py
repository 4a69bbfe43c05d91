"""``opendeploy server``: run the CodeDeploy-compatible API server."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from click.decorators import FC

from opendeploy.engine.alarms.declarations import AlarmDeclarationError
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarationError
from opendeploy.settings import ServerSettings
from opendeploy.web import dashboard_hint

_LOG_FIELDS_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def configure_logging(level: str) -> None:
    """Structured ``key=value`` lines on stderr, one per event (a request is one line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter(_LOG_FIELDS_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic announces each of its plugins at INFO on every start; keep the log about us.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _seconds_option(flag: str, default: float, help_text: str) -> Callable[[FC], FC]:
    """An option taking a positive number of seconds, its default shown in ``--help``."""
    return click.option(
        flag,
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=True,
        help=help_text,
    )


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8443,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port for the API, the agents, the bundle store and the dashboard.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="OPENDEPLOY_DATA_DIR",
    help="Database, credentials and bundles (default: the user's data directory).",
)
@click.option(
    "--database-url",
    envvar="OPENDEPLOY_DATABASE_URL",
    help="sqlite:///path or postgresql://user@host/db (default: SQLite in the data directory).",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region clients sign for.")
@click.option(
    "--account-id", default="000000000000", show_default=True, help="Account id used in ARNs."
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM certificate (chain) to serve HTTPS with; agents require TLS.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="PEM private key of --tls-cert (default: the key inside --tls-cert).",
)
@click.option(
    "--tls",
    "tls_self_signed",
    is_flag=True,
    help="Serve HTTPS with a self-signed certificate created once in the data directory.",
)
@click.option(
    "--s3-domain",
    "s3_domains",
    multiple=True,
    metavar="DOMAIN",
    help=(
        "Also answer S3 requests for <bucket>.DOMAIN (virtual-hosted style, as the official "
        "agent's aws-sdk-s3 sends them to an endpoint named by DNS); repeatable."
    ),
)
@_seconds_option(
    "--agent-dead-after",
    15.0,
    "Seconds without a poll after which an agent's lifecycle event fails.",
)
@_seconds_option(
    "--restart-grace",
    95.0,
    (
        "Seconds an agent not heard from since the server started gets before it counts as "
        "dead (agents retry with a backoff while the server is down: the official agent's "
        "reaches about 90 s)."
    ),
)
@_seconds_option(
    "--event-timeout",
    3600.0,
    (
        "Seconds a lifecycle event may run before it fails (the official service's default, "
        "which it does not let you change: one hour)."
    ),
)
@_seconds_option(
    "--deployment-timeout",
    12 * 3600.0,
    (
        "Seconds a deployment may run before it fails with TIMEOUT (the official service's "
        "default for an in-place deployment: 12 hours)."
    ),
)
@_seconds_option(
    "--event-start-timeout",
    300.0,
    "Seconds a dispatched lifecycle event may wait for its agent to take it up.",
)
@_seconds_option(
    "--poll-timeout",
    20.0,
    "Seconds a PollHostCommand is held when there is no command.",
)
@_seconds_option(
    "--minute-seconds",
    60.0,
    (
        "Length in seconds of a minute wherever the API counts in minutes: it scales every "
        "such wait (traffic-shift intervals, the blue/green ready and termination waits). For "
        "tests, demos and benchmarks; the API still shows minutes."
    ),
)
@_seconds_option(
    "--step-lease",
    30.0,
    (
        "Seconds after which a server step (BlockTraffic, AllowTraffic) whose runner stopped "
        "renewing its claim (a killed server, a lost database) is taken up and run again."
    ),
)
@click.option(
    "--load-balancers",
    "load_balancers",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=(
        "YAML file declaring the target groups deployment groups may name (an HAProxy backend, "
        "an nginx upstream or an ELBv2 target group each): BlockTraffic drains an instance's "
        "server there and AllowTraffic readies it. Without it, traffic steps change nothing."
    ),
)
@click.option(
    "--alarms",
    "alarms",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=(
        "YAML file declaring what alarm names stand for (Prometheus-compatible expressions and "
        "alerts, Alertmanager alerts, CloudWatch alarms), the analysis gates of deployment "
        "groups and the Alertmanager receiver's token. A name it does not declare is a "
        "CloudWatch alarm."
    ),
)
@_seconds_option(
    "--alarm-poll-seconds",
    1.0,
    "How often the alarms and gates of running deployments are read.",
)
@click.option(
    "--function-host",
    is_flag=True,
    default=False,
    help=(
        "Run the built-in function host: this server also answers the Lambda API "
        "(/2015-03-31/functions…, boto3's lambda client and `aws lambda` with --endpoint-url) and "
        "runs Python functions as processes under awslambdaric. Deployments' Lambda client "
        "then uses it unless AWS_ENDPOINT_URL_LAMBDA says otherwise."
    ),
)
@click.option(
    "--function-concurrency",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Function processes running at once per function version (--function-host).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Least severe log messages to print.",
)
def server(
    host: str,
    port: int,
    data_dir: Path | None,
    database_url: str | None,
    region: str,
    account_id: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_self_signed: bool,
    s3_domains: tuple[str, ...],
    agent_dead_after: float,
    restart_grace: float,
    event_timeout: float,
    deployment_timeout: float,
    event_start_timeout: float,
    poll_timeout: float,
    minute_seconds: float,
    step_lease: float,
    load_balancers: Path | None,
    alarms: Path | None,
    alarm_poll_seconds: float,
    function_host: bool,
    function_concurrency: int,
    log_level: str,
) -> None:
    """Serve the AWS CodeDeploy API (awsJson1_1 and RPC v2 CBOR, SigV4) until SIGTERM.

    On first start an admin access key is created and written as an AWS shared-credentials file
    with a matching config file in the data directory; point AWS_SHARED_CREDENTIALS_FILE and
    AWS_CONFIG_FILE at them to use boto3 or aws-cli against this server.
    """
    from opendeploy import server as server_module
    from opendeploy.api.s3.virtual_hosts import normalize_domain

    configure_logging(log_level)
    if tls_key is not None and tls_cert is None:
        raise click.UsageError("--tls-key: needs --tls-cert")
    if tls_self_signed and tls_cert is not None:
        raise click.UsageError("--tls: creates its own certificate; leave out --tls-cert")
    data_dir = (data_dir or server_module.default_data_dir()).resolve()
    settings = ServerSettings(
        data_dir=data_dir,
        database_url=database_url or server_module.default_database_url(data_dir),
        region=region,
        account_id=account_id,
        host=host,
        port=port,
        tls_cert=tls_cert.resolve() if tls_cert else None,
        tls_key=tls_key.resolve() if tls_key else None,
        tls_self_signed=tls_self_signed,
        s3_domains=tuple(normalize_domain(d) for d in s3_domains if normalize_domain(d)),
        agent_dead_after_seconds=agent_dead_after,
        restart_grace_seconds=restart_grace,
        event_timeout_seconds=event_timeout,
        deployment_timeout_seconds=deployment_timeout,
        event_start_timeout_seconds=event_start_timeout,
        poll_timeout_seconds=poll_timeout,
        minute_seconds=minute_seconds,
        step_lease_seconds=step_lease,
        load_balancers_file=load_balancers,
        alarms_file=alarms,
        alarm_poll_seconds=alarm_poll_seconds,
        function_host=function_host,
        function_concurrency=function_concurrency,
    )
    # Everything the server writes is in its data directory, and all of it is private (keys,
    # the database and its WAL, bundles): owner-only from creation, whatever the files' code.
    os.umask(0o077)
    try:
        built = server_module.create_server(settings)
    except LoadBalancerDeclarationError as e:
        raise click.UsageError(f"--load-balancers: {e}") from None
    except AlarmDeclarationError as e:
        raise click.UsageError(f"--alarms: {e}") from None
    except server_module.FunctionHostUnavailableError as e:
        raise click.UsageError(str(e)) from None
    creds = built.credentials
    click.echo(f"credentials: {creds.credentials_path}")
    click.echo(f"config: {creds.config_path}")
    endpoint = server_module.client_endpoint(settings)
    click.echo(f"endpoint: {endpoint}", nl=True)
    click.echo(dashboard_hint(endpoint, settings.data_dir, creds.access_key_id))
    sys.stdout.flush()
    server_module.run(built)
