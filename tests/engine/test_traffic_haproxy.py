"""In-place deployments with traffic control through a real HAProxy, with steady traffic: not a
request lost. BlockTraffic drains each host's server (in-flight requests finish) before its
agent stops the application, and AllowTraffic readies it once the new revision runs.

Real server (in process), real HAProxy process, real HTTP backends that the scripted agents stop
and start at ApplicationStop/ApplicationStart, and a load generator through HAProxy for the
whole deployment. The same deployment without the load balancer declared loses requests (the
test that shows the check can fail).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.engine._haproxy import Backend, HAProxy, LoadGenerator, running_haproxy
from tests.engine.agent_sim import S3_V1, Cluster, ScriptedAgent, running_cluster, settings_for
from tests.engine.test_effectors import LB_AGENT_EVENTS

#: How long a host's Install takes: its application is down from ApplicationStop to
#: ApplicationStart, long enough for requests sent to it to fail if it were still in rotation.
INSTALL_SECONDS = 0.3


class App:
    """A host: its backend, and its agent, which stops and starts the backend as hooks do."""

    def __init__(self, agent: ScriptedAgent, backend: Backend) -> None:
        self.agent, self.backend = agent, backend

    def run(self, count: int, revision: str) -> None:
        done = 0
        while done < count:
            command = self.agent.poll()
            if command is None:
                continue
            self.agent.spec(command)
            if self.agent.ack(command) in ("Succeeded", "Failed"):
                continue
            name = command["CommandName"]
            if name == "ApplicationStop":
                self.backend.stop()
            elif name == "Install":
                threading.Event().wait(INSTALL_SECONDS)  # the install's own work
            elif name == "ApplicationStart":
                self.backend.start(revision)
            self.agent.complete(command)
            self.agent.log.append((command["DeploymentExecutionId"], name))
            done += 1


def _declaration(tmp_path: Path, proxy: HAProxy, servers: dict[str, str]) -> Path:
    lines = [
        "target_groups:",
        "  web:",
        f"    haproxy: {{socket: {proxy.socket}, backend: be}}",
        "    drain_timeout_seconds: 10",
        "    healthy_timeout_seconds: 10",
        "    servers:",
        *[f"      {host}: {server}" for host, server in servers.items()],
    ]
    path = tmp_path / "load-balancers.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fleet_of(tmp_path: Path, sqlite_url: str) -> Any:
    """``fleet_of(n, declared=True)``: n backends behind a real HAProxy and a server (with the
    HAProxy declared as target group ``web``, or not), as a context manager."""
    from contextlib import ExitStack, contextmanager

    @contextmanager
    def fleet(n: int, declared: bool = True) -> Iterator[tuple[Cluster, HAProxy, list[App]]]:
        backends = [Backend(f"web{i}") for i in range(1, n + 1)]
        for b in backends:
            b.start("v1")
        with ExitStack() as stack:
            for b in backends:
                stack.callback(b.stop)
            proxy = stack.enter_context(running_haproxy(tmp_path, backends))
            hosts = {f"host-{i}": f"web{i}" for i in range(1, n + 1)}
            extra: dict[str, Any] = {}
            if declared:
                extra["load_balancers_file"] = _declaration(tmp_path, proxy, hosts)
            # Wide windows: on a loaded machine a slow pass must not read as a dead agent.
            settings = settings_for(
                tmp_path,
                sqlite_url,
                agent_dead_after_seconds=120.0,
                event_start_timeout_seconds=120.0,
                **extra,
            )
            cluster = stack.enter_context(running_cluster(settings))
            apps = [
                App(cluster.add_instance(host, {"app": "web"}), b)
                for host, b in zip(hosts, backends, strict=True)
            ]
            yield cluster, proxy, apps

    return fleet


def _event(target: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in target["lifecycleEvents"] if e["lifecycleEventName"] == name)


def _deploy_under_load(
    cluster: Cluster, proxy: HAProxy, apps: list[App], config: str
) -> tuple[dict[str, Any], LoadGenerator]:
    cluster.group("shop", config=config, target_group="web")
    with LoadGenerator(proxy.port) as load:
        dep = cluster.deploy("shop", S3_V1)
        threads = [threading.Thread(target=a.run, args=(len(LB_AGENT_EVENTS), "v2")) for a in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        info = cluster.wait_status(dep, "Succeeded", "Failed", "Stopped", timeout=120)
    return info, load


@pytest.mark.parametrize(
    ("config", "hosts"),
    [("CodeDeployDefault.OneAtATime", 2), ("CodeDeployDefault.HalfAtATime", 4)],
)
def test_in_place_with_traffic_control_loses_no_request(
    fleet_of: Any, config: str, hosts: int
) -> None:
    with fleet_of(hosts) as (cluster, proxy, apps):
        info, load = _deploy_under_load(cluster, proxy, apps, config)
        assert info["status"] == "Succeeded", info.get("errorInformation")
        assert load.failures == [], load.failures[:5]
        assert load.answers["v1"] > 0 and load.answers["v2"] > 0, load.answers
        # Every server is back in rotation, and the load balancer now serves the new revision.
        assert set(proxy.states().values()) == {"0"}, proxy.states()
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        answers = set()
        for _ in range(2 * hosts):
            conn.request("GET", "/")
            answers.add(conn.getresponse().read().decode())
        conn.close()
        assert answers == {"v2"}
        target = cluster.targets(info["deploymentId"])["host-1"]
        block = next(
            e for e in target["lifecycleEvents"] if e["lifecycleEventName"] == "BlockTraffic"
        )
        assert block["diagnostics"]["message"].startswith(
            "host-1 out of target group web (HAProxy be/web1, drained in"
        )


def test_without_traffic_control_requests_are_lost(fleet_of: Any) -> None:
    """The control: the same deployment with nothing draining the hosts loses requests, so the
    zero above is the traffic steps' doing."""
    with fleet_of(2, declared=False) as (cluster, proxy, apps):
        info, load = _deploy_under_load(cluster, proxy, apps, "CodeDeployDefault.OneAtATime")
        assert info["status"] == "Succeeded"
        assert load.failures, f"no request failed in {load.total}: the check cannot fail"


def test_an_undeclared_target_group_is_refused(fleet_of: Any) -> None:
    with fleet_of(1) as (cluster, _proxy, _apps):
        cluster.cd.create_application(applicationName="shop")
        with pytest.raises(ClientError) as info:
            cluster.cd.create_deployment_group(
                applicationName="shop",
                deploymentGroupName="prod",
                serviceRoleArn="arn:aws:iam::123456789012:role/cd",
                loadBalancerInfo={"targetGroupInfoList": [{"name": "api"}]},
            )
        error = info.value.response["Error"]
        assert error["Code"] == "InvalidLoadBalancerInfoException"
        assert "Target group api is not declared on this server" in error["Message"]
        assert "declared target groups: web" in error["Message"]


def test_an_unreachable_load_balancer_fails_the_step_with_its_address(fleet_of: Any) -> None:
    with fleet_of(1) as (cluster, proxy, apps):
        proxy.process.terminate()
        proxy.process.wait(10)
        cluster.group("shop", target_group="web")
        dep = cluster.deploy("shop", S3_V1)
        apps[0].run(1, "v2")  # BeforeBlockTraffic
        info = cluster.wait_status(dep, "Failed", timeout=30)
        target = cluster.targets(dep)["host-1"]
        block = next(
            e for e in target["lifecycleEvents"] if e["lifecycleEventName"] == "BlockTraffic"
        )
        assert block["status"] == "Failed"
        message = block["diagnostics"]["message"]
        assert message.startswith(
            "BlockTraffic for host-1 failed: cannot reach HAProxy's runtime API"
        )
        assert str(proxy.socket) in message
        assert info["errorInformation"]["code"] == "HEALTH_CONSTRAINTS"


class _Quiet:
    def report(self, line: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def test_the_haproxy_driver_sets_weights_and_reads_back_each_host(tmp_path: Path) -> None:
    from opendeploy.domain.records import LoadBalancerInfo
    from opendeploy.engine.effectors import EffectorError
    from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
    from opendeploy.engine.effectors.providers import traffic_controller

    backends = [Backend("web1"), Backend("web2")]
    for b in backends:
        b.start(b.name)  # each answers its own name
    try:
        with running_haproxy(tmp_path, backends) as proxy:
            declared = LoadBalancerDeclarations.load(
                _declaration(tmp_path, proxy, {"host-1": "web1", "host-2": "web2"})
            )
            controller = traffic_controller(declared)
            lb = LoadBalancerInfo(target_groups=("web",))
            message = controller.set_weights(lb, {"host-1": 0, "host-2": 200}, _Quiet())
            assert "host-1 0, host-2 200" in message
            state = {h.host: h for h in controller.state(lb)}
            assert (state["host-1"].weight, state["host-1"].serving) == (0, False)
            assert (state["host-2"].weight, state["host-2"].serving) == (200, True)
            with LoadGenerator(proxy.port) as load:
                while load.total < 50:
                    threading.Event().wait(0.01)
            assert load.failures == [] and set(load.answers) == {"web2"}, load.answers
            controller.block("host-2", lb, _Quiet())
            assert not {h.host: h for h in controller.state(lb)}["host-2"].serving
            with pytest.raises(EffectorError, match="outside 0..256"):
                controller.set_weights(lb, {"host-1": 300}, _Quiet())
    finally:
        for b in backends:
            b.stop()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"servers": {}}, "exactly one provider key of haproxy"),
        ({"haproxy": {"socket": "/s"}}, r"target_groups.web.haproxy: expected 'socket' and"),
        ({"haproxy": "x"}, "target_groups.web.haproxy: expected a mapping"),
    ],
)
def test_a_bad_target_group_declaration_says_where(spec: dict[str, Any], error: str) -> None:
    from opendeploy.engine.effectors.load_balancers import (
        LoadBalancerDeclarationError,
        LoadBalancerDeclarations,
    )

    with pytest.raises(LoadBalancerDeclarationError, match=error):
        LoadBalancerDeclarations.parse({"target_groups": {"web": spec}}, where="lb.yml")
