"""The Lambda side of the deployment operations: CreateDeployment's AppSpec and target,
PutLifecycleEventHookExecutionStatus, LambdaTarget in the targets API, the weight history.

CreateDeployment reads the AppSpec from the revision (``AppSpecContent`` or ``String``) and
records it with the deployment; an AppSpec that cannot be deployed does not refuse the call: the
deployment fails when it starts, with AWS's ``INVALID_LAMBDA_CONFIGURATION`` and the reason, as
AWS reports it. The deployment's one target is the function, named by its name (AWS's model:
"For deployments that use the AWS Lambda compute platform, the target ID is the function
name"); the checks against the function itself (alias, versions, hooks) are the first server
step's (``engine.effectors.lambda_hooks``).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from opendeploy.api.context import RequestContext
from opendeploy.appspec.lambda_spec import (
    INVALID_LAMBDA_CONFIGURATION_MESSAGE,
    LambdaAppSpec,
    LambdaAppSpecError,
    parse_lambda_appspec,
)
from opendeploy.appspec.parse import MAX_APPSPEC_BYTES
from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES, LifecycleErrorCode
from opendeploy.engine.snapshot import Diagnostics
from opendeploy.revisions.blobstore import BlobNotFoundError, LocalBlobStore
from opendeploy.service_errors import (
    InvalidLifecycleEventHookExecutionIdError,
    LifecycleEventAlreadyCompletedError,
)
from opendeploy.store.deployments import TargetSelector
from opendeploy.store.engine_store import diagnostics_wire
from opendeploy.store.lambda_deployments import insert_row

#: The server's bundle store, under its data directory (``server.BUNDLES_DIR``).
BUNDLES_DIR = "bundles"
#: The most of an S3 revision read for its AppSpec (an archive holding it, compressed).
MAX_BUNDLE_READ = 16 * 1024 * 1024

#: The events whose server steps are hook executions.
_HOOK_EVENTS = ("BeforeAllowTraffic", "AfterAllowTraffic")


#: The names an AppSpec has inside a zip or tar revision, in the order they are looked for.
_ARCHIVED_NAMES = ("appspec.yaml", "appspec.yml", "appspec.json")

#: Reads an S3 object of this server's own store: (bucket, key, version or None) -> its bytes,
#: or None when the store has no such object.
S3Reader = Callable[[str, str, str | None], bytes | None]


def appspec_of(
    revision: dict[str, Any], read_s3: S3Reader | None = None
) -> tuple[LambdaAppSpec | None, str | None]:
    """The revision's Lambda AppSpec, or None and why it cannot be deployed."""
    kind = revision.get("revisionType")
    if kind == "S3":
        content, why = _s3_appspec(revision.get("s3Location") or {}, read_s3)
        if content is None:
            return None, why
        return _parsed(content)
    member = {"AppSpecContent": "appSpecContent", "String": "string"}.get(str(kind))
    if member is None:
        return None, f"A {kind} revision cannot hold a Lambda AppSpec."
    return _parsed((revision.get(member) or {}).get("content"))


def _s3_appspec(
    location: dict[str, Any], read_s3: S3Reader | None
) -> tuple[str | None, str | None]:
    """The AppSpec text of an S3 revision (YAML or JSON, or a zip/tar holding appspec.yaml)."""
    bucket, key = location.get("bucket"), location.get("key")
    where = f"s3://{bucket}/{key}"
    data = read_s3(str(bucket), str(key), location.get("version")) if read_s3 else None
    if data is None:
        return None, (
            f"{where} is not an object of this server's own bundle store, where Lambda AppSpecs "
            "are read from (another S3 store is not read for Lambda yet); give the AppSpec as "
            "AppSpecContent or upload it to this server."
        )
    kind = str(location.get("bundleType") or "YAML").lower()
    if kind in ("yaml", "json"):
        text = data
    else:
        found = _archived_appspec(data, kind)
        if found is None:
            return None, f"{where} ({kind}) holds no appspec.yaml."
        text = found
    if len(text) > MAX_APPSPEC_BYTES:
        return None, f"The AppSpec in {where} is larger than {MAX_APPSPEC_BYTES} bytes."
    try:
        return text.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, f"The AppSpec in {where} is not UTF-8 text."


def _archived_appspec(data: bytes, kind: str) -> bytes | None:
    """The AppSpec file at the top of a zip or tar(.gz) archive (read bounded), if any."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = set(z.namelist())
                for name in _ARCHIVED_NAMES:
                    if name in names and z.getinfo(name).file_size <= MAX_APPSPEC_BYTES:
                        return z.read(name)
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for name in _ARCHIVED_NAMES:
                for candidate in (name, f"./{name}"):
                    try:
                        member = t.getmember(candidate)
                    except KeyError:
                        continue
                    if member.isfile() and member.size <= MAX_APPSPEC_BYTES:
                        handle = t.extractfile(member)
                        return handle.read() if handle is not None else None
        return None
    except (zipfile.BadZipFile, tarfile.TarError, OSError):
        return None


def _parsed(content: Any) -> tuple[LambdaAppSpec | None, str | None]:
    if not isinstance(content, str) or not content.strip():
        return None, "The revision holds no AppSpec content."
    try:
        return parse_lambda_appspec(content), None
    except LambdaAppSpecError as e:
        return None, str(e)


def own_s3_reader(ctx: RequestContext) -> S3Reader:
    """Reads objects of this server's own S3 store (``opendeploy push``, ``aws s3 cp``)."""

    def read(bucket: str, key: str, version: str | None) -> bytes | None:
        index = ctx.store.bundle_objects
        record = index.version(bucket, key, version) if version else index.current(bucket, key)
        if record is None or record.sha256 is None:
            return None
        blobs = LocalBlobStore(ctx.settings.data_dir / BUNDLES_DIR)
        try:
            with blobs.open(record.sha256) as f:
                return f.read(MAX_BUNDLE_READ)
        except BlobNotFoundError:
            return None

    return read


def function_arn(ctx: RequestContext, function_name: str) -> str:
    if function_name.startswith("arn:"):
        return function_name
    s = ctx.settings
    return f"arn:aws:lambda:{s.region}:{s.account_id}:function:{function_name}"


def creation(
    ctx: RequestContext, row: dict[str, Any], revision: dict[str, Any], now: datetime
) -> tuple[TargetSelector, Callable[[Connection], None]]:
    """CreateDeployment's target choice (the function) and the AppSpec's row, for Lambda.

    A deployment whose AppSpec cannot be deployed is recorded as failed (``row`` is changed):
    with no function there is nothing for the engine to run, and the reason is AWS's."""
    deployment_id = row["deployment_id"]
    spec, error = appspec_of(revision, own_s3_reader(ctx))
    if spec is None:
        row |= {
            "status": "Failed",
            "start_time": now,
            "complete_time": now,
            "error_information": {
                "code": "INVALID_LAMBDA_CONFIGURATION",
                "message": f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} {error}",
            },
        }
    targets: list[tuple[str, str, str | None]] = []
    if spec is not None:
        targets.append((spec.function_name, function_arn(ctx, spec.function_name), None))

    def choose(fleet: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, str | None]]:
        return targets  # the function, whatever instances are registered

    def also(conn: Connection) -> None:
        insert_row(conn, deployment_id, spec, error)

    return choose, also


def put_lifecycle_event_hook_execution_status(
    ctx: RequestContext, params: dict[str, Any], row: dict[str, Any], status: str
) -> dict[str, Any]:
    """A hook function's answer: the outcome of its server step (BeforeAllowTraffic or
    AfterAllowTraffic), recorded as an agent's completion would be. ``row`` is the Lambda
    deployment and ``status`` the answer, both checked by the API handler."""
    deployment_id = str(row["deployment_id"])
    execution_id = params.get("lifecycleEventHookExecutionId")
    command = ctx.store.commands.get(str(execution_id)) if execution_id else None
    if (
        command is None
        or command["deployment_id"] != deployment_id
        or command["executor"] != "server"
        or command["lifecycle_event"] not in _HOOK_EVENTS
    ):
        raise InvalidLifecycleEventHookExecutionIdError(
            f"lifecycleEventHookExecutionId: {execution_id!r} is not a hook execution of "
            f"deployment {deployment_id}"
        )
    event = command["lifecycle_event"]
    if row["status"] in TERMINAL_DEPLOYMENT_STATUSES or command["closed_at"] is not None:
        raise LifecycleEventAlreadyCompletedError(
            f"The lifecycle event {event} of deployment {deployment_id} has already completed."
        )
    spec, _ = ctx.store.lambda_deployments.spec(deployment_id)
    hook = (spec.hook(event) if spec else None) or "The hook function"
    message = (
        f"{hook} reported {status} (PutLifecycleEventHookExecutionStatus)."
        if status == "Succeeded"
        else f"The {event} hook function {hook} reported Failed."
    )
    code = LifecycleErrorCode.SUCCESS if status == "Succeeded" else LifecycleErrorCode.UNKNOWN_ERROR
    counted = ctx.store.commands.complete(
        str(execution_id),
        now=datetime.now(UTC),
        result=status,
        diagnostics=diagnostics_wire(Diagnostics(code, message)),
    )
    if not counted:
        raise LifecycleEventAlreadyCompletedError(
            f"The lifecycle event {event} of deployment {deployment_id} has already completed."
        )
    return {"lifecycleEventHookExecutionId": execution_id}


def lambda_function_info(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """LambdaFunctionInfo of a deployment's ``lambda_deployments`` row."""
    if row is None or row.get("spec") is None:
        return None
    spec = LambdaAppSpec.from_json(row["spec"])
    weight = row.get("target_weight")
    return {
        "functionName": spec.function_name,
        "functionAlias": spec.alias,
        "currentVersion": spec.current_version,
        "targetVersion": spec.target_version,
        "targetVersionWeight": float(weight) if weight is not None else 0.0,
    }


def status_messages(row: dict[str, Any] | None) -> list[str]:
    """``deploymentStatusMessages`` lines of a Lambda deployment: why its AppSpec cannot be
    deployed, and the alias put back after a failure or a stop."""
    if row is None:
        return []
    out = []
    if row.get("error"):
        out.append(f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} {row['error']}")
    if row.get("restored_at") is not None and row.get("spec"):
        spec = LambdaAppSpec.from_json(row["spec"])
        out.append(
            f"The alias {spec.alias} of {spec.function_name} was put back to version "
            f"{spec.current_version} with no weight on version {spec.target_version} at "
            f"{row['restored_at'].isoformat()}."
        )
    return out
