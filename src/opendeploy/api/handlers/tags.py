"""TagResource, UntagResource, ListTagsForResource (applications, groups, configs by ARN)."""

from __future__ import annotations

import re
from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.domain.configs import PREDEFINED
from opendeploy.service_errors import (
    ApplicationDoesNotExistError,
    ArnNotSupportedError,
    DeploymentConfigDoesNotExistError,
    DeploymentGroupDoesNotExistError,
    InvalidArnError,
    InvalidTagsToAddError,
    ResourceArnRequiredError,
    TagRequiredError,
)

_ARN = re.compile(
    r"arn:aws[a-z-]*:codedeploy:(?P<region>[^:]*):(?P<account>\d{12}):"
    r"(?P<kind>application|deploymentgroup|deploymentconfig):(?P<name>.+)"
)


def resource_arn(ctx: RequestContext, value: Any) -> str:
    """The ARN of an existing application, group or configuration; AWS's errors otherwise."""
    if not value:
        raise ResourceArnRequiredError("The ARN of a resource is required.")
    match = _ARN.fullmatch(str(value))
    if match is None:
        raise InvalidArnError(f"ResourceArn: {value!r} is not a CodeDeploy resource ARN")
    kind, name = match["kind"], match["name"]
    if kind == "application":
        if ctx.store.applications.get(name) is None:
            raise ApplicationDoesNotExistError(f"No application found for name: {name}")
    elif kind == "deploymentgroup":
        app_name, _, group = name.partition("/")
        app = ctx.store.applications.get(app_name)
        if app is None or ctx.store.deployment_groups.get(app["application_id"], group) is None:
            raise DeploymentGroupDoesNotExistError(f"No Deployment Group found for ARN: {value}")
    elif name in PREDEFINED:
        raise ArnNotSupportedError(f"Predefined configuration {name} cannot be tagged.")
    elif ctx.store.deployment_configs.get(name) is None:
        raise DeploymentConfigDoesNotExistError(f"No deployment configuration found: {name}")
    # Store under this server's canonical ARN whatever region/partition spelling came in.
    return c.arn(ctx, f"{kind}:{name}")


def tag_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn = resource_arn(ctx, params.get("ResourceArn"))
    tags = c.tag_pairs(params.get("Tags"))
    if not tags:
        raise TagRequiredError("A tag was not specified.")
    if any(not key for key, _ in tags):
        raise InvalidTagsToAddError("Tags: every tag needs a non-empty Key")
    ctx.store.tags.tag(arn, tags)
    return {}


def untag_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn = resource_arn(ctx, params.get("ResourceArn"))
    keys = [str(k) for k in params.get("TagKeys") or []]
    if not keys:
        raise TagRequiredError("A tag key was not specified.")
    ctx.store.tags.untag(arn, keys)
    return {}


def list_tags_for_resource(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    arn = resource_arn(ctx, params.get("ResourceArn"))
    after = c.decode_token(params.get("NextToken"))
    tags = dict(ctx.store.tags.list_tags(arn))
    keys, more = c.page_after(list(tags), after, c.PAGE_SIZE)
    return {"Tags": [{"Key": k, "Value": tags[k]} for k in keys], "NextToken": c.page(keys, more)}


HANDLERS: dict[str, Handler] = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
