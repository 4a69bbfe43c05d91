"""Helpers shared by the server benchmarks: databases, bundles, a deployable fleet, CPU clocks.

Every benchmark runs against a real ``opendeploy server`` process (``testing.server``) and, where
it deploys to hosts, real ``opendeploy agent`` processes (``testing.agents``). Bundles go to the
server's own S3 store; the deployment group selects the agents by an on-premises tag.
"""

from __future__ import annotations

import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from opendeploy.testing.agents import RunningAgent, running_agents
from opendeploy.testing.server import RunningServer, running_server

PG_ENV = "OPENDEPLOY_TEST_DATABASE_URL"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
APP, GROUP, BUCKET = "bench", "fleet", "bundles"
TAGS = {"bench": "fleet"}
USER_HOOKS = (
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
TERMINAL = ("Succeeded", "Failed", "Stopped")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- work directories and databases -------------------------------------------------------------


@contextmanager
def work_dir(keep: bool = False) -> Iterator[Path]:
    """A fresh directory under $OPENDEPLOY_BENCH_DIR, else the per-user cache dir (file creation
    under /tmp is far slower on the reference machine, see bench/local_deploy.py).

    The file system matters: on ext4 without a journal (the reference machine's root) every new
    file skips, one by one, the inodes freed in the last minutes, and a fleet of agents sharing
    one machine deletes and recreates thousands of files per deployment. It is also mounted with
    ``discard``: every file whose blocks are freed (an unlink, an O_TRUNC) sends the disk a
    discard at once (an O_TRUNC then write of a 17 KB file: 215 us, against 19 us rewriting it in
    place), and an Install removes the previous revision's files before copying the new ones, as
    the official agent does. Point ``OPENDEPLOY_BENCH_DIR`` at a tmpfs (``/dev/shm``) to measure
    the software without that."""
    import shutil

    base = Path(os.environ.get("OPENDEPLOY_BENCH_DIR") or platformdirs.user_cache_dir("opendeploy"))
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="bench-", dir=base))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh database URL: ``sqlite`` (a file in ``directory``) or ``postgresql`` (a scratch
    database on $OPENDEPLOY_TEST_DATABASE_URL or the local default server, dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'opendeploy.db'}"
        return
    import psycopg

    url = os.environ.get(PG_ENV) or PG_DEFAULT
    scheme, sep, rest = url.partition("://")
    admin_url = f"{scheme.split('+', 1)[0]}{sep}{rest}"
    name = f"opendeploy_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base, q, query = url.partition("?")
            authority = base.partition("://")[2].split("/", 1)[0]
            yield f"{scheme}://{authority}/{name}{q}{query}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_available() -> bool:
    try:
        import psycopg

        url = os.environ.get(PG_ENV) or PG_DEFAULT
        scheme, sep, rest = url.partition("://")
        with psycopg.connect(f"{scheme.split('+', 1)[0]}{sep}{rest}", connect_timeout=3):
            return True
    except Exception:
        return False


# -- bundles --------------------------------------------------------------------------------------


def bundle_zip(
    destination: Path,
    *,
    files: int = 1,
    hooks: Sequence[str] = USER_HOOKS,
    seed: int = 42,
) -> tuple[bytes, int]:
    """A zip revision: ``files`` random files of 1–64 KB (skewed small, ~17 KB mean; one 3-byte
    file when ``files`` is 1) under ``site/``, and an ``exit 0`` script for each of ``hooks``.

    Installs into ``destination`` with OVERWRITE. Returns (zip bytes, content bytes).
    """
    rng = random.Random(seed)
    buffer = io.BytesIO()
    total = 0
    entries = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        if files == 1:
            archive.writestr("site/version.txt", "v1\n")
            total = 3
        else:
            for index in range(files):
                size = int(1024 + 63 * 1024 * rng.random() ** 3)
                archive.writestr(
                    f"site/dir{index % 12:02d}/file{index:03d}.bin", rng.randbytes(size)
                )
                total += size
        for event in hooks:
            info = zipfile.ZipInfo(f"scripts/{event}.sh")
            info.external_attr = 0o755 << 16
            archive.writestr(info, "#!/bin/sh\nexit 0\n")
            entries.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n")
        archive.writestr(
            "appspec.yml",
            "version: 0.0\nos: linux\nfiles:\n  - source: site\n"
            f"    destination: {destination}\nfile_exists_behavior: OVERWRITE\n"
            + ("hooks:\n" + "".join(entries) if entries else ""),
        )
    return buffer.getvalue(), total


# -- a fleet ready to deploy ----------------------------------------------------------------------


@dataclass
class Fleet:
    server: RunningServer
    agents: list[RunningAgent]
    client: Any
    s3: Any
    last_id: str = ""

    def upload(self, key: str, body: bytes) -> dict[str, Any]:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return {
            "revisionType": "S3",
            "s3Location": {"bucket": BUCKET, "key": key, "bundleType": "zip"},
        }

    def add_group(self, name: str, tags: dict[str, str], config: str) -> None:
        """Another deployment group of the application, selecting hosts by ``tags``."""
        self.client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=name,
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            deploymentConfigName=config,
            onPremisesInstanceTagFilters=[
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in tags.items()
            ],
        )

    def deploy(self, revision: dict[str, Any], group: str = GROUP) -> tuple[str, float]:
        """Create a deployment and wait for its end; (status, seconds from the create call).

        The end is the deployment's ``completeTime`` as the server recorded it (milliseconds,
        same clock: this machine), so the figure does not depend on how often GetDeployment is
        asked. Asking every 10 ms (100 calls a second, each costing the server and this client
        a few ms of CPU) took a share of a 2-core machine from the hosts being measured.
        """
        started = time.time()
        deployment_id = self.client.create_deployment(
            applicationName=APP,
            deploymentGroupName=group,
            revision=revision,
            fileExistsBehavior="OVERWRITE",
        )["deploymentId"]
        info = wait_terminal(self.client, deployment_id)
        self.last_id = deployment_id
        return str(info["status"]), info["completeTime"].timestamp() - started


def wait_terminal(
    client: Any, deployment_id: str, timeout: float = 300.0, interval: float = 0.05
) -> dict[str, Any]:
    """Poll GetDeployment every ``interval`` s until a final status (the API has no push);
    returns the final ``deploymentInfo``."""
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        if info["status"] in TERMINAL:
            return info
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"deployment {deployment_id} still {info['status']} after {timeout} s"
            )
        time.sleep(interval)


@contextmanager
def fleet(
    directory: Path,
    hosts: int,
    *,
    database_url: str | None = None,
    config: str = "CodeDeployDefault.AllAtOnce",
    server_args: tuple[str, ...] = (),
) -> Iterator[Fleet]:
    """A server, ``hosts`` agents tagged for one group, an application and the group."""
    with ExitStack() as stack:
        server = stack.enter_context(
            running_server(directory / "server", database_url=database_url, extra_args=server_args)
        )
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        agents = stack.enter_context(
            running_agents(server, directory / "hosts", hosts, tags=TAGS, timeout=120)
        )
        client = server.client()
        client.create_application(applicationName=APP)
        result = Fleet(server, agents, client, s3)
        result.add_group(GROUP, TAGS, config)
        yield result


# -- measuring ----------------------------------------------------------------------------------


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of process ``pid`` so far (``/proc/<pid>/stat``, fields 14 and 15;
    with ``children``, plus its waited-for children's, fields 16 and 17: hook scripts)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):.3f} s, min {min(values):.3f}, "
        f"max {max(values):.3f} (n={len(values)})"
    )


def header(title: str) -> None:
    print(
        f"== {title} ({sys.executable.split('/')[-1]} {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs)"
    )


@contextmanager
def profiled(
    pid: int, out: Path | None, *, subprocesses: bool = False, gil: bool = False
) -> Iterator[None]:
    """Sample ``pid`` with py-spy (collapsed stacks to ``out``) while the block runs; no-op when
    ``out`` is None. With ``gil``, only the thread holding the GIL is sampled: roughly where the
    Python CPU goes (py-spy counts a thread waiting in a C call as busy otherwise). py-spy is a
    dev tool: ``pip install py-spy``."""
    if out is None:
        yield
        return
    import shutil
    import signal
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args = [spy, "record", "-p", str(pid), "-o", str(out), "-f", "raw", "-r", "200"]
    if subprocesses:
        args.append("--subprocesses")
    if gil:
        args += ["--gil", "--nonblocking"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # py-spy attaches asynchronously; give it a moment before the work starts
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        print(f"profile written to {out}")


def top_frames(raw: Path, limit: int = 25) -> list[tuple[str, float]]:
    """(function, share of samples) by self time, plus inclusive shares, from a py-spy raw file."""
    from collections import Counter

    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        own[stack.split(";")[-1]] += n
    return [(name, n / total) for name, n in own.most_common(limit)]
