"""Blue/green deployments of servers through a real HAProxy, with steady traffic: not a request
lost, and traffic ends on the fleet that should have it.

One server, one HAProxy and four hosts for the module: set ``a`` (a1, a2) and set ``b`` (b1,
b2), each with its HTTP backend and a scripted agent that answers every command (ApplicationStop
stops the backend, ApplicationStart starts it with the deployment's revision). Set ``a`` serves
first; set ``b`` starts out of rotation. Each test deploys to the set that is out (named by
``targetInstances``), so the fleets swap roles from one test to the next, as blue/green
deployments do in production.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from opendeploy.engine.effectors.haproxy import RuntimeApi
from tests.engine._haproxy import Backend, HAProxy, LoadGenerator, running_haproxy
from tests.engine.agent_sim import ROLE, Cluster, ScriptedAgent, running_cluster, settings_for

#: A host's install: its application is down from ApplicationStop to ApplicationStart.
INSTALL_SECONDS = 0.2
SETS = {"a": ("a1", "a2"), "b": ("b1", "b2")}


def revision(version: str) -> dict[str, Any]:
    return {
        "revisionType": "S3",
        "s3Location": {"bucket": "shop", "key": f"{version}.zip", "bundleType": "zip"},
    }


@dataclass
class Host:
    """A host: its backend, and an agent loop answering every command as the hooks would."""

    agent: ScriptedAgent
    backend: Backend
    #: The event this host's agent fails once (then clears).
    fail_once: str | None = None
    done: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            command = self.agent.poll()
            if command is None:
                continue
            spec = self.agent.spec(command)
            if self.agent.ack(command) in ("Succeeded", "Failed"):
                continue
            name = command["CommandName"]
            if name == self.fail_once:
                self.fail_once = None
                self.agent.complete(command, ok=False)
                continue
            if name == "ApplicationStop":
                self.backend.stop()
            elif name == "Install":
                self._stop.wait(INSTALL_SECONDS)
            elif name == "ApplicationStart":
                self.backend.start(_version(spec))
            self.agent.complete(command)
            self.done.append(name)


def _version(spec: dict[str, Any]) -> str:
    """The revision a deployment specification names (``v2.zip`` → ``v2``)."""
    text = str(spec)
    for word in text.replace("'", " ").replace('"', " ").split():
        if word.endswith(".zip"):
            return word.removesuffix(".zip").rsplit("/", 1)[-1]
    raise AssertionError(f"no revision in {text[:200]}")


@dataclass
class World:
    cluster: Cluster
    proxy: HAProxy
    hosts: dict[str, Host]
    #: Which set serves now.
    live: list[str] = field(default_factory=lambda: ["a"])

    def swap(self) -> tuple[str, str]:
        """(the set that serves, the set to deploy to)."""
        blue = self.live[0]
        return blue, "b" if blue == "a" else "a"

    def answers(self, n: int = 8) -> set[str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.port, timeout=10)
        got = set()
        for _ in range(n):
            conn.request("GET", "/")
            got.add(conn.getresponse().read().decode())
        conn.close()
        return got


def _declaration(path: Path, proxy: HAProxy) -> Path:
    lines = [
        "target_groups:",
        "  web:",
        f"    haproxy: {{socket: {proxy.socket}, backend: be}}",
        "    drain_timeout_seconds: 10",
        "    healthy_timeout_seconds: 10",
        "    servers:",
        *[f"      {h}: {h}" for hosts in SETS.values() for h in hosts],
    ]
    out = path / "load-balancers.yml"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bluegreen")
    backends = {h: Backend(h) for hosts in SETS.values() for h in hosts}
    for h in SETS["a"]:
        backends[h].start("v1")
    with ExitStack() as stack:
        for b in backends.values():
            stack.callback(b.stop)
        proxy = stack.enter_context(
            # balance random: a pool's share follows its weights at once (roundrobin answers a
            # raised weight with a catch-up burst first, components.md §A).
            running_haproxy(
                tmp, list(backends.values()), disabled=frozenset(SETS["b"]), balance="random"
            )
        )
        settings = settings_for(
            tmp,
            f"sqlite:///{tmp / 'opendeploy.db'}",
            agent_dead_after_seconds=120.0,
            event_start_timeout_seconds=120.0,
            load_balancers_file=_declaration(tmp, proxy),
            minute_seconds=0.5,
            poll_timeout_seconds=0.5,  # the agent loops notice the module's end sooner
        )
        cluster = stack.enter_context(running_cluster(settings))
        hosts = {
            h: Host(cluster.add_instance(h, {"app": "shop", "set": s}), backends[h])
            for s, names in SETS.items()
            for h in names
        }
        threads = [host.start() for host in hosts.values()]
        for host in hosts.values():
            stack.callback(host.stop)
        cluster.cd.create_application(applicationName="shop")
        yield World(cluster, proxy, hosts)
        for host in hosts.values():
            host.stop()
        for t in threads:
            t.join(10)


def _group(w: World, name: str, config: str, **extra: Any) -> None:
    w.cluster.cd.create_deployment_group(
        applicationName="shop",
        deploymentGroupName=name,
        serviceRoleArn=ROLE,
        deploymentConfigName=config,
        onPremisesInstanceTagFilters=[{"Key": "app", "Value": "shop", "Type": "KEY_AND_VALUE"}],
        deploymentStyle={
            "deploymentType": "BLUE_GREEN",
            "deploymentOption": "WITH_TRAFFIC_CONTROL",
        },
        loadBalancerInfo={"targetGroupInfoList": [{"name": "web"}]},
        **extra,
    )


def _deploy(w: World, group: str, version: str, green: str) -> str:
    answer = w.cluster.cd.create_deployment(
        applicationName="shop",
        deploymentGroupName=group,
        revision=revision(version),
        targetInstances={"tagFilters": [{"Key": "set", "Value": green, "Type": "KEY_AND_VALUE"}]},
    )
    return str(answer["deploymentId"])


def _serving(w: World) -> dict[str, bool]:
    """Server -> whether HAProxy sends it requests (``show stat`` status UP, or ``no check``:
    no health checks configured; MAINT and DRAIN are out)."""
    rows = RuntimeApi(w.proxy.socket).stat_rows(w.proxy.backend)
    return {r["svname"]: r["status"].startswith(("UP", "no check")) for r in rows}


def test_blue_green_moves_traffic_to_green_without_losing_a_request(world: World) -> None:
    """AllAtOnce with no wait (HalfAtATime runs in the Ready-wait test below)."""
    w, config, version = world, "CodeDeployDefault.AllAtOnce", "v2"
    blue, green = w.swap()
    group = f"bg-{version}"
    _group(w, group, config)
    with LoadGenerator(w.proxy.port) as load:
        dep = _deploy(w, group, version, green)
        info = w.cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=120)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert load.failures == [], load.failures[:5]
    assert load.answers[version] > 0, load.answers
    assert w.answers() == {version}
    serving = _serving(w)
    assert all(serving[h] for h in SETS[green]) and not any(serving[h] for h in SETS[blue])
    assert info["deploymentOverview"]["Succeeded"] == 4
    assert any("were kept (KEEP_ALIVE)" in m for m in info["deploymentStatusMessages"])
    w.live[0] = green


def test_ready_wait_holds_traffic_until_continue_deployment(world: World) -> None:
    w = world
    blue, green = w.swap()
    before = w.answers()
    _group(
        w,
        "bg-ready",
        "CodeDeployDefault.HalfAtATime",
        blueGreenDeploymentConfiguration={
            "deploymentReadyOption": {"actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 60}
        },
    )
    cd = w.cluster.cd
    with LoadGenerator(w.proxy.port) as load:
        dep = _deploy(w, "bg-ready", "v4", green)
        ready = w.cluster.wait_status(dep, "Ready", "Failed", "Stopped", timeout=120)
        assert ready["status"] == "Ready", ready.get("errorInformation")
        assert ready["deploymentOverview"]["Ready"] == 2
        # Green is installed and out of rotation: every answer still comes from blue.
        assert w.answers() == before
        assert not any(_serving(w)[h] for h in SETS[green])
        cd.continue_deployment(deploymentId=dep, deploymentWaitType="READY_WAIT")
        info = w.cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=120)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert load.failures == [], load.failures[:5]
    assert w.answers() == {"v4"}
    w.live[0] = green


def test_a_failed_blue_green_deployment_rolls_traffic_back_to_blue(world: World) -> None:
    w = world
    blue, green = w.swap()
    before = w.answers()
    _group(
        w,
        "bg-rollback",
        "CodeDeployDefault.AllAtOnce",
        autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
    )
    # Green takes traffic, then blocking traffic on one blue host fails: the deployment fails
    # with green in rotation, and its rollback puts traffic back on blue.
    w.hosts[SETS[blue][0]].fail_once = "BeforeBlockTraffic"
    cd = w.cluster.cd
    with LoadGenerator(w.proxy.port) as load:
        dep = _deploy(w, "bg-rollback", "v5", green)
        info = w.cluster.wait_status(dep, "Failed", "Succeeded", "Stopped", timeout=120)
        assert info["status"] == "Failed", info
        rollback = info["rollbackInfo"]["rollbackDeploymentId"]
        done = w.cluster.wait_status(rollback, "Succeeded", "Failed", "Stopped", timeout=120)
    assert done["status"] == "Succeeded", done.get("errorInformation")
    assert load.failures == [], load.failures[:5]
    assert load.answers["v5"] > 0, load.answers  # green did take traffic before the rollback
    assert w.answers() == before
    serving = _serving(w)
    assert all(serving[h] for h in SETS[blue]) and not any(serving[h] for h in SETS[green])
    # Nothing was installed by the rollback: blue only took traffic back, green gave it up.
    targets = w.cluster.targets(rollback)
    events = {
        h: [e["lifecycleEventName"] for e in t["lifecycleEvents"]] for h, t in targets.items()
    }
    assert events[SETS[blue][0]] == ["BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"]
    assert events[SETS[green][0]] == ["BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic"]
    assert {t["instanceLabel"] for t in targets.values()} == {"Blue", "Green"}
    assert cd.get_deployment(deploymentId=rollback)["deploymentInfo"]["creator"] == (
        "codeDeployRollback"
    )


def _sample(port: int, count: int, threads: int = 6) -> Counter[str]:
    """``count`` answers through the load balancer, from ``threads`` connections at once."""
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def run(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(n):
            conn.request("GET", "/")
            body = conn.getresponse().read().decode()
            with lock:
                got[body] += 1
        conn.close()

    workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return got


def test_a_server_canary_sends_the_scheduled_share_to_green(world: World) -> None:
    """Beyond AWS: a Server configuration with a TimeBasedCanary shifts 10 % of the requests to
    green for the interval, then the rest; measured through HAProxy (balance random)."""
    w = world
    blue, green = w.swap()
    cd = w.cluster.cd
    # 6 minutes of 0.5 s: 3 s at 10 %.
    canary = {"canaryPercentage": 10, "canaryInterval": 6}
    cd.create_deployment_config(
        deploymentConfigName="shop-canary",
        computePlatform="Server",
        minimumHealthyHosts={"type": "FLEET_PERCENT", "value": 0},
        trafficRoutingConfig={"type": "TimeBasedCanary", "timeBasedCanary": canary},
    )
    _group(w, "bg-canary", "shop-canary")
    api = RuntimeApi(w.proxy.socket)

    def weights() -> dict[str, int]:
        return {r["svname"]: int(r["weight"]) for r in api.stat_rows(w.proxy.backend)}

    with LoadGenerator(w.proxy.port) as load:
        dep = _deploy(w, "bg-canary", "v6", green)
        # The canary step: green in the pool with a weight, blue still serving.
        deadline = time.monotonic() + 60
        while not (
            all(weights()[h] > 0 for h in SETS[green]) and all(_serving(w)[h] for h in SETS[blue])
        ):
            assert time.monotonic() < deadline, weights()
            time.sleep(0.02)
        during = _sample(w.proxy.port, 300)
        info = w.cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=120)
    assert info["status"] == "Succeeded", info.get("errorInformation")
    assert load.failures == [], load.failures[:5]
    share = 100 * during["v6"] / sum(during.values())
    assert abs(share - 10) <= 5, (share, during)
    assert w.answers(20) == {"v6"}
    target = w.cluster.targets(dep)[min(SETS[green])]
    allow = next(e for e in target["lifecycleEvents"] if e["lifecycleEventName"] == "AllowTraffic")
    assert "10% → 100%" in allow["diagnostics"]["message"], allow["diagnostics"]
    w.live[0] = green
