"""Server steps end to end: BlockTraffic and AllowTraffic go to the server's effector runner,
never to an agent, in their place in the lifecycle; a failed step fails its instance; a step
whose outcome was never written (the runner died after the effector did its work) is run again
and does no harm. Real server (in process, real sockets), scripted agents, both databases.

The load balancer here is a recording stand-in for the :class:`TrafficController` protocol
(the real providers come with their own tests); what is under test is the engine's side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import EffectorError, ServerStep, StepOutcome, StepProgress
from opendeploy.engine.effectors.traffic import HostTraffic
from opendeploy.store.server_steps import ServerSteps
from tests.engine.agent_sim import (
    AGENT_EVENTS,
    S3_V1,
    Cluster,
    ScriptedAgent,
    running_cluster,
    settings_for,
)

#: The hooks an agent runs with traffic control (the six traffic events less the server's two).
LB_AGENT_EVENTS = ["BeforeBlockTraffic", "AfterBlockTraffic", *AGENT_EVENTS]
LB_AGENT_EVENTS += ["BeforeAllowTraffic", "AfterAllowTraffic"]


class Pool:
    """A load balancer's pool as a :class:`TrafficController`: hosts in or out, every call
    recorded; ``refuse`` names hosts whose drain fails."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.in_pool: dict[str, bool] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        with self._lock:
            self.calls.append(("block", host))
            if host in self.refuse:
                raise EffectorError(f"{lb.describe()} would not drain {host}")
            self.in_pool[host] = False
        progress.report(f"{host} drained")
        return f"{host} out of {lb.describe()}"

    def allow(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        with self._lock:
            self.calls.append(("allow", host))
            self.in_pool[host] = True
        return f"{host} back in {lb.describe()}"

    def set_weights(
        self, lb: LoadBalancerInfo, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        with self._lock:
            self.calls.extend(("weight", f"{host}={w}") for host, w in weights.items())
        return f"weights set in {lb.describe()}"

    def state(self, lb: LoadBalancerInfo) -> list[HostTraffic]:
        with self._lock:
            return [
                HostTraffic(lb.describe(), host, serving, "in" if serving else "out")
                for host, serving in self.in_pool.items()
            ]


@pytest.fixture
def pool() -> Pool:
    return Pool()


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, pool: Pool) -> Iterator[Cluster]:
    settings = settings_for(tmp_path, database_url, step_lease_seconds=1.5)
    with running_cluster(settings, traffic=pool) as c:
        yield c


def _events(cluster: Cluster, dep: str, host: str) -> dict[str, dict[str, Any]]:
    target = cluster.targets(dep)[host]
    return {e["lifecycleEventName"]: e for e in target["lifecycleEvents"]}


def _run_all(agents: list[ScriptedAgent], count: int, fail: str | None = None) -> None:
    with ThreadPoolExecutor(len(agents)) as pool:
        for f in [pool.submit(a.run, count, fail) for a in agents]:
            f.result(timeout=60)


def test_traffic_steps_run_on_the_server_in_lifecycle_order(cluster: Cluster, pool: Pool) -> None:
    agents = [cluster.add_instance(f"web-{i}", {"app": "web"}) for i in (1, 2)]
    cluster.group("shop", target_group="tg-web")
    dep = cluster.deploy("shop", S3_V1)
    _run_all(agents, len(LB_AGENT_EVENTS))
    cluster.wait_status(dep, "Succeeded")
    # The agents never saw the server's steps.
    for agent in agents:
        assert [e for _, e in agent.log] == LB_AGENT_EVENTS
    # One at a time: each host out, then back in, before the next one starts.
    assert pool.calls == [
        ("block", "web-1"),
        ("allow", "web-1"),
        ("block", "web-2"),
        ("allow", "web-2"),
    ]
    assert pool.in_pool == {"web-1": True, "web-2": True}
    for host in ("web-1", "web-2"):
        events = _events(cluster, dep, host)
        assert list(events)[:3] == ["BeforeBlockTraffic", "BlockTraffic", "AfterBlockTraffic"]
        assert list(events)[-3:] == ["BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic"]
        assert all(e["status"] == "Succeeded" for e in events.values())
        block = events["BlockTraffic"]
        assert block["diagnostics"]["message"] == f"{host} out of target group tg-web"
        # In order: the step ran after the hook before it and before the hook after it.
        before, after = events["BeforeBlockTraffic"], events["AfterBlockTraffic"]
        assert before["endTime"] <= block["startTime"] <= block["endTime"] <= after["startTime"]
    # Its progress lines are the event's output, as a hook's are.
    out = cluster.server.store.commands.output(dep, "web-1")
    block_out = [c["output"] for c in out if c["lifecycle_event"] == "BlockTraffic"]
    assert block_out == ["web-1 drained\n"]


def test_a_failed_server_step_fails_its_instance(tmp_path: Path, database_url: str) -> None:
    pool = Pool(refuse=frozenset({"web-1"}))
    settings = settings_for(tmp_path, database_url)
    with running_cluster(settings, traffic=pool) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop", target_group="tg-web")
        dep = cluster.deploy("shop", S3_V1)
        assert agent.run(1) == ["BeforeBlockTraffic"]
        info = cluster.wait_status(dep, "Failed")
        assert info["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"
        events = _events(cluster, dep, "web-1")
        block = events["BlockTraffic"]
        assert block["status"] == "Failed"
        assert block["diagnostics"]["errorCode"] == "UnknownError"
        assert block["diagnostics"]["message"] == (
            "BlockTraffic for web-1 failed: target group tg-web would not drain web-1"
        )
        assert events["AfterBlockTraffic"]["status"] == "Skipped"
        assert events["ApplicationStop"]["status"] == "Skipped"


def test_a_step_whose_outcome_was_lost_is_run_again_harmlessly(
    cluster: Cluster, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner dies (here: its write fails) after the load balancer did the work and before
    the outcome was written: once the step's lease runs out, it is taken up and run again."""
    real_report = ServerSteps.report
    lost: list[ServerStep] = []

    def report_once_lost(
        self: ServerSteps, step: ServerStep, outcome: StepOutcome, now: Any
    ) -> bool:
        if not lost:
            lost.append(step)
            raise ConnectionError("the database went away before the outcome was written")
        return real_report(self, step, outcome, now)

    monkeypatch.setattr(ServerSteps, "report", report_once_lost)
    agent = cluster.add_instance("web-1", {"app": "web"})
    cluster.group("shop", target_group="tg-web")
    dep = cluster.deploy("shop", S3_V1)
    agent.run(len(LB_AGENT_EVENTS))
    cluster.wait_status(dep, "Succeeded")
    assert [s.event for s in lost] == ["BlockTraffic"] and not lost[0].rerun
    # Run twice (the second time as a rerun), with the same end state and one event.
    assert pool.calls == [("block", "web-1"), ("block", "web-1"), ("allow", "web-1")]
    assert pool.in_pool == {"web-1": True}
    events = _events(cluster, dep, "web-1")
    assert events["BlockTraffic"]["status"] == "Succeeded"
    assert [e for _, e in agent.log] == LB_AGENT_EVENTS


class DrainingPool(Pool):
    """A drain that lasts until the step is cancelled, reporting progress as it waits."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = threading.Event()
        self.saw_cancel = threading.Event()

    def block(self, host: str, lb: LoadBalancerInfo, progress: StepProgress) -> str:
        self.draining.set()
        while not progress.cancelled():
            progress.report(f"{host}: 3 sessions still open")
            self.saw_cancel.wait(0.05)  # a real drain polls the load balancer like this
        self.saw_cancel.set()
        raise EffectorError("cancelled while draining")


def test_a_stop_cancels_a_running_server_step(tmp_path: Path, database_url: str) -> None:
    pool = DrainingPool()
    settings = settings_for(tmp_path, database_url)
    with running_cluster(settings, traffic=pool) as cluster:
        agent = cluster.add_instance("web-1", {"app": "web"})
        cluster.group("shop", target_group="tg-web")
        dep = cluster.deploy("shop", S3_V1)
        assert agent.run(1) == ["BeforeBlockTraffic"]
        assert pool.draining.wait(30)
        cluster.cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=False)
        info = cluster.wait_status(dep, "Stopped")
        assert info["errorInformation"]["code"] == "MANUAL_STOP"
        assert pool.saw_cancel.wait(30), "the effector was not told its step was given up"
        block = _events(cluster, dep, "web-1")["BlockTraffic"]
        assert block["status"] == "Failed"
        assert block["diagnostics"]["message"] == "The deployment was stopped by a user request."
        out = cluster.server.store.commands.output(dep, "web-1")
        progress = [c["output"] for c in out if c["lifecycle_event"] == "BlockTraffic"][0]
        assert progress.startswith("web-1: 3 sessions still open\n")
