"""Lambda deployments: create -> Succeeded, and how late each traffic shift is.

A real ``opendeploy server`` shifts aliases either on its own built-in function host
(``--on host``, the default: hook functions run as real processes and call back themselves) or
on a real ``moto_server`` process reached through boto3's standard configuration
(``--on moto``: moto runs no code, so this script answers each hook through
PutLifecycleEventHookExecutionStatus as soon as it sees it invoked). Figures:

- AllAtOnce, no hooks: CreateDeployment -> ``completeTime`` (the server's own record).
- AllAtOnce with both hooks (BeforeAllowTraffic, AfterAllowTraffic). Target on the host:
  under 1 s (AWS reports minutes end to end).
- The shift gap: for a TimeBasedLinear 10 % every minute (minutes of ``--minute-seconds``), each
  weight's write (the time the step recorded after UpdateAlias was read back) minus when the
  schedule wanted it (AllowTraffic's start + k·interval). Target: under 0.5 s.

    python bench/lambda_deploy.py [--on host|moto] [--runs 5] [--minute-seconds 0.5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, percentile, summary, wait_terminal

from opendeploy.cli.logs import fetch_output
from opendeploy.testing.server import running_server

ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"
STYLE = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
_WRITE = re.compile(r"^(\S+) \S+ version \S+ (\d+)%")
_EXECUTION = re.compile(r"lifecycleEventHookExecutionId (\S+?)\.?$")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto() -> Iterator[str]:
    port = _port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        body = json.dumps({"lambda": {"use_docker": False}}).encode()
        request = urllib.request.Request(f"{url}/moto-api/config", data=body, method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _lambda(url: str, service: str = "lambda") -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


HOOK = """\
import boto3

client = boto3.client("codedeploy")

def handler(event, context):
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status="Succeeded",
    )
"""


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def hooks(lam: Any, role: str) -> None:
    """The two hook functions every deployment uses (warm after the first: a hook's first
    invocation starts its process, boto3's import included)."""
    for fn in ("hook-pre", "hook-post"):
        lam.create_function(
            FunctionName=fn, Runtime="python3.12", Role=role, Handler="app.handler",
            Code={"ZipFile": _zip(HOOK)},
        )  # fmt: skip


def function(lam: Any, role: str, name: str) -> None:
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": _zip("def handler(e, c):\n    return e\n")},
    )  # fmt: skip
    for n in range(2):  # a version is published only for changed code, as on Lambda
        lam.update_function_code(
            FunctionName=name, ZipFile=_zip(f"def handler(e, c):\n    return {n}\n")
        )
        lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")


def revision(name: str, current: str, target: str, hooks: bool) -> dict[str, Any]:
    text = (
        "version: 0.0\nResources:\n  - f:\n      Type: AWS::Lambda::Function\n"
        f"      Properties: {{Name: {name}, Alias: live, CurrentVersion: '{current}', "
        f"TargetVersion: '{target}'}}\n"
    )
    if hooks:
        text += "Hooks:\n  - BeforeAllowTraffic: hook-pre\n  - AfterAllowTraffic: hook-post\n"
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": text}}


def answer_hooks(cd: Any, dep: str) -> None:
    answered: set[str] = set()
    while len(answered) < 2:
        for line in fetch_output(cd, dep)[0]:
            m = _EXECUTION.search(line.line)
            if m and m.group(1) not in answered:
                answered.add(m.group(1))
                cd.put_lifecycle_event_hook_execution_status(
                    deploymentId=dep, lifecycleEventHookExecutionId=m.group(1), status="Succeeded"
                )
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--on", choices=("host", "moto"), default="host")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--minute-seconds", type=float, default=0.5)
    args = parser.parse_args()
    on_moto = args.on == "moto"
    header(f"Lambda deployments on {'moto_server' if on_moto else 'the built-in function host'}")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        extra: tuple[str, ...] = ("--minute-seconds", str(args.minute_seconds))
        env: dict[str, str] = {}
        if on_moto:
            url = stack.enter_context(moto())
            env = {
                "AWS_ENDPOINT_URL_LAMBDA": url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        else:
            extra += ("--function-host",)
        with running_server(Path(tmp) / "server", env=env, extra_args=extra) as srv:
            cd = srv.client("codedeploy")
            if on_moto:
                lam = _lambda(url)
                role = _lambda(url, "iam").create_role(
                    RoleName="bench", AssumeRolePolicyDocument="{}"
                )["Role"]["Arn"]
            else:
                lam, role = srv.client("lambda"), "arn:aws:iam::123456789012:role/bench"
            hooks(lam, role)
            cd.create_application(applicationName="bench", computePlatform="Lambda")
            cd.create_deployment_config(
                deploymentConfigName="linear10",
                computePlatform="Lambda",
                trafficRoutingConfig={
                    "type": "TimeBasedLinear",
                    "timeBasedLinear": {"linearPercentage": 10, "linearInterval": 1},
                },
            )
            for group, config in (
                ("all", "CodeDeployDefault.LambdaAllAtOnce"),
                ("linear", "linear10"),
            ):
                cd.create_deployment_group(
                    applicationName="bench", deploymentGroupName=group, serviceRoleArn=ROLE,
                    deploymentStyle=STYLE, deploymentConfigName=config,
                )  # fmt: skip
            for with_hooks in (False, True):
                times = []
                for run in range(args.runs + 1):  # one warm-up
                    name = f"f{int(with_hooks)}{run}"
                    function(lam, role, name)
                    started = time.time()
                    dep = cd.create_deployment(
                        applicationName="bench",
                        deploymentGroupName="all",
                        revision=revision(name, "1", "2", with_hooks),
                    )["deploymentId"]
                    if with_hooks and on_moto:
                        answer_hooks(cd, dep)
                    info = wait_terminal(cd, dep, interval=0.01)
                    assert info["status"] == "Succeeded", info
                    if run:
                        times.append(info["completeTime"].timestamp() - started)
                what = "no hooks"
                if with_hooks:
                    what = (
                        "with both hooks answered by this script"
                        if on_moto
                        else ("with both hooks (warm function processes)")
                    )
                print(f"AllAtOnce, {what}: create -> Succeeded {summary(times)}")
            gaps: list[float] = []
            for run in range(max(1, args.runs // 2)):
                name = f"lin{run}"
                function(lam, role, name)
                dep = cd.create_deployment(
                    applicationName="bench",
                    deploymentGroupName="linear",
                    revision=revision(name, "1", "2", False),
                )["deploymentId"]
                wait_terminal(cd, dep, timeout=60 * args.minute_seconds * 12)
                target = cd.batch_get_deployment_targets(deploymentId=dep, targetIds=[name])
                events = target["deploymentTargets"][0]["lambdaTarget"]["lifecycleEvents"]
                t0 = next(e for e in events if e["lifecycleEventName"] == "AllowTraffic")[
                    "startTime"
                ]
                interval = timedelta(seconds=args.minute_seconds)
                for line in fetch_output(cd, dep, event="AllowTraffic")[0]:
                    m = _WRITE.match(line.line)
                    if m:
                        k = int(m.group(2)) // 10 - 1
                        written = datetime.fromisoformat(m.group(1))
                        gaps.append((written - (t0 + k * interval)).total_seconds())
            print(
                f"shift gap (scheduled -> alias carrying it, read back): p50 "
                f"{percentile(gaps, 50):.3f} s, p99 {percentile(gaps, 99):.3f} s, max "
                f"{max(gaps):.3f} s (n={len(gaps)}; target < 0.5 s)"
            )


if __name__ == "__main__":
    main()
