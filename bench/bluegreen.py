"""Blue/green through a real HAProxy: 10 blue and 10 green hosts, steady traffic throughout.

A real ``opendeploy server`` (in this process, on a loopback port, SQLite), a real HAProxy with
the 20 hosts' HTTP backends (the green ones out of rotation at first), and for each host a
scripted agent speaking the Command API over HTTP (ApplicationStop stops its backend,
ApplicationStart starts it with the new revision; no bundle is downloaded: this measures the
server's and the load balancer's part). A load generator sends requests back to back through
HAProxy for the whole run. Each run deploys to the fleet that is out, so the fleets swap roles.

Figures:
- create → Succeeded of a blue/green AllAtOnce deployment with no waits (CreateDeployment to the
  ``completeTime`` the server recorded); target under 3 s on this 2-core machine;
- failed requests through HAProxy during each deployment; target 0;
- ContinueDeployment → all traffic on green: a STOP_DEPLOYMENT deployment waits in Ready, then
  the clock runs from the ContinueDeployment call until HAProxy has every green server UP and
  every blue one out (MAINT), polled every 10 ms.

    python bench/bluegreen.py [--runs 3] [--hosts 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.engine._haproxy import Backend, LoadGenerator, running_haproxy  # noqa: E402
from tests.engine.agent_sim import ROLE, running_cluster, settings_for  # noqa: E402
from tests.engine.test_blue_green_haproxy import Host, revision  # noqa: E402

from opendeploy.engine.effectors.haproxy import RuntimeApi  # noqa: E402

TARGET_SECONDS = 3.0


def _declaration(path: Path, socket: Path, hosts: list[str]) -> Path:
    lines = [
        "target_groups:",
        "  web:",
        f"    haproxy: {{socket: {socket}, backend: be}}",
        "    servers:",
        *[f"      {h}: {h}" for h in hosts],
    ]
    out = path / "load-balancers.yml"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=10, help="hosts per fleet")
    args = parser.parse_args()
    sets = {s: [f"{s}{i:02d}" for i in range(1, args.hosts + 1)] for s in ("a", "b")}
    everyone = [h for hosts in sets.values() for h in hosts]
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        backends = {h: Backend(h) for h in everyone}
        for h in sets["a"]:
            backends[h].start("v0")
        for b in backends.values():
            stack.callback(b.stop)
        proxy = stack.enter_context(
            running_haproxy(tmp, list(backends.values()), disabled=frozenset(sets["b"]))
        )
        settings = settings_for(
            tmp,
            f"sqlite:///{tmp / 'opendeploy.db'}",
            agent_dead_after_seconds=120.0,
            event_start_timeout_seconds=120.0,
            load_balancers_file=_declaration(tmp, proxy.socket, everyone),
            poll_timeout_seconds=1.0,
        )
        cluster = stack.enter_context(running_cluster(settings))
        hosts = {}
        for s, names in sets.items():
            for h in names:
                hosts[h] = Host(cluster.add_instance(h, {"app": "shop", "set": s}), backends[h])
        for host in hosts.values():
            host.start()
            stack.callback(host.stop)
        cd = cluster.cd
        cd.create_application(applicationName="shop")
        style = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
        common: dict[str, Any] = {
            "applicationName": "shop",
            "serviceRoleArn": ROLE,
            "deploymentConfigName": "CodeDeployDefault.AllAtOnce",
            "onPremisesInstanceTagFilters": [
                {"Key": "app", "Value": "shop", "Type": "KEY_AND_VALUE"}
            ],
            "deploymentStyle": style,
            "loadBalancerInfo": {"targetGroupInfoList": [{"name": "web"}]},
        }
        cd.create_deployment_group(deploymentGroupName="now", **common)
        cd.create_deployment_group(
            deploymentGroupName="wait",
            blueGreenDeploymentConfiguration={
                "deploymentReadyOption": {
                    "actionOnTimeout": "STOP_DEPLOYMENT",
                    "waitTimeInMinutes": 60,
                }
            },
            **common,
        )
        api = RuntimeApi(proxy.socket)
        live = "a"
        version = 0

        def deploy(group: str) -> tuple[str, str, str]:
            nonlocal version
            version += 1
            green = "b" if live == "a" else "a"
            dep = cd.create_deployment(
                applicationName="shop",
                deploymentGroupName=group,
                revision=revision(f"v{version}"),
                targetInstances={
                    "tagFilters": [{"Key": "set", "Value": green, "Type": "KEY_AND_VALUE"}]
                },
            )["deploymentId"]
            return str(dep), live, green

        def all_on(green: str, blue: str) -> bool:
            rows = {r["svname"]: r["status"] for r in api.stat_rows("be")}
            return all(rows[h].startswith(("UP", "no check")) for h in sets[green]) and all(
                rows[h].startswith("MAINT") for h in sets[blue]
            )

        create_to_done: list[float] = []
        continue_to_green: list[float] = []
        failures: list[int] = []
        requests = 0
        print(f"blue/green, {args.hosts} blue + {args.hosts} green hosts behind HAProxy")
        for run in range(args.runs):
            with LoadGenerator(proxy.port) as load:
                dep, blue, green = deploy("now")
                info = cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=300)
            if info["status"] != "Succeeded":
                sys.exit(f"{dep}: {info['status']} {info.get('errorInformation')}")
            took = (info["completeTime"] - info["createTime"]).total_seconds()
            create_to_done.append(took)
            failures.append(len(load.failures))
            requests += load.total
            live = green
            print(
                f"  run {run + 1}: AllAtOnce create → Succeeded {took:.2f} s, "
                f"{len(load.failures)} failed of {load.total} requests"
            )
            with LoadGenerator(proxy.port) as load:
                dep, blue, green = deploy("wait")
                cluster.wait_status(dep, "Ready", "Failed", "Stopped", timeout=300)
                started = time.perf_counter()
                cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT")
                while not all_on(green, blue):
                    time.sleep(0.01)
                moved = time.perf_counter() - started
                info = cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=300)
            if info["status"] != "Succeeded":
                sys.exit(f"{dep}: {info['status']} {info.get('errorInformation')}")
            continue_to_green.append(moved)
            failures.append(len(load.failures))
            requests += load.total
            live = green
            print(
                f"  run {run + 1}: ContinueDeployment → all traffic on green {moved:.2f} s, "
                f"{len(load.failures)} failed of {load.total} requests"
            )
        median = statistics.median(create_to_done)
        verdict = "met" if median < TARGET_SECONDS else "MISSED"
        print(
            f"create → Succeeded (AllAtOnce, no waits): median {median:.2f} s, "
            f"max {max(create_to_done):.2f} s (target < {TARGET_SECONDS:g} s: {verdict})"
        )
        print(
            f"ContinueDeployment → all traffic on green: median "
            f"{statistics.median(continue_to_green):.2f} s, max {max(continue_to_green):.2f} s"
        )
        print(f"failed requests: {sum(failures)} of {requests} (target 0)")
        threading.Event().wait(0.1)


if __name__ == "__main__":
    main()
