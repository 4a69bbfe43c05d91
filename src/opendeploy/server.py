"""Composition root of ``opendeploy server``: settings -> store -> credentials -> app -> uvicorn.

On start the store is migrated to head, the admin access key is created once (and reused on every
later start, also by other replicas sharing a PostgreSQL database), and written as an AWS
shared-credentials file ``<data-dir>/credentials`` plus ``<data-dir>/config`` (region and
endpoint), both mode 0600, so that ``AWS_SHARED_CREDENTIALS_FILE``/``AWS_CONFIG_FILE`` point boto3
and aws-cli at this server.

The app serves two services on one URL: the control API (admin keys only) and the Command API
(instance keys only), plus ``POST /opendeploy/v1/instance-credentials``. The engine worker runs
in the app's lifespan; CreateDeployment, StopDeployment and on-premises (de)registration wake it.
TLS: ``tls_cert``/``tls_key``, or ``tls_self_signed`` (a certificate created once in the data
directory, also named as ``ca_bundle`` in the written config so AWS clients trust it).

Replicas (several servers on one PostgreSQL database): the admin key, the deployment-spec signer
and the self-signed TLS pair are made once and kept in the database (``store.server_secrets``);
bundles go to ``--bundle-store s3://…``; the engines tell each other which hosts got commands
(``store.replica_channel``). On SIGTERM the engine stops first, held polls are answered and
closing connections are cut once flushed, so a restart takes about a second (see ``run``).
"""

from __future__ import annotations

import asyncio
import configparser
import gc
import importlib.util
import io
import logging
import os
import signal
import socket
import stat
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import anyio.to_thread
import platformdirs
from cryptography import x509
from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from opendeploy.api.alertmanager import alertmanager_routes
from opendeploy.api.app import ServiceBinding, create_app
from opendeploy.api.backlog import Backlog, watch_event_loop
from opendeploy.api.commands import command_service
from opendeploy.api.commands.agent_version import HEADER as AGENT_VERSION_HEADER
from opendeploy.api.commands.agent_version import agent_version
from opendeploy.api.commands.credentials import instance_credentials_route
from opendeploy.api.commands.handlers import CommandApi
from opendeploy.api.commands.received import HEADER as RECEIVED_HEADER
from opendeploy.api.commands.received import MAX_CHARS as RECEIVED_MAX_CHARS
from opendeploy.api.commands.received import received_commands
from opendeploy.api.commands.signing import (
    SharedSecrets,
    SpecSigner,
    endpoint_subject,
    self_signed,
    subject_of,
    write_private,
)
from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import load_handlers
from opendeploy.api.handlers.deployments import engine_stop_deployment, selector
from opendeploy.api.key_cache import KeyKindCache, SecretCache
from opendeploy.api.lambda_api import lambda_routes
from opendeploy.api.model import codedeploy_service
from opendeploy.api.notification_routes import notification_routes
from opendeploy.api.output_routes import output_routes
from opendeploy.api.s3 import s3_routes
from opendeploy.api.s3.virtual_hosts import VirtualHostedBuckets
from opendeploy.blocking import POOL_SIZE
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.engine.alarms import (
    AlarmReader,
    AlarmWatcher,
    CloudWatchSource,
    WebhookAlerts,
)
from opendeploy.engine.alarms import (
    declared as declared_alarms,
)
from opendeploy.engine.dispatch import HostNotifier, Wakeup
from opendeploy.engine.effectors import ByPlatform
from opendeploy.engine.effectors.lambda_alias import AliasRestorer, LambdaAliasEffector
from opendeploy.engine.effectors.lambda_client import CLIENT_CONFIG, lambda_client
from opendeploy.engine.effectors.lambda_hooks import LambdaHookEffector
from opendeploy.engine.effectors.load_balancers import declared
from opendeploy.engine.effectors.providers import traffic_controller
from opendeploy.engine.effectors.runner import EffectorRunner
from opendeploy.engine.effectors.traffic import (
    NoTrafficController,
    TrafficController,
    TrafficEffector,
)
from opendeploy.engine.notifications import declaration as notification_declaration
from opendeploy.engine.notifications.dispatcher import (
    SNS,
    WEBHOOK,
    NotificationSender,
    TriggerFanOut,
)
from opendeploy.engine.notifications.retry import RetryPolicy
from opendeploy.engine.notifications.senders import SnsSender, WebhookSender
from opendeploy.engine.outbox import LogSink, OutboxDelivery
from opendeploy.engine.worker import EngineWorker, StopRequests
from opendeploy.errors import OpenDeployError
from opendeploy.functions.client import (
    FUNCTION_HOST_PRINCIPAL,
    SelfEndpoint,
    self_client_factory,
)
from opendeploy.functions.host import FunctionHost, HostSettings
from opendeploy.functions.names import Arns
from opendeploy.functions.service import FunctionService
from opendeploy.revisions.blobstore import BlobStore
from opendeploy.revisions.bundle_store import BUNDLES_DIR as BUNDLES_DIR
from opendeploy.revisions.bundle_store import open_bundle_store
from opendeploy.service_errors import AccessDeniedError
from opendeploy.settings import ServerSettings
from opendeploy.store.access_keys import new_access_key_id, new_secret_access_key
from opendeploy.store.alarm_watch import AlarmWatchStore
from opendeploy.store.database import Store
from opendeploy.store.engine_store import deploy_to_new_instance
from opendeploy.store.lambda_deployments import LambdaStepStore
from opendeploy.store.notifications import NotificationLog
from opendeploy.store.outbox import Outbox
from opendeploy.store.replica_channel import ReplicaChannel
from opendeploy.store.server_steps import ServerSteps
from opendeploy.web import web_routes
from opendeploy.web.metrics import metrics_routes

log = logging.getLogger("opendeploy.server")

ADMIN_PRINCIPAL = "admin"
CREDENTIALS_FILE = "credentials"
CONFIG_FILE = "config"
TLS_CERT_FILE = "tls-cert.pem"
TLS_KEY_FILE = "tls-key.pem"
REPLICA_ID_FILE = "replica-id"
#: Names in the replicas' shared secrets (``store.server_secrets``).
SHARED_TLS = "tls-self-signed"
SHARED_ADMIN_KEY = "admin-key"

#: Worker threads for the handlers that still go through anyio (Starlette routes: S3, dashboard);
#: the API's own calls use opendeploy.blocking's pool of the same size.
THREAD_POOL_SIZE = POOL_SIZE

#: Control-plane operations after which the engine should look at once.
_WAKING_OPERATIONS = frozenset(
    {
        "CreateDeployment",
        "StopDeployment",
        "ContinueDeployment",
        "RegisterOnPremisesInstance",
        "DeregisterOnPremisesInstance",
        "AddTagsToOnPremisesInstances",
        "PutLifecycleEventHookExecutionStatus",
    }
)


def default_data_dir() -> Path:
    """Where the server keeps its database, credentials and bundles unless told otherwise."""
    return platformdirs.user_data_path("opendeploy")


def default_database_url(data_dir: Path) -> str:
    """SQLite in the data directory."""
    return f"sqlite:///{data_dir.resolve() / 'opendeploy.db'}"


@dataclass(frozen=True)
class CredentialFiles:
    """The admin key and the two files written for AWS clients."""

    access_key_id: str
    secret_access_key: str
    credentials_path: Path
    config_path: Path


@dataclass(frozen=True)
class Server:
    """A ready-to-serve server: the ASGI app, the open store, the admin credentials, the engine."""

    settings: ServerSettings
    store: Store
    app: ASGIApp
    credentials: CredentialFiles
    engine: EngineWorker
    notifier: HostNotifier
    effectors: EffectorRunner
    outbox: OutboxDelivery
    notifications: NotificationSender
    alarms: AlarmWatcher
    #: The built-in function host's Lambda API and key (None: ``function_host`` is off); see
    #: ``functions.client.self_client_options`` for the server's own Lambda client.
    lambda_self: SelfEndpoint | None = None


def client_endpoint(settings: ServerSettings) -> str:
    """The URL a local client reaches the server at (a wildcard bind means loopback)."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{host}:{settings.port}"


def tls_files(
    settings: ServerSettings, shared: SharedSecrets | None = None
) -> tuple[Path, Path] | None:
    """(certificate, key) to serve TLS with; the self-signed pair is created on first use.

    ``shared``: where replicas sharing a database keep the one self-signed pair (the first
    replica stores its own, the others write it to their data directory), so that clients and
    agents that trust one replica's certificate trust them all."""
    if settings.tls_cert is not None:
        return settings.tls_cert, settings.tls_key or settings.tls_cert
    if not settings.tls_self_signed:
        return None
    cert, key = settings.data_dir / TLS_CERT_FILE, settings.data_dir / TLS_KEY_FILE
    # The subject some official agents pin; the names they connect to are in the SANs.
    subject = endpoint_subject(settings.region)
    local = (key.read_bytes() + cert.read_bytes()) if cert.exists() and key.exists() else None
    if shared is not None:
        pair = shared.get_or_create(
            SHARED_TLS, lambda: (local or _new_tls_pair(settings, subject)).decode("ascii")
        ).encode("ascii")
        if pair != local:
            key_pem, _, cert_pem = pair.partition(b"-----BEGIN CERTIFICATE-----")
            write_private(key, key_pem)
            write_private(cert, b"-----BEGIN CERTIFICATE-----" + cert_pem)
            log.info("wrote the replicas' shared self-signed TLS certificate path=%s", cert)
    elif local is None:
        key_pem, cert_pem = self_signed(subject, _tls_names(settings))
        write_private(key, key_pem)
        write_private(cert, cert_pem)
        log.info("created self-signed TLS certificate path=%s", cert)
    if subject_of(cert.read_bytes()) != subject:
        # Kept: clients trust this very certificate. Official agents that pin the endpoint's
        # name refuse it, though, and a user who wants them must know why and what to do.
        log.warning(
            "the self-signed TLS certificate %s is not named %s: official agents that check the"
            " endpoint's name will not start; delete %s and %s to have one made (and give"
            " clients the new certificate)",
            cert,
            subject.rfc4514_string(),
            cert,
            key,
        )
    return cert, key


def _tls_names(settings: ServerSettings) -> tuple[str, ...]:
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    if settings.host not in ("", "0.0.0.0", "::"):
        names.add(settings.host)
    for domain in settings.s3_domains:
        names.update((domain, f"*.{domain}"))
    return tuple(sorted(names))


def _new_tls_pair(settings: ServerSettings, subject: x509.Name) -> bytes:
    key_pem, cert_pem = self_signed(subject, _tls_names(settings))
    log.info("created self-signed TLS certificate for the replicas")
    return key_pem + cert_pem


def shared_secrets(store: Store) -> SharedSecrets | None:
    """Where replicas keep what they must share: the database, on PostgreSQL (the only backend
    several servers share); on SQLite the data directory alone, as before."""
    return store.server_secrets if store.database.dialect == "postgresql" else None


def _admin_key(store: Store) -> tuple[str, str]:
    """The admin key: the oldest one stored, or, on a new database, the one the first replica
    to get there made (replicas starting together all end up with it)."""
    key = store.access_keys.first("admin")
    if key is not None:
        return key
    made = store.server_secrets.get_or_create(
        SHARED_ADMIN_KEY, lambda: f"{new_access_key_id()}:{new_secret_access_key()}"
    )
    access_key_id, _, secret = made.partition(":")
    store.access_keys.ensure(access_key_id, secret, principal=ADMIN_PRINCIPAL, kind="admin")
    log.info("created admin access key access_key_id=%s", access_key_id)
    return store.access_keys.first("admin") or (access_key_id, secret)


def bootstrap_credentials(store: Store, settings: ServerSettings) -> CredentialFiles:
    """Reuse (or on first start create) the admin key and write the credentials/config files."""
    access_key_id, secret = _admin_key(store)
    credentials = configparser.ConfigParser()
    credentials["default"] = {
        "aws_access_key_id": access_key_id,
        "aws_secret_access_key": secret,
    }
    config = configparser.ConfigParser()
    config["default"] = {"region": settings.region, "endpoint_url": client_endpoint(settings)}
    tls = tls_files(settings, shared_secrets(store))
    if tls is not None and settings.tls_self_signed:
        config["default"]["ca_bundle"] = str(tls[0])
    credentials_path = settings.data_dir / CREDENTIALS_FILE
    config_path = settings.data_dir / CONFIG_FILE
    _write_private(credentials_path, credentials)
    _write_private(config_path, config)
    return CredentialFiles(access_key_id, secret, credentials_path, config_path)


def _write_private(path: Path, parser: configparser.ConfigParser) -> None:
    """Write ``path`` with mode 0600 from the start (never world-readable, even briefly)."""
    buffer = io.StringIO()
    parser.write(buffer)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, buffer.getvalue().encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


def replica_id(data_dir: Path) -> str:
    """This server's lease owner name, kept in ``<data-dir>/replica-id`` across restarts.

    A restarted server (after a crash, even mid-pass) takes its own unexpired leases back at once
    instead of waiting ``lease_seconds``. Replicas must therefore not share a data directory.
    """
    path = data_dir / REPLICA_ID_FILE
    try:
        return path.read_text().strip() or _new_replica_id(path)
    except FileNotFoundError:
        return _new_replica_id(path)


def _new_replica_id(path: Path) -> str:
    ident = f"{socket.gethostname()[:60]}:{uuid.uuid4().hex[:12]}"
    write_private(path, ident.encode())
    return ident


def _control_handler(
    key_kind: Callable[[str], str | None], operation: str, handler: Handler, wake: Wakeup
) -> Handler:
    """``handler`` for admin keys only (instance keys get AccessDenied), waking the engine."""
    waking = operation in _WAKING_OPERATIONS

    def call(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        if key_kind(ctx.principal) == "instance":
            raise AccessDeniedError(
                f"Access key {ctx.principal} is an instance key: it may only call the "
                f"Command API (PollHostCommand …), not {operation}."
            )
        try:
            return handler(ctx, params)
        finally:
            if waking:
                wake.set()

    return call


def _forgetting_keys(handler: Handler, secrets: SecretCache) -> Handler:
    """``handler`` (DeregisterOnPremisesInstance) then forget cached secrets: the instance's key
    must stop working at once, not when its cached secret expires."""

    def call(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return handler(ctx, params)
        finally:
            secrets.forget_all()

    return call


def _first_poll(store: Store, wake: Wakeup) -> Any:
    def select_groups(
        name: str, tags: dict[str, str], groups: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return [g for g in groups if selector(g)([(name, "", tags)])]

    def on_first_poll(name: str, now: Any) -> None:
        if deploy_to_new_instance(store, name, now, select_groups=select_groups):
            wake.set()

    return on_first_poll


#: The permission bits no file or directory of the data directory may have (group and others).
_OPEN_BITS = 0o077


def prepare_data_dir(data_dir: Path, database_url: str) -> None:
    """Create the data directory (0700) and make what it holds owner-only.

    Everything in it is a secret or leads to one: the database and its WAL and shared-memory
    files (access keys), the credentials, the TLS and signing keys, the bundles. A directory
    created beforehand with a wider mode is kept (it may be the administrator's choice) but
    named in a warning; files from an earlier start with group or other bits lose them. The
    SQLite database file is created here, owner-only, before SQLite opens it: SQLite gives its
    ``-wal`` and ``-shm`` files the database file's mode."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = data_dir.stat().st_mode & 0o777
    if mode & _OPEN_BITS:
        log.warning(
            "the data directory %s has mode %04o: other users may list it; its files are made"
            " owner-only, but chmod 700 %s to keep them from seeing even their names",
            data_dir,
            mode,
            data_dir,
        )
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            _remove_open_bits(Path(root, name))
        for name in files:
            _remove_open_bits(Path(root, name))
    database = sqlite_path(database_url)
    if database is not None:
        if not database.exists():
            database.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            _remove_open_bits(path)


def sqlite_path(database_url: str) -> Path | None:
    """The file of a ``sqlite:///…`` URL (None for other databases and in-memory SQLite)."""
    if not database_url.startswith("sqlite:///"):
        return None
    path = database_url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _remove_open_bits(path: Path) -> None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & _OPEN_BITS:
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~_OPEN_BITS)


def create_server(
    settings: ServerSettings,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    traffic: TrafficController | None = None,
) -> Server:
    """Open (and migrate) the store, bootstrap credentials and build the app and its engine.

    ``traffic``: the load balancer BlockTraffic and AllowTraffic drive (none by default: the
    steps leave traffic alone and say so)."""
    # A malformed alarm declaration stops the start, saying where, before anything is written.
    declared_alarms(settings.alarms_file)
    prepare_data_dir(settings.data_dir, settings.database_url)
    store = Store.open(settings.database_url, max_connections=settings.database_connections)
    try:
        credentials = bootstrap_credentials(store, settings)
        # Before the effectors: a Lambda effector's client reaches the built-in host through
        # functions.client.self_client_options(lambda_self) when it is on.
        blobs = open_bundle_store(settings.bundle_store, settings.data_dir, settings.region)
        function_service, function_host, lambda_self = _function_host(store, settings, blobs)
        notifier, wakeup, backlog = HostNotifier(), Wakeup(), Backlog()
        if traffic is None and settings.load_balancers_file is not None:
            traffic = traffic_controller(declared(settings.load_balancers_file))
        lambda_steps = LambdaStepStore(store)
        # boto3's standard configuration, or this server's own function host when it is on and
        # AWS_ENDPOINT_URL_LAMBDA names no other endpoint.
        lambda_api = self_client_factory(lambda_self, CLIENT_CONFIG) or lambda_client
        restorer = AliasRestorer(lambda_steps, client=lambda_api)
        lambda_hooks = LambdaHookEffector(lambda_steps, client=lambda_api)
        traffic_effector = TrafficEffector(
            traffic or NoTrafficController(),
            minute=timedelta(seconds=settings.minute_seconds),
        )
        effectors = EffectorRunner(
            ServerSteps(store),
            {
                LifecycleEvent.BLOCK_TRAFFIC: traffic_effector,
                LifecycleEvent.ALLOW_TRAFFIC: ByPlatform(
                    traffic_effector,
                    Lambda=LambdaAliasEffector(
                        lambda_steps, restorer, client=lambda_api, minute=settings.minute
                    ),
                ),
                LifecycleEvent.BEFORE_ALLOW_TRAFFIC: lambda_hooks,
                LifecycleEvent.AFTER_ALLOW_TRAFFIC: lambda_hooks,
            },
            on_outcome=wakeup.set,
            tick_seconds=max(settings.engine_tick_seconds, 0.5),
            lease_seconds=settings.step_lease_seconds,
        )
        owner = replica_id(settings.data_dir)
        alarms_file = settings.alarms_file
        webhook_alerts = WebhookAlerts()
        alarm_watcher = AlarmWatcher(
            AlarmWatchStore(store),
            AlarmReader(
                cloudwatch=CloudWatchSource(region=settings.region), webhook=webhook_alerts
            ),
            lambda: declared_alarms(alarms_file),
            on_change=wakeup.set,
            poll_seconds=settings.alarm_poll_seconds,
        )
        notifications = _notifications(store, settings, owner)
        outbox = OutboxDelivery(
            Outbox(store, owner),
            [
                LogSink(),
                TriggerFanOut(
                    notifications.deliveries,
                    notifications.declaration,
                    region=settings.region,
                    account_id=settings.account_id,
                    on_added=notifications.wake,
                ),
            ],
            tick_seconds=OUTBOX_TICK_SECONDS,
        )
        channel = (
            ReplicaChannel(store.database.engine.url, owner, notifier.notify)
            if store.database.dialect == "postgresql"
            else None
        )
        engine = EngineWorker(
            store,
            settings,
            notifier=notifier,
            wakeup=wakeup,
            owner=owner,
            backlog=backlog.delay,
            heard=lambda: command_api.heard(),
            polled=lambda: command_api.polled(),
            on_server_steps=effectors.wake,
            publish=channel.publish if channel is not None else None,
        )
        key_kind = KeyKindCache(store.commands.key_kind)
        control = {
            op: _control_handler(key_kind, op, h, wakeup) for op, h in load_handlers().items()
        }
        control["StopDeployment"] = _control_handler(
            key_kind, "StopDeployment", engine_stop_deployment(StopRequests(engine)), wakeup
        )
        lookup_secret = SecretCache(
            store.commands.lookup_secret, explain=_revoked_key_reason(store)
        )
        signer = SpecSigner.load_or_create(
            settings.data_dir, settings.region, shared_secrets(store)
        )
        command_api = CommandApi(
            notifier=notifier,
            wakeup=wakeup,
            signer=signer,
            on_first_poll=_first_poll(store, wakeup),
            on_deregistration=lookup_secret.forget_all,
        )
        services = [
            ServiceBinding(codedeploy_service(), control),
            ServiceBinding(command_service(), command_api.handlers()),
        ]
        control["DeregisterOnPremisesInstance"] = _forgetting_keys(
            control["DeregisterOnPremisesInstance"], lookup_secret
        )

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            limiter = anyio.to_thread.current_default_thread_limiter()
            limiter.total_tokens = THREAD_POOL_SIZE
            if channel is not None:
                channel.start()
            engine.start()
            effectors.start()
            restorer.start()
            outbox.start()
            alarm_watcher.start()
            notifications.start()
            watcher = asyncio.create_task(watch_event_loop(backlog))
            try:
                yield
            finally:
                watcher.cancel()
                notifier.close()
                await anyio.to_thread.run_sync(alarm_watcher.stop)
                await anyio.to_thread.run_sync(effectors.stop)
                await anyio.to_thread.run_sync(restorer.stop)
                await anyio.to_thread.run_sync(engine.stop)
                await anyio.to_thread.run_sync(outbox.stop)
                if function_host is not None:
                    await function_host.close()
                await anyio.to_thread.run_sync(notifications.stop)
                if channel is not None:
                    await anyio.to_thread.run_sync(channel.stop)
                store.close()

        app = create_app(
            services=services,
            lookup_secret=lookup_secret,
            context_factory=lambda key_id, request_id: RequestContext(
                store=store, settings=settings, principal=key_id, request_id=request_id
            ),
            extra_routes=[
                instance_credentials_route(
                    store, lookup_secret, signer_certificate=signer.certificate_pem()
                ),
                *output_routes(store, lookup_secret),
                *notification_routes(store, notifications.deliveries, lookup_secret),
                # The bundle store's S3 front only takes requests signed for service "s3", so it
                # never shadows the API's POST / or the other routes.
                *s3_routes(store=store, blobs=blobs, settings=settings),
                # The function host's Lambda API (/2015-03-31/functions…), after the S3 front so
                # that a bucket of that name stays reachable; refusing, when the host is off,
                # with a message that says how to turn it on.
                *lambda_routes(
                    service=function_service,
                    host=function_host,
                    lookup_secret=lookup_secret,
                    key_kind=key_kind,
                ),
                # The dashboard acts through the same handler table as POST / (admin check,
                # engine wake-ups, StopDeployment through the engine).
                *web_routes(
                    store=store,
                    settings=settings,
                    lookup_secret=lookup_secret,
                    control=control,
                    is_closing=lambda: notifier.closed,
                ),
                *alertmanager_routes(
                    webhook_alerts, lambda: declared_alarms(alarms_file), alarm_watcher.wake
                ),
                *metrics_routes(
                    store,
                    agent_dead_after_seconds=settings.agent_dead_after_seconds,
                    token=settings.metrics_token,
                ),
                *extra_routes,
            ],
            lifespan=lifespan,
            backlog=backlog,
            context_headers={
                AGENT_VERSION_HEADER: agent_version,
                RECEIVED_HEADER: received_commands,
            },
            context_header_limits={RECEIVED_HEADER: RECEIVED_MAX_CHARS},
        )
        # Instead of uvicorn's own (see run): here it wraps every route but the agents' POST /,
        # which needs neither the client's address nor its scheme.
        app.add_middleware(
            ProxyHeadersMiddleware,
            trusted_hosts=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        )
        served: ASGIApp = app
        if settings.s3_domains:
            # Outside the app itself, whose POST / goes to the API before any middleware: a
            # bucket's host is the S3 front's whatever its path.
            served = VirtualHostedBuckets(app, settings.s3_domains)
    except BaseException:
        store.close()
        raise
    return Server(
        settings=settings,
        store=store,
        app=served,
        credentials=credentials,
        engine=engine,
        notifier=notifier,
        effectors=effectors,
        outbox=outbox,
        alarms=alarm_watcher,
        lambda_self=lambda_self,
        notifications=notifications,
    )


def _notifications(store: Store, settings: ServerSettings, owner: str) -> NotificationSender:
    """The notification sender, with the webhooks the declaration file names (if any)."""
    declared = (
        notification_declaration.load(settings.notifications_file)
        if settings.notifications_file is not None
        else notification_declaration.Notifications()
    )
    return NotificationSender(
        NotificationLog(store, owner),
        declared,
        {SNS: SnsSender(), WEBHOOK: WebhookSender(dict(declared.webhooks))},
        policy=RetryPolicy(
            max_attempts=settings.notification_max_attempts,
            first_delay_seconds=settings.notification_first_retry_seconds,
        ),
    )


class FunctionHostUnavailableError(OpenDeployError, RuntimeError):
    """The function host was asked for but cannot run (its runtime client is missing)."""


def _function_host(
    store: Store, settings: ServerSettings, blobs: BlobStore
) -> tuple[FunctionService | None, FunctionHost | None, SelfEndpoint | None]:
    """The function host's service, process host and self endpoint, when it is enabled.

    Functions sign their calls back to this server with a key of their own (principal
    ``function-host``), made on first start; it is an admin key (as a Lambda execution role
    with the permissions deployment hooks need: PutLifecycleEventHookExecutionStatus and the
    rest of the API)."""
    if not settings.function_host:
        return None, None, None
    if importlib.util.find_spec("awslambdaric") is None:
        raise FunctionHostUnavailableError(
            "--function-host: functions run under the awslambdaric package, which is not "
            f"installed for {sys.executable}: pip install awslambdaric"
        )
    key = store.access_keys.of_principal(FUNCTION_HOST_PRINCIPAL, "admin")
    if key is None:
        key = store.access_keys.create(principal=FUNCTION_HOST_PRINCIPAL, kind="admin")
        log.info("created function host access key access_key_id=%s", key[0])
    tls = tls_files(settings)
    ca_bundle = tls[0] if tls is not None and settings.tls_self_signed else None
    endpoint = SelfEndpoint(
        endpoint_url=client_endpoint(settings),
        region=settings.region,
        access_key_id=key[0],
        secret_access_key=key[1],
        ca_bundle=ca_bundle,
    )
    host = FunctionHost(
        HostSettings(
            root=settings.data_dir / "functions",
            endpoint=endpoint.endpoint_url,
            region=settings.region,
            access_key_id=key[0],
            secret_access_key=key[1],
            ca_bundle=ca_bundle,
            max_concurrency=settings.function_concurrency,
        ),
        blobs,
    )

    def s3_lookup(bucket: str, key: str, version: str | None) -> str | None:
        index = store.bundle_objects
        record = index.version(bucket, key, version) if version else index.current(bucket, key)
        return None if record is None or record.delete_marker else record.sha256

    service = FunctionService(
        store.functions,
        blobs,
        Arns(settings.region, settings.account_id),
        clock=lambda: datetime.now(UTC),
        s3_lookup=s3_lookup,
    )
    return service, host, endpoint


#: How often deployment events are delivered from the outbox, in batches (at least once). Not
#: after every engine pass: a round per pass cost two small write transactions each (SQLite's
#: write lock, beside the agents' group commit), 7% of the server's CPU per host-event at 1,000
#: hosts.
OUTBOX_TICK_SECONDS = 1.0

#: The cyclic garbage collector's first-generation threshold while serving (CPython: 700).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect reference cycles far less often while serving.

    A server holding a fleet's long polls keeps hundreds of thousands of objects alive (a task,
    a coroutine, a transport and a parser per held poll), and with CPython's default thresholds
    the collector walked them so often that it took about a tenth of the server's CPU (perf,
    1,000 simulated hosts: ``gc_collect_main`` and its visitors). Almost nothing a request makes
    lives in a cycle; what does is still collected, only in larger, rarer rounds. What exists
    at start-up (modules, the app, the table metadata) lives as long as the process and is
    frozen out of collection altogether."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def run(server: Server) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn finishes in-flight requests, then the store closes."""
    import uvicorn

    tune_gc()

    tls = tls_files(server.settings)
    config = uvicorn.Config(
        server.app,
        host=server.settings.host,
        port=server.settings.port,
        log_config=None,  # our structured logging is already configured
        access_log=False,  # one line per request comes from api.app instead
        lifespan="on",
        proxy_headers=False,  # the app applies X-Forwarded-* itself (see create_server)
        server_header=False,  # no "server: uvicorn" (nor its cost on each of a fleet's calls)
        timeout_graceful_shutdown=30,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    notifier, engine = server.notifier, server.engine

    class _Uvicorn(uvicorn.Server):
        """Shuts down in about a second, judging no agent meanwhile.

        As soon as shutdown starts the engine stops (agents cannot reach a stopping server: its
        silence is not theirs, and another replica or this one restarted judges them on
        evidence) and the held long polls are released (the agents poll again, elsewhere or
        after the restart). Connections that are closing are then cut once their response is
        out: an idle keep-alive TLS connection (the official agent always holds one) would
        otherwise wait for the client's close_notify, which never comes, for the whole of
        asyncio's 30 s SSL shutdown timeout."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            engine.request_stop()
            notifier.close()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            cutter = asyncio.create_task(cut_closing_connections(self.server_state.connections))
            try:
                await super().shutdown(sockets)
            finally:
                cutter.cancel()

    received: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown) and afterwards re-raises the
        # signal to whatever handler was installed before it; with this one the process then
        # returns normally and exits 0 instead of dying by the signal it asked for.
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda signum, _frame: received.append(signum))
    try:
        _Uvicorn(config).run()
    finally:
        server.store.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        log.info("stopped signal=%s", signal.Signals(received[0]).name)


#: How long a closing connection may flush its last response before it is cut at shutdown.
CLOSING_GRACE_SECONDS = 0.25


async def cut_closing_connections(connections: Iterable[Any]) -> None:
    """Abort the transports of connections that are closing with nothing left to send, until
    cancelled (runs while uvicorn waits for its connections at shutdown).

    ``close()`` of a TLS transport sends close_notify and waits for the peer's (up to asyncio's
    30 s ``ssl_shutdown_timeout``); clients that just drop the connection never answer. A
    connection seen closing is given :data:`CLOSING_GRACE_SECONDS` to flush, then aborted (the
    socket is closed: the client sees a FIN, as from a plain-HTTP server)."""
    closing_since: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        for connection in list(connections):
            transport = getattr(connection, "transport", None)
            if transport is None or not transport.is_closing():
                continue
            first = closing_since.setdefault(id(connection), now)
            if now - first >= CLOSING_GRACE_SECONDS and not transport.get_write_buffer_size():
                transport.abort()
        await asyncio.sleep(0.05)


def _revoked_key_reason(store: Store) -> Callable[[str], str | None]:
    """The reason given for a deregistered instance's key, so that its agent can say so."""

    def explain(access_key_id: str) -> str | None:
        revoked = store.commands.revoked_instance(access_key_id)
        if revoked is None:
            return None
        name, when = revoked
        if when is None:
            return (
                f"it is the key of on-premises instance {name} as it was before it was "
                "deregistered and registered again; the new registration has its own key"
            )
        return (
            f"it is the key of on-premises instance {name}, deregistered at "
            f"{when.isoformat(timespec='seconds')}; register the instance again for a new key"
        )

    return explain
