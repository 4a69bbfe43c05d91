"""Faults of traffic control: no host is left drained or out of rotation.

A real HAProxy in front of one host whose application holds a request open (until the test lets
it go), so that BlockTraffic's drain is in progress for as long as the test needs:

- the server (a real ``opendeploy server`` process) is SIGKILLed mid-drain and started again:
  the step's lease runs out, the step is run again (draining a draining server: no harm), the
  drain ends when the held request does, and the deployment goes on to put the host back;
- a deployment stopped mid-drain puts the host back (the in-place traffic rule of
  ``engine.platforms.server_in_place``).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opendeploy.engine.effectors.haproxy import RuntimeApi
from opendeploy.testing.server import free_port, running_server
from tests.engine._haproxy import HAProxy, running_haproxy
from tests.engine.agent_sim import S3_V1, Cluster, running_cluster, settings_for
from tests.engine.test_effectors import LB_AGENT_EVENTS


class HeldBackend:
    """One host's application: ``GET /hold`` is answered only once the test releases it."""

    def __init__(self) -> None:
        self.name = "web1"
        self.port = free_port()
        self.release = threading.Event()
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/hold":
                    release.wait(60)
                body = b"v1"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[tuple[HeldBackend, HAProxy, Path]]:
    """The held backend behind a real HAProxy, and the declaration of target group ``web``."""
    backend = HeldBackend()
    try:
        with running_haproxy(tmp_path, [backend]) as proxy:  # type: ignore[list-item]
            declaration = tmp_path / "load-balancers.yml"
            declaration.write_text(
                "target_groups:\n  web:\n"
                f"    haproxy: {{socket: {proxy.socket}, backend: be}}\n"
                "    servers: {host-1: web1}\n"
                "    drain_timeout_seconds: 60\n    healthy_timeout_seconds: 10\n"
            )
            yield backend, proxy, declaration
    finally:
        backend.close()


def _hold_a_request(proxy: HAProxy) -> tuple[threading.Thread, list[int]]:
    """A request in flight through HAProxy to the host, until the backend is released."""
    answers: list[int] = []

    def send() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
        conn.request("GET", "/hold")
        answers.append(conn.getresponse().status)
        conn.close()

    thread = threading.Thread(target=send)
    thread.start()
    _until(lambda: _stat(proxy)["scur"] == "1", "the held request to reach the host")
    return thread, answers


def _stat(proxy: HAProxy) -> dict[str, str]:
    return RuntimeApi(proxy.socket).server_stat("be", "web1")


def _until(ok: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # another process's state: nothing to wait on but polling it


def test_server_killed_mid_drain_runs_the_step_again_and_leaves_no_host_drained(
    tmp_path: Path, held: tuple[HeldBackend, HAProxy, Path]
) -> None:
    backend, proxy, declaration = held
    data = tmp_path / "data"
    args: tuple[str, ...] = ("--poll-timeout", "1", "--agent-dead-after", "60")
    args += ("--step-lease", "1", "--load-balancers", str(declaration))
    with running_server(data, extra_args=args) as srv:
        port = srv.port
        cluster = Cluster(
            srv.endpoint, settings_for(tmp_path, ""), srv.access_key_id, srv.secret_access_key, None
        )
        agent = cluster.add_instance("host-1", {"app": "web"})
        cluster.group("shop", config="CodeDeployDefault.OneAtATime", target_group="web")
        dep = cluster.deploy("shop", S3_V1)
        request, answers = _hold_a_request(proxy)
        assert agent.run(1) == ["BeforeBlockTraffic"]
        _until(lambda: _stat(proxy)["status"] == "DRAIN", "BlockTraffic to drain the server")
        srv.process.kill()  # SIGKILL, mid-drain: the step is left InProgress, its lease held
        srv.process.wait()
    with running_server(data, extra_args=args, port=port) as srv:
        _until(lambda: "event=BlockTraffic rerun=true" in srv.log_text(), "the step's rerun")
        # The rerun drains a draining server (no harm) and waits for the held request.
        assert _stat(proxy)["status"] == "DRAIN"
        backend.release.set()
        request.join(30)
        assert answers == [200]  # the request in flight finished: not cut by the restart
        assert agent.run(len(LB_AGENT_EVENTS) - 1) == LB_AGENT_EVENTS[1:]
        cd = srv.client("codedeploy")
        _until(
            lambda: cd.get_deployment(deploymentId=dep)["deploymentInfo"]["status"] == "Succeeded",
            "the deployment to succeed",
        )
    assert proxy.states() == {"web1": "0"}  # ready: back in rotation
    assert _stat(proxy)["status"].startswith(("UP", "no check"))


def test_a_deployment_stopped_mid_drain_puts_the_host_back(
    tmp_path: Path, sqlite_url: str, held: tuple[HeldBackend, HAProxy, Path]
) -> None:
    backend, proxy, declaration = held
    settings = settings_for(
        tmp_path,
        sqlite_url,
        agent_dead_after_seconds=60.0,
        load_balancers_file=declaration,
        step_lease_seconds=1.0,
    )
    with running_cluster(settings) as cluster:
        agent = cluster.add_instance("host-1", {"app": "web"})
        cluster.group("shop", config="CodeDeployDefault.OneAtATime", target_group="web")
        dep = cluster.deploy("shop", S3_V1)
        request, answers = _hold_a_request(proxy)
        assert agent.run(1) == ["BeforeBlockTraffic"]
        _until(lambda: _stat(proxy)["status"] == "DRAIN", "BlockTraffic to drain the server")
        cluster.cd.stop_deployment(deploymentId=dep, autoRollbackEnabled=False)
        info = cluster.wait_status(dep, "Stopped", timeout=30)
        assert info["errorInformation"]["code"] == "MANUAL_STOP"
        # The drain is given up and the host is put back, the held request still in flight.
        _until(lambda: proxy.states() == {"web1": "0"}, "the host to be put back")
        assert _stat(proxy)["status"].startswith(("UP", "no check"))
        backend.release.set()
        request.join(30)
        assert answers == [200]
        events = {
            e["lifecycleEventName"]: e["status"]
            for e in cluster.targets(dep)["host-1"]["lifecycleEvents"]
        }
        assert (events["BlockTraffic"], events["AllowTraffic"]) == ("Failed", "Skipped")


class GivenUp:
    """The progress of a step the engine gives up as soon as the drain reports."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def report(self, line: str) -> None:
        self.lines.append(line)

    def cancelled(self) -> bool:
        return bool(self.lines)


def test_a_drain_given_up_puts_the_host_back_instead_of_taking_it_out(
    held: tuple[HeldBackend, HAProxy, Path],
) -> None:
    from opendeploy.domain.records import LoadBalancerInfo
    from opendeploy.engine.effectors import EffectorError
    from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
    from opendeploy.engine.effectors.providers import traffic_controller

    _backend, proxy, declaration = held
    controller = traffic_controller(LoadBalancerDeclarations.load(declaration))
    with pytest.raises(EffectorError, match="draining be/web1 was given up"):
        controller.block("host-1", LoadBalancerInfo(target_groups=("web",)), GivenUp())
    assert proxy.states() == {"web1": "0"}  # ready, not maint
