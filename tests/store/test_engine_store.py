"""The engine's SQL store against the engine's own statement of what applying means.

Every scenario file of ``tests/engine/scenarios`` runs through the store: load → reconcile →
commit → reload, on SQLite and PostgreSQL, with the agents' reports (and the effector runner's)
written through the store as the Command API writes them. After each pass the reloaded snapshot
must be exactly what :func:`~opendeploy.engine.apply.apply_decisions` predicts from the loaded
one, and the worker's cached view must equal a fresh read. Then the two rules a multi-replica
server rests on: two workers racing for one deployment never both dispatch, and a pass whose
lease was taken over meanwhile writes nothing.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from opendeploy.domain.status import TERMINAL_DEPLOYMENT_STATUSES
from opendeploy.engine.apply import apply_decisions
from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.reconcile import Decisions, EngineSettings, reconcile
from opendeploy.engine.snapshot import DeploymentSnapshot, TargetSnapshot
from opendeploy.engine.worker import EngineWorker
from opendeploy.settings import ServerSettings
from opendeploy.store import tables
from opendeploy.store.alarm_watch import AlarmWatchStore
from opendeploy.store.database import Store
from opendeploy.store.engine_store import Loaded, SqlEngineStore, load
from opendeploy.store.server_steps import ServerSteps
from tests._stored import deployment_to_instances, stored_deployment, stored_group
from tests.engine.harness import T0, at

#: The blue/green scenarios run through the store: one for each thing the store does for them
#: (labels and each label's events, Ready and ContinueDeployment, the termination flag and the
#: status messages, a traffic-only rollback, the rollback deployment's reversed events, the
#: traffic routing read for a shift). The others test the pure timeline, which the pure harness
#: (tests/engine/test_scenarios.py) covers; through the store they cost seconds each.
BLUE_GREEN_THROUGH_THE_STORE = frozenset(
    {
        "blue_green_all_at_once_reroutes_green_then_blocks_blue",
        "blue_green_ready_wait_continued_by_continue_deployment",
        "blue_green_terminate_waits_then_retires_blue",
        "blue_green_install_failure_fails_and_rolls_back",
        "blue_green_rollback_reroutes_back_without_installing",
        "blue_green_canary_shift_is_run_by_one_green_host",
    }
)
SCENARIOS = [
    path
    for path in sorted((Path(__file__).parents[1] / "engine" / "scenarios").glob("*.json"))
    if not path.stem.startswith("blue_green_") or path.stem in BLUE_GREEN_THROUGH_THE_STORE
]

_PREDEFINED = {
    ("MOST_CONCURRENCY", 1): "CodeDeployDefault.OneAtATime",
    ("FLEET_PERCENT", 50): "CodeDeployDefault.HalfAtATime",
    ("HOST_COUNT", 0): "CodeDeployDefault.AllAtOnce",
}
_I = tables.on_premises_instances
_D = tables.deployments
_G = tables.deployment_groups
_C = tables.host_commands
S3 = {"revisionType": "S3", "s3Location": {"bucket": "b", "key": "k", "bundleType": "zip"}}
WATCHING_SINCE = T0 - timedelta(hours=1)


def _arn(name: str) -> str:
    return f"arn:aws:codedeploy:us-east-1:0:instance/{name}_x"


def _stored_scenario(store: Store, spec: dict[str, Any]) -> str:
    """The scenario's deployment in the store, before its first pass; its id."""
    fleet = spec["fleet"]
    if fleet:
        with store.database.write() as conn:
            conn.execute(
                insert(_I),
                [{"name": n, "instance_arn": _arn(n), "register_time": T0} for n in fleet],
            )
    kind, value = spec["config"]["type"], spec["config"]["value"]
    config = None if spec.get("traffic_routing") else _PREDEFINED.get((kind, value))
    if config is None:
        config = f"custom-{kind}-{value}"
        store.deployment_configs.create(
            name=config,
            compute_platform="Server",
            minimum_healthy_hosts={"type": kind, "value": value},
            traffic_routing_config=spec.get("traffic_routing"),
            zonal_config=None,
            now=T0,
        )
    stored_group(store, "app", "g", now=T0, service_role_arn="arn:aws:iam::0:role/r")
    rb = spec.get("auto_rollback", {})
    if spec.get("last_successful"):
        old = stored_deployment(
            store, "app", "g", now=T0 - timedelta(days=1), status="Succeeded", revision=S3
        )
        with store.database.write() as conn:
            conn.execute(
                update(_G).values(
                    last_successful_deployment_id=old["deployment_id"],
                    last_attempted_deployment_id=old["deployment_id"],
                )
            )
    columns: dict[str, Any] = {
        "deployment_config_name": config,
        "creator": spec.get("creator", "user"),
        "ignore_application_stop_failures": spec.get("ignore_application_stop_failures", False),
        "auto_rollback_configuration": {
            "enabled": rb.get("enabled", False),
            "events": rb.get("events", []),
        },
        "revision": S3,
        "start_time": None,
    }
    if spec.get("load_balancer"):
        columns["load_balancer_info"] = {"targetGroupInfoList": [{"name": "tg"}]}
    if spec.get("style"):
        columns["deployment_style"] = spec["style"]
    if spec.get("compute_platform", "Server") != "Server":
        columns["compute_platform"] = spec["compute_platform"]
        routing = spec.get("traffic_routing") or {"type": "AllAtOnce"}
        columns["deployment_config_name"] = f"routing-{len(json.dumps(routing))}"
        store.deployment_configs.create(
            name=columns["deployment_config_name"],
            compute_platform=spec["compute_platform"],
            minimum_healthy_hosts=None,
            traffic_routing_config=routing,
            zonal_config=None,
            now=T0,
        )
    if spec.get("blue_green"):
        columns["blue_green_deployment_configuration"] = spec["blue_green"]
    labels = spec.get("labels", {})
    dep = stored_deployment(
        store,
        "app",
        "g",
        now=T0,
        select_targets=lambda rows: [(n, _arn(n), labels.get(n)) for n in fleet],
        **columns,
    )
    return str(dep["deployment_id"])


def _comparable(snap: DeploymentSnapshot) -> tuple[Any, ...]:
    """What a pass writes: statuses, times, events, the open commands (not liveness)."""

    def target(t: TargetSnapshot) -> tuple[Any, ...]:
        return (t.instance_id, t.status, t.events, t.command)

    return (snap.status, snap.started_at, tuple(target(t) for t in snap.targets))


class Run:
    """One scenario driven through the store by one worker's engine store."""

    def __init__(self, store: Store, dep: str, settings: EngineSettings) -> None:
        self.store, self.dep, self.settings = store, dep, settings
        self.engine = SqlEngineStore(store, "owner-1", lease_seconds=30)
        self.steps = ServerSteps(store)

    def fresh(self, now: datetime) -> Loaded:
        with self.store.database.read() as conn:
            loaded = load(conn, self.dep, now, watching_since=WATCHING_SINCE)
        assert loaded is not None
        return loaded

    def one_pass(self, now: datetime, where: str) -> Decisions | None:
        """A worker's pass (None: the deployment has ended, so no worker takes it up)."""
        if self.store.deployments.status_of(self.dep) in TERMINAL_DEPLOYMENT_STATUSES:
            assert not self.engine.lease(self.dep, now), where
            return None
        assert self.engine.lease(self.dep, now), where
        loaded = self.engine.load(
            self.dep, now, watching_since=WATCHING_SINCE, holding=frozenset(), heard=None
        )
        assert loaded is not None
        fresh = self.fresh(now)
        assert _comparable(loaded.snapshot) == _comparable(fresh.snapshot), f"{where}: cache"
        decisions = reconcile(loaded.snapshot, now, settings=self.settings)
        if decisions.unreachable and loaded.instances_cached:
            # As the worker does: no dead-agent verdict on instance rows from an earlier pass.
            loaded = self.engine.load(
                self.dep,
                now,
                watching_since=WATCHING_SINCE,
                holding=frozenset(),
                heard=None,
                fresh_instances=True,
            )
            assert loaded is not None
            decisions = reconcile(loaded.snapshot, now, settings=self.settings)
        assert self.engine.commit(self.dep, loaded, decisions, now, dead_after_seconds=15)
        predicted = apply_decisions(loaded.snapshot, decisions, now)
        after = self.fresh(now).snapshot
        assert _comparable(after) == _comparable(predicted), f"{where}: store != pure apply"
        return decisions

    def command(self, name: str) -> dict[str, Any]:
        rows = self.store.commands.open_commands(self.dep)
        assert name in rows, f"{name} has no open command"
        return rows[name]

    def ack(self, name: str, now: datetime, noop: bool = False) -> None:
        cmd = self.command(name)
        if cmd["executor"] == "server":
            taken = self.steps.take_due(now, stale_before=now - timedelta(seconds=30), limit=100)
            assert name in {s.target_id for s in taken}
        else:
            self.store.commands.acknowledge(str(cmd["command_id"]), now=now, noop=noop)

    def complete(self, name: str, now: datetime, ok: bool) -> None:
        cmd = self.command(name)
        if cmd["executor"] == "server" and cmd["status"] == "Queued":
            self.ack(name, now)
        diagnostics = (
            None
            if ok
            else {
                "errorCode": "ScriptFailed",
                "message": "boom",
                "scriptName": "x.sh",
                "logTail": "",
            }
        )
        self.store.commands.complete(
            str(cmd["command_id"]),
            now=now,
            result="Succeeded" if ok else "Failed",
            diagnostics=diagnostics,
        )

    def outstanding(self, name: str) -> str | None:
        cmd = self.store.commands.open_commands(self.dep).get(name)
        if cmd is None or cmd["result"] is not None:
            return None
        return str(cmd["lifecycle_event"])


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_store_applies_what_the_pure_apply_predicts(path: Path, database_url: str) -> None:
    spec = json.loads(path.read_text())
    store = Store.open(database_url)
    try:
        dep = _stored_scenario(store, spec)
        run = Run(store, dep, EngineSettings(**spec.get("settings", {})))
        silent = spec.get("silent_from", {})
        for n, step in enumerate(spec["steps"]):
            where = f"{path.stem} step {n}"
            now = at(step["at"])
            alive = [i for i in spec["fleet"] if step["at"] < silent.get(i, float("inf"))]
            if alive:
                with store.database.write() as conn:
                    conn.execute(update(_I).where(_I.c.name.in_(alive)).values(last_seen_at=now))
            for report in step.get("reports", []):
                if "ack" in report:
                    run.ack(report["ack"], now, report.get("noop", False))
                elif "run" in report:
                    run.complete(report["run"], now, ok=True)
                elif "fail" in report:
                    run.complete(report["fail"], now, ok=False)
                elif "stop" in report:
                    stop = report["stop"]
                    if stop.get("by_alarm"):
                        # As the alarm watcher records it.
                        assert AlarmWatchStore(store).record_alarm_stop(
                            dep, ("errors",), unreadable=False
                        )
                    else:
                        store.deployments.request_stop(
                            dep, auto_rollback=stop.get("auto_rollback"), now=now
                        )
                elif "continue" in report:
                    store.deployments.request_continue(dep, report["continue"])
            if "drive" in step:
                for _ in range(200):
                    answered = False
                    for name, how in step["drive"].items():
                        event = run.outstanding(name)
                        if event is None:
                            continue
                        answered = True
                        fail = isinstance(how, dict) and how.get("fail_at") == event
                        run.complete(name, now, ok=not fail)
                    d = run.one_pass(now, where)
                    if d is None or (not answered and not d.has_changes):
                        break
            else:
                run.one_pass(now, where)
            expect = step.get("expect", {})
            snap = run.fresh(now).snapshot
            if "status" in expect:
                assert snap.status.value == expect["status"], where
            for name, status in expect.get("targets", {}).items():
                got = next(t for t in snap.targets if t.instance_id == name)
                assert got.status.value == status, (where, name)
    finally:
        store.close()


def test_two_workers_racing_for_one_deployment_never_both_dispatch(
    tmp_path: Path, database_url: str
) -> None:
    """Two replicas' workers step the same deployment as fast as they can while the agents
    answer every command; each lifecycle event of each host is dispatched exactly once."""
    store = Store.open(database_url)
    try:
        names = [f"web-{i}" for i in range(4)]
        start = datetime.now(UTC)  # the workers run on the real clock
        dep = deployment_to_instances(store, names, now=start, last_seen=start)
        settings = ServerSettings(data_dir=tmp_path / "d", database_url=database_url)
        workers = [
            EngineWorker(store, settings, notifier=HostNotifier(), owner=f"replica-{i}")
            for i in (1, 2)
        ]
        done = threading.Event()

        def drive(worker: EngineWorker) -> None:
            while not done.is_set():
                worker.step(dep)

        def agents() -> None:
            while not done.is_set():
                now = datetime.now(UTC)
                with store.database.write() as conn:
                    conn.execute(update(_I).values(last_seen_at=now))
                for cmd in store.commands.open_commands(dep).values():
                    if cmd["result"] is None:
                        store.commands.complete(
                            str(cmd["command_id"]), now=now, result="Succeeded", diagnostics=None
                        )
                if store.deployments.status_of(dep) in TERMINAL_DEPLOYMENT_STATUSES:
                    done.set()

        threads = [threading.Thread(target=drive, args=(w,)) for w in workers]
        threads.append(threading.Thread(target=agents))
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert done.is_set(), "the deployment did not finish"
        info = store.deployments.get(dep)
        assert info is not None
        assert info["status"] == "Succeeded", info["error_information"]
        with store.database.read() as conn:
            counts = conn.execute(
                select(_C.c.instance_name, _C.c.lifecycle_event, func.count())
                .where(_C.c.deployment_id == dep)
                .group_by(_C.c.instance_name, _C.c.lifecycle_event)
            ).all()
        assert len(counts) == len(names) * 7
        assert {c for _, _, c in counts} == {1}, [r for r in counts if r[2] != 1]
    finally:
        store.close()


def test_a_pass_whose_lease_was_taken_over_writes_nothing(database_url: str) -> None:
    store = Store.open(database_url)
    try:
        dep = deployment_to_instances(store, ["web-1"], now=T0, last_seen=T0)
        mine = SqlEngineStore(store, "replica-1", lease_seconds=30)
        assert mine.lease(dep, T0)
        loaded = mine.load(dep, T0, watching_since=WATCHING_SINCE, holding=frozenset(), heard=None)
        assert loaded is not None
        decisions = reconcile(loaded.snapshot, T0)
        assert decisions.dispatch  # the pass would start the deployment
        # Meanwhile the lease ran out and another replica took the deployment.
        later = T0 + timedelta(seconds=31)
        theirs = SqlEngineStore(store, "replica-2", lease_seconds=30)
        assert theirs.lease(dep, later)
        assert mine.commit(dep, loaded, decisions, T0, dead_after_seconds=15) is None
        with store.database.read() as conn:
            row = conn.execute(select(_D).where(_D.c.deployment_id == dep)).mappings().one()
            commands = conn.execute(select(_C).where(_C.c.deployment_id == dep)).all()
            events = conn.execute(select(tables.deployment_events)).all()
        assert row["status"] == "Created" and row["engine_revision"] == 0
        assert row["lease_owner"] == "replica-2"
        assert commands == [] and events == []
        # The new holder's pass goes through.
        again = theirs.load(
            dep, later, watching_since=WATCHING_SINCE, holding=frozenset(), heard=None
        )
        assert again is not None
        d = reconcile(again.snapshot, later)
        assert theirs.commit(dep, again, d, later, dead_after_seconds=15) is not None
        assert store.deployments.status_of(dep) == "InProgress"
    finally:
        store.close()
