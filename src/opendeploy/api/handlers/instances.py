"""The targets of a deployment: ListDeploymentTargets, BatchGetDeploymentTargets,
GetDeploymentTarget, and the deprecated ListDeploymentInstances, BatchGetDeploymentInstances,
GetDeploymentInstance. The engine fills statuses and lifecycle events; these only read."""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.api.handlers.deployments import deployment_id
from opendeploy.api.handlers.lambda_deployments import lambda_function_info
from opendeploy.domain.status import InstanceStatus
from opendeploy.service_errors import (
    DeploymentTargetDoesNotExistError,
    DeploymentTargetIdRequiredError,
    DeploymentTargetListSizeExceededError,
    InstanceDoesNotExistError,
    InstanceIdRequiredError,
    InvalidDeploymentInstanceTypeError,
    InvalidInstanceStatusError,
    InvalidTargetFilterNameError,
)
from opendeploy.store.deployments import does_not_exist

PAGE_SIZE = c.PAGE_SIZE
_STATUSES = {s.value for s in InstanceStatus}


def _events(target: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "lifecycleEventName": e["name"],
            "diagnostics": e["diagnostics"],
            "startTime": e["start_time"],
            "endTime": e["end_time"],
            "status": e["status"],
        }
        for e in target["lifecycle_events"]
    ]


def render_target(
    target: dict[str, Any], lambda_row: dict[str, Any] | None = None
) -> dict[str, Any]:
    """DeploymentTarget (InstanceTarget, or LambdaTarget with its LambdaFunctionInfo)."""
    if target.get("target_type") == "LambdaTarget":
        return {
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {
                "deploymentId": target["deployment_id"],
                "targetId": target["target_id"],
                "targetArn": target["target_arn"],
                "status": target["status"],
                "lastUpdatedAt": target["last_updated_at"],
                "lifecycleEvents": _events(target),
                "lambdaFunctionInfo": lambda_function_info(lambda_row),
            },
        }
    return {
        "deploymentTargetType": "InstanceTarget",
        "instanceTarget": {
            "deploymentId": target["deployment_id"],
            "targetId": target["target_id"],
            "targetArn": target["target_arn"],
            "status": target["status"],
            "lastUpdatedAt": target["last_updated_at"],
            "lifecycleEvents": _events(target),
            "instanceLabel": target["instance_label"],
        },
    }


def render_instance(target: dict[str, Any]) -> dict[str, Any]:
    """InstanceSummary (deprecated API): the instance id is the target's ARN, as AWS's."""
    return {
        "deploymentId": target["deployment_id"],
        "instanceId": target["target_arn"],
        "status": target["status"],
        "lastUpdatedAt": target["last_updated_at"],
        "lifecycleEvents": _events(target),
        "instanceType": target["instance_label"],
    }


def _existing(ctx: RequestContext, ident: str) -> None:
    if ctx.store.deployments.get(ident) is None:
        raise does_not_exist(ident)


def _check_labels(ctx: RequestContext, ident: str, labels: list[str], member: str) -> None:
    """Blue/Green only, and only on a blue/green deployment (AWS's model: "Instance types are
    supported for blue/green deployments only")."""
    for label in labels:
        if label not in ("Blue", "Green"):
            raise InvalidDeploymentInstanceTypeError(f"{member}: {label!r} is not Blue or Green")
    row = ctx.store.deployments.get(ident)
    if row is None:
        raise does_not_exist(ident)
    style = row.get("deployment_style") or {}
    if labels and style.get("deploymentType") != "BLUE_GREEN":
        raise InvalidDeploymentInstanceTypeError(
            f"{member}: deployment {ident} is an in-place deployment; instance types (Blue, "
            "Green) are supported for blue/green deployments only."
        )


def _target_names(ctx: RequestContext, values: list[str]) -> list[str]:
    """Instance names from target ids or instance ARNs (looked up; unknown ARNs stay as given)."""
    by_arn = ctx.store.instances.names_for_arns([v for v in values if v.startswith("arn:")])
    return [by_arn.get(v, v) for v in values]


def list_deployment_targets(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    filters = params.get("targetFilters") or {}
    for key in filters:
        if key not in ("TargetStatus", "ServerInstanceLabel"):
            raise InvalidTargetFilterNameError(
                f"targetFilters: {key!r} is not TargetStatus or ServerInstanceLabel"
            )
    _check_labels(ctx, ident, list(filters.get("ServerInstanceLabel") or []), "ServerInstanceLabel")
    after = c.decode_token(params.get("nextToken"))
    ids, more = ctx.store.deployments.list_target_ids(
        ident,
        statuses=filters.get("TargetStatus") or [],
        labels=filters.get("ServerInstanceLabel") or [],
        after=after,
        limit=PAGE_SIZE,
    )
    return {"targetIds": ids, "nextToken": c.page(ids, more)}


def batch_get_deployment_targets(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    ids = list(params.get("targetIds") or [])
    if not ids:
        raise DeploymentTargetIdRequiredError("A deployment target ID was not provided.")
    if len(ids) > 25:
        raise DeploymentTargetListSizeExceededError(
            "The maximum number of targets that can be associated with a request (25) was exceeded."
        )
    _existing(ctx, ident)
    targets = ctx.store.deployments.get_targets(ident, ids)
    for target_id, target in zip(ids, targets, strict=True):
        if target is None:
            raise DeploymentTargetDoesNotExistError(
                f"The deployment target {target_id} does not exist in deployment {ident}."
            )
    lambda_row = None
    if any(t is not None and t.get("target_type") == "LambdaTarget" for t in targets):
        lambda_row = ctx.store.lambda_deployments.get(ident)
    return {"deploymentTargets": [render_target(t, lambda_row) for t in targets if t is not None]}


def get_deployment_target(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    if not params.get("targetId"):
        raise DeploymentTargetIdRequiredError("A deployment target ID was not provided.")
    result = batch_get_deployment_targets(
        ctx, {"deploymentId": ident, "targetIds": [params["targetId"]]}
    )
    return {"deploymentTarget": result["deploymentTargets"][0]}


def list_deployment_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    statuses = list(params.get("instanceStatusFilter") or [])
    for status in statuses:
        if status not in _STATUSES:
            raise InvalidInstanceStatusError(f"instanceStatusFilter: {status!r} is not a status")
    labels = list(params.get("instanceTypeFilter") or [])
    _check_labels(ctx, ident, labels, "instanceTypeFilter")
    after = c.decode_token(params.get("nextToken"))
    ids, more = ctx.store.deployments.list_target_ids(
        ident, statuses=statuses, labels=labels, after=after, limit=PAGE_SIZE
    )
    return {"instancesList": ids, "nextToken": c.page(ids, more)}


def batch_get_deployment_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    ids = c.check_batch(params.get("instanceIds"), limit=25, what="instance IDs")
    if not ids:
        raise InstanceIdRequiredError("The instance ID was not specified.")
    _existing(ctx, ident)
    targets = ctx.store.deployments.get_targets(ident, _target_names(ctx, list(ids)))
    missing = [i for i, t in zip(ids, targets, strict=True) if t is None]
    return {
        "instancesSummary": [render_instance(t) for t in targets if t is not None],
        "errorMessage": f"Instances not found: {', '.join(missing)}" if missing else "",
    }


def get_deployment_instance(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ident = deployment_id(params.get("deploymentId"))
    instance = params.get("instanceId")
    if not instance:
        raise InstanceIdRequiredError("The instance ID was not specified.")
    _existing(ctx, ident)
    target = ctx.store.deployments.get_targets(ident, _target_names(ctx, [instance]))[0]
    if target is None:
        raise InstanceDoesNotExistError(
            f"The instance {instance} is not part of deployment {ident}."
        )
    return {"instanceSummary": render_instance(target)}


HANDLERS: dict[str, Handler] = {
    "ListDeploymentTargets": list_deployment_targets,
    "BatchGetDeploymentTargets": batch_get_deployment_targets,
    "GetDeploymentTarget": get_deployment_target,
    "ListDeploymentInstances": list_deployment_instances,
    "BatchGetDeploymentInstances": batch_get_deployment_instances,
    "GetDeploymentInstance": get_deployment_instance,
}
