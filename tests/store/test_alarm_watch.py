"""The alarm watcher's store on SQLite and PostgreSQL: the deployments it watches (with the
alarm configuration in effect), a stop by an alarm recorded once, and a gate's state."""

from __future__ import annotations

from opendeploy.store.alarm_watch import AlarmWatchStore
from opendeploy.store.database import Store
from tests._stored import stored_deployment, stored_group
from tests.engine.harness import T0

ALARMS = {"enabled": True, "ignorePollAlarmFailure": False, "alarms": [{"name": "errors"}]}


def test_watched_deployments_stops_and_gates(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        stored_group(
            store, "shop", "prod", now=T0, service_role_arn="r", alarm_configuration=ALARMS
        )
        stored_deployment(store, "shop", "prod", now=T0, status="Succeeded")  # never watched
        running = stored_deployment(store, "shop", "prod", now=T0, status="InProgress")
        dep = str(running["deployment_id"])
        watch = AlarmWatchStore(store)
        (row,) = watch.watched()
        assert (row.deployment_id, row.application_name, row.deployment_group_name) == (
            dep,
            "shop",
            "prod",
        )
        assert row.group_alarms == ALARMS
        assert row.override_alarms is None and row.gate_state is None
        assert row.creator == "user"

        watch.record_gate(dep, {"name": "g", "ok_since": None})
        assert watch.watched()[0].gate_state == {"name": "g", "ok_since": None}

        assert watch.record_alarm_stop(dep, ("errors",), unreadable=False)
        assert not watch.record_alarm_stop(dep, ("errors",), unreadable=False)  # stopping
        assert watch.watched() == []
        d = store.deployments.get(dep)
        assert d is not None
        assert d["stop_requested"] and d["stop_by_alarm"]
        assert d["stop_alarms"] == {"alarms": ["errors"], "unreadable": False}
        assert d["auto_rollback_on_stop"] is None
    finally:
        store.close()
