"""How long the dashboard takes to build its pages for a deployment to 1,000 instances.

Fills a fresh SQLite store (in a temp dir) with 1,000 registered on-premises instances, a
deployment group and a finished deployment to all of them (7 lifecycle events each, 1 in 100
failed with diagnostics), then times the server-side work of each page (the queries of
``opendeploy.web.views`` plus the Jinja2 render), in-process, and prints the median and the worst
of ``--runs`` runs in milliseconds. Network and browser time are not included; the HTTP-level
figure is printed by ``test_a_thousand_instance_deployment_renders_quickly`` (tests/web).

    .venv/bin/python bench/dashboard_render.py [--instances 1000] [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opendeploy.store.database import Store
from opendeploy.web import views
from opendeploy.web.render import render

EVENTS = (
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)


def fill(store: Store, count: int) -> str:
    """``count`` instances and one finished deployment to all of them; returns its id."""
    now = datetime.now(UTC)
    names = [f"fleet-{i:05d}" for i in range(count)]
    for name in names:
        store.instances.register(
            name=name,
            instance_arn=f"arn:aws:codedeploy:us-east-1:000000000000:instance/{name}_x",
            iam_user_arn=None,
            iam_session_arn=None,
            now=now,
        )
    store.instances.add_tags(names, [("fleet", "big"), ("rack", "r1")])
    app = store.applications.create(name="bench", compute_platform="Server", now=now)
    group = store.deployment_groups.create(
        application_id=app["application_id"],
        app_name="bench",
        name="fleet",
        settings={
            "compute_platform": "Server",
            "deployment_config_name": "CodeDeployDefault.HalfAtATime",
        },
        now=now,
    )
    deployment_id = "d-BENCH0001"
    store.deployments.create(
        deployment={
            "deployment_id": deployment_id,
            "application_id": app["application_id"],
            "application_name": "bench",
            "deployment_group_id": group["deployment_group_id"],
            "deployment_group_name": "fleet",
            "deployment_config_name": "CodeDeployDefault.HalfAtATime",
            "compute_platform": "Server",
            "creator": "user",
            "revision": {
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "big.zip", "bundleType": "zip"},
            },
            "status": "Failed",
            "start_time": now,
            "complete_time": now + timedelta(minutes=3),
            "error_information": {"code": "HEALTH_CONSTRAINTS", "message": "too many failed"},
        },
        select_targets=lambda fleet: [(n, a, None) for n, a, _ in fleet],
        now=now,
    )
    for index, name in enumerate(names):
        failed = index % 100 == 7
        store.deployments.set_lifecycle_events(
            deployment_id,
            name,
            [
                {
                    "name": event,
                    "status": "Failed" if failed and event == "ValidateService" else "Succeeded",
                    "start_time": now + timedelta(seconds=index),
                    "end_time": now + timedelta(seconds=index + 1),
                    "diagnostics": {
                        "errorCode": "ScriptFailed",
                        "scriptName": "scripts/validate.sh",
                        "message": "failed with exit code 3",
                        "logTail": "[stderr]health check failed\n",
                    }
                    if failed and event == "ValidateService"
                    else None,
                }
                for event in EVENTS
            ],
        )
    return deployment_id


def _page(template: str, view: dict[str, Any]) -> str:
    return render(template, session=None, csrf="x", flash=None, section="", **view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            started = time.perf_counter()
            deployment_id = fill(store, args.instances)
            print(f"filled {args.instances} instances in {time.perf_counter() - started:.1f} s")
            last_page = -(-args.instances // views.INSTANCES_PER_PAGE)
            pages: dict[str, Callable[[], str]] = {
                "deployment page 1": lambda: _page(
                    "deployment.html", views.deployment(store, deployment_id, page=1, instance=None)
                ),
                f"deployment page {last_page}": lambda: _page(
                    "deployment.html",
                    views.deployment(store, deployment_id, page=last_page, instance=None),
                ),
                "instances page 1": lambda: _page(
                    "instances.html", views.instances(store, page=1, registered=True)
                ),
                f"instances page {last_page}": lambda: _page(
                    "instances.html", views.instances(store, page=last_page, registered=True)
                ),
                "group page": lambda: _page(
                    "group.html", views.group(store, "bench", "fleet", page=1)
                ),
                "home": lambda: _page("home.html", views.home(store, page=1)),
            }
            print(f"{'page':<24}{'median ms':>10}{'max ms':>10}   ({args.runs} runs, 1 warm-up)")
            for name, build in pages.items():
                build()
                samples = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    build()
                    samples.append((time.perf_counter() - start) * 1000)
                print(f"{name:<24}{statistics.median(samples):>10.1f}{max(samples):>10.1f}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
