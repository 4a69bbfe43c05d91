"""Alembic migrations of the OpenDeploy schema (run by ``Store.open``)."""
