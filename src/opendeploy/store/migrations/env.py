"""Alembic environment: migrate over the connection that ``store.database.migrate`` passes in.

Alembic's own CLI works too (``alembic -x url=sqlite:///… upgrade head`` with a script_location
pointing here), which is how new revisions are generated against ``tables.metadata``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from opendeploy.store.tables import metadata

# Any fixed number: serializes concurrent migrations of several replicas on PostgreSQL.
_PG_MIGRATION_LOCK = 0x0D3910


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True)["url"]
    with create_engine(url).begin() as own_connection:
        _run(own_connection)
