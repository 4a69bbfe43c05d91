"""Control-API throughput: GetDeployment and CreateApplication with N concurrent boto3 clients.

A real ``opendeploy server`` process on SQLite and on PostgreSQL (a scratch database on
``$OPENDEPLOY_TEST_DATABASE_URL`` or postgresql://postgres@127.0.0.1:5432/test, dropped after).
Each of N threads has its own boto3 client (its own connection) and calls the operation in a
loop for ``--seconds``; requests per second over all threads, p50/p99 latency per call, and the
server's CPU per request (from /proc) are printed. GetDeployment reads one existing deployment;
CreateApplication creates a new application per call (a write transaction each).

    python bench/api_throughput.py [--clients 1 4 16] [--seconds 5] [--databases sqlite postgresql]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    APP,
    GROUP,
    cpu_seconds,
    database,
    header,
    percentile,
    postgres_available,
    work_dir,
)

from opendeploy.testing.server import RunningServer, running_server


def _setup(server: RunningServer) -> str:
    """An application, a group and one deployment (no hosts: it ends at once) to read back."""
    client = server.client()
    client.create_application(applicationName=APP)
    client.create_deployment_group(
        applicationName=APP,
        deploymentGroupName=GROUP,
        serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
        onPremisesInstanceTagFilters=[{"Key": "none", "Value": "x", "Type": "KEY_AND_VALUE"}],
    )
    deployment_id: str = client.create_deployment(
        applicationName=APP,
        deploymentGroupName=GROUP,
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
        },
    )["deploymentId"]
    return deployment_id


def run(
    server: RunningServer, clients: int, seconds: float, call: Callable[[Any], None]
) -> tuple[float, list[float], float]:
    """(requests per second, latencies, server CPU seconds per request)."""
    from botocore.config import Config

    boto = [
        server.client(config=Config(max_pool_connections=1, retries={"max_attempts": 0}))
        for _ in range(clients)
    ]
    for c in boto:
        call(c)  # warm: connection, signer, endpoint resolution
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = 0.0

    def worker(index: int) -> None:
        client, mine = boto[index], latencies[index]
        start.wait()
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            call(client)
            mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    cpu_before = cpu_seconds(server.process.pid)
    began = time.perf_counter()
    stop_at = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(server.process.pid) - cpu_before
    flat = [x for xs in latencies for x in xs]
    return len(flat) / elapsed, flat, cpu / max(1, len(flat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--databases", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    parser.add_argument("--quick", action="store_true", help="1 and 2 clients, 0.5 s each")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = [1, 2], 0.5
    header("control API throughput (boto3 clients, one connection each)")
    print(
        f"{'database':<10} {'operation':<18} {'clients':>7} {'req/s':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'server CPU ms/req':>18}"
    )
    for db in args.databases:
        if db == "postgresql" and not postgres_available():
            print("postgresql: not reachable, skipped")
            continue
        with (
            work_dir() as work,
            database(db, work) as url,
            running_server(work / "server", database_url=url) as server,
        ):
            deployment_id = _setup(server)

            def get_deployment(c: Any, d: str = deployment_id) -> None:
                c.get_deployment(deploymentId=d)

            calls: dict[str, Callable[[Any], None]] = {
                "GetDeployment": get_deployment,
                "CreateApplication": lambda c: c.create_application(
                    applicationName=f"app-{uuid.uuid4().hex[:12]}"
                ),
            }
            for name, call in calls.items():
                for n in args.clients:
                    rate, lat, cpu = run(server, n, args.seconds, call)
                    print(
                        f"{db:<10} {name:<18} {n:>7} {rate:>8.0f} "
                        f"{percentile(lat, 50) * 1000:>8.1f} {percentile(lat, 99) * 1000:>8.1f} "
                        f"{cpu * 1000:>18.2f}"
                    )


if __name__ == "__main__":
    main()
