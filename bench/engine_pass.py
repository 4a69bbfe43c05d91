"""The engine and the Command API's store calls in one process, without HTTP: what each costs.

A deployment to N targets (AllAtOnce) is driven pass by pass with the real engine worker
(``EngineWorker.step``: load, reconcile, apply) against a real database; between passes every
target's command is claimed, acknowledged and completed through the store calls the Command API
makes (``claim_next``, ``acknowledge``, ``complete``), one after another. Printed: the engine's
milliseconds per host-event and per pass, and the store calls' milliseconds per host-event.

    python bench/engine_pass.py [--targets 1000 10000] [--database sqlite|postgresql]

What ``bench/fleet.py`` measures end to end, this splits in two: a rise here is the engine's or
the store's; a rise only there is the protocol's (HTTP, SigV4, threads).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import database, header, work_dir
from sqlalchemy import insert

from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.worker import EngineWorker
from opendeploy.settings import ServerSettings
from opendeploy.store import tables
from opendeploy.store.database import Store

SUCCESS = {"errorCode": "Success", "message": "Succeeded", "scriptName": "", "logTail": ""}


def _arn(name: str) -> str:
    return f"arn:aws:codedeploy:us-east-1:000000000000:instance/{name}_bench"


def scenario(url: str, data_dir: Path, count: int) -> None:
    store = Store.open(url)
    try:
        now = datetime.now(UTC)
        names = [f"bench-{i:05d}" for i in range(count)]
        with store.database.write() as conn:
            conn.execute(
                insert(tables.on_premises_instances),
                [
                    {"name": n, "instance_arn": _arn(n), "register_time": now, "last_seen_at": now}
                    for n in names
                ],
            )
        app = store.applications.create(name="bench", compute_platform="Server", now=now)
        group = store.deployment_groups.create(
            application_id=app["application_id"],
            app_name="bench",
            name="fleet",
            settings={
                "compute_platform": "Server",
                "deployment_config_name": "CodeDeployDefault.AllAtOnce",
                "service_role_arn": "arn:aws:iam::000000000000:role/bench",
            },
            now=now,
        )
        deployment_id = "d-BENCH" + uuid.uuid4().hex[:4].upper()
        store.deployments.create(
            deployment={
                "deployment_id": deployment_id,
                "application_id": app["application_id"],
                "application_name": "bench",
                "deployment_group_id": group["deployment_group_id"],
                "deployment_group_name": "fleet",
                "deployment_config_name": "CodeDeployDefault.AllAtOnce",
                "compute_platform": "Server",
                "creator": "user",
            },
            select_targets=lambda _rows: [(n, _arn(n), None) for n in names],
            now=now,
        )
        # Agents are "seen" by the test itself: no agent may look dead while the store is driven.
        settings = ServerSettings(
            data_dir=data_dir,
            database_url=url,
            agent_dead_after_seconds=3600,
            event_start_timeout_seconds=3600,
        )
        worker = EngineWorker(store, settings, notifier=HostNotifier())
        engine = agents = 0.0
        passes = events = 0
        commands = store.commands
        while True:
            started = time.perf_counter()
            worker.step(deployment_id)
            engine += time.perf_counter() - started
            passes += 1
            status = (store.deployments.get(deployment_id) or {}).get("status")
            if status in ("Succeeded", "Failed", "Stopped"):
                break
            started = time.perf_counter()
            for name in names:
                command = commands.claim_next(name, now=datetime.now(UTC), expected=True)
                if command is None:
                    continue
                commands.acknowledge(
                    command["command_id"], now=datetime.now(UTC), noop=False, owner=name
                )
                commands.complete(
                    command["command_id"],
                    now=datetime.now(UTC),
                    result="Succeeded",
                    diagnostics=SUCCESS,
                    owner=name,
                )
                events += 1
            agents += time.perf_counter() - started
        per = max(1, events)
        print(
            f"{count:>6} targets: {status} after {passes} passes, {events} host-events; engine "
            f"{engine / per * 1000:.3f} ms per host-event ({engine / passes * 1000:.0f} ms per "
            f"pass); claim + acknowledge + complete {agents / per * 1000:.3f} ms per host-event"
        )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    header(f"engine passes and store calls in process ({args.database})")
    for count in args.targets:
        with work_dir() as work, database(args.database, work) as url:
            scenario(url, work / "data", count)


if __name__ == "__main__":
    main()
