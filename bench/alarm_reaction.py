"""Alarm reaction time: from an alarm entering ALARM to the deployment being Stopped.

A real ``opendeploy server`` process (``--alarms`` declares the alarms, ``--alarm-poll-seconds``
how often they are read) and real ``opendeploy agent`` processes; each deployment's BeforeInstall
hook sleeps, so the alarm always fires mid-deployment. For each run: create a deployment, wait
until it is InProgress with a hook running, fire the alarm, and take the deployment's
``completeTime`` (recorded by the server, same clock) less the moment the alarm was fired. Then
the alarm is cleared and the next run starts. Sources:

- ``webhook``: an Alertmanager webhook POSTed to the server's receiver (pushed: no polling);
- ``cloudwatch``: ``set_alarm_state`` on a CloudWatch alarm in a ``moto_server`` process, read
  through boto3 (``AWS_ENDPOINT_URL_CLOUDWATCH``) every ``--alarm-poll-seconds``;
- ``prometheus``: a sample pushed to VictoriaMetrics (Debian ``victoria-metrics``) crossing a
  PromQL threshold, read every ``--alarm-poll-seconds`` (includes VictoriaMetrics' own delay
  before a pushed sample is readable, about a second).

    python bench/alarm_reaction.py [--runs 10] [--sources webhook cloudwatch prometheus]
                                   [--poll 1.0] [--hosts 2]

Target: p50 under 2 s (AWS stops 11–23 s after an alarm in public captures).

Notification delivery latency (p50, p99) is measured by ``bench/notification_latency.py`` (the
notifications work); the integrator joins the two figures here.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import APP, BUCKET, GROUP, TAGS, header, wait_terminal, work_dir

from opendeploy.testing.agents import running_agents
from opendeploy.testing.server import running_server

TARGET_P50 = 2.0
TOKEN = "bench-token"
HOOK_SLEEP_SECONDS = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(args: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start listening on {port}")
            time.sleep(0.05)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _slow_bundle(destination: Path) -> bytes:
    """A revision whose BeforeInstall sleeps (the deployment is mid-flight when the alarm
    fires); the other hooks exit at once."""
    buffer = io.BytesIO()
    hooks = {"BeforeInstall": f"#!/bin/sh\nsleep {HOOK_SLEEP_SECONDS}\n", "ValidateService": ""}
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("site/version.txt", "v1\n")
        entries = []
        for event, body in hooks.items():
            info = zipfile.ZipInfo(f"scripts/{event}.sh")
            info.external_attr = 0o755 << 16
            archive.writestr(info, body or "#!/bin/sh\nexit 0\n")
            entries.append(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n")
        archive.writestr(
            "appspec.yml",
            "version: 0.0\nos: linux\nfiles:\n  - source: site\n"
            f"    destination: {destination}\nfile_exists_behavior: OVERWRITE\n"
            "hooks:\n" + "".join(entries),
        )
    return buffer.getvalue()


class Source:
    """One alarm source: its declaration, and how to fire and clear its alarm."""

    name = ""
    alarm = ""

    def declaration(self) -> str:
        return ""

    def fire(self) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class Webhook(Source):
    name, alarm = "webhook", "paged"

    def __init__(self) -> None:
        self.endpoint = ""

    def declaration(self) -> str:
        return "  paged:\n    alertmanager: {alert: BenchAlert}\n"

    def _post(self, status: str) -> None:
        body = json.dumps(
            {
                "status": status,
                "alerts": [{"status": status, "labels": {"alertname": "BenchAlert"}}],
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/opendeploy/v1/alertmanager",
            data=body,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()

    def fire(self) -> None:
        self._post("firing")

    def clear(self) -> None:
        self._post("resolved")


class CloudWatch(Source):
    name, alarm = "cloudwatch", "bench-cw"

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.cw = boto3.client(
            "cloudwatch",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.cw.put_metric_alarm(
            AlarmName=self.alarm,
            MetricName="Errors",
            Namespace="Bench",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanThreshold",
        )
        self.clear()

    def fire(self) -> None:
        self.cw.set_alarm_state(AlarmName=self.alarm, StateValue="ALARM", StateReason="bench")

    def clear(self) -> None:
        self.cw.set_alarm_state(AlarmName=self.alarm, StateValue="OK", StateReason="bench")


class Prometheus(Source):
    name, alarm = "prometheus", "bench-prom"

    def __init__(self, url: str) -> None:
        self.url = url
        self.clear()

    def declaration(self) -> str:
        return (
            f"  bench-prom:\n    prometheus: {{url: '{self.url}', query: bench_errors, above: 5}}\n"
        )

    def _push(self, value: float) -> None:
        body = f"bench_errors {value} {int(time.time() * 1000)}\n".encode()
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/api/v1/import/prometheus", data=body), timeout=5
        ).close()
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).close()

    def fire(self) -> None:
        self._push(10)

    def clear(self) -> None:
        # Until a query reads it back: the next run must start with the alarm clear.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self._push(0)
            with urllib.request.urlopen(f"{self.url}/api/v1/query?query=bench_errors") as r:
                result = json.loads(r.read())["data"]["result"]
            if result and float(result[0]["value"][1]) == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("VictoriaMetrics never answered the cleared sample")


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _in_before_install(client: Any, dep: str) -> bool:
    ids = client.list_deployment_targets(deploymentId=dep)["targetIds"]
    if not ids:
        return False
    got = client.batch_get_deployment_targets(deploymentId=dep, targetIds=ids[:1])
    events = got["deploymentTargets"][0]["instanceTarget"]["lifecycleEvents"]
    return any(
        e["lifecycleEventName"] == "BeforeInstall" and e["status"] == "InProgress" for e in events
    )


def _measure(client: Any, source: Source, revision: dict[str, Any], runs: int) -> list[float]:
    group = f"{GROUP}-{source.name}"
    client.create_deployment_group(
        applicationName=APP,
        deploymentGroupName=group,
        serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
        onPremisesInstanceTagFilters=[
            {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in TAGS.items()
        ],
        alarmConfiguration={"enabled": True, "alarms": [{"name": source.alarm}]},
    )
    times = []
    for _ in range(runs):
        dep = client.create_deployment(
            applicationName=APP,
            deploymentGroupName=group,
            revision=revision,
            fileExistsBehavior="OVERWRITE",
        )["deploymentId"]

        _wait(functools.partial(_in_before_install, client, dep), 60, f"{dep} in BeforeInstall")
        fired = time.time()
        source.fire()
        info = wait_terminal(client, dep, timeout=60)
        if info["status"] != "Stopped":
            raise RuntimeError(f"{dep} ended {info['status']}, not Stopped: {info}")
        times.append(info["completeTime"].timestamp() - fired)
        source.clear()
        time.sleep(HOOK_SLEEP_SECONDS)  # the agent finishes the stopped deployment's hook
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sources", nargs="+", default=["webhook", "cloudwatch", "prometheus"])
    parser.add_argument("--poll", type=float, default=1.0, help="--alarm-poll-seconds")
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args()
    header(f"alarm reaction, {args.hosts} hosts, alarms read every {args.poll:g} s")
    with work_dir() as directory, contextlib.ExitStack() as stack:
        env: dict[str, str] = {}
        sources: list[Source] = []
        if "cloudwatch" in args.sources:
            moto = Path(sys.executable).parent / "moto_server"
            port = _free_port()
            stack.enter_context(_process([str(moto), "-H", "127.0.0.1", "-p", str(port)], port))
            endpoint = f"http://127.0.0.1:{port}"
            env |= {
                "AWS_ENDPOINT_URL_CLOUDWATCH": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
            }
            sources.append(CloudWatch(endpoint))
        if "prometheus" in args.sources:
            binary = shutil.which("victoria-metrics")
            if binary is None:
                print("prometheus: skipped (install Debian's victoria-metrics)")
            else:
                port = _free_port()
                vm_args = [
                    binary,
                    f"-httpListenAddr=127.0.0.1:{port}",
                    f"-storageDataPath={directory / 'vm'}",
                    "-search.latencyOffset=0s",
                    "-search.disableCache",
                ]
                stack.enter_context(_process(vm_args, port))
                sources.append(Prometheus(f"http://127.0.0.1:{port}"))
        webhook = Webhook() if "webhook" in args.sources else None
        if webhook is not None:
            sources.append(webhook)
        alarms = directory / "alarms.yml"
        alarms.write_text(
            f"webhook: {{token: {TOKEN}}}\nalarms:\n" + "".join(s.declaration() for s in sources)
        )
        server = stack.enter_context(
            running_server(
                directory / "server",
                extra_args=("--alarms", str(alarms), "--alarm-poll-seconds", str(args.poll)),
                env=env,
            )
        )
        if webhook is not None:
            webhook.endpoint = server.endpoint
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        stack.enter_context(
            running_agents(server, directory / "hosts", args.hosts, tags=TAGS, timeout=120)
        )
        client = server.client()
        client.create_application(applicationName=APP)
        s3.put_object(Bucket=BUCKET, Key="slow.zip", Body=_slow_bundle(directory / "site"))
        revision = {
            "revisionType": "S3",
            "s3Location": {"bucket": BUCKET, "key": "slow.zip", "bundleType": "zip"},
        }
        for source in sources:
            times = _measure(client, source, revision, args.runs)
            p50, p99 = statistics.median(times), _percentile(times, 0.99)
            verdict = "meets" if p50 < TARGET_P50 else "MISSES"
            print(
                f"{source.name:>10}: ALARM -> Stopped p50 {p50:.3f} s, p99 {p99:.3f} s, "
                f"min {min(times):.3f}, max {max(times):.3f} (n={len(times)}); "
                f"{verdict} the p50 target of {TARGET_P50:g} s"
            )
        # Notification delivery latency (p50, p99): bench/notification_latency.py, by the
        # notifications work; the integrator joins it here.


if __name__ == "__main__":
    main()
