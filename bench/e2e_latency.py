"""End-to-end latency: CreateDeployment -> Succeeded for a trivial bundle, and protocol overhead.

A real ``opendeploy server`` and real ``opendeploy agent`` processes (one per host) on this
machine. The bundle is one 3-byte file plus an ``exit 0`` script for each of the five user hooks
(seven lifecycle events per host: ApplicationStop, DownloadBundle, BeforeInstall, Install,
AfterInstall, ApplicationStart, ValidateService). Deployments run AllAtOnce; the clock starts
before the CreateDeployment call and stops at the deployment's ``completeTime`` as the server
recorded it (GetDeployment is polled every 50 ms to find out). One warm-up deployment first
(the first one on a host skips ApplicationStop).

Protocol overhead per lifecycle event = (end-to-end median - the same deployment run in-process
by ``deploy_local``, the agent's own work) / 7. The server's own per-event gaps (start of event
N+1 minus end of event N, from GetDeploymentTarget) are printed too.

    python bench/e2e_latency.py [--hosts 1 20] [--runs 10] [--database sqlite] [--quick]

Targets: 1 host < 0.5 s; < 20 ms protocol overhead per lifecycle event.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bundle_zip, database, fleet, header, summary, work_dir

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.local import LocalOptions, deploy_local
from opendeploy.cli.local import PlainReporter

EVENTS_PER_HOST = 7
TARGET_ONE_HOST = 0.5
TARGET_OVERHEAD = 0.020


def local_floor(bundle: bytes, directory: Path, runs: int) -> float:
    """Median seconds of the same deployment done in-process, without server or network."""
    directory.mkdir(parents=True)
    archive = directory / "bundle.zip"
    archive.write_bytes(bundle)
    config = AgentConfig(root_dir=directory / "root", log_dir=directory / "log")
    options = LocalOptions(
        bundle_location=str(archive), bundle_type="zip", file_exists_behavior="OVERWRITE"
    )
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


def measure(work: Path, hosts: int, runs: int, db: str) -> float:
    # Each size gets a server and a database of its own: the hosts of one size are named like
    # those of the next (host-1 …), and a shared database would have them registered already.
    size_dir = work / f"h{hosts}"
    size_dir.mkdir(parents=True, exist_ok=True)
    with database(db, size_dir) as url, fleet(size_dir, hosts, database_url=url) as f:
        revision = f.upload("trivial.zip", bundle_zip(work / "www")[0])
        status, warm = f.deploy(revision)
        assert status == "Succeeded", f"warm-up deployment {status}"
        times = []
        for _ in range(runs):
            status, elapsed = f.deploy(revision)
            assert status == "Succeeded", f"deployment {status}"
            times.append(elapsed)
        gaps = event_gaps(f.client, f.last_id, [a.name for a in f.agents])
    print(f"{hosts:>3} host(s), {db}: first {warm:.3f} s; then {summary(times)}")
    if gaps:
        print(
            f"{'':>4}server-side gap between events: median {statistics.median(gaps) * 1000:.1f}"
            f" ms, max {max(gaps) * 1000:.1f} ms"
        )
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="1 host, 2 runs (smoke test)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.runs = [1], 2
    header("e2e latency: create-deployment -> Succeeded, trivial bundle, AllAtOnce")
    with work_dir(args.keep) as work:
        floor = local_floor(bundle_zip(work / "www-local")[0], work / "local", args.runs)
        print(f"agent work floor (deploy_local in-process, same bundle): {floor * 1000:.1f} ms")
        results = {h: measure(work, h, args.runs, args.database) for h in args.hosts}
    for hosts, total in results.items():
        overhead = (total - floor) / EVENTS_PER_HOST
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
