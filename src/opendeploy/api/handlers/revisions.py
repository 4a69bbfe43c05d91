"""RegisterApplicationRevision, GetApplicationRevision, BatchGetApplicationRevisions,
ListApplicationRevisions."""

from __future__ import annotations

from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import _common as c
from opendeploy.service_errors import (
    BucketNameFilterRequiredError,
    DescriptionTooLongError,
    InvalidDeployedStateFilterError,
    InvalidRevisionError,
    InvalidSortByError,
    InvalidSortOrderError,
    RevisionDoesNotExistError,
    RevisionRequiredError,
)
from opendeploy.store.revisions import normalize_location

PAGE_SIZE = c.PAGE_SIZE
MAX_DESCRIPTION = 100

_SORT_COLUMNS = {
    "registerTime": "register_time",
    "firstUsedTime": "first_used_time",
    "lastUsedTime": "last_used_time",
}
_BUNDLE_TYPES = {"tar", "tgz", "zip", "YAML", "JSON"}


def check_description(value: Any) -> str | None:
    if value is not None and len(str(value)) > MAX_DESCRIPTION:
        raise DescriptionTooLongError(
            f"description: {len(str(value))} characters exceed the limit of {MAX_DESCRIPTION}"
        )
    return None if value is None else str(value)


def check_revision(revision: Any) -> dict[str, Any]:
    """A normalized RevisionLocation; RevisionRequired/InvalidRevision as AWS answers."""
    if not revision:
        raise RevisionRequiredError("The revision ID was not specified.")
    kind = revision.get("revisionType")
    if kind == "S3":
        s3 = revision.get("s3Location") or {}
        if not s3.get("bucket") or not s3.get("key"):
            raise InvalidRevisionError("s3Location: bucket and key are required for an S3 revision")
        if s3.get("bundleType") not in (None, *_BUNDLE_TYPES):
            raise InvalidRevisionError(
                f"s3Location.bundleType: {s3['bundleType']!r} "
                "is not one of tar, tgz, zip, YAML, JSON"
            )
    elif kind == "GitHub":
        gh = revision.get("gitHubLocation") or {}
        if not gh.get("repository") or not gh.get("commitId"):
            raise InvalidRevisionError(
                "gitHubLocation: repository and commitId are required for a GitHub revision"
            )
    elif kind in ("String", "AppSpecContent"):
        member = "string" if kind == "String" else "appSpecContent"
        if not (revision.get(member) or {}).get("content"):
            raise InvalidRevisionError(f"{member}.content is required for a {kind} revision")
    else:
        raise InvalidRevisionError(
            f"revisionType: {kind!r} is not one of S3, GitHub, String, AppSpecContent"
        )
    return normalize_location(revision)


def render_generic(row: dict[str, Any]) -> dict[str, Any]:
    """GenericRevisionInfo."""
    return {
        "description": row["description"],
        "deploymentGroups": row["deployment_groups"],
        "firstUsedTime": row["first_used_time"],
        "lastUsedTime": row["last_used_time"],
        "registerTime": row["register_time"],
    }


def register_application_revision(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    description = check_description(params.get("description"))
    revision = check_revision(params.get("revision"))
    app = ctx.store.applications.require(app_name)
    ctx.store.revisions.register(
        application_id=app["application_id"],
        location=revision,
        description=description,
        now=c.now(),
    )
    return {}


def _missing(revision: dict[str, Any]) -> RevisionDoesNotExistError:
    return RevisionDoesNotExistError(f"No application revision found for revision {revision}")


def get_application_revision(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    revision = check_revision(params.get("revision"))
    app = ctx.store.applications.require(app_name)
    row = ctx.store.revisions.get(app["application_id"], revision)
    if row is None:
        raise _missing(revision)
    return {
        "applicationName": app_name,
        "revision": row["location"],
        "revisionInfo": render_generic(row),
    }


def batch_get_application_revisions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    wanted = c.check_batch(params.get("revisions"), limit=25, what="revisions")
    if not wanted:
        raise RevisionRequiredError("The revision ID was not specified.")
    locations = [check_revision(r) for r in wanted]
    app = ctx.store.applications.require(app_name)
    rows = ctx.store.revisions.get_many(app["application_id"], locations)
    missing = [loc for loc, row in zip(locations, rows, strict=True) if row is None]
    return {
        "applicationName": app_name,
        "errorMessage": f"Revisions not found: {missing}" if missing else "",
        "revisions": [
            {"revisionLocation": row["location"], "genericRevisionInfo": render_generic(row)}
            for row in rows
            if row is not None
        ],
    }


def list_application_revisions(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    app_name = c.app_name(params.get("applicationName"))
    sort_by = params.get("sortBy")
    if sort_by is not None and sort_by not in _SORT_COLUMNS:
        raise InvalidSortByError(
            f"sortBy: {sort_by!r} is not one of registerTime, firstUsedTime, lastUsedTime"
        )
    order = params.get("sortOrder")
    if order not in (None, "ascending", "descending"):
        raise InvalidSortOrderError(f"sortOrder: {order!r} is not ascending or descending")
    deployed = params.get("deployed")
    if deployed not in (None, "include", "exclude", "ignore"):
        raise InvalidDeployedStateFilterError(
            f"deployed: {deployed!r} is not one of include, exclude, ignore"
        )
    if params.get("s3KeyPrefix") and not params.get("s3Bucket"):
        raise BucketNameFilterRequiredError("s3KeyPrefix needs s3Bucket as well.")
    app = ctx.store.applications.require(app_name)
    after = c.decode_token(params.get("nextToken"))
    rows, last = ctx.store.revisions.list_locations(
        app["application_id"],
        sort_by=_SORT_COLUMNS.get(sort_by or ""),
        descending=order == "descending",
        s3_bucket=params.get("s3Bucket"),
        s3_key_prefix=params.get("s3KeyPrefix"),
        deployed=deployed,
        after=after,
        limit=PAGE_SIZE,
    )
    return {"revisions": rows, "nextToken": c.encode_token(last) if last else None}


HANDLERS: dict[str, Handler] = {
    "RegisterApplicationRevision": register_application_revision,
    "GetApplicationRevision": get_application_revision,
    "BatchGetApplicationRevisions": batch_get_application_revisions,
    "ListApplicationRevisions": list_application_revisions,
}
