"""On-premises instances: RegisterOnPremisesInstance, DeregisterOnPremisesInstance,
GetOnPremisesInstance, BatchGetOnPremisesInstances, ListOnPremisesInstances,
AddTagsToOnPremisesInstances, RemoveTagsFromOnPremisesInstances."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.engine.targets import TagFilter, matches_any
from opendeploy.service_errors import (
    IamArnRequiredError,
    InstanceLimitExceededError,
    InstanceNameRequiredError,
    InstanceNotRegisteredError,
    InvalidIamSessionArnError,
    InvalidIamUserArnError,
    InvalidInstanceNameError,
    InvalidRegistrationStatusError,
    InvalidTagError,
    InvalidTagFilterError,
    MultipleIamArnsProvidedError,
    TagLimitExceededError,
    TagRequiredError,
)

PAGE_SIZE = c.PAGE_SIZE
MAX_TAGS = 10
_INSTANCE_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,100}")
_IAM_USER_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:user/.+")
_IAM_SESSION_ARN = re.compile(r"arn:aws[a-z-]*:sts::\d{12}:assumed-role/.+/.+")
_SUFFIX_ALPHABET = string.ascii_letters + string.digits


def instance_name(value: Any) -> str:
    if not value:
        raise InstanceNameRequiredError("An on-premises instance name was not specified.")
    if not isinstance(value, str) or not _INSTANCE_NAME.fullmatch(value):
        raise InvalidInstanceNameError(
            f"instanceName: {value!r} must be 1 to 100 characters of A-Z a-z 0-9 + = , . @ _ -"
        )
    return value


def render(ctx: RequestContext, row: dict[str, Any]) -> dict[str, Any]:
    """InstanceInfo."""
    return {
        "instanceName": row["name"],
        "iamSessionArn": row["iam_session_arn"],
        "iamUserArn": row["iam_user_arn"],
        "instanceArn": row["instance_arn"],
        "registerTime": row["register_time"],
        "deregisterTime": row["deregister_time"],
        "tags": [{"Key": k, "Value": v} for k, v in row["tags"].items()],
    }


def register_on_premises_instance(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = instance_name(params.get("instanceName"))
    user, session = params.get("iamUserArn"), params.get("iamSessionArn")
    if user and session:
        raise MultipleIamArnsProvidedError(
            "Both an IAM user ARN and an IAM session ARN were given."
        )
    if not user and not session:
        raise IamArnRequiredError("An IAM user ARN or an IAM session ARN is required.")
    if user and not _IAM_USER_ARN.fullmatch(user):
        raise InvalidIamUserArnError(f"iamUserArn: {user!r} is not an IAM user ARN")
    if session and not _IAM_SESSION_ARN.fullmatch(session):
        raise InvalidIamSessionArnError(f"iamSessionArn: {session!r} is not an IAM session ARN")
    # AWS's form: the name plus an underscore and 10 random characters.
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(10))
    ctx.store.instances.register(
        name=name,
        instance_arn=c.arn(ctx, f"instance/{name}_{suffix}"),
        iam_user_arn=user,
        iam_session_arn=session,
        now=c.now(),
    )
    return {}


def deregister_on_premises_instance(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    ctx.store.instances.deregister(instance_name(params.get("instanceName")), now=c.now())
    return {}


def get_on_premises_instance(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    name = instance_name(params.get("instanceName"))
    row = ctx.store.instances.get(name)
    if row is None:
        raise InstanceNotRegisteredError(f"The on-premises instance {name} is not registered.")
    return {"instanceInfo": render(ctx, row)}


def batch_get_on_premises_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    names = c.check_batch(params.get("instanceNames"), limit=25, what="instance names")
    if not names:
        raise InstanceNameRequiredError("An on-premises instance name was not specified.")
    rows = ctx.store.instances.get_many([instance_name(n) for n in names])
    return {"instanceInfos": [render(ctx, r) for r in rows if r is not None]}


def list_on_premises_instances(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    status = params.get("registrationStatus")
    if status not in (None, "Registered", "Deregistered"):
        raise InvalidRegistrationStatusError(
            f"registrationStatus: {status!r} is not Registered or Deregistered"
        )
    try:
        filters = [TagFilter.from_wire(f) for f in params.get("tagFilters") or []]
    except ValueError as exc:
        raise InvalidTagFilterError(f"tagFilters: {exc}") from None
    after = c.decode_token(params.get("nextToken"))
    names, more = ctx.store.instances.list_names(
        registration_status=status,
        tag_predicate=(lambda tags: matches_any(tags, filters)) if filters else None,
        after=after,
        limit=PAGE_SIZE,
    )
    return {"instanceNames": names, "nextToken": c.page(names, more)}


def _tags_and_names(params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    tags = list(params.get("tags") or [])
    if not tags:
        raise TagRequiredError("A tag was not specified.")
    if len(tags) > MAX_TAGS:
        raise TagLimitExceededError(f"At most {MAX_TAGS} tags may be given at once.")
    for tag in tags:
        if not tag.get("Key"):
            raise InvalidTagError(f"Tag {tag!r}: a Key is required")
    names = list(params.get("instanceNames") or [])
    if not names:
        raise InstanceNameRequiredError("An on-premises instance name was not specified.")
    if len(names) > 100:
        raise InstanceLimitExceededError("At most 100 instances may be given at once.")
    return tags, [instance_name(n) for n in names]


def add_tags_to_on_premises_instances(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    tags, names = _tags_and_names(params)
    ctx.store.instances.add_tags(names, c.tag_pairs(tags))
    return {}


def remove_tags_from_on_premises_instances(
    ctx: RequestContext, params: dict[str, Any]
) -> dict[str, Any]:
    tags, names = _tags_and_names(params)
    ctx.store.instances.remove_tags(names, [(t["Key"], t.get("Value")) for t in tags])
    return {}


HANDLERS: dict[str, Handler] = {
    "RegisterOnPremisesInstance": register_on_premises_instance,
    "DeregisterOnPremisesInstance": deregister_on_premises_instance,
    "GetOnPremisesInstance": get_on_premises_instance,
    "BatchGetOnPremisesInstances": batch_get_on_premises_instances,
    "ListOnPremisesInstances": list_on_premises_instances,
    "AddTagsToOnPremisesInstances": add_tags_to_on_premises_instances,
    "RemoveTagsFromOnPremisesInstances": remove_tags_from_on_premises_instances,
}
