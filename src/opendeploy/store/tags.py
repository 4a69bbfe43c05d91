"""Tags on resources addressed by ARN (applications, deployment groups, configs)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, delete, insert, or_, select, update

from opendeploy.store import tables
from opendeploy.store._base import Repository

_T = tables.resource_tags


class ResourceTags(Repository):
    """Key/value tags per ARN; a key appears once per resource (a new value replaces the old)."""

    def tag(self, arn: str, tags: Iterable[tuple[str, str]]) -> None:
        """Add or overwrite ``tags`` on ``arn``."""
        with self.db.write() as conn:
            for key, value in tags:
                changed = conn.execute(
                    update(_T).where(_T.c.resource_arn == arn, _T.c.key == key).values(value=value)
                ).rowcount
                if not changed:
                    conn.execute(insert(_T).values(resource_arn=arn, key=key, value=value))

    def untag(self, arn: str, keys: Iterable[str]) -> None:
        """Remove the tags with these keys (unknown keys are ignored)."""
        with self.db.write() as conn:
            conn.execute(delete(_T).where(_T.c.resource_arn == arn, _T.c.key.in_(list(keys))))

    def list_tags(self, arn: str) -> list[tuple[str, str]]:
        """The tags of ``arn`` in key order."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_T.c.key, _T.c.value).where(_T.c.resource_arn == arn).order_by(_T.c.key)
            ).all()
        return [(r[0], r[1]) for r in rows]

    def drop(self, arns: Iterable[str], *, prefixes: Iterable[str] = ()) -> None:
        """Forget every tag of ``arns`` and of the ARNs starting with one of ``prefixes``."""
        conditions: list[ColumnElement[bool]] = [_T.c.resource_arn.in_(list(arns))]
        conditions += [_T.c.resource_arn.startswith(p, autoescape=True) for p in prefixes]
        with self.db.write() as conn:
            conn.execute(delete(_T).where(or_(*conditions)))
