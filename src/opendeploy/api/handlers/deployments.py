"""CreateDeployment, GetDeployment, BatchGetDeployments, ListDeployments, StopDeployment,
ContinueDeployment, SkipWaitTimeForInstanceTermination, DeleteResourcesByExternalId.

CreateDeployment records the deployment and its targets and leaves it ``Created`` for the
engine; the targets are the registered instances that the group's tag filters or tag sets select
at that moment (OpenDeploy has no EC2 inventory: every host registers as an on-premises
instance, so EC2 tag filters select among the registered instances too).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.api.handlers import lambda_deployments as lambda_api
from opendeploy.api.handlers.deployment_groups import (
    check_alarm_configuration,
    config_exists,
    default_style,
    group_name,
)
from opendeploy.api.handlers.revisions import check_description, check_revision
from opendeploy.domain.ids import new_deployment_id
from opendeploy.domain.records import BlueGreenSettings, DeploymentStyle, GreenProvisioning
from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES, DeploymentStatus
from opendeploy.engine.alarms.declarations import declared as declared_alarms
from opendeploy.engine.alarms.verdict import gate_message, initial_gate_state
from opendeploy.engine.targets import TagFilter, select_targets
from opendeploy.service_errors import (
    ApplicationNameRequiredError,
    DeploymentAlreadyCompletedError,
    DeploymentGroupNameRequiredError,
    DeploymentIdRequiredError,
    DeploymentIsNotInReadyStateError,
    InvalidAutoRollbackConfigError,
    InvalidBlueGreenDeploymentConfigurationError,
    InvalidDeploymentIdError,
    InvalidDeploymentStatusError,
    InvalidDeploymentWaitTypeError,
    InvalidECSServiceError,
    InvalidFileExistsBehaviorError,
    InvalidIgnoreApplicationStopFailuresValueError,
    InvalidLifecycleEventHookExecutionIdError,
    InvalidLifecycleEventHookExecutionStatusError,
    InvalidRevisionError,
    InvalidTargetInstancesError,
    InvalidTimeRangeError,
    InvalidUpdateOutdatedInstancesOnlyValueError,
    LifecycleEventAlreadyCompletedError,
    RevisionRequiredError,
    UnsupportedActionForDeploymentTypeError,
)
from opendeploy.store.database import Store
from opendeploy.store.deployment_groups import does_not_exist as group_does_not_exist
from opendeploy.store.deployments import TargetSelector
from opendeploy.store.deployments import does_not_exist as deployment_does_not_exist

PAGE_SIZE = c.PAGE_SIZE
DEPLOYMENT_ID = re.compile(r"d-[A-Z0-9]{9}")
_AUTO_ROLLBACK_EVENTS = {
    "DEPLOYMENT_FAILURE",
    "DEPLOYMENT_STOP_ON_ALARM",
    "DEPLOYMENT_STOP_ON_REQUEST",
}


def deployment_id(value: Any) -> str:
    if not value:
        raise DeploymentIdRequiredError("At least one deployment ID must be specified.")
    if not isinstance(value, str) or not DEPLOYMENT_ID.fullmatch(value):
        raise InvalidDeploymentIdError(
            f"deploymentId: {value!r} is not d- followed by 9 characters of A-Z 0-9"
        )
    return value


def _filters(shapes: Any) -> list[TagFilter]:
    return [TagFilter.from_wire(s) for s in shapes or []]


def _tag_set(tag_set: Any, member: str) -> list[list[TagFilter]]:
    return [_filters(group) for group in (tag_set or {}).get(member) or []]


def selector(group: dict[str, Any]) -> TargetSelector:
    """The target choice of an in-place CreateDeployment for ``group``: the registered
    instances its tag filters or tag sets select."""
    choose_group = _group_choice(group)

    def choose(fleet: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, str | None]]:
        arns = {name: arn for name, arn, _ in fleet}
        return [(n, arns[n], None) for n in choose_group(fleet)]

    return choose


def _group_choice(
    group: dict[str, Any],
) -> Callable[[list[tuple[str, str, dict[str, str]]]], list[str]]:
    filters = _filters(group["ec2_tag_filters"]) + _filters(
        group["on_premises_instance_tag_filters"]
    )
    tag_set = _tag_set(group["ec2_tag_set"], "ec2TagSetList") + _tag_set(
        group["on_premises_tag_set"], "onPremisesTagSetList"
    )

    def choose(fleet: list[tuple[str, str, dict[str, str]]]) -> list[str]:
        return select_targets(
            [(name, tags) for name, _, tags in fleet], filters=filters, tag_set=tag_set
        )

    return choose


def blue_green_selector(group: dict[str, Any], target_instances: dict[str, Any]) -> TargetSelector:
    """The targets of a blue/green deployment (DISCOVER_EXISTING): Green, the instances that
    ``targetInstances`` selects (tagFilters or ec2TagSet, over every registered instance, as
    the group's own filters do); Blue, the group's instances that are not green.

    An instance in both is green only: it is the one being replaced onto. A ``targetInstances``
    that selects nothing is refused (InvalidTargetInstancesException, AWS's model: "a tag
    matching no instance"), inside the transaction that reads the fleet."""
    green_filters = _filters(target_instances.get("tagFilters"))
    green_set = _tag_set(target_instances.get("ec2TagSet"), "ec2TagSetList")
    choose_group = _group_choice(group)

    def choose(fleet: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, str | None]]:
        arns = {name: arn for name, arn, _ in fleet}
        green = select_targets(
            [(name, tags) for name, _, tags in fleet], filters=green_filters, tag_set=green_set
        )
        if not green:
            raise InvalidTargetInstancesError(
                "targetInstances selects no registered instance: tag the replacement (green) "
                "instances so that its tagFilters or ec2TagSet match them."
            )
        chosen = set(green)
        blue = [n for n in choose_group(fleet) if n not in chosen]
        out: list[tuple[str, str, str | None]] = [(n, arns[n], "Blue") for n in blue]
        return out + [(n, arns[n], "Green") for n in green]

    return choose


def _check_blue_green(group: dict[str, Any], target_instances: Any) -> None:
    """What a blue/green Server deployment needs before it is recorded: its replacement fleet
    named by tags, and a green fleet this server can find (DISCOVER_EXISTING)."""
    name = group["name"]
    try:
        settings = BlueGreenSettings.from_wire(group["blue_green_deployment_configuration"])
    except ValueError as e:
        raise InvalidBlueGreenDeploymentConfigurationError(str(e)) from None
    if settings.provisioning is GreenProvisioning.COPY_AUTO_SCALING_GROUP:
        raise InvalidBlueGreenDeploymentConfigurationError(
            f"Deployment group '{name}' provisions green by COPY_AUTO_SCALING_GROUP, which needs "
            "Amazon EC2 Auto Scaling; this server finds green among registered instances only "
            "(greenFleetProvisioningOption DISCOVER_EXISTING, with targetInstances)."
        )
    if not isinstance(target_instances, dict):
        target_instances = {}
    if target_instances.get("autoScalingGroups"):
        raise InvalidTargetInstancesError(
            "targetInstances.autoScalingGroups needs Amazon EC2 Auto Scaling, which this server "
            "does not drive: name the replacement (green) instances by tagFilters or ec2TagSet."
        )
    if not (target_instances.get("tagFilters") or target_instances.get("ec2TagSet")):
        raise InvalidTargetInstancesError(
            f"Deployment group '{name}' is blue/green with DISCOVER_EXISTING: name the "
            "replacement (green) instances in targetInstances (tagFilters or ec2TagSet)."
        )
    if target_instances.get("tagFilters") and target_instances.get("ec2TagSet"):
        raise InvalidTargetInstancesError(
            "targetInstances: tagFilters and ec2TagSet cannot both be specified."
        )
    try:
        _filters(target_instances.get("tagFilters"))
        _tag_set(target_instances.get("ec2TagSet"), "ec2TagSetList")
    except (ValueError, AttributeError, TypeError) as e:
        raise InvalidTargetInstancesError(f"targetInstances: {e}") from None


def render(row: dict[str, Any]) -> dict[str, Any]:
    """DeploymentInfo."""
    return {
        "applicationName": row["application_name"],
        "deploymentGroupName": row["deployment_group_name"],
        "deploymentConfigName": row["deployment_config_name"],
        "deploymentId": row["deployment_id"],
        "previousRevision": row["previous_revision"],
        "revision": row["revision"],
        "status": row["status"],
        "errorInformation": row["error_information"],
        "createTime": row["create_time"],
        "startTime": row["start_time"],
        "completeTime": row["complete_time"],
        "deploymentOverview": row["overview"],
        "description": row["description"],
        "creator": row["creator"],
        "ignoreApplicationStopFailures": bool(row["ignore_application_stop_failures"]),
        "autoRollbackConfiguration": row["auto_rollback_configuration"],
        "updateOutdatedInstancesOnly": bool(row["update_outdated_instances_only"]),
        "rollbackInfo": row["rollback_info"],
        "deploymentStyle": row["deployment_style"] or default_style(row["compute_platform"]),
        "targetInstances": row["target_instances"],
        "instanceTerminationWaitTimeStarted": bool(row["instance_termination_wait_time_started"]),
        "blueGreenDeploymentConfiguration": row["blue_green_deployment_configuration"],
        "loadBalancerInfo": row["load_balancer_info"],
        "additionalDeploymentStatusInfo": row["additional_deployment_status_info"],
        "fileExistsBehavior": row["file_exists_behavior"],
        "deploymentStatusMessages": _status_messages(row),
        "computePlatform": row["compute_platform"],
        "externalId": row["external_id"],
        "overrideAlarmConfiguration": row["override_alarm_configuration"],
        "ec2DeploymentOptions": row["ec2_deployment_options"],
    }


def _status_messages(row: dict[str, Any]) -> list[str]:
    """The stored messages, and while the deployment runs, what its analysis gate reads."""
    messages = list(row["deployment_status_messages"] or [])
    gate = gate_message(row.get("gate_state"))
    if gate is not None and row["status"] not in TERMINAL_DEPLOYMENT_STATUSES:
        messages.append(gate)
    return messages


def _check_auto_rollback(config: Any) -> None:
    if config is None:
        return
    events = config.get("events") or []
    if any(e not in _AUTO_ROLLBACK_EVENTS for e in events) or (
        config.get("enabled") and not events
    ):
        raise InvalidAutoRollbackConfigError(
            f"autoRollbackConfiguration: {config!r} needs events among "
            "DEPLOYMENT_FAILURE, DEPLOYMENT_STOP_ON_ALARM, DEPLOYMENT_STOP_ON_REQUEST when enabled"
        )


#: The revision types each compute platform can deploy (AWS's model, ``RevisionLocation``:
#: GitHub is for EC2/on-premises only, String for Lambda only, AppSpecContent for Lambda and ECS).
_REVISION_TYPES: dict[str, tuple[str, ...]] = {
    "Server": ("S3", "GitHub"),
    "Lambda": ("S3", "String", "AppSpecContent"),
    "ECS": ("S3", "AppSpecContent"),
}

_PLATFORM_WORDS = {
    "Server": "an EC2/on-premises",
    "Lambda": "an AWS Lambda",
    "ECS": "an Amazon ECS",
}


def _check_runnable(
    group: dict[str, Any], revision: dict[str, Any], target_instances: Any, params: dict[str, Any]
) -> None:
    """Refuse a deployment that ``group`` cannot run, before anything is recorded.

    - Blue/green on EC2/on-premises (the group's ``deploymentStyle.deploymentType`` is
      BLUE_GREEN): green must be named by ``targetInstances`` tags (DISCOVER_EXISTING;
      Auto Scaling is EC2's, which this server does not drive): InvalidTargetInstancesException
      or InvalidBlueGreenDeploymentConfigurationException otherwise.
    - A revision type the platform cannot deploy: InvalidRevisionException.
    - ``targetInstances`` (the replacement fleet of an EC2/on-premises blue/green deployment)
      on anything else: InvalidTargetInstancesException, as AWS's model documents.
    - An ECS group without its service (made before CreateDeploymentGroup refused that):
      InvalidECSServiceException.
    - The settings of an instance deployment on Lambda or ECS: ``fileExistsBehavior``
      (InvalidFileExistsBehaviorException, AWS's words: "For Lambda and ECS deployment,
      fileExistsBehavior can not be specified"), and on Lambda ``ignoreApplicationStopFailures``
      or ``updateOutdatedInstancesOnly`` set true (their Invalid…ValueException: "For Lambda
      deployments, false is expected", AWS's model).
    """
    platform = group["compute_platform"]
    name = group["name"]
    blue_green = platform == "Server" and DeploymentStyle.from_wire(group["deployment_style"])
    if blue_green and blue_green.blue_green:
        _check_blue_green(group, target_instances)
    kind = revision.get("revisionType")
    if kind not in _REVISION_TYPES[platform]:
        raise InvalidRevisionError(
            f"The revision type {kind} is not supported for {_PLATFORM_WORDS[platform]} "
            f"deployment; use {' or '.join(_REVISION_TYPES[platform])}."
        )
    if target_instances and not (blue_green and blue_green.blue_green):
        raise InvalidTargetInstancesError(
            "Target instances can be specified only for a blue/green deployment on "
            f"EC2/on-premises instances; deployment group '{name}' deploys "
            + ("in place." if platform == "Server" else f"to the {platform} compute platform.")
        )
    if platform != "Server" and params.get("fileExistsBehavior") is not None:
        raise InvalidFileExistsBehaviorError(
            "For Lambda and ECS deployment, fileExistsBehavior can not be specified"
        )
    if platform == "Lambda" and params.get("ignoreApplicationStopFailures"):
        raise InvalidIgnoreApplicationStopFailuresValueError(
            "For Lambda deployments, ignoreApplicationStopFailures must be false"
        )
    if platform == "Lambda" and params.get("updateOutdatedInstancesOnly"):
        raise InvalidUpdateOutdatedInstancesOnlyValueError(
            "For Lambda deployments, updateOutdatedInstancesOnly must be false"
        )
    if platform == "ECS" and not group.get("ecs_services"):
        raise InvalidECSServiceError(
            f"Deployment group '{name}' names no Amazon ECS service (ecsServices) to deploy to."
        )


def create_deployment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """CreateDeployment: checks what AWS checks, then what the group cannot run
    (:func:`_check_runnable`), refused here rather than failing or hanging later.

    A blue/green Server deployment's targets are its group's instances (Blue) and those of
    ``targetInstances`` (Green), labelled so (:func:`blue_green_selector`).
    """
    app_name = c.app_name(params.get("applicationName"))
    # As AWS: a missing application is reported before a missing or invalid group name.
    app = ctx.store.applications.require(app_name)
    if params.get("deploymentGroupName") is None:
        raise DeploymentGroupNameRequiredError("The deployment group name was not specified.")
    name = group_name(params["deploymentGroupName"])
    description = check_description(params.get("description"))
    behavior = params.get("fileExistsBehavior") or "DISALLOW"
    if behavior not in ("DISALLOW", "OVERWRITE", "RETAIN"):
        raise InvalidFileExistsBehaviorError(
            f"fileExistsBehavior: {behavior!r} is not one of DISALLOW, OVERWRITE, RETAIN"
        )
    _check_auto_rollback(params.get("autoRollbackConfiguration"))
    group = ctx.store.deployment_groups.get(app["application_id"], name)
    if group is None:
        raise group_does_not_exist(app_name, name)
    raw_revision = params.get("revision") or group["target_revision"]
    if not raw_revision:
        raise RevisionRequiredError("The revision ID was not specified.")
    revision = check_revision(raw_revision)
    config_name = params.get("deploymentConfigName") or group["deployment_config_name"]
    config_exists(ctx, config_name, group["compute_platform"])
    target_instances = params.get("targetInstances")
    _check_runnable(group, revision, target_instances, params)
    rollback = params.get("autoRollbackConfiguration") or group["auto_rollback_configuration"]
    override = params.get("overrideAlarmConfiguration")
    check_alarm_configuration(ctx, override, "overrideAlarmConfiguration")
    gate = declared_alarms(ctx.settings.alarms_file).gate_for(app_name, name)
    now = c.now()
    row = {
        "deployment_id": new_deployment_id(),
        "application_id": app["application_id"],
        "application_name": app_name,
        "deployment_group_id": group["deployment_group_id"],
        "deployment_group_name": name,
        "deployment_config_name": config_name,
        "compute_platform": group["compute_platform"],
        "creator": "user",
        "description": description,
        "revision": revision,
        "ignore_application_stop_failures": bool(params.get("ignoreApplicationStopFailures")),
        "update_outdated_instances_only": bool(params.get("updateOutdatedInstancesOnly")),
        "file_exists_behavior": behavior,
        "deployment_mode": params.get("deploymentMode"),
        "auto_rollback_configuration": rollback,
        "deployment_style": group["deployment_style"],
        "target_instances": target_instances,
        "blue_green_deployment_configuration": group["blue_green_deployment_configuration"],
        "load_balancer_info": group["load_balancer_info"],
        "override_alarm_configuration": override,
        "ec2_deployment_options": params.get("ec2DeploymentOptions"),
        "deployment_status_messages": [],
        # Known to the engine from the first pass (the alarm watcher fills in the readings).
        "gate_state": initial_gate_state(gate) if gate is not None else None,
    }
    pick = selector(group) if group["compute_platform"] == "Server" else None
    if pick is not None and DeploymentStyle.from_wire(group["deployment_style"]).blue_green:
        pick = blue_green_selector(group, target_instances or {})
    elif pick is not None and params.get("updateOutdatedInstancesOnly"):
        # Only the instances not already running this revision from the group, as AWS does.
        current = ctx.store.instances.up_to_date(group["deployment_group_id"], revision)
        pick = _without(pick, current)
    also, target_type = None, "InstanceTarget"
    if group["compute_platform"] == "Lambda":
        pick, also = lambda_api.creation(ctx, row, revision, now)
        target_type = "LambdaTarget"
    created = ctx.store.deployments.create(
        deployment=row, select_targets=pick, now=now, target_type=target_type, also=also
    )
    return {"deploymentId": created["deployment_id"]}


def _without(pick: TargetSelector, names: set[str]) -> TargetSelector:
    def choose(fleet: list[tuple[str, str, dict[str, str]]]) -> list[tuple[str, str, str | None]]:
        return [target for target in pick(fleet) if target[0] not in names]

    return choose


#: Deployments whose hosts may wait for a script another deployment left running, or that may
#: have left one running themselves.
_BUSY_CHECKED = {"Created", "Queued", "InProgress", "Ready", "Stopped", "Failed"}
#: Up to this many targets; beyond, the lines are left out (one query per GetDeployment).
_BUSY_CHECK_LIMIT = 500


def busy_hosts(store: Store, row: dict[str, Any]) -> list[str]:
    """What the deployment's hosts are busy with, as ``deploymentStatusMessages`` lines.

    A stopped deployment's running script is not killed (as in CodeDeploy): its host finishes it
    before it takes the next deployment's events, which meanwhile show nothing. These lines say
    so, on the deployment that waits and on the one that left the script running.
    """
    if row["status"] not in _BUSY_CHECKED or row["compute_platform"] != "Server":
        return []
    ident = row["deployment_id"]
    names, more = store.deployments.list_target_ids(ident, limit=_BUSY_CHECK_LIMIT)
    if more:
        return []  # a fleet this large is watched through its targets, not this summary
    messages = []
    for name, command in sorted(store.commands.still_running(names).items()):
        event, other = command["lifecycle_event"], command["deployment_id"]
        if other == ident:
            messages.append(
                f"{name}: {event} was still running when this deployment ended; its script is "
                f"not stopped, so {name} finishes it before it runs another deployment's events."
            )
        elif row["status"] not in TERMINAL_DEPLOYMENT_STATUSES:
            messages.append(
                f"{name} is busy: {event} of {other} ({command['status']}) still runs there; "
                f"this deployment's events on {name} start when it ends."
            )
    return messages


def _with_busy_hosts(ctx: RequestContext, row: dict[str, Any]) -> dict[str, Any]:
    info = render(row)
    if row["compute_platform"] == "Lambda":
        lines = lambda_api.status_messages(ctx.store.lambda_deployments.get(row["deployment_id"]))
        info["deploymentStatusMessages"] = [*info["deploymentStatusMessages"], *lines]
    busy = busy_hosts(ctx.store, row)
    if busy:
        info["deploymentStatusMessages"] = [*info["deploymentStatusMessages"], *busy]
    return info


def get_deployment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    row = ctx.store.deployments.get(ident)
    if row is None:
        raise deployment_does_not_exist(ident)
    return {"deploymentInfo": _with_busy_hosts(ctx, row)}


def batch_get_deployments(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ids = c.check_batch(params.get("deploymentIds"), limit=25, what="deployment IDs")
    if not ids:
        raise DeploymentIdRequiredError("At least one deployment ID must be specified.")
    ids = [deployment_id(i) for i in ids]
    rows = ctx.store.deployments.get_many(ids)
    return {"deploymentsInfo": [_with_busy_hosts(ctx, r) for r in rows if r is not None]}


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def list_deployments(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_param, group_param = params.get("applicationName"), params.get("deploymentGroupName")
    if group_param is not None and app_param is None:
        raise ApplicationNameRequiredError("An application name is required with a group name.")
    application_id = None
    if app_param is not None:
        app_name = c.app_name(app_param)
        if group_param is None:
            raise DeploymentGroupNameRequiredError(
                "A deployment group name is required with an application name."
            )
        group_name(group_param)
        application_id = ctx.store.applications.require(app_name)["application_id"]
        if ctx.store.deployment_groups.get(application_id, group_param) is None:
            raise group_does_not_exist(app_name, group_param)
    statuses = list(params.get("includeOnlyStatuses") or [])
    valid = {s.value for s in DeploymentStatus}
    for status in statuses:
        if status not in valid:
            raise InvalidDeploymentStatusError(f"includeOnlyStatuses: {status!r} is not a status")
    time_range = params.get("createTimeRange") or {}
    start, end = _time(time_range.get("start")), _time(time_range.get("end"))
    if start and end and start > end:
        raise InvalidTimeRangeError("createTimeRange: start is after end")
    after = c.decode_token(params.get("nextToken"))
    ids, more = ctx.store.deployments.list_ids(
        application_id=application_id,
        deployment_group_name=group_param,
        statuses=statuses,
        created_after=start,
        created_before=end,
        external_id=params.get("externalId"),
        after=after,
        limit=PAGE_SIZE,
    )
    return {"deployments": ids, "nextToken": c.page(ids, more)}


def stop_deployment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    ctx.store.deployments.request_stop(
        ident, auto_rollback=params.get("autoRollbackEnabled"), now=c.now()
    )
    # No engine in this process to wait for (the server's StopDeployment waits for its own).
    return {
        "status": "Pending",
        "statusMessage": "The stop request is pending; running lifecycle events finish first",
    }


class StopEngine(Protocol):
    """What StopDeployment needs from a running engine (``engine.worker.StopRequests``)."""

    def request(self, deployment_id: str, *, auto_rollback: bool | None) -> None: ...

    def wait_stopped(self, deployment_id: str, timeout: float) -> bool: ...


#: How long StopDeployment waits for the engine to end the deployment before answering Pending.
STOP_WAIT_SECONDS = 5.0


def engine_stop_deployment(engine: StopEngine) -> Handler:
    """StopDeployment when an engine runs: the engine ends the deployment, so that the rollback
    on stop (``autoRollbackEnabled`` or the DEPLOYMENT_STOP_ON_REQUEST configuration) happens.

    The answer is ``Succeeded`` once the deployment is Stopped (the engine does not wait for
    running scripts: their late results are ignored), ``Pending`` if that takes longer than
    :data:`STOP_WAIT_SECONDS`.
    """

    def stop(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ident = deployment_id(params.get("deploymentId"))
        engine.request(ident, auto_rollback=params.get("autoRollbackEnabled"))
        if engine.wait_stopped(ident, STOP_WAIT_SECONDS):
            return {
                "status": "Succeeded",
                "statusMessage": (
                    "No more commands will be scheduled for execution in the deployment instances"
                ),
            }
        return {
            "status": "Pending",
            "statusMessage": "The stop request is pending; the engine has not processed it yet",
        }

    return stop


def continue_deployment(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    wait_type = params.get("deploymentWaitType") or "READY_WAIT"
    if wait_type not in ("READY_WAIT", "TERMINATION_WAIT"):
        raise InvalidDeploymentWaitTypeError(
            f"deploymentWaitType: {wait_type!r} is not READY_WAIT or TERMINATION_WAIT"
        )
    row = ctx.store.deployments.get(ident)
    if row is None:
        raise deployment_does_not_exist(ident)
    if row["status"] in TERMINAL_DEPLOYMENT_STATUSES:
        raise DeploymentAlreadyCompletedError(f"Deployment {ident} has already completed.")
    if not DeploymentStyle.from_wire(row["deployment_style"]).blue_green:
        raise UnsupportedActionForDeploymentTypeError(
            "ContinueDeployment applies to blue/green deployments only."
        )
    if wait_type == "READY_WAIT" and row["status"] != DeploymentStatus.READY:
        raise DeploymentIsNotInReadyStateError(
            f"Deployment {ident} is not in a Ready state (status {row['status']})."
        )
    ctx.store.deployments.request_continue(ident, wait_type)
    return {}


def skip_wait_time_for_instance_termination(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    """Deprecated form of ContinueDeployment(TERMINATION_WAIT)."""
    return continue_deployment(
        ctx, {"deploymentId": params.get("deploymentId"), "deploymentWaitType": "TERMINATION_WAIT"}
    )


def put_lifecycle_event_hook_execution_status(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    """A Lambda or ECS validation function reporting on its hook: Lambda's hook executions are
    its BeforeAllowTraffic and AfterAllowTraffic server steps (``lambda_deployments``); ECS has
    none yet, so after validating as AWS does its answer is an unknown execution id.
    """
    ident = deployment_id(params.get("deploymentId"))
    status = params.get("status")
    if status not in ("Succeeded", "Failed"):
        raise InvalidLifecycleEventHookExecutionStatusError(
            f"status: {status!r} is not Succeeded or Failed"
        )
    row = ctx.store.deployments.get(ident)
    if row is None:
        raise deployment_does_not_exist(ident)
    if row["compute_platform"] == "Server":
        raise UnsupportedActionForDeploymentTypeError(
            "PutLifecycleEventHookExecutionStatus applies to Lambda and ECS deployments only."
        )
    if row["compute_platform"] == "Lambda":
        return lambda_api.put_lifecycle_event_hook_execution_status(ctx, params, row, status)
    if row["status"] in TERMINAL_DEPLOYMENT_STATUSES:
        raise LifecycleEventAlreadyCompletedError(f"Deployment {ident} has already completed.")
    raise InvalidLifecycleEventHookExecutionIdError(
        f"lifecycleEventHookExecutionId: {params.get('lifecycleEventHookExecutionId')!r} is not "
        f"a hook execution of deployment {ident}"
    )


def delete_resources_by_external_id(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Nothing is created per external id outside deployments, so there is nothing to delete."""
    return {}


HANDLERS: dict[str, Handler] = {
    "CreateDeployment": create_deployment,
    "GetDeployment": get_deployment,
    "BatchGetDeployments": batch_get_deployments,
    "ListDeployments": list_deployments,
    "StopDeployment": stop_deployment,
    "ContinueDeployment": continue_deployment,
    "SkipWaitTimeForInstanceTermination": skip_wait_time_for_instance_termination,
    "DeleteResourcesByExternalId": delete_resources_by_external_id,
    "PutLifecycleEventHookExecutionStatus": put_lifecycle_event_hook_execution_status,
}
