"""Control-plane scale: N simulated hosts speaking the real Command API to one server process.

Each simulated host is an asyncio task in this process with its own keep-alive HTTP/1.1
connection, its own instance key, and SigV4-signed awsJson1_1 requests, exactly what the agent's
botocore client sends: PollHostCommand (long poll) -> GetDeploymentSpecification (once per
deployment, as ``opendeploy agent``; for every command with ``--spec-every-command``, as the
official agent) -> PutHostCommandAcknowledgement -> PutHostCommandComplete(Succeeded), then polls
again. Hooks take no time, so everything measured is protocol and server.

Printed: registration time, the time of one AllAtOnce deployment to all N hosts (create ->
Succeeded), the server's CPU seconds per host-lifecycle-event during it (``/proc/<pid>/stat``), and
the idle cost: server CPU per second while N hosts hold long polls and nothing happens.

    python bench/fleet.py [--hosts 100 1000 10000] [--idle 10] [--quick] [--replicas N]

``--replicas N`` (PostgreSQL): N server processes on one database, the hosts spread over them
round-robin as a load balancer would, CPU summed over all of them; and how long a command takes
to reach an agent whose poll another replica holds (its reports going to the replica whose
engine then makes the next command), against the same with everything on one replica.

Targets: 10,000 hosts complete; < 1 ms server CPU per host-event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import APP, GROUP, TAGS, cpu_seconds, database, header, profiled, work_dir
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from opendeploy.testing.server import RunningServer, running_server

COMMANDS = "CodeDeployCommandService_v20141006"
CONTROL = "CodeDeploy_20141006"
EVENTS_PER_HOST = 7
TARGET_CPU_PER_EVENT = 0.001


class ApiError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; requests are sent one at a time."""

    def __init__(self, endpoint: str, key: str, secret: str, region: str) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.url = endpoint.rstrip("/") + "/"
        self.credentials = Credentials(key, secret)
        self.region = region
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, service: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        path = "/"
        headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
        if target.startswith("/"):
            path, headers = target, {"Content-Type": "application/json"}
        request = AWSRequest(
            method="POST", url=self.url.rstrip("/") + path, data=data, headers=headers
        )
        SigV4Auth(self.credentials, service, self.region).add_auth(request)
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
        head += f"Content-Length: {len(data)}\r\n\r\n"
        for attempt in (1, 2):
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port, limit=2**20)
            reader, writer = self._streams
            try:
                writer.write(head.encode() + data)
                status_line = await reader.readline()
                if not status_line:
                    raise ConnectionResetError("server closed the connection")
                break
            except (ConnectionError, OSError):
                self.close()
                if attempt == 2:
                    raise
        status = int(status_line.split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = json.loads(await reader.readexactly(length) or b"{}") if length else {}
        if status != 200:
            raise ApiError(f"{target}: HTTP {status} {payload}")
        return payload

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class Host:
    name: str
    arn: str
    conn: Connection
    events: int = 0


@dataclass
class Stats:
    events: int = 0
    errors: int = 0


async def register(
    server: RunningServer,
    count: int,
    parallel: int = 16,
    endpoints: list[str] | None = None,
    prefix: str = "sim",
    tags: dict[str, str] | None = None,
) -> list[Host]:
    """Register ``count`` instances, tag them, issue their keys (as `opendeploy instance
    register` does), with ``parallel`` admin connections. ``endpoints``: the replicas the hosts
    talk to, round-robin (default: ``server``'s)."""
    endpoints = endpoints or [server.endpoint]
    tags = tags or TAGS
    admin = [
        Connection(server.endpoint, server.access_key_id, server.secret_access_key, server.region)
        for _ in range(parallel)
    ]
    names = [f"{prefix}-{i:05d}" for i in range(1, count + 1)]
    hosts: list[Host] = []

    async def one(conn: Connection, name: str) -> None:
        arn = f"arn:aws:iam::000000000000:user/opendeploy/{name}"
        await conn.call(
            "codedeploy",
            f"{CONTROL}.RegisterOnPremisesInstance",
            {"instanceName": name, "iamUserArn": arn},
        )
        creds = await conn.call(
            "codedeploy", "/opendeploy/v1/instance-credentials", {"instanceName": name}
        )
        hosts.append(
            Host(
                name,
                creds["iamUserArn"],
                Connection(
                    endpoints[names.index(name) % len(endpoints)],
                    creds["accessKeyId"],
                    creds["secretAccessKey"],
                    server.region,
                ),
            )
        )

    async def lane(index: int) -> None:
        for name in names[index::parallel]:
            await one(admin[index], name)

    await asyncio.gather(*(lane(i) for i in range(parallel)))
    for start in range(0, count, 100):
        await admin[0].call(
            "codedeploy",
            f"{CONTROL}.AddTagsToOnPremisesInstances",
            {
                "instanceNames": names[start : start + 100],
                "tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            },
        )
    for conn in admin:
        conn.close()
    return hosts


async def agent(
    host: Host, stats: Stats, stop: asyncio.Event, *, spec_every_command: bool = False
) -> None:
    """Poll; run every command in no time; until ``stop``. The specification is asked for once
    per deployment, as ``opendeploy agent`` does, or for every command as the official agent
    does (``spec_every_command``)."""
    call = host.conn.call
    service = "codedeploy-commands"
    known_spec = ""
    while not stop.is_set():
        try:
            answer = await call(
                service, f"{COMMANDS}.PollHostCommand", {"HostIdentifier": host.arn}
            )
            command = answer.get("HostCommand")
            if not command:
                continue
            command_id = command["HostCommandIdentifier"]
            execution_id = command["DeploymentExecutionId"]
            if spec_every_command or execution_id != known_spec:
                await call(
                    service,
                    f"{COMMANDS}.GetDeploymentSpecification",
                    {"DeploymentExecutionId": execution_id, "HostIdentifier": host.arn},
                )
                known_spec = execution_id
            ack = await call(
                service,
                f"{COMMANDS}.PutHostCommandAcknowledgement",
                {
                    "HostCommandIdentifier": command_id,
                    "Diagnostics": {"format": "JSON", "payload": '{"IsCommandNoop":false}'},
                },
            )
            if ack.get("CommandStatus") in ("Succeeded", "Failed"):
                continue
            await call(
                service,
                f"{COMMANDS}.PutHostCommandComplete",
                {
                    "HostCommandIdentifier": command_id,
                    "CommandStatus": "Succeeded",
                    "Diagnostics": {
                        "format": "JSON",
                        "payload": json.dumps(
                            {"error_code": 0, "script_name": "", "message": "Succeeded", "log": ""}
                        ),
                    },
                },
            )
            stats.events += 1
        except (ApiError, ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            stats.errors += 1
            if stats.errors <= 5:
                print(f"  {host.name}: {exc}", file=sys.stderr)
            host.conn.close()
            await asyncio.sleep(1)


async def wait_terminal(admin: Connection, deployment_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        info = (
            await admin.call(
                "codedeploy", f"{CONTROL}.GetDeployment", {"deploymentId": deployment_id}
            )
        )["deploymentInfo"]
        if info["status"] in ("Succeeded", "Failed", "Stopped"):
            if info["status"] != "Succeeded":
                # Say why: a failed run's figures mean nothing without it.
                error = info.get("errorInformation") or {}
                print(f"  {deployment_id}: {error.get('code')}: {error.get('message')}")
                print(f"  overview: {info.get('deploymentOverview')}")
            return str(info["status"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"{deployment_id} still {info['status']} after {timeout} s")
        await asyncio.sleep(0.05)


async def scenario(
    server: RunningServer,
    count: int,
    idle: float,
    profile: Path | None = None,
    spec_every_command: bool = False,
    replicas: list[RunningServer] | None = None,
) -> None:
    replicas = replicas or [server]
    began = time.perf_counter()
    hosts = await register(server, count, endpoints=[r.endpoint for r in replicas])
    print(f"{count:>6} hosts: registered in {time.perf_counter() - began:.1f} s")
    admin = Connection(
        server.endpoint, server.access_key_id, server.secret_access_key, server.region
    )
    await admin.call("codedeploy", f"{CONTROL}.CreateApplication", {"applicationName": APP})
    await admin.call(
        "codedeploy",
        f"{CONTROL}.CreateDeploymentGroup",
        {
            "applicationName": APP,
            "deploymentGroupName": GROUP,
            "serviceRoleArn": "arn:aws:iam::000000000000:role/opendeploy",
            "deploymentConfigName": "CodeDeployDefault.AllAtOnce",
            "onPremisesInstanceTagFilters": [
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in TAGS.items()
            ],
        },
    )
    stats, stop = Stats(), asyncio.Event()
    tasks = [
        asyncio.create_task(agent(h, stats, stop, spec_every_command=spec_every_command))
        for h in hosts
    ]
    pids = [r.process.pid for r in replicas]

    def cpu_seconds_all() -> float:
        return sum(cpu_seconds(p) for p in pids)

    pid = server.process.pid
    # Idle: every host holds a long poll. The first poll of each is the costly one (the instance
    # is written as seen, and checked for an automatic deployment to a new instance): wait until
    # that burst is over (the server's CPU falls under half a core) before measuring.
    settle_started = time.perf_counter()
    await asyncio.sleep(1.0)
    while time.perf_counter() - settle_started < 300:
        cpu0, t0 = cpu_seconds_all(), time.perf_counter()
        await asyncio.sleep(1.0)
        if (cpu_seconds_all() - cpu0) / (time.perf_counter() - t0) < 0.5:
            break
    print(
        f"{'':>13}first polls of {count} hosts absorbed in "
        f"{time.perf_counter() - settle_started:.1f} s"
    )
    cpu0, t0 = cpu_seconds_all(), time.perf_counter()
    await asyncio.sleep(idle)
    idle_cpu = (cpu_seconds_all() - cpu0) / (time.perf_counter() - t0)
    print(
        f"{'':>13}idle: {count} held polls cost {idle_cpu * 1000:.0f} ms server CPU per "
        f"second ({idle_cpu / count * 1e6:.1f} us per host-second)"
    )
    with profiled(pid, profile, gil=True):
        cpu0, t0 = cpu_seconds_all(), time.perf_counter()
        deployment_id = (
            await admin.call(
                "codedeploy",
                f"{CONTROL}.CreateDeployment",
                {
                    "applicationName": APP,
                    "deploymentGroupName": GROUP,
                    "revision": {
                        "revisionType": "S3",
                        "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
                    },
                },
            )
        )["deploymentId"]
        status = await wait_terminal(admin, deployment_id, timeout=max(120.0, count * 0.2))
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds_all() - cpu0
    per_event = cpu / max(1, stats.events)
    verdict = "met" if per_event < TARGET_CPU_PER_EVENT else "NOT met"
    print(
        f"{'':>13}deployment {status} in {elapsed:.2f} s; {stats.events} host-events "
        f"({stats.events / elapsed:.0f}/s), server CPU {cpu:.1f} s = {per_event * 1000:.2f} ms "
        f"per host-event (target < 1 ms: {verdict}); client errors {stats.errors}"
    )
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for h in hosts:
        h.conn.close()
    admin.close()


PROBE_GROUP = "probe"
PROBE_TAGS = {"role": "probe"}


async def command_latency(
    replicas: list[RunningServer], deployments: int, *, across: bool
) -> list[float]:
    """Seconds from a report's answer to the next command reaching the reporting agent's poll.

    The probe host polls through ``replicas[1]`` (``across``) or ``replicas[0]``, and reports
    through ``replicas[0]``: the report wakes that replica's engine, which makes the next
    command, so with ``across`` each command is made by one replica and delivered by another."""
    server = replicas[0]
    (probe,) = await register(server, 1, 1, prefix=f"probe{int(across)}", tags=PROBE_TAGS)
    report = probe.conn
    poll = Connection(
        (replicas[1] if across else replicas[0]).endpoint,
        report.credentials.access_key,
        report.credentials.secret_key,
        server.region,
    )
    admin = Connection(
        server.endpoint, server.access_key_id, server.secret_access_key, server.region
    )
    service = "codedeploy-commands"
    samples: list[float] = []
    for _ in range(deployments):
        deployment_id = (
            await admin.call(
                "codedeploy",
                f"{CONTROL}.CreateDeployment",
                {
                    "applicationName": APP,
                    "deploymentGroupName": PROBE_GROUP,
                    "revision": {
                        "revisionType": "S3",
                        "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
                    },
                },
            )
        )["deploymentId"]
        reported: float | None = None
        for _event in range(EVENTS_PER_HOST):
            command = None
            while not command:
                answer = await poll.call(
                    service, f"{COMMANDS}.PollHostCommand", {"HostIdentifier": probe.arn}
                )
                command = answer.get("HostCommand")
            if reported is not None:
                samples.append(time.perf_counter() - reported)
            command_id = command["HostCommandIdentifier"]
            await report.call(
                service,
                f"{COMMANDS}.PutHostCommandAcknowledgement",
                {"HostCommandIdentifier": command_id},
            )
            await report.call(
                service,
                f"{COMMANDS}.PutHostCommandComplete",
                {
                    "HostCommandIdentifier": command_id,
                    "CommandStatus": "Succeeded",
                    "Diagnostics": {
                        "format": "JSON",
                        "payload": json.dumps(
                            {"error_code": 0, "script_name": "", "message": "", "log": ""}
                        ),
                    },
                },
            )
            reported = time.perf_counter()
        status = await wait_terminal(admin, deployment_id, timeout=60)
        if status != "Succeeded":
            break
    for conn in (poll, report, admin):
        conn.close()
    return samples


async def latency_scenario(replicas: list[RunningServer], deployments: int) -> None:
    server = replicas[0]
    admin = Connection(
        server.endpoint, server.access_key_id, server.secret_access_key, server.region
    )
    await admin.call("codedeploy", f"{CONTROL}.CreateApplication", {"applicationName": APP})
    await admin.call(
        "codedeploy",
        f"{CONTROL}.CreateDeploymentGroup",
        {
            "applicationName": APP,
            "deploymentGroupName": PROBE_GROUP,
            "serviceRoleArn": "arn:aws:iam::000000000000:role/opendeploy",
            "deploymentConfigName": "CodeDeployDefault.AllAtOnce",
            "onPremisesInstanceTagFilters": [
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in PROBE_TAGS.items()
            ],
        },
    )
    admin.close()
    for across in (False, True):
        samples = sorted(await command_latency(replicas, deployments, across=across))
        if not samples:
            print("  no samples")
            continue
        p50 = samples[len(samples) // 2] * 1000
        p90 = samples[int(len(samples) * 0.9)] * 1000
        where = "another replica" if across else "the same replica"
        verdict = ""
        if across:
            verdict = f" (target p50 < 50 ms: {'met' if p50 < 50 else 'NOT met'})"
        print(
            f"  report -> next command at a poll held by {where}: p50 {p50:.1f} ms, "
            f"p90 {p90:.1f} ms, max {samples[-1] * 1000:.1f} ms over {len(samples)}{verdict}"
        )


@contextmanager
def running_replicas(
    work: Path, url: str, count: int, extra_args: tuple[str, ...]
) -> Iterator[list[RunningServer]]:
    """``count`` servers on one database (the first migrates alone, the rest start after)."""
    with ExitStack() as stack:
        first = stack.enter_context(
            running_server(work / "replica-0", database_url=url, extra_args=extra_args)
        )
        rest = [
            stack.enter_context(
                running_server(work / f"replica-{i}", database_url=url, extra_args=extra_args)
            )
            for i in range(1, count)
        ]
        yield [first, *rest]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--poll-timeout", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="20 hosts, 1 s idle")
    parser.add_argument(
        "--profile", type=Path, help="py-spy (--gil) the server during the last size's deployment"
    )
    parser.add_argument(
        "--spec-every-command",
        action="store_true",
        help="ask for the deployment specification for every command, as the official agent",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="server processes on one PostgreSQL database (implies --database postgresql)",
    )
    parser.add_argument(
        "--latency-deployments",
        type=int,
        default=10,
        help="with --replicas > 1: deployments of one probe host timed for command latency",
    )
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.idle = [20], 1.0
    if args.replicas > 1:
        args.database = "postgresql"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    header(
        f"simulated fleet over the Command API ({args.database}, {args.replicas} replica"
        f"{'s' if args.replicas > 1 else ''})"
    )
    server_args: tuple[str, ...] = ("--poll-timeout", str(args.poll_timeout))
    if args.replicas > 1:
        # Within PostgreSQL's default max_connections (100) all together.
        server_args += ("--database-connections", str(max(8, 80 // args.replicas)))
    if args.replicas > 1:
        with (
            work_dir() as work,
            database(args.database, work) as url,
            running_replicas(work, url, args.replicas, server_args) as replicas,
        ):
            asyncio.run(latency_scenario(replicas, args.latency_deployments))
    for count in args.hosts:
        with (
            work_dir() as work,
            database(args.database, work) as url,
            running_replicas(work, url, args.replicas, server_args) as replicas,
        ):
            spy = args.profile if count == args.hosts[-1] else None
            asyncio.run(
                scenario(
                    replicas[0], count, args.idle, spy, args.spec_every_command, replicas=replicas
                )
            )


if __name__ == "__main__":
    main()
