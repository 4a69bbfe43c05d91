"""CreateApplication, GetApplication, BatchGetApplications, ListApplications, UpdateApplication,
DeleteApplication."""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.domain.configs import ComputePlatform
from opendeploy.service_errors import (
    ApplicationNameRequiredError,
    InvalidComputePlatformError,
    InvalidTagsToAddError,
)
from opendeploy.store.applications import does_not_exist

PAGE_SIZE = c.PAGE_SIZE


def render(row: dict[str, Any]) -> dict[str, Any]:
    """ApplicationInfo."""
    return {
        "applicationId": row["application_id"],
        "applicationName": row["name"],
        "createTime": row["create_time"],
        "linkedToGitHub": bool(row["linked_to_github"]),
        "gitHubAccountName": row["github_account_name"],
        "computePlatform": row["compute_platform"],
    }


def compute_platform(value: Any) -> str:
    if value is None:
        return str(ComputePlatform.SERVER)
    try:
        return str(ComputePlatform(value))
    except ValueError:
        raise InvalidComputePlatformError(
            f"computePlatform: {value!r} is not one of Server, Lambda, ECS"
        ) from None


def create_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = c.app_name(params.get("applicationName"))
    platform = compute_platform(params.get("computePlatform"))
    tags = c.tag_pairs(params.get("tags"))
    if any(not key for key, _ in tags):
        raise InvalidTagsToAddError("tags: every tag needs a non-empty Key")
    row = ctx.store.applications.create(name=name, compute_platform=platform, now=c.now())
    if tags:
        ctx.store.tags.tag(c.application_arn(ctx, name), tags)
    return {"applicationId": row["application_id"]}


def get_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = c.app_name(params.get("applicationName"))
    return {"application": render(ctx.store.applications.require(name))}


def batch_get_applications(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    names = c.check_batch(params.get("applicationNames"), limit=100, what="application names")
    if not names:
        raise ApplicationNameRequiredError(
            "The minimum number of required application names was not specified."
        )
    for name in names:
        c.app_name(name)
    rows = ctx.store.applications.get_many(names)
    found = {r["name"] for r in rows}
    for name in names:
        if name not in found:
            raise does_not_exist(name)
    return {"applicationsInfo": [render(r) for r in rows]}


def list_applications(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    after = c.decode_token(params.get("nextToken"))
    names, more = ctx.store.applications.list_names(after=after, limit=PAGE_SIZE)
    return {"applications": names, "nextToken": c.page(names, more)}


def update_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    current = params.get("applicationName")
    new = params.get("newApplicationName")
    if current is None or new is None:
        return {}  # AWS accepts and does nothing when a name is missing
    current, new = c.app_name(current), c.app_name(new)
    if current != new:
        ctx.store.applications.rename(current, new)
        tags = ctx.store.tags.list_tags(c.application_arn(ctx, current))
        if tags:
            ctx.store.tags.tag(c.application_arn(ctx, new), tags)
            ctx.store.tags.drop([c.application_arn(ctx, current)])
    return {}


def delete_application(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = c.app_name(params.get("applicationName"))
    ctx.store.applications.delete(name)
    ctx.store.tags.drop(
        [c.application_arn(ctx, name)], prefixes=[c.deployment_group_arn(ctx, name, "")]
    )
    return {}


HANDLERS: dict[str, Handler] = {
    "CreateApplication": create_application,
    "GetApplication": get_application,
    "BatchGetApplications": batch_get_applications,
    "ListApplications": list_applications,
    "UpdateApplication": update_application,
    "DeleteApplication": delete_application,
}
