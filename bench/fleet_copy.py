"""Fleet copy-and-hooks: a 300-file (~5 MB) bundle and three hooks to H real agents at once.

One ``opendeploy server`` and max(H) real ``opendeploy agent`` processes on this machine, each
with its own deployment root. Every size H gets its own deployment group (hosts 1..H carry the tag
``size-H``), deployed ``CodeDeployDefault.AllAtOnce``; the clock runs from the CreateDeployment
call to the deployment's ``completeTime`` (GetDeployment polled every 50 ms). One warm-up
deployment per size, then ``--runs`` measured ones (each a fresh deployment of the same
revision: every host downloads the bundle again, unpacks it, copies the 300 files, runs the
hooks).

The hosts share one machine, and the official appspec has no per-host destination, so every host
installs into the same directory with ``file_exists_behavior: OVERWRITE``; on a real fleet each
host writes to its own disk. After each size the destination is checked file by file against the
bundle. CPU: seconds used by the server and all agents (hook scripts included) per deployment.

    python bench/fleet_copy.py [--hosts 1 10 30 50] [--runs 3] [--database sqlite] [--quick]

Target: 50 hosts in under 4 s (E1 references on this machine: Ansible ~69 s for 30 hosts,
pyinfra ~13 s for 50).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    bundle_zip,
    cpu_seconds,
    database,
    fleet,
    header,
    profiled,
    summary,
    work_dir,
)

HOOKS = ("BeforeInstall", "AfterInstall", "ApplicationStart")
FILES = 300
TARGET_50 = 4.0


def check_installed(bundle: bytes, destination: Path) -> None:
    """Every bundle file under site/ is in ``destination`` with the same bytes."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        for name in archive.namelist():
            if name.startswith("site/") and not name.endswith("/"):
                path = destination / name.removeprefix("site/")
                if path.read_bytes() != archive.read(name):
                    sys.exit(f"{path} differs from the bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 30, 50])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="1 and 2 hosts, 20 files, 1 run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the server during the runs of the largest size"
    )
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.runs, args.files = [1, 2], 1, 20
    header(f"fleet copy: {args.files}-file bundle + {len(HOOKS)} hooks, AllAtOnce")
    results: dict[int, float] = {}
    with work_dir(args.keep) as work:
        destination = work / "www"
        bundle, size = bundle_zip(destination, files=args.files, hooks=HOOKS)
        print(
            f"bundle: {args.files} files, {size / 2**20:.1f} MB content, "
            f"zip {len(bundle) / 2**20:.1f} MB; database {args.database}"
        )
        biggest = max(args.hosts)
        with (
            database(args.database, work) as url,
            fleet(work / "fleet", biggest, database_url=url) as f,
        ):
            revision = f.upload("bundle.zip", bundle)
            for hosts in sorted(args.hosts):
                key = f"size-{hosts}"
                f.client.add_tags_to_on_premises_instances(
                    instanceNames=[a.name for a in f.agents[:hosts]],
                    tags=[{"Key": key, "Value": "yes"}],
                )
                f.add_group(key, {key: "yes"}, "CodeDeployDefault.AllAtOnce")
                status, warm = f.deploy(revision, key)
                assert status == "Succeeded", f"warm-up deployment {status}"
                pids = [f.server.process.pid] + [a.process.pid for a in f.agents[:hosts]]
                times, cpus, server_cpus = [], [], []
                spy = args.profile if hosts == biggest else None
                with profiled(f.server.process.pid, spy):
                    for _ in range(args.runs):
                        before = sum(cpu_seconds(p, children=True) for p in pids)
                        server_before = cpu_seconds(pids[0])
                        status, elapsed = f.deploy(revision, key)
                        assert status == "Succeeded", f"deployment {status}"
                        times.append(elapsed)
                        cpus.append(sum(cpu_seconds(p, children=True) for p in pids) - before)
                        server_cpus.append(cpu_seconds(pids[0]) - server_before)
                check_installed(bundle, destination)
                results[hosts] = statistics.median(times)
                print(
                    f"{hosts:>3} hosts: first {warm:.3f} s; then {summary(times)}; "
                    f"CPU per deployment {statistics.median(cpus):.2f} s "
                    f"(server {statistics.median(server_cpus):.2f} s)"
                )
    sizes = sorted(results)
    if len(sizes) > 1:
        slope = (results[sizes[-1]] - results[sizes[0]]) / (sizes[-1] - sizes[0])
        print(f"marginal wall time: {slope * 1000:.0f} ms per host ({sizes[0]} -> {sizes[-1]})")
    if 50 in results:
        verdict = "met" if results[50] < TARGET_50 else "NOT met"
        print(f"50 hosts: {results[50]:.3f} s (target < {TARGET_50} s: {verdict})")


if __name__ == "__main__":
    main()
