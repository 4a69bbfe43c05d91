"""The schema: one SQLAlchemy Core table per stored noun.

Scalar attributes get columns (snake_case); the nested configuration objects of the CodeDeploy
API (alarmConfiguration, autoRollbackConfiguration, loadBalancerInfo, revision locations …) are
kept as JSON columns in their AWS wire shape, because the engine reads them field by field as AWS
defines them and nothing queries inside them. Times are stored in UTC and always read back as
aware datetimes (:class:`UTCDateTime`), on SQLite as on PostgreSQL.

Deployments and their targets do not reference applications or groups by foreign key: deleting an
application removes its groups and revision records, but the deployment history stays.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned as an aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware datetimes")
        value = value.astimezone(UTC)
        # SQLite has no time zone type: store naive UTC there, aware elsewhere.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_NAME = 100  # AWS name limit (applications, groups, configs, instances)
_ARN = 1600


def _json(name: str, **kw: Any) -> Column[Any]:
    return Column(name, JSON(none_as_null=True), nullable=True, **kw)


access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(20), primary_key=True),
    Column("secret_access_key", String(40), nullable=False),
    Column("principal", String(_ARN), nullable=False),
    Column("kind", String(16), nullable=False),  # "admin" | "instance"
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "kind"),
)

# A dashboard sign-in (web/session): the cookie carries the nonce, signed; the row makes it a
# session until sign-out, its key's revocation (cascade) or its expiry.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),  # hex SHA-256 of the cookie's nonce
    Column(
        "access_key_id",
        String(20),
        ForeignKey("access_keys.access_key_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

applications = Table(
    "applications",
    metadata,
    Column("application_id", String(36), primary_key=True),
    Column("name", String(_NAME), nullable=False, unique=True),
    Column("compute_platform", String(16), nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("linked_to_github", Boolean, nullable=False, default=False),
    Column("github_account_name", String(_NAME), nullable=True),
)

deployment_configs = Table(
    "deployment_configs",
    metadata,
    Column("deployment_config_id", String(36), primary_key=True),
    Column("name", String(_NAME), nullable=False, unique=True),
    Column("compute_platform", String(16), nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    _json("minimum_healthy_hosts"),
    _json("traffic_routing_config"),
    _json("zonal_config"),
)

deployment_groups = Table(
    "deployment_groups",
    metadata,
    Column("deployment_group_id", String(36), primary_key=True),
    Column(
        "application_id",
        String(36),
        ForeignKey("applications.application_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(_NAME), nullable=False),
    Column("compute_platform", String(16), nullable=False),
    Column("deployment_config_name", String(_NAME), nullable=False),
    Column("service_role_arn", String(_ARN), nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
    _json("ec2_tag_filters"),
    _json("on_premises_instance_tag_filters"),
    _json("ec2_tag_set"),
    _json("on_premises_tag_set"),
    _json("auto_scaling_groups"),
    _json("trigger_configurations"),
    _json("alarm_configuration"),
    _json("auto_rollback_configuration"),
    _json("deployment_style"),
    _json("blue_green_deployment_configuration"),
    _json("load_balancer_info"),
    _json("ecs_services"),
    Column("outdated_instances_strategy", String(16), nullable=True),
    Column("termination_hook_enabled", Boolean, nullable=False, default=False),
    _json("target_revision"),
    Column("last_successful_deployment_id", String(32), nullable=True),
    Column("last_attempted_deployment_id", String(32), nullable=True),
    UniqueConstraint("application_id", "name"),
)

revisions = Table(
    "revisions",
    metadata,
    Column("revision_id", Integer, primary_key=True, autoincrement=True),
    Column(
        "application_id",
        String(36),
        ForeignKey("applications.application_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # A canonical text of the location (type + identifying fields) so a revision is found again
    # whatever order or optional extras a client sends.
    Column("location_key", String(2048), nullable=False),
    Column("revision_type", String(16), nullable=False),
    _json("location"),
    Column("s3_bucket", String(255), nullable=True),
    Column("s3_key", String(1024), nullable=True),
    Column("description", Text, nullable=True),
    Column("register_time", UTCDateTime(), nullable=False),
    Column("first_used_time", UTCDateTime(), nullable=True),
    Column("last_used_time", UTCDateTime(), nullable=True),
    UniqueConstraint("application_id", "location_key"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("deployment_id", String(32), primary_key=True),
    Column("application_id", String(36), nullable=False),
    Column("application_name", String(_NAME), nullable=False),
    Column("deployment_group_id", String(36), nullable=True),
    Column("deployment_group_name", String(_NAME), nullable=True),
    Column("deployment_config_name", String(_NAME), nullable=False),
    Column("compute_platform", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("creator", String(32), nullable=False),
    Column("description", Text, nullable=True),
    _json("revision"),
    _json("previous_revision"),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("start_time", UTCDateTime(), nullable=True),
    Column("complete_time", UTCDateTime(), nullable=True),
    _json("error_information"),
    _json("rollback_info"),
    Column("ignore_application_stop_failures", Boolean, nullable=False, default=False),
    Column("update_outdated_instances_only", Boolean, nullable=False, default=False),
    Column("file_exists_behavior", String(16), nullable=False, default="DISALLOW"),
    Column("deployment_mode", String(16), nullable=True),
    _json("auto_rollback_configuration"),
    _json("deployment_style"),
    _json("target_instances"),
    _json("blue_green_deployment_configuration"),
    _json("load_balancer_info"),
    _json("override_alarm_configuration"),
    _json("ec2_deployment_options"),
    _json("deployment_status_messages"),
    Column("additional_deployment_status_info", Text, nullable=True),
    Column("instance_termination_wait_time_started", Boolean, nullable=False, default=False),
    Column("external_id", String(256), nullable=True),
    # Set by StopDeployment; the engine finishes the stop (and rolls back when asked).
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("auto_rollback_on_stop", Boolean, nullable=True),
    # Set with stop_requested by the alarm watcher (engine.alarms): the stop is an alarm's, and
    # which alarms raised it ({"alarms": [...], "unreadable": bool}).
    Column("stop_by_alarm", Boolean, nullable=False, default=False, server_default=false()),
    _json("stop_alarms"),
    # The deployment's analysis gate and what its metric last read (engine.alarms.gates).
    _json("gate_state"),
    # Set by ContinueDeployment (READY_WAIT | TERMINATION_WAIT); the engine acts on it.
    Column("continue_requested", String(32), nullable=True),
    # Row leases for several server replicas (engine issue).
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    # Bumped by every engine write to the targets and their events: what lets the engine keep
    # them in memory between passes (see engine.worker.TargetsState).
    Column("engine_revision", Integer, nullable=False, default=0, server_default="0"),
    Index(None, "deployment_group_id", "status"),
    Index(None, "application_name", "deployment_group_name"),
    Index(None, "status"),
    Index(None, "create_time"),
)

deployment_targets = Table(
    "deployment_targets",
    metadata,
    Column(
        "deployment_id",
        String(32),
        ForeignKey("deployments.deployment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("target_id", String(_NAME), primary_key=True),
    Column("target_arn", String(_ARN), nullable=False),
    Column("target_type", String(32), nullable=False, default="InstanceTarget"),
    Column("instance_label", String(16), nullable=True),  # Blue | Green (blue/green only)
    Column("status", String(16), nullable=False),
    Column("last_updated_at", UTCDateTime(), nullable=False),
    Index(None, "deployment_id", "status"),
)

lifecycle_events = Table(
    "lifecycle_events",
    metadata,
    Column("deployment_id", String(32), primary_key=True),
    Column("target_id", String(_NAME), primary_key=True),
    Column("position", Integer, primary_key=True),  # order of the event in the lifecycle
    Column("name", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", UTCDateTime(), nullable=True),
    Column("end_time", UTCDateTime(), nullable=True),
    # {errorCode, scriptName, message, logTail} as the API shows them
    _json("diagnostics"),
    ForeignKeyConstraint(
        ["deployment_id", "target_id"],
        ["deployment_targets.deployment_id", "deployment_targets.target_id"],
        ondelete="CASCADE",
    ),
)

on_premises_instances = Table(
    "on_premises_instances",
    metadata,
    Column("name", String(_NAME), primary_key=True),
    Column("instance_arn", String(_ARN), nullable=False),
    Column("iam_user_arn", String(_ARN), nullable=True),
    Column("iam_session_arn", String(_ARN), nullable=True),
    Column("register_time", UTCDateTime(), nullable=False),
    Column("deregister_time", UTCDateTime(), nullable=True),
    # Filled by the agent-facing API: last PollHostCommand and the agent's reported version.
    Column("last_seen_at", UTCDateTime(), nullable=True),
    Column("agent_version", String(64), nullable=True),
    # Set by the engine when a deployment needs the instance and its agent has not polled for
    # agent_dead_after_seconds; cleared by the agent's next call. None: reachable (or unknown).
    Column("unreachable_since", UTCDateTime(), nullable=True),
    # The newest deregistration, asked every second by each server process (key revocation).
    Index(None, "deregister_time"),
    # Every instance key's SigV4 lookup finds its instance by ARN (a scan per agent call
    # without it: quadratic in the fleet's size).
    Index(None, "instance_arn"),
    Index(None, "iam_user_arn"),
    Index(None, "iam_session_arn"),
)

instance_tags = Table(
    "instance_tags",
    metadata,
    Column(
        "instance_name",
        String(_NAME),
        ForeignKey("on_premises_instances.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False, default=""),
)

resource_tags = Table(
    "resource_tags",
    metadata,
    Column("resource_arn", String(_ARN), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", String(256), nullable=False, default=""),
)

github_account_tokens = Table(
    "github_account_tokens",
    metadata,
    Column("name", String(_NAME), primary_key=True),
    Column("token", Text, nullable=True),
    Column("create_time", UTCDateTime(), nullable=False),
)

# One row per command handed (or to be handed) to an agent through the Command API. The engine
# creates it (status Pending) and closes it (Closed, with ``closed_at``); the agent's reports fill
# ``delivered_at`` (PollHostCommand), ``acknowledged_at``/``noop`` (InProgress) and
# ``completed_at``/``result``/``diagnostics`` (Succeeded | Failed). A target has at most one open
# command (``closed_at`` NULL). ``output`` keeps the tail of the hook output the agent streamed
# with PostHostCommandUpdate, bounded by the repository.
host_commands = Table(
    "host_commands",
    metadata,
    Column("command_id", String(64), primary_key=True),
    Column(
        "deployment_id",
        String(32),
        ForeignKey("deployments.deployment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("instance_name", String(_NAME), nullable=False),
    Column("lifecycle_event", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("dispatched_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("acknowledged_at", UTCDateTime(), nullable=True),
    Column("completed_at", UTCDateTime(), nullable=True),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("noop", Boolean, nullable=False, default=False),
    Column("result", String(16), nullable=True),
    # {errorCode, scriptName, message, logTail}: the public LifecycleEvent.diagnostics shape
    _json("diagnostics"),
    Column("output", Text, nullable=True),
    # The status the engine last took in (see ``commands.changed_commands``): a command whose
    # status differs has news for it. NULL on rows older than the column (news, to be safe).
    Column("seen_status", String(16), nullable=True),
    # Who carries the command out: ``agent`` (the host's agent polls for it) or ``server`` (an
    # effector of the server: load balancer, Lambda, ECS …). A server command is created
    # ``Queued``, a status no agent's poll ever claims, and moves on as an agent's does.
    Column("executor", String(16), nullable=False, default="agent", server_default="agent"),
    Index(None, "instance_name", "status"),
    Index(None, "deployment_id", "instance_name"),
    # The engine's "open commands of this deployment": without it a pass scanned every command
    # the deployment ever had (seven per target) to find the open ones.
    Index(None, "deployment_id", "closed_at"),
    # The sweep's "which hosts have a command waiting" (few rows are Pending at any time).
    Index(None, "status"),
    # The effector runner's "which server steps are due" (a fleet's agent commands are many).
    Index(None, "executor", "status"),
)

# The outbox of deployment events (CodeDeploy's trigger event types: DeploymentStart …
# InstanceReady). Written in the transaction of the engine decision that caused the event, so
# that none is lost or invented; handed to the sinks at least once by a leased delivery loop
# (``delivered_at`` set after the sinks took it; ``lease_owner``/``lease_expires_at`` keep two
# replicas from delivering one batch at once). ``seq`` gives the order.
deployment_events = Table(
    "deployment_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("deployment_id", String(32), nullable=False),
    Column("instance_id", String(_NAME), nullable=True),
    Column("event_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    # The event's details (group, application, error, rollback links): the sinks' message.
    _json("detail"),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Index(None, "delivered_at", "seq"),
    Index(None, "deployment_id", "seq"),
)

# The S3-subset front of the bundle store (api/s3): bucket names, object versions pointing at
# content-addressed blobs, and multipart uploads in progress. ``seq`` orders the versions of a
# key (the highest is the current one); a delete marker is a version without a blob.
bundle_buckets = Table(
    "bundle_buckets",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

bundle_objects = Table(
    "bundle_objects",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column(
        "bucket",
        String(63),
        ForeignKey("bundle_buckets.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(1024), nullable=False),
    Column("version_id", String(64), nullable=False, unique=True),
    Column("sha256", String(64), nullable=True, index=True),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("delete_marker", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "bucket", "key", "seq"),
)

bundle_uploads = Table(
    "bundle_uploads",
    metadata,
    Column("upload_id", String(64), primary_key=True),
    Column(
        "bucket",
        String(63),
        ForeignKey("bundle_buckets.name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("key", String(1024), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

bundle_upload_parts = Table(
    "bundle_upload_parts",
    metadata,
    Column(
        "upload_id",
        String(64),
        ForeignKey("bundle_uploads.upload_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("part_number", Integer, primary_key=True),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("md5", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# The built-in function host (functions/): a function, its versions ("$LATEST" is the one that
# changes; published ones are numbered from 1 and never change) and its aliases. The code zip
# of each version is a blob of the bundle store, named by its hex SHA-256.
lambda_functions = Table(
    "lambda_functions",
    metadata,
    Column("function_name", String(64), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # The number of the newest published version (0: none yet); versions are never reused.
    Column("last_version", Integer, nullable=False),
)

lambda_function_versions = Table(
    "lambda_function_versions",
    metadata,
    Column(
        "function_name",
        String(64),
        ForeignKey("lambda_functions.function_name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", String(16), primary_key=True),  # "$LATEST", "1", "2" …
    # runtime, handler, role, description, timeout, memory_size, environment: as the API has them
    _json("config"),
    Column("code_sha256", String(64), nullable=False),  # hex; the blob's name
    Column("code_size", Integer, nullable=False),
    Column("revision_id", String(36), nullable=False),
    Column("last_modified", UTCDateTime(), nullable=False),
)

lambda_aliases = Table(
    "lambda_aliases",
    metadata,
    Column(
        "function_name",
        String(64),
        ForeignKey("lambda_functions.function_name", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", String(128), primary_key=True),
    Column("function_version", String(16), nullable=False),
    Column("description", String(256), nullable=False),
    _json("routing"),  # {"<version>": weight}, or null
    Column("revision_id", String(36), nullable=False),
)
