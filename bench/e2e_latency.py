"""End-to-end latency: CreateDeployment -> Succeeded for a trivial bundle, and protocol overhead.

A real ``opendeploy server`` and real ``opendeploy agent`` processes (one per host) on this
machine. The bundle is one 3-byte file plus an ``exit 0`` script for each of the five user hooks
(seven lifecycle events per host: ApplicationStop, DownloadBundle, BeforeInstall, Install,
AfterInstall, ApplicationStart, ValidateService). Deployments run AllAtOnce; the clock starts
before the CreateDeployment call and stops at the deployment's ``completeTime`` as the server
recorded it (GetDeployment is polled every 50 ms to find out). One warm-up deployment first
(the first one on a host skips ApplicationStop).

Protocol overhead per lifecycle event = (end-to-end median - the agents' own work) / 7, where the
agents' own work is the same deployment run by ``deploy_local`` with no server: in-process for
one host, and for H hosts in H processes started together (on 2 cores, twenty hosts' work takes
longer than one host's, server or not). The server's own per-event gaps (start of event N+1
minus end of event N, from GetDeploymentTarget) and the CPU the server and the agents used per
host-event are printed too, and with them the shortest time that CPU allows on this machine's
cores (what no protocol, however quick, could beat).

    python bench/e2e_latency.py [--hosts 1 20] [--runs 10] [--database sqlite] [--quick]
                                [--pickup RUNS [--idle 60]]

With ``--pickup``, also the idle pickup latency (peers.md E2 (a)): after the agent has been idle
``--idle`` seconds, the time from CreateDeployment to the first lifecycle event's start.

Targets: 1 host < 0.5 s; < 20 ms protocol overhead per lifecycle event.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bundle_zip, cpu_seconds, database, fleet, header, summary, work_dir

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.local import LocalOptions, deploy_local
from opendeploy.cli.local import PlainReporter

EVENTS_PER_HOST = 7
TARGET_ONE_HOST = 0.5
TARGET_OVERHEAD = 0.020


def _local_options(bundle: bytes, archive: Path) -> LocalOptions:
    """``deploy_local``'s options for ``bundle``, written to ``archive``."""
    archive.write_bytes(bundle)
    return LocalOptions(
        bundle_location=str(archive), bundle_type="zip", file_exists_behavior="OVERWRITE"
    )


def local_floor(bundle: bytes, directory: Path, runs: int) -> float:
    """Median seconds of the same deployment done in-process, without server or network."""
    directory.mkdir(parents=True)
    options = _local_options(bundle, directory / "bundle.zip")
    config = AgentConfig(root_dir=directory / "root", log_dir=directory / "log")
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        result = deploy_local(options, config=config, reporter=PlainReporter(io.StringIO()))
        elapsed = time.perf_counter() - started
        if not result.succeeded:
            sys.exit(f"local deployment failed: {result.failure}")
        if attempt:
            times.append(elapsed)
    return statistics.median(times)


def _local_host(
    options: LocalOptions,
    directory: Path,
    runs: int,
    barrier: Any,
    results: Any,
) -> None:
    """One host of :func:`parallel_floor`: ``runs`` deployments, each started with the others."""
    config = AgentConfig(root_dir=directory / "root", log_dir=directory / "log")
    for _ in range(runs):
        barrier.wait()
        started = time.time()
        result = deploy_local(options, config=config, reporter=PlainReporter(io.StringIO()))
        results.put((started, time.time(), result.succeeded))


def parallel_floor(directory: Path, hosts: int, runs: int) -> float:
    """Median seconds for ``hosts`` processes to each do the deployment with ``deploy_local``,
    started together (the first start to the last end): the hosts' own work on this machine.
    Each installs into a directory of its own (on a real fleet each host has its own disk)."""
    directory.mkdir(parents=True)
    options = [
        _local_options(bundle_zip(directory / f"www-{n}")[0], directory / f"bundle-{n}.zip")
        for n in range(hosts)
    ]
    # fork: the children start with everything imported, as a running agent has.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(hosts)
    results = context.Queue()
    procs = [
        context.Process(
            target=_local_host,
            args=(options[n], directory / f"host-{n}", runs + 1, barrier, results),
        )
        for n in range(hosts)
    ]
    for proc in procs:
        proc.start()
    times = []
    try:
        for attempt in range(runs + 1):
            rounds = [results.get(timeout=120) for _ in range(hosts)]
            if not all(ok for _, _, ok in rounds):
                sys.exit("a local deployment of the parallel floor failed")
            if attempt:  # the first round warms the hosts' deployment roots
                times.append(max(end for _, end, _ in rounds) - min(s for s, _, _ in rounds))
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return float(statistics.median(times))


def event_gaps(client: Any, deployment_id: str, hosts: list[str]) -> list[float]:
    """Seconds between the end of each event and the start of the next, as the server saw it."""
    gaps = []
    for host in hosts:
        target = client.get_deployment_target(deploymentId=deployment_id, targetId=host)
        events = target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
        for before, after in zip(events, events[1:], strict=False):
            if "endTime" in before and "startTime" in after:
                gaps.append((after["startTime"] - before["endTime"]).total_seconds())
    return gaps


def measure(work: Path, hosts: int, runs: int, db: str) -> tuple[float, float]:
    """(median create -> Succeeded seconds, CPU seconds of server and agents per deployment)."""
    # Each size gets a server and a database of its own: the hosts of one size are named like
    # those of the next (host-1 …), and a shared database would have them registered already.
    size_dir = work / f"h{hosts}"
    size_dir.mkdir(parents=True, exist_ok=True)
    with database(db, size_dir) as url, fleet(size_dir, hosts, database_url=url) as f:
        revision = f.upload("trivial.zip", bundle_zip(work / "www")[0])
        status, warm = f.deploy(revision)
        assert status == "Succeeded", f"warm-up deployment {status}"
        times = []
        server_pid = f.server.process.pid
        agent_pids = [a.process.pid for a in f.agents]
        server_before = cpu_seconds(server_pid)
        agents_before = sum(cpu_seconds(p, children=True) for p in agent_pids)
        for _ in range(runs):
            status, elapsed = f.deploy(revision)
            assert status == "Succeeded", f"deployment {status}"
            times.append(elapsed)
        host_events = runs * hosts * EVENTS_PER_HOST
        server_cpu = (cpu_seconds(server_pid) - server_before) / host_events
        agents_cpu = (sum(cpu_seconds(p, children=True) for p in agent_pids) - agents_before) / (
            host_events
        )
        gaps = event_gaps(f.client, f.last_id, [a.name for a in f.agents])
    print(f"{hosts:>3} host(s), {db}: first {warm:.3f} s; then {summary(times)}")
    print(
        f"{'':>4}CPU per host-event: server {server_cpu * 1000:.1f} ms, agent (hooks included)"
        f" {agents_cpu * 1000:.1f} ms"
    )
    if gaps:
        print(
            f"{'':>4}server-side gap between events: median {statistics.median(gaps) * 1000:.1f}"
            f" ms, max {max(gaps) * 1000:.1f} ms"
        )
    per_deployment = (server_cpu + agents_cpu) * hosts * EVENTS_PER_HOST
    return statistics.median(times), per_deployment


def pickup(work: Path, runs: int, idle: float, db: str) -> None:
    """Idle pickup latency (peers.md E2 (a)): an agent idle for ``idle`` seconds, then
    CreateDeployment; how long until its first lifecycle event starts on the host.

    Printed two ways: from just before the create call (this client's clock) and from the
    deployment's ``createTime`` (the server's clock, as the start is), both to the first event's
    ``startTime``. The official agent sleeps ``:wait_between_runs:`` (1 s) between polls; a long
    poll should answer within milliseconds however long the agent has waited.
    """
    size_dir = work / "pickup"
    size_dir.mkdir(parents=True, exist_ok=True)
    with database(db, size_dir) as url, fleet(size_dir, 1, database_url=url) as f:
        revision = f.upload("trivial.zip", bundle_zip(work / "www")[0])
        status, _ = f.deploy(revision)
        assert status == "Succeeded", f"warm-up deployment {status}"
        from_call, from_create = [], []
        for _ in range(runs):
            time.sleep(idle)  # the point of the measurement: the agent has been idle this long
            called = time.time()
            status, _ = f.deploy(revision)
            assert status == "Succeeded", f"deployment {status}"
            info = f.client.get_deployment(deploymentId=f.last_id)["deploymentInfo"]
            target = f.client.get_deployment_target(
                deploymentId=f.last_id, targetId=f.agents[0].name
            )["deploymentTarget"]["instanceTarget"]
            first = min(e["startTime"] for e in target["lifecycleEvents"] if "startTime" in e)
            from_call.append(first.timestamp() - called)
            from_create.append((first - info["createTime"]).total_seconds())
    print(
        f"idle pickup after {idle:.0f} s idle, 1 host: create call -> first event start"
        f" {summary(from_call)}; server's createTime -> first event start {summary(from_create)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="1 host, 2 runs (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--pickup",
        type=int,
        default=0,
        metavar="RUNS",
        help="also measure idle pickup latency: RUNS deployments, each after --idle seconds idle",
    )
    parser.add_argument("--idle", type=float, default=60.0, help="seconds idle before a pickup")
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.runs = [1], 2
    header("e2e latency: create-deployment -> Succeeded, trivial bundle, AllAtOnce")
    with work_dir(args.keep) as work:
        floors: dict[int, float] = {}
        for hosts in args.hosts:
            if hosts == 1:
                bundle = bundle_zip(work / "www-local")[0]
                floors[1] = local_floor(bundle, work / "local-1", args.runs)
                how = "deploy_local in-process"
            else:
                floors[hosts] = parallel_floor(work / f"local-{hosts}", hosts, args.runs)
                how = f"deploy_local in {hosts} processes at once"
            print(
                f"agents' own work, {hosts} host(s) ({how}, same bundle, no server):"
                f" {floors[hosts] * 1000:.1f} ms"
            )
        measured = {h: measure(work, h, args.runs, args.database) for h in args.hosts}
        if args.pickup:
            pickup(work, args.pickup, args.idle, args.database)
    results = {h: total for h, (total, _) in measured.items()}
    cores = os.cpu_count() or 1
    for hosts, (total, cpu) in measured.items():
        least = cpu / min(cores, hosts + 1)  # the agents and the server, each on one core at most
        print(
            f"{hosts:>3} host(s): {cpu:.3f} s of CPU per deployment (server and agents), at least"
            f" {least:.3f} s on {cores} cores; the median took {total / least:.2f} times that"
        )
    for hosts, total in results.items():
        overhead = (total - floors[hosts]) / EVENTS_PER_HOST
        verdict = "met" if overhead < TARGET_OVERHEAD else "NOT met"
        print(
            f"{hosts:>3} host(s): protocol overhead {overhead * 1000:.1f} ms per lifecycle event "
            f"(target < {TARGET_OVERHEAD * 1000:.0f} ms: {verdict})"
        )
    if 1 in results:
        verdict = "met" if results[1] < TARGET_ONE_HOST else "NOT met"
        print(f"1 host end to end {results[1]:.3f} s (target < {TARGET_ONE_HOST} s: {verdict})")


if __name__ == "__main__":
    main()
