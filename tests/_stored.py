"""Rows written straight into a test server's store, for states no API call can reach quickly
(a finished deployment without agents, a thousand-instance fleet)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opendeploy.store.database import Store
from opendeploy.store.deployments import TargetSelector
from opendeploy.testing.server import RunningServer


def server_store(server: RunningServer) -> Store:
    """The store of a running server on its default SQLite file (the caller closes it)."""
    return Store.open(f"sqlite:///{server.data_dir.resolve() / 'opendeploy.db'}")


def stored_group(store: Store, app: str, group: str, *, now: datetime, **settings: Any) -> None:
    """A Server application ``app`` with an AllAtOnce deployment group ``group`` (``settings``
    over those defaults), recorded in ``store``."""
    app_row = store.applications.create(name=app, compute_platform="Server", now=now)
    store.deployment_groups.create(
        application_id=app_row["application_id"],
        app_name=app,
        name=group,
        settings={
            "compute_platform": "Server",
            "deployment_config_name": "CodeDeployDefault.AllAtOnce",
            **settings,
        },
        now=now,
    )


def stored_deployment(
    store: Store,
    app: str,
    group: str,
    *,
    now: datetime,
    select_targets: TargetSelector | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """A deployment of ``app``'s existing ``group`` (AllAtOnce, started ``now``) recorded in
    ``store`` as the engine would leave it, with ``columns`` over those defaults; its row."""
    app_row = store.applications.require(app)
    group_row = store.deployment_groups.get(app_row["application_id"], group)
    assert group_row is not None, f"{app}/{group} is not in the store"
    return store.deployments.create(
        deployment={
            "deployment_id": "d-" + uuid.uuid4().hex[:9].upper(),
            "application_id": app_row["application_id"],
            "application_name": app,
            "deployment_group_id": group_row["deployment_group_id"],
            "deployment_group_name": group,
            "deployment_config_name": "CodeDeployDefault.AllAtOnce",
            "compute_platform": "Server",
            "creator": "user",
            "start_time": now,
            **columns,
        },
        select_targets=select_targets,
        now=now,
    )


def bare_deployment(store: Store, deployment_id: str, *, now: datetime) -> str:
    """A OneAtATime Server deployment of application ``app`` with no group and no targets:
    the least a command can belong to. Returns its id."""
    store.deployments.create(
        deployment={
            "deployment_id": deployment_id,
            "application_id": "app-1",
            "application_name": "app",
            "deployment_config_name": "CodeDeployDefault.OneAtATime",
            "compute_platform": "Server",
            "creator": "user",
        },
        select_targets=None,
        now=now,
    )
    return deployment_id


def deployment_to_instances(
    store: Store,
    names: Sequence[str],
    *,
    now: datetime,
    last_seen: datetime,
    app: str = "app",
) -> str:
    """On-premises instances ``names`` (last seen ``last_seen``), an application ``app`` with an
    AllAtOnce group ``g``, and a deployment to those instances as the engine would find it
    before its first pass; the deployment's id."""
    from sqlalchemy import insert

    from opendeploy.store import tables

    def arn(name: str) -> str:
        return f"arn:aws:codedeploy:us-east-1:0:instance/{name}_x"

    with store.database.write() as conn:
        conn.execute(
            insert(tables.on_premises_instances),
            [
                {"name": n, "instance_arn": arn(n), "register_time": now, "last_seen_at": last_seen}
                for n in names
            ],
        )
    stored_group(store, app, "g", now=now, service_role_arn="arn:aws:iam::0:role/r")
    dep = stored_deployment(
        store, app, "g", now=now, select_targets=lambda rows: [(n, arn(n), None) for n in names]
    )
    return str(dep["deployment_id"])
