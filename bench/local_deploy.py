"""Time a local deployment of a 300-file, ~5 MB bundle with three trivial hooks, cold and warm.

Runs ``deploy_local`` in-process, the code path of ``opendeploy local`` (the CLI's plain
reporter included, writing to memory), for a directory bundle and a zip bundle. "Cold" is the
first deployment into an empty deployment root; "warm" is the median of the following runs
(each one also removes the previous revision's files and old deployment dirs, as a real redeploy
does). Prints a per-event breakdown of the warm runs. Target: under 0.5 s warm on 2 cores.

    python bench/local_deploy.py [--runs 7] [--keep] [--work-dir DIR]

The work directory (bundle, deployment root, install target) defaults to a fresh directory in
the per-user cache dir, next to where ``opendeploy local`` keeps its deployment root by default.
Mind the file system: on the reference machine, creating files under ``/tmp`` is about ten times
slower than under ``$HOME``, which alone costs ~0.25 s per 300 files.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import platformdirs

from opendeploy.agent.config import AgentConfig
from opendeploy.agent.local import LocalOptions, deploy_local
from opendeploy.cli.local import PlainReporter

FILES = 300
TARGET_SECONDS = 0.5
HOOKS = ("BeforeInstall", "ApplicationStart", "ValidateService")


def make_bundle(directory: Path, destination: Path) -> int:
    """Write the bundle; return its content size in bytes."""
    rng = random.Random(42)
    total = 0
    for index in range(FILES):
        # Sizes from 1 KB to 64 KB, skewed small (mean ~17 KB, ~5 MB in all).
        size = int(1024 + 63 * 1024 * rng.random() ** 3)
        path = directory / "site" / f"dir{index % 12:02d}" / f"file{index:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        total += size
    scripts = directory / "scripts"
    scripts.mkdir()
    hooks = []
    for event in HOOKS:
        script = scripts / f"{event}.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        hooks.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n")
    (directory / "appspec.yml").write_text(
        "version: 0.0\nos: linux\nfiles:\n  - source: site\n"
        f"    destination: {destination}\nhooks:\n" + "".join(hooks)
    )
    return total


def zip_bundle(directory: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory).as_posix())
    return out


def run(location: Path, bundle_type: str, root: Path, runs: int) -> None:
    config = AgentConfig(root_dir=root, log_dir=root.parent / "log")
    options = LocalOptions(bundle_location=str(location), bundle_type=bundle_type)
    totals: list[float] = []
    phases: dict[str, list[float]] = defaultdict(list)
    for attempt in range(runs + 1):
        reporter = PlainReporter(io.StringIO())
        started = time.perf_counter()
        result = deploy_local(options, config=config, reporter=reporter)
        reporter.summary(result)
        elapsed = time.perf_counter() - started
        if not result.succeeded:
            failure = result.failure
            assert failure is not None
            sys.exit(f"{bundle_type}: deployment failed at {failure.event}: {failure.message}")
        totals.append(elapsed)
        if attempt:
            for item in result.results:
                phases[item.event].append(item.duration)
    cold, warm = totals[0], statistics.median(totals[1:])
    verdict = "met" if warm < TARGET_SECONDS else "NOT met"
    print(
        f"{bundle_type:>9}: cold {cold:.3f} s, warm {warm:.3f} s (median of {runs}; "
        f"min {min(totals[1:]):.3f}, max {max(totals[1:]):.3f}); "
        f"target < {TARGET_SECONDS} s warm: {verdict}"
    )
    for event, values in phases.items():
        print(f"{'':>11}{event:<20} {statistics.median(values) * 1000:7.1f} ms")


def run_cli(location: Path, root: Path) -> None:
    """One deployment through the real command, interpreter start and imports included."""
    config = root.parent / "cli-agent.yml"
    # log_dir too: codedeploy-local.log stays in the work directory, not /var/log (as root).
    config.write_text(f"root_dir: {root}\nlog_dir: {root.parent / 'log'}\n")
    command = [sys.executable, "-m", "opendeploy", "local", "-c", str(config), "-l", str(location)]
    for label in ("first", "second"):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"opendeploy local failed:\n{done.stdout}{done.stderr}")
        print(f"{'CLI':>9}: {label} run of `opendeploy local` {elapsed:.3f} s (whole process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="warm runs per bundle type")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(platformdirs.user_cache_dir("opendeploy")),
        help="where to create the work directory (default: the per-user cache dir)",
    )
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.work_dir))
    print(f"work directory: {work}")
    try:
        bundle = work / "bundle"
        size = make_bundle(bundle, work / "target")
        archive = zip_bundle(bundle, work / "bundle.zip")
        print(
            f"bundle: {FILES} files, {size / 1024 / 1024:.1f} MB "
            f"(zip {archive.stat().st_size / 1024 / 1024:.1f} MB), hooks: {', '.join(HOOKS)}"
        )
        run(bundle, "directory", work / "root-directory", args.runs)
        shutil.rmtree(work / "target", ignore_errors=True)
        run(archive, "zip", work / "root-zip", args.runs)
        shutil.rmtree(work / "target", ignore_errors=True)
        run_cli(bundle, work / "root-cli")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
