"""nginx as the load balancer of BlockTraffic and AllowTraffic: a real nginx process, its
upstream block rewritten and reloaded, with traffic running through it.

The end-to-end test deploys in place with traffic control (real server in process, scripted
agents that stop and start real backends) under steady load: 0 failed requests. The driver's
tests check the file it writes, the graceful drain (a slow request in flight holds it), the
health wait, and its refusals (an unchecked configuration, nginx not running).
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors import EffectorError
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
from opendeploy.engine.effectors.nginx import parse_servers, rewrite
from opendeploy.engine.effectors.providers import traffic_controller
from opendeploy.testing.server import free_port
from tests.engine._haproxy import Backend
from tests.engine._nginx import Nginx, address, running_nginx
from tests.engine.agent_sim import Cluster, running_cluster, settings_for
from tests.engine.test_traffic_haproxy import App, _deploy_under_load

LB = LoadBalancerInfo(target_groups=("web",))


class _Quiet:
    def report(self, line: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


@contextmanager
def _fleet(tmp_path: Path, database_url: str, n: int) -> Iterator[tuple[Cluster, Nginx, list[App]]]:
    backends = [Backend(f"web{i}") for i in range(1, n + 1)]
    with ExitStack() as stack:
        for b in backends:
            b.start("v1")
            stack.callback(b.stop)
        proxy = stack.enter_context(running_nginx(tmp_path, backends))
        hosts = {f"host-{i}": address(b) for i, b in enumerate(backends, 1)}
        declaration = tmp_path / "load-balancers.yml"
        declaration.write_text(
            proxy.declaration(hosts, drain_timeout_seconds=10, healthy_timeout_seconds=10)
        )
        settings = settings_for(
            tmp_path,
            database_url,
            agent_dead_after_seconds=120.0,
            event_start_timeout_seconds=120.0,
            load_balancers_file=declaration,
        )
        cluster = stack.enter_context(running_cluster(settings))
        apps = [
            App(cluster.add_instance(host, {"app": "web"}), b)
            for host, b in zip(hosts, backends, strict=True)
        ]
        yield cluster, proxy, apps


def test_in_place_with_traffic_control_through_nginx_loses_no_request(
    tmp_path: Path, sqlite_url: str
) -> None:
    with _fleet(tmp_path, sqlite_url, 2) as (cluster, proxy, apps):
        info, load = _deploy_under_load(cluster, proxy, apps, "CodeDeployDefault.OneAtATime")  # type: ignore[arg-type]
        assert info["status"] == "Succeeded", info.get("errorInformation")
        assert load.failures == [], load.failures[:5]
        assert load.answers["v1"] > 0 and load.answers["v2"] > 0, load.answers
        servers = parse_servers(proxy.upstreams.read_text(), "app", proxy.upstreams)
        assert [s.down for s in servers] == [False, False]
        assert {proxy.get()[1] for _ in range(4)} == {"v2"}
        target = cluster.targets(info["deploymentId"])["host-1"]
        block = next(
            e for e in target["lifecycleEvents"] if e["lifecycleEventName"] == "BlockTraffic"
        )
        where = f"nginx upstream app server {address(apps[0].backend)} down"
        assert block["diagnostics"]["message"].startswith(
            f"host-1 out of target group web ({where}"
        )


def test_weights_block_and_ready_rewrite_the_upstream_and_nginx_follows(tmp_path: Path) -> None:
    backends = [Backend("web1"), Backend("web2")]
    for b in backends:
        b.start(b.name)  # each answers its own name
    try:
        with running_nginx(tmp_path, backends) as proxy:
            path = tmp_path / "lb.yml"
            path.write_text(
                proxy.declaration({"host-1": address(backends[0]), "host-2": address(backends[1])})
            )
            controller = traffic_controller(LoadBalancerDeclarations.load(path))
            message = controller.set_weights(LB, {"host-1": 0, "host-2": 5}, _Quiet())
            assert "host-1 0, host-2 5" in message
            state = {h.host: h for h in controller.state(LB)}
            assert (state["host-1"].serving, state["host-1"].weight) == (False, 0)
            assert (state["host-2"].serving, state["host-2"].weight) == (True, 5)
            assert f"server {address(backends[1])} weight=5;" in proxy.upstreams.read_text()
            _wait_for_answers(proxy, {"web2"})
            # ready puts host-1 back (its weight stays as it was before down: 1).
            assert "host-1 in target group web" in controller.allow("host-1", LB, _Quiet())
            _wait_for_answers(proxy, {"web1", "web2"})
            controller.block("host-2", LB, _Quiet())
            assert not {h.host: h for h in controller.state(LB)}["host-2"].serving
            _wait_for_answers(proxy, {"web1"})
            # A rerun changes nothing but still reloads: idempotent.
            before = proxy.upstreams.read_text()
            controller.block("host-2", LB, _Quiet())
            assert proxy.upstreams.read_text() == before
        # nginx stopped: the step fails naming nginx's configuration and its pid file, and the
        # file is put back (it says what nginx serves).
        before = proxy.upstreams.read_text()
        with pytest.raises(EffectorError, match=r"cannot reach nginx \(.*nginx.conf\): pid file"):
            controller.block("host-1", LB, _Quiet())
        assert proxy.upstreams.read_text() == before
    finally:
        for b in backends:
            b.stop()


def _wait_for_answers(proxy: Nginx, expected: set[str]) -> None:
    """Until nginx's new workers serve: 20 answers in a row from exactly ``expected``."""
    deadline = time.monotonic() + 10
    while True:
        seen = {proxy.get()[1] for _ in range(20)}
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"nginx answers {seen}, expected {expected}"


class _Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hold = 1.0

    def do_GET(self) -> None:
        time.sleep(self.hold)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"slow")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_drain_waits_for_a_request_in_flight_and_a_refused_config_is_put_back(
    tmp_path: Path,
) -> None:
    slow = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Slow)
    threading.Thread(target=slow.serve_forever, daemon=True).start()
    backend = Backend("web1")
    backend.port = slow.server_address[1]
    try:
        with running_nginx(tmp_path, [backend]) as proxy:
            path = tmp_path / "lb.yml"
            path.write_text(proxy.declaration({"host-1": address(backend)}))
            controller = traffic_controller(LoadBalancerDeclarations.load(path))
            answers: list[tuple[int, str]] = []
            request = threading.Thread(target=lambda: answers.append(proxy.get()))
            request.start()
            time.sleep(0.3)  # the request is in flight at nginx's worker
            started = time.monotonic()
            message = controller.block("host-1", LB, _Quiet())
            took = time.monotonic() - started
            request.join(10)
            assert answers == [(200, "slow")]  # finished on the old worker, not cut
            assert took >= 0.5, f"the drain returned after {took:.2f} s, before the request ended"
            assert "down, drained in" in message

            # A configuration nginx refuses: the step fails naming the file, which is put back.
            broken = proxy.prefix / "broken.conf"
            broken.write_text(proxy.config.read_text().replace("events {", "events { nonsense;"))
            spec = {
                "file": str(proxy.upstreams),
                "upstream": "app",
                "config": str(broken),
                "prefix": str(proxy.prefix),
            }
            bad = traffic_controller(
                LoadBalancerDeclarations.parse(
                    {
                        "target_groups": {
                            "web": {"nginx": spec, "servers": {"host-1": address(backend)}}
                        }
                    }
                )
            )
            before = proxy.upstreams.read_text()
            with pytest.raises(EffectorError) as info:
                bad.allow("host-1", LB, _Quiet())
            assert f"refused the configuration after OpenDeploy changed {proxy.upstreams}" in str(
                info.value
            )
            assert "nonsense" in str(info.value)
            assert proxy.upstreams.read_text() == before  # still down: the change was undone
    finally:
        slow.shutdown()
        slow.server_close()


def test_rewrite_keeps_other_parameters_and_names_a_missing_server() -> None:
    text = (
        "# ours\nupstream other { server 10.0.0.9:80; }\n"
        "upstream app {\n    least_conn;\n    server 10.0.0.1:80 max_fails=2 weight=3;\n"
        "    server 10.0.0.2:80 down;\n}\n"
    )
    where = Path("/etc/nginx/conf.d/app.conf")
    out = rewrite(text, "app", where, {"10.0.0.1:80": (True, None), "10.0.0.2:80": (False, 7)})
    assert "server 10.0.0.1:80 max_fails=2 weight=3 down;" in out
    assert "server 10.0.0.2:80 weight=7;" in out
    assert "upstream other { server 10.0.0.9:80; }" in out and "least_conn;" in out
    assert [(s.address, s.down, s.weight) for s in parse_servers(out, "app", where)] == [
        ("10.0.0.1:80", True, 3),
        ("10.0.0.2:80", False, 7),
    ]
    with pytest.raises(
        EffectorError, match="upstream app in /etc/nginx/conf.d/app.conf has no server 10.0.0.9:80"
    ):
        rewrite(text, "app", where, {"10.0.0.9:80": (True, None)})
    with pytest.raises(EffectorError, match="has no 'upstream api"):
        rewrite(text, "api", where, {})


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"nginx": {"file": "/f", "upstream": "app"}}, "expected 'file', 'upstream' and 'config'"),
        (
            {"nginx": {"file": "/f", "upstream": "a", "config": "/c", "health_path": "x"}},
            "health_path: 'x' does not start with /",
        ),
        ({"elbv2": {}}, r"web.elbv2: expected 'target_group' \(the ELBv2 target group's ARN"),
        ({"elbv2": {"target_group": "t"}, "haproxy": {}}, r"\(found haproxy, elbv2\)"),
    ],
)
def test_a_bad_nginx_or_elbv2_declaration_says_where(spec: dict[str, Any], error: str) -> None:
    from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarationError

    with pytest.raises(LoadBalancerDeclarationError, match=error):
        LoadBalancerDeclarations.parse({"target_groups": {"web": spec}}, where="lb.yml")
