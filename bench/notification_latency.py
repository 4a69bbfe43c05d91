"""Notification delivery latency: from a deployment event to a webhook receiving it.

A real ``opendeploy server`` process with ``--notifications`` routing a trigger's topic ARN to a
webhook served by this process on loopback. Deployments to a group no instance matches start and
fail at once (a DeploymentStart and a DeploymentFailure event each); they are created one after
another, ``--gap`` seconds apart, round-robin over ten groups. For every POST the receiver takes
the time it arrived minus the event's own time (the envelope's ``Timestamp``, which the engine
stamps when it records the event; same clock, same machine). Printed: count, p50, p99, max.

    python bench/notification_latency.py [--deployments 100] [--gap 0.1] [--database sqlite]

The path: the engine's commit writes the event to the outbox; the outbox is delivered once a
second (not after every engine pass, see ``server.OUTBOX_TICK_SECONDS``), its sink makes the
delivery rows and wakes the sender, which POSTs at once. So about half a second on average is the
outbox's tick.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import database, header, work_dir

from opendeploy.testing.server import running_server

TOPIC = "arn:aws:sns:us-east-1:000000000000:bench-notifications"
GROUPS = 10
KINDS = ["DeploymentStart", "DeploymentFailure"]


class _Receiver:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.keys: set[str] = set()
        self.cond = threading.Condition()

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                arrived = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                envelope = json.loads(body)
                event_at = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00"))
                with receiver.cond:
                    if envelope["MessageId"] not in receiver.keys:  # repeats: not latency
                        receiver.keys.add(envelope["MessageId"])
                        receiver.latencies.append(arrived - event_at.timestamp())
                    receiver.cond.notify_all()

        # The sender opens up to 8 connections at once: with http.server's default listen
        # backlog of 5, the rest were dropped and retried by TCP a second later.
        server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})
        server = server_class(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/hook"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between deployments")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    header(f"notification latency, event -> webhook on loopback ({args.database})")
    receiver = _Receiver()
    http, url = receiver.serve()
    try:
        with work_dir() as root, database(args.database, root) as db:
            declaration = root / "notifications.yml"
            declaration.write_text(
                json.dumps({"webhooks": [{"topic": TOPIC, "url": url, "secret": "bench"}]})
            )
            extra = ("--notifications", str(declaration))
            with running_server(root / "data", database_url=db, extra_args=extra) as srv:
                cd = srv.client()
                cd.create_application(applicationName="notify")
                for g in range(GROUPS):
                    cd.create_deployment_group(
                        applicationName="notify",
                        deploymentGroupName=f"g{g}",
                        serviceRoleArn="arn:aws:iam::123456789012:role/CodeDeploy",
                        onPremisesInstanceTagFilters=[
                            {"Key": "nobody", "Value": "x", "Type": "KEY_AND_VALUE"}
                        ],
                        triggerConfigurations=[
                            {"triggerName": "t", "triggerTargetArn": TOPIC, "triggerEvents": KINDS}
                        ],
                    )
                started = time.monotonic()
                for i in range(args.deployments):
                    while True:
                        try:
                            cd.create_deployment(
                                applicationName="notify",
                                deploymentGroupName=f"g{i % GROUPS}",
                                revision={
                                    "revisionType": "S3",
                                    "s3Location": {"bucket": "b", "key": "k", "bundleType": "zip"},
                                },
                            )
                            break
                        except cd.exceptions.DeploymentLimitExceededException:
                            time.sleep(0.05)  # the group's last one has not ended yet
                    time.sleep(args.gap)
                expected = len(KINDS) * args.deployments
                with receiver.cond:
                    receiver.cond.wait_for(lambda: len(receiver.keys) >= expected, timeout=120)
                elapsed = time.monotonic() - started
    finally:
        http.shutdown()
    got = receiver.latencies
    print(f"  {len(got)} of {expected} notifications in {elapsed:.1f} s")
    if got:
        print(
            f"  event -> webhook: p50 {statistics.median(got) * 1000:.0f} ms, "
            f"p99 {_percentile(got, 0.99) * 1000:.0f} ms, max {max(got) * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
