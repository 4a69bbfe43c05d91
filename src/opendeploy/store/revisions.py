"""Application revisions: where a bundle lives, when it was registered, first and last used.

A revision is identified by the identifying fields of its location (:func:`location_key`): for
S3 the bucket, key, bundle type, version and ETag; for GitHub the repository and commit; for
String/AppSpecContent the SHA-256 of the content. The stored ``location`` keeps the AWS shape.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from opendeploy.store import tables
from opendeploy.store._base import Repository, page_after

_T = tables.revisions

_CONTENT_MEMBER = {"String": "string", "AppSpecContent": "appSpecContent"}


def normalize_location(location: dict[str, Any]) -> dict[str, Any]:
    """The location without empty members, with the SHA-256 of inline content filled in."""
    kind = location.get("revisionType")
    out: dict[str, Any] = {"revisionType": kind}
    if kind == "S3":
        s3 = {k: v for k, v in (location.get("s3Location") or {}).items() if v not in (None, "")}
        if "eTag" in s3:
            s3["eTag"] = str(s3["eTag"]).strip('"')
        out["s3Location"] = s3
    elif kind == "GitHub":
        gh = location.get("gitHubLocation") or {}
        out["gitHubLocation"] = {k: v for k, v in gh.items() if v not in (None, "")}
    elif kind in _CONTENT_MEMBER:
        member = _CONTENT_MEMBER[kind]
        body = dict(location.get(member) or {})
        content = str(body.get("content") or "")
        body["content"] = content
        body["sha256"] = body.get("sha256") or hashlib.sha256(content.encode()).hexdigest()
        out[member] = body
    return out


def location_key(location: dict[str, Any]) -> str:
    """A canonical text that names the revision at ``location`` (normalized first)."""
    loc = normalize_location(location)
    kind = loc["revisionType"]
    if kind == "S3":
        s3 = loc["s3Location"]
        ident = [s3.get(k, "") for k in ("bucket", "key", "bundleType", "version", "eTag")]
    elif kind == "GitHub":
        gh = loc["gitHubLocation"]
        ident = [gh.get("repository", ""), gh.get("commitId", "")]
    else:
        ident = [loc[_CONTENT_MEMBER[kind]]["sha256"]]
    return json.dumps([kind, *ident], separators=(",", ":"))


def upsert(
    conn: Connection,
    *,
    application_id: str,
    location: dict[str, Any],
    description: str | None,
    now: datetime,
    used: bool = False,
    first_description: str | None = None,
) -> None:
    """Register (or re-register) a revision inside an open write transaction.

    Re-registering keeps the first registration time and replaces the description when one is
    given; ``used`` records a deployment of it (first/last used times). ``first_description`` is
    the description of a revision registered here for the first time without one (AWS's
    "Application revision registered by Deployment ID: d-…" for CreateDeployment's).
    """
    loc = normalize_location(location)
    key = location_key(loc)
    where = (_T.c.application_id == application_id, _T.c.location_key == key)
    row = conn.execute(select(_T.c.first_used_time).where(*where)).first()
    if row is None:
        s3 = loc.get("s3Location") or {}
        conn.execute(
            insert(_T).values(
                application_id=application_id,
                location_key=key,
                revision_type=loc["revisionType"],
                location=loc,
                s3_bucket=s3.get("bucket"),
                s3_key=s3.get("key"),
                description=description if description is not None else first_description,
                register_time=now,
                first_used_time=now if used else None,
                last_used_time=now if used else None,
            )
        )
        return
    values: dict[str, Any] = {}
    if description is not None:
        values["description"] = description
    if used:
        values["last_used_time"] = now
        if row[0] is None:
            values["first_used_time"] = now
    if values:
        conn.execute(update(_T).where(*where).values(**values))


class Revisions(Repository):
    """Rows of ``revisions`` as dicts; ``deployment_groups`` is added from the history."""

    def register(
        self,
        *,
        application_id: str,
        location: dict[str, Any],
        description: str | None,
        now: datetime,
    ) -> None:
        with self.db.write() as conn:
            upsert(
                conn,
                application_id=application_id,
                location=location,
                description=description,
                now=now,
            )

    def get(self, application_id: str, location: dict[str, Any]) -> dict[str, Any] | None:
        """The revision at ``location`` with the names of the groups it was deployed to."""
        found = self.get_many(application_id, [location])
        return found[0]

    def get_many(
        self, application_id: str, locations: list[dict[str, Any]]
    ) -> list[dict[str, Any] | None]:
        """Each location's revision (None where unknown), in the order asked."""
        keys = [location_key(loc) for loc in locations]
        d = tables.deployments
        with self.db.read() as conn:
            rows = (
                conn.execute(
                    select(_T).where(
                        _T.c.application_id == application_id, _T.c.location_key.in_(keys)
                    )
                )
                .mappings()
                .all()
            )
            # No DISTINCT: PostgreSQL's json type has no equality operator.
            history: list[Any] = list(
                conn.execute(
                    select(d.c.deployment_group_name, d.c.revision).where(
                        d.c.application_id == application_id
                    )
                ).all()
            )
        groups: dict[str, set[str]] = {}
        for group, revision in history:
            if group and revision:
                groups.setdefault(location_key(revision), set()).add(str(group))
        by_key = {
            r["location_key"]: {**r, "deployment_groups": sorted(groups.get(r["location_key"], ()))}
            for r in rows
        }
        return [by_key.get(k) for k in keys]

    def list_locations(
        self,
        application_id: str,
        *,
        sort_by: str | None,
        descending: bool,
        s3_bucket: str | None,
        s3_key_prefix: str | None,
        deployed: str | None,
        after: str | None,
        limit: int,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of locations, filtered and sorted as ListApplicationRevisions asks.

        ``sort_by`` is a column (register_time, first_used_time, last_used_time) or None for
        registration order; ``deployed`` is "include", "exclude" or "ignore"/None. ``after`` is
        the key of the last location of the previous page; the answer is the page and the key of
        its last location when more follow.
        """
        column = _T.c[sort_by] if sort_by else _T.c.register_time
        order = column.desc() if descending else column.asc()
        query = select(_T.c.revision_id, _T.c.location).where(_T.c.application_id == application_id)
        if s3_bucket:
            query = query.where(_T.c.s3_bucket == s3_bucket)
        if s3_key_prefix:
            query = query.where(_T.c.s3_key.startswith(s3_key_prefix, autoescape=True))
        if deployed == "include":
            query = query.where(_T.c.first_used_time.is_not(None))
        elif deployed == "exclude":
            query = query.where(_T.c.first_used_time.is_(None))
        query = query.order_by(order, _T.c.revision_id)
        with self.db.read() as conn:
            rows = {str(r.revision_id): r.location for r in conn.execute(query)}
        # The sort columns may be NULL (never deployed), so the page continues after the last
        # row's key in this order rather than after a value.
        keys, more = page_after(list(rows), after, limit)
        return [rows[k] for k in keys], (keys[-1] if more and keys else None)
