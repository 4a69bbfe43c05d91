"""How long BlockTraffic and AllowTraffic take through each load balancer provider, on one host.

Real HAProxy and nginx processes (the test helpers' configurations) in front of idle backends,
and a ``moto_server`` standing in for Elastic Load Balancing v2 (it drains at once and reports
every target healthy: its figures are the provider's own overhead, boto3 included). Each cycle
takes the host out and puts it back through the provider's driver, as the server's effector
does; the figures are the median and 95th percentile of each half.

    PYTHONPATH=src python bench/traffic_providers.py [--cycles 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opendeploy.domain.records import LoadBalancerInfo
from opendeploy.engine.effectors.load_balancers import LoadBalancerDeclarations
from opendeploy.engine.effectors.providers import traffic_controller
from opendeploy.engine.effectors.traffic import TrafficController

LB = LoadBalancerInfo(target_groups=("web",))


class _Quiet:
    def report(self, line: str) -> None:
        pass

    def cancelled(self) -> bool:
        return False


@contextmanager
def _haproxy(tmp: Path) -> Iterator[TrafficController]:
    from tests.engine._haproxy import Backend, running_haproxy

    backend = Backend("web1")
    backend.start()
    try:
        with running_haproxy(tmp, [backend]) as proxy:
            spec = {
                "haproxy": {"socket": str(proxy.socket), "backend": "be"},
                "servers": {"host-1": "web1"},
            }
            yield traffic_controller(
                LoadBalancerDeclarations.parse({"target_groups": {"web": spec}})
            )
    finally:
        backend.stop()


@contextmanager
def _nginx(tmp: Path) -> Iterator[TrafficController]:
    from tests.engine._haproxy import Backend
    from tests.engine._nginx import address, running_nginx

    backend = Backend("web1")
    backend.start()
    try:
        with running_nginx(tmp, [backend]) as proxy:
            path = tmp / "lb.yml"
            path.write_text(proxy.declaration({"host-1": address(backend)}))
            yield traffic_controller(LoadBalancerDeclarations.load(path))
    finally:
        backend.stop()


@contextmanager
def _elbv2(tmp: Path) -> Iterator[TrafficController]:
    import boto3
    from tests.revisions.servers import moto_server

    with moto_server() as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2=endpoint,
            AWS_ENDPOINT_URL_EC2=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
        )
        vpc = boto3.client("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        elb = boto3.client("elbv2")
        arn = elb.create_target_group(
            Name="web", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": "10.0.0.1"}])
        spec = {"elbv2": {"target_group": arn}, "servers": {"host-1": "10.0.0.1"}}
        yield traffic_controller(LoadBalancerDeclarations.parse({"target_groups": {"web": spec}}))


def _measure(controller: TrafficController, cycles: int) -> tuple[list[float], list[float]]:
    block, allow = [], []
    for _ in range(cycles):
        started = time.perf_counter()
        controller.block("host-1", LB, _Quiet())
        block.append(time.perf_counter() - started)
        started = time.perf_counter()
        controller.allow("host-1", LB, _Quiet())
        allow.append(time.perf_counter() - started)
    return block, allow


def _figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    args = parser.parse_args()
    providers = {"haproxy": _haproxy, "nginx": _nginx, "elbv2 (moto)": _elbv2}
    for name, start in providers.items():
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
            controller = stack.enter_context(start(Path(tmp)))
            block, allow = _measure(controller, args.cycles)
        print(f"{name:13} BlockTraffic {_figures(block)}   AllowTraffic {_figures(allow)}")


if __name__ == "__main__":
    main()
