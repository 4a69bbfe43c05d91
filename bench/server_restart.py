"""Time to a terminal state after the server is killed (SIGKILL) mid-deployment and restarted.

A real ``opendeploy server`` and ``--hosts`` real agents; a bundle whose five hooks each sleep
``--hook-seconds``. A warm-up deployment measures how long one takes; then, for each of
``--trials`` deployments, the server is killed with SIGKILL at a random moment of it (uniform
over its expected duration, so every step is hit: polls held, downloads, acknowledgements,
hooks running, completions), restarted at once on the same port and data directory, and the
deployment is followed to its end. Printed per trial: the final status, the time from the kill
to the end, and from the restarted server's first answer to the end; then the maximum and the
median over the trials. Between trials a deployment without a kill brings every agent back in
step (one that was still backing off from the last restart would otherwise add its wait to the
next trial).

    python bench/server_restart.py [--trials 20] [--hosts 2] [--hook-seconds 0.2]
                                   [--database sqlite|postgresql]

Target: every trial Succeeded, and the maximum under 10 s.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import USER_HOOKS, database, fleet, header, wait_terminal, work_dir

from opendeploy.testing.server import start_server

TARGET_SECONDS = 10.0


def _bundle(destination: Path, hook_seconds: float) -> bytes:
    buffer = io.BytesIO()
    hooks = []
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("site/version.txt", "v1\n")
        for event in USER_HOOKS:
            info = zipfile.ZipInfo(f"scripts/{event}.sh")
            info.external_attr = 0o755 << 16
            archive.writestr(info, f"#!/bin/sh\nsleep {hook_seconds}\n")
            hooks.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n")
        archive.writestr(
            "appspec.yml",
            "version: 0.0\nos: linux\nfiles:\n  - source: site\n"
            f"    destination: {destination}\nfile_exists_behavior: OVERWRITE\nhooks:\n"
            + "".join(hooks),
        )
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--hook-seconds", type=float, default=0.2)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    header(
        f"server kill -9 and restart mid-deployment: {args.trials} trials, {args.hosts} hosts, "
        f"{args.database}"
    )
    with (
        work_dir() as root,
        database(args.database, root) as url,
        fleet(root, args.hosts, database_url=url) as cluster,
    ):
        revision = cluster.upload("bench/restart.zip", _bundle(root / "www", args.hook_seconds))
        status, duration = cluster.deploy(revision)
        print(f"warm-up deployment: {status} in {duration:.2f} s (no kill)")
        server = cluster.server
        after_kill: list[float] = []
        after_restart: list[float] = []
        statuses: list[str] = []
        try:
            for trial in range(1, args.trials + 1):
                deployment_id = cluster.client.create_deployment(
                    applicationName="bench",
                    deploymentGroupName="fleet",
                    revision=revision,
                    fileExistsBehavior="OVERWRITE",
                )["deploymentId"]
                delay = rng.uniform(0.0, duration)
                time.sleep(delay)
                server.process.kill()
                killed = time.monotonic()
                server.process.wait()
                server.stop()  # closes its log file
                server = start_server(server.data_dir, database_url=url, port=server.port)
                restarted = time.monotonic()
                info = wait_terminal(cluster.client, deployment_id, timeout=300)
                ended = time.monotonic()
                statuses.append(str(info["status"]))
                after_kill.append(ended - killed)
                after_restart.append(ended - restarted)
                # Every agent back in step before the next trial (a kill that came after the
                # deployment ended leaves them backing off, and the next kill would add to that).
                resync, _ = cluster.deploy(revision)
                print(
                    f"trial {trial:2d}: killed {delay:.2f} s in, {info['status']}; "
                    f"{ended - killed:.2f} s after the kill, {ended - restarted:.2f} s after the "
                    f"restart (restart {restarted - killed:.2f} s); next deployment {resync}"
                )
        finally:
            # fleet() stops the server it started; the restarted ones are this loop's.
            if server is not cluster.server:
                server.stop()
        failed = [s for s in statuses if s != "Succeeded"]
        worst = max(after_kill)
        print(
            f"after the kill: max {worst:.2f} s, median {statistics.median(after_kill):.2f} s; "
            f"after the restart: max {max(after_restart):.2f} s, "
            f"median {statistics.median(after_restart):.2f} s; "
            f"{len(statuses) - len(failed)}/{len(statuses)} Succeeded"
        )
        met = worst < TARGET_SECONDS and not failed
        print(
            f"target: all Succeeded and max < {TARGET_SECONDS:.0f} s after the kill: "
            f"{'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
