"""How long the dashboard takes to build its pages for a deployment to 1,000 instances.

Fills a fresh SQLite store (in a temp dir) with 1,000 registered on-premises instances, a
deployment group, a finished deployment to all of them (7 lifecycle events each, 1 in 100
failed with diagnostics) and, in a second group, a running one (half the instances done, a
quarter in AfterInstall, the rest pending). It then times the server-side work of each page
(the queries of ``opendeploy.web.views`` plus the Jinja2 render), in-process, and of one poll
of the live stream of the running deployment (what ``opendeploy.web.live`` does every
``POLL_SECONDS`` for each open page), and prints the median and the worst of ``--runs`` runs in
milliseconds, the size of each response, and whether the worst stays within the goal (issue 6:
no page above ~1 s to render; ``--goal-ms``). Network and browser time are not included.
The tests check only that these pages are paged (tests/web/test_pages.py); the speed goal is
this benchmark's.

    python bench/dashboard_render.py [--instances 1000] [--runs 20] [--goal-ms 1000]
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
from opendeploy.web import live, views
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


def fill(store: Store, count: int) -> tuple[str, str]:
    """``count`` instances, a finished deployment to all of them in group ``fleet`` and a
    running one in group ``live``; returns their ids (finished, running)."""
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
    finished = _deployment(
        store,
        app,
        "fleet",
        "d-BENCH0001",
        now,
        status="Failed",
        complete_time=now + timedelta(minutes=3),
        error_information={"code": "HEALTH_CONSTRAINTS", "message": "too many failed"},
    )
    running = _deployment(store, app, "live", "d-BENCH0002", now, status="InProgress")
    for index, name in enumerate(names):
        failed = index % 100 == 7
        store.deployments.set_lifecycle_events(
            finished,
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
        # The running one: the first half done, the next quarter in AfterInstall, the rest not
        # started yet.
        if index < count // 2:
            states = ["Succeeded"] * len(EVENTS)
        elif index < 3 * count // 4:
            states = ["Succeeded"] * 4 + ["InProgress"] + ["Pending"] * 2
        else:
            states = ["Pending"] * len(EVENTS)
        store.deployments.set_lifecycle_events(
            running,
            name,
            [
                {
                    "name": event,
                    "status": state,
                    "start_time": None if state == "Pending" else now + timedelta(seconds=index),
                    "end_time": now + timedelta(seconds=index + 1)
                    if state == "Succeeded"
                    else None,
                    "diagnostics": None,
                }
                for event, state in zip(EVENTS, states, strict=True)
            ],
        )
    return finished, running


def _deployment(
    store: Store,
    app: dict[str, Any],
    group_name: str,
    deployment_id: str,
    now: datetime,
    **columns: Any,
) -> str:
    """A HalfAtATime group ``group_name`` and a deployment of it to every instance."""
    group = store.deployment_groups.create(
        application_id=app["application_id"],
        app_name="bench",
        name=group_name,
        settings={
            "compute_platform": "Server",
            "deployment_config_name": "CodeDeployDefault.HalfAtATime",
        },
        now=now,
    )
    store.deployments.create(
        deployment={
            "deployment_id": deployment_id,
            "application_id": app["application_id"],
            "application_name": "bench",
            "deployment_group_id": group["deployment_group_id"],
            "deployment_group_name": group_name,
            "deployment_config_name": "CodeDeployDefault.HalfAtATime",
            "compute_platform": "Server",
            "creator": "user",
            "revision": {
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "big.zip", "bundleType": "zip"},
            },
            "start_time": now,
            **columns,
        },
        select_targets=lambda fleet: [(n, a, None) for n, a, _ in fleet],
        now=now,
    )
    return deployment_id


def _page(template: str, view: dict[str, Any]) -> str:
    return render(template, session=None, csrf="x", flash=None, section="", **view)


def _live_poll(store: Store, deployment_id: str) -> str:
    """One poll of the live stream: the view and every region, as the first poll sends them."""
    view = views.deployment(store, deployment_id, page=1, instance=None)
    regions = live.render_regions({**view, "csrf": "x"})
    payload = b"".join(live.sse(name, html) for name, html in regions.items())
    payload += live.sse("output", {"instance": view["watched"], "reset": True, "text": ""})
    return payload.decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--goal-ms", type=float, default=1000.0, help="issue 6: ~1 s a page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            started = time.perf_counter()
            deployment_id, running_id = fill(store, args.instances)
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
                    "instances.html",
                    views.instances(store, page=1, registered=True, dead_after_seconds=15.0),
                ),
                f"instances page {last_page}": lambda: _page(
                    "instances.html",
                    views.instances(
                        store, page=last_page, registered=True, dead_after_seconds=15.0
                    ),
                ),
                "running deployment": lambda: _page(
                    "deployment.html", views.deployment(store, running_id, page=1, instance=None)
                ),
                "live poll (SSE)": lambda: _live_poll(store, running_id),
                "group page": lambda: _page(
                    "group.html", views.group(store, "bench", "fleet", page=1)
                ),
                "application page": lambda: _page(
                    "application.html", views.application(store, "bench")
                ),
                "home": lambda: _page("home.html", views.home(store, page=1)),
            }
            print(
                f"{'page':<24}{'median ms':>10}{'max ms':>10}{'KiB':>8}  goal"
                f"   ({args.runs} runs, 1 warm-up; goal: max <= {args.goal_ms:.0f} ms)"
            )
            missed = []
            for name, build in pages.items():
                size = len(build().encode()) / 1024
                samples = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    build()
                    samples.append((time.perf_counter() - start) * 1000)
                met = max(samples) <= args.goal_ms
                if not met:
                    missed.append(name)
                print(
                    f"{name:<24}{statistics.median(samples):>10.1f}{max(samples):>10.1f}"
                    f"{size:>8.1f}  {'ok' if met else 'MISSED'}"
                )
            print("goal met by every page" if not missed else f"goal missed: {', '.join(missed)}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
