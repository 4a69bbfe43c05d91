"""Warm invoke latency through a weighted alias, and the memory of one function process.

Starts ``opendeploy server --function-host`` (SQLite in a temp directory), creates a function
with two published versions and an alias routing 10 % to the second, warms both versions, then
invokes the alias N times from one boto3 client (keep-alive) and prints p50/p99 and the share
each version answered; then the resident memory of each function process (VmRSS, from /proc).

    PYTHONPATH=src python bench/function_host.py [--invocations 2000]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from botocore.config import Config

from opendeploy.testing.server import running_server

SOURCE = """
import os
def handler(event, context):
    return {"version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"], "value": VALUE}
"""


def _zip(value: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", SOURCE.replace("VALUE", str(value)))
    return buffer.getvalue()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invocations", type=int, default=2000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_server(
            Path(tmp) / "data", extra_args=("--function-host", "--log-level", "warning")
        ) as server,
    ):
        lam = server.client("lambda", config=Config(retries={"max_attempts": 1}))
        lam.create_function(
            FunctionName="bench",
            Runtime="python3.11",
            Role="arn:aws:iam::000000000000:role/bench",
            Handler="app.handler",
            Code={"ZipFile": _zip(1)},
        )
        lam.publish_version(FunctionName="bench")
        lam.update_function_code(FunctionName="bench", ZipFile=_zip(2))
        lam.publish_version(FunctionName="bench")
        lam.create_alias(
            FunctionName="bench",
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
        )
        cold = {}
        for version in ("1", "2"):
            started = time.perf_counter()
            lam.invoke(FunctionName="bench", Qualifier=version)
            cold[version] = (time.perf_counter() - started) * 1000
        for _ in range(50):
            lam.invoke(FunctionName="bench", Qualifier="live")
        latencies: list[float] = []
        counts = {"1": 0, "2": 0}
        began = time.perf_counter()
        for _ in range(args.invocations):
            started = time.perf_counter()
            response = lam.invoke(FunctionName="bench", Qualifier="live")
            response["Payload"].read()
            latencies.append((time.perf_counter() - started) * 1000)
            counts[response["ExecutedVersion"]] += 1
        elapsed = time.perf_counter() - began
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"cold start (first invoke of a version): v1 {cold['1']:.0f} ms, v2 {cold['2']:.0f} ms"
        )
        print(
            f"warm invoke through the alias: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"{args.invocations / elapsed:.0f} invocations/s (one client, sequential)"
        )
        share = counts["2"] / args.invocations * 100
        print(f"alias weighted 10% to version 2: version 2 answered {share:.1f}%")
        for pid in _children(server.process.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
            if "awslambdaric" in cmdline:
                print(f"function process pid {pid}: VmRSS {_rss_kib(pid) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
