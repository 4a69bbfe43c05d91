"""The outbox records each state change of a deployment and its instances in the transaction
that made it, and the delivery loop writes each to the log. Real server in process, both
databases."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from opendeploy.store import tables
from opendeploy.store.outbox import Outbox
from tests.engine.agent_sim import AGENT_EVENTS, S3_V1, Cluster, running_cluster, settings_for


@pytest.fixture
def cluster(tmp_path: Path, database_url: str) -> Iterator[Cluster]:
    with running_cluster(settings_for(tmp_path, database_url)) as c:
        yield c


def _recorded(cluster: Cluster, dep: str) -> list[tuple[str, str | None, str]]:
    o = tables.deployment_events
    with cluster.server.store.database.read() as conn:
        rows = conn.execute(
            select(o.c.event_type, o.c.instance_id, o.c.status)
            .where(o.c.deployment_id == dep)
            .order_by(o.c.seq)
        ).all()
    return [(r.event_type, r.instance_id, r.status) for r in rows]


def test_a_deployment_records_and_delivers_its_events(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opendeploy.events")
    agents = [cluster.add_instance(f"web-{i}", {"app": "web"}) for i in (1, 2)]
    cluster.group("shop")
    dep = cluster.deploy("shop", S3_V1)
    threads = [threading.Thread(target=a.run, args=(len(AGENT_EVENTS),)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    cluster.wait_status(dep, "Succeeded")
    assert _recorded(cluster, dep) == [
        ("DeploymentStart", None, "InProgress"),
        ("InstanceStart", "web-1", "InProgress"),
        ("InstanceSuccess", "web-1", "Succeeded"),
        ("InstanceStart", "web-2", "InProgress"),
        ("InstanceSuccess", "web-2", "Succeeded"),
        ("DeploymentSuccess", None, "Succeeded"),
    ]
    outbox = Outbox(cluster.server.store, "test")
    # Deliver what the loop has not delivered yet (a repeat of a batch it holds is allowed:
    # delivery is at least once, and the lines are told apart by their seq).
    while cluster.server.outbox.deliver_once():
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "opendeploy.events"]
    by_seq = {x.split("seq=")[1].split(" ")[0]: x for x in lines if f"deployment_id={dep}" in x}
    ours = [by_seq[k] for k in sorted(by_seq, key=int)]
    assert [x.split(" type=")[1].split(" ")[0] for x in ours] == [
        "DeploymentStart",
        "InstanceStart",
        "InstanceSuccess",
        "InstanceStart",
        "InstanceSuccess",
        "DeploymentSuccess",
    ]
    assert outbox.undelivered() == 0


def test_a_failed_deployment_records_why_and_its_rollback(cluster: Cluster) -> None:
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop", rollback=True)
    first = cluster.deploy("shop", S3_V1)
    agent.run(len(AGENT_EVENTS))
    cluster.wait_status(first, "Succeeded")
    second = cluster.deploy("shop", S3_V1)
    agent.run(1, fail="ApplicationStop")
    cluster.wait_status(second, "Failed")
    recorded = _recorded(cluster, second)
    assert recorded[:3] == [
        ("DeploymentStart", None, "InProgress"),
        ("InstanceStart", "web-1", "InProgress"),
        ("InstanceFailure", "web-1", "Failed"),
    ]
    assert recorded[3:] == [
        ("DeploymentFailure", None, "Failed"),
        ("DeploymentRollback", None, "Failed"),
    ]
    o = tables.deployment_events
    with cluster.server.store.database.read() as conn:
        details = conn.execute(
            select(o.c.event_type, o.c.detail).where(o.c.deployment_id == second)
        ).all()
    by_type = {r.event_type: r.detail for r in details}
    assert by_type["DeploymentFailure"]["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"
    assert "rolling back" in by_type["DeploymentRollback"]["rollbackMessage"]
