"""The function host's functions, versions and aliases (see ``functions/``).

``$LATEST`` is the version that UpdateFunctionCode and UpdateFunctionConfiguration change; a
published version is a copy of ``$LATEST`` taken by PublishVersion, numbered one past the last
one ever published, and never changes. Every change gives the row a new ``revision_id`` (what
AWS's RevisionId preconditions compare). The code zips are blobs of the bundle store, named by
their hex SHA-256 here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from opendeploy.store import tables
from opendeploy.store._base import Repository

_F = tables.lambda_functions
_V = tables.lambda_function_versions
_A = tables.lambda_aliases

LATEST = "$LATEST"


class FunctionExistsError(LookupError):
    """CreateFunction of a name that is taken."""


class AliasExistsError(LookupError):
    """CreateAlias of a name that is taken."""


class StaleRevisionError(ValueError):
    """The revision id a change was conditioned on is no longer the current one."""


@dataclass(frozen=True)
class FunctionVersion:
    """One version of a function: its configuration and code, as they were published."""

    function_name: str
    version: str
    config: Mapping[str, Any]
    code_sha256: str
    code_size: int
    revision_id: str
    last_modified: datetime


@dataclass(frozen=True)
class AliasRecord:
    """An alias: the version it points to and the extra versions it routes a share to."""

    function_name: str
    name: str
    function_version: str
    description: str
    routing: Mapping[str, float]
    revision_id: str


def _version(row: Any) -> FunctionVersion:
    return FunctionVersion(
        function_name=row.function_name,
        version=row.version,
        config=dict(row.config or {}),
        code_sha256=row.code_sha256,
        code_size=row.code_size,
        revision_id=row.revision_id,
        last_modified=row.last_modified,
    )


def _alias(row: Any) -> AliasRecord:
    return AliasRecord(
        function_name=row.function_name,
        name=row.name,
        function_version=row.function_version,
        description=row.description,
        routing={str(k): float(v) for k, v in (row.routing or {}).items()},
        revision_id=row.revision_id,
    )


def _new_revision() -> str:
    return str(uuid.uuid4())


def _version_order(record: FunctionVersion) -> tuple[int, int]:
    """$LATEST first, then the published versions by number (as ListVersionsByFunction)."""
    return (0, 0) if record.version == LATEST else (1, int(record.version))


class Functions(Repository):
    """Functions, their versions and aliases."""

    # -- functions and versions ------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        config: Mapping[str, Any],
        code_sha256: str,
        code_size: int,
        now: datetime,
    ) -> FunctionVersion:
        """Create the function with its ``$LATEST``; :class:`FunctionExistsError` if taken."""
        record = FunctionVersion(name, LATEST, dict(config), code_sha256, code_size, "", now)
        record = FunctionVersion(**{**record.__dict__, "revision_id": _new_revision()})
        try:
            with self.db.write() as conn:
                conn.execute(insert(_F).values(function_name=name, created_at=now, last_version=0))
                conn.execute(insert(_V).values(**record.__dict__))
        except IntegrityError as exc:
            raise FunctionExistsError(name) from exc
        return record

    def version(self, name: str, version: str) -> FunctionVersion | None:
        """The function's ``version`` (``$LATEST`` or a number), or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_V).where(and_(_V.c.function_name == name, _V.c.version == version))
            ).first()
        return None if row is None else _version(row)

    def resolve(
        self, name: str, qualifier: str, *, is_alias: bool
    ) -> tuple[AliasRecord | None, dict[str, FunctionVersion]]:
        """What an invocation of ``name:qualifier`` may run, in one read: the alias (when
        ``is_alias``; None if it does not exist) and the versions it routes to (or the version
        ``qualifier`` names), by version; missing versions are left out."""
        with self.db.read() as conn:
            alias: AliasRecord | None = None
            wanted = [qualifier]
            if is_alias:
                row = conn.execute(
                    select(_A).where(and_(_A.c.function_name == name, _A.c.name == qualifier))
                ).first()
                if row is None:
                    return None, {}
                alias = _alias(row)
                wanted = [alias.function_version, *alias.routing]
            rows = conn.execute(
                select(_V).where(and_(_V.c.function_name == name, _V.c.version.in_(wanted)))
            ).all()
        return alias, {row.version: _version(row) for row in rows}

    def versions(self, name: str) -> list[FunctionVersion]:
        """Every version of the function, ``$LATEST`` first then by number (empty: no such)."""
        with self.db.read() as conn:
            rows = conn.execute(select(_V).where(_V.c.function_name == name)).all()
        return sorted((_version(r) for r in rows), key=_version_order)

    def latest_of_all(self) -> list[FunctionVersion]:
        """The ``$LATEST`` of every function, by name."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_V).where(_V.c.version == LATEST).order_by(_V.c.function_name)
            ).all()
        return [_version(r) for r in rows]

    def update_latest(
        self,
        name: str,
        *,
        now: datetime,
        config: Mapping[str, Any] | None = None,
        code: tuple[str, int] | None = None,
        expected_revision: str | None = None,
    ) -> FunctionVersion | None:
        """Change ``$LATEST``'s configuration (merged) and/or code (sha256, size); None if the
        function does not exist, :class:`StaleRevisionError` if ``expected_revision`` is not
        its current revision."""
        with self.db.write() as conn:
            row = conn.execute(
                select(_V).where(and_(_V.c.function_name == name, _V.c.version == LATEST))
            ).first()
            if row is None:
                return None
            current = _version(row)
            if expected_revision is not None and expected_revision != current.revision_id:
                raise StaleRevisionError(current.revision_id)
            values: dict[str, Any] = {"revision_id": _new_revision(), "last_modified": now}
            if config is not None:
                values["config"] = {**current.config, **config}
            if code is not None:
                values["code_sha256"], values["code_size"] = code
            conn.execute(
                update(_V)
                .where(and_(_V.c.function_name == name, _V.c.version == LATEST))
                .values(**values)
            )
        return FunctionVersion(**{**current.__dict__, **values})

    def publish(
        self, name: str, *, now: datetime, description: str | None
    ) -> tuple[FunctionVersion, FunctionVersion] | None:
        """Publish ``$LATEST`` as the next version, unless the newest published version has the
        same code and configuration (AWS then returns that one). Returns ($LATEST, the version);
        None if the function does not exist."""
        with self.db.write() as conn:
            return self._publish(conn, name, now, description)

    def _publish(
        self, conn: Connection, name: str, now: datetime, description: str | None
    ) -> tuple[FunctionVersion, FunctionVersion] | None:
        last = conn.execute(select(_F.c.last_version).where(_F.c.function_name == name)).first()
        if last is None:
            return None
        latest_row = conn.execute(
            select(_V).where(and_(_V.c.function_name == name, _V.c.version == LATEST))
        ).one()
        latest = _version(latest_row)
        if last[0]:
            newest_row = conn.execute(
                select(_V).where(and_(_V.c.function_name == name, _V.c.version == str(last[0])))
            ).first()
            if newest_row is not None:
                newest = _version(newest_row)
                unchanged = newest.code_sha256 == latest.code_sha256 and {
                    k: v for k, v in newest.config.items() if k != "Description"
                } == {k: v for k, v in latest.config.items() if k != "Description"}
                if unchanged:
                    return latest, newest
        number = int(last[0]) + 1
        config = dict(latest.config)
        if description is not None:
            config["Description"] = description
        published = FunctionVersion(
            function_name=name,
            version=str(number),
            config=config,
            code_sha256=latest.code_sha256,
            code_size=latest.code_size,
            revision_id=_new_revision(),
            last_modified=now,
        )
        conn.execute(insert(_V).values(**published.__dict__))
        conn.execute(update(_F).where(_F.c.function_name == name).values(last_version=number))
        return latest, published

    def delete(self, name: str, version: str | None = None) -> bool:
        """Delete the function (with its versions and aliases), or one published version.
        False when there was nothing to delete."""
        with self.db.write() as conn:
            if version is not None:
                return bool(
                    conn.execute(
                        delete(_V).where(and_(_V.c.function_name == name, _V.c.version == version))
                    ).rowcount
                )
            conn.execute(delete(_A).where(_A.c.function_name == name))
            conn.execute(delete(_V).where(_V.c.function_name == name))
            return bool(conn.execute(delete(_F).where(_F.c.function_name == name)).rowcount)

    def code_in_use(self, code_sha256: str) -> bool:
        """Whether any version still names this code blob."""
        with self.db.read() as conn:
            return (
                conn.execute(select(_V.c.version).where(_V.c.code_sha256 == code_sha256)).first()
                is not None
            )

    # -- aliases ---------------------------------------------------------------------------

    def create_alias(self, record: AliasRecord) -> AliasRecord:
        """Store a new alias (its revision id is made here); :class:`AliasExistsError` if taken."""
        record = AliasRecord(**{**record.__dict__, "revision_id": _new_revision()})
        try:
            with self.db.write() as conn:
                conn.execute(insert(_A).values(**{**record.__dict__, "routing": _routing(record)}))
        except IntegrityError as exc:
            raise AliasExistsError(record.name) from exc
        return record

    def alias(self, name: str, alias: str) -> AliasRecord | None:
        """The alias, or None."""
        with self.db.read() as conn:
            row = conn.execute(
                select(_A).where(and_(_A.c.function_name == name, _A.c.name == alias))
            ).first()
        return None if row is None else _alias(row)

    def aliases(self, name: str) -> list[AliasRecord]:
        """The function's aliases, by name."""
        with self.db.read() as conn:
            rows = conn.execute(
                select(_A).where(_A.c.function_name == name).order_by(_A.c.name)
            ).all()
        return [_alias(r) for r in rows]

    def update_alias(
        self, record: AliasRecord, *, expected_revision: str | None = None
    ) -> AliasRecord | None:
        """Replace the alias's version, description and routing (a new revision id); None if it
        does not exist, :class:`StaleRevisionError` on a stale ``expected_revision``."""
        updated = AliasRecord(**{**record.__dict__, "revision_id": _new_revision()})
        with self.db.write() as conn:
            where = and_(_A.c.function_name == record.function_name, _A.c.name == record.name)
            current = conn.execute(select(_A.c.revision_id).where(where)).first()
            if current is None:
                return None
            if expected_revision is not None and expected_revision != current[0]:
                raise StaleRevisionError(current[0])
            conn.execute(
                update(_A)
                .where(where)
                .values(
                    function_version=updated.function_version,
                    description=updated.description,
                    routing=_routing(updated),
                    revision_id=updated.revision_id,
                )
            )
        return updated

    def delete_alias(self, name: str, alias: str) -> bool:
        """Delete the alias; False when there was none."""
        with self.db.write() as conn:
            return bool(
                conn.execute(
                    delete(_A).where(and_(_A.c.function_name == name, _A.c.name == alias))
                ).rowcount
            )


def _routing(record: AliasRecord) -> dict[str, float] | None:
    return dict(record.routing) or None
