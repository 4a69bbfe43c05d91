"""Alarm sources against real servers: CloudWatch in a moto_server process, PromQL and alerts in
VictoriaMetrics and vmalert (one of each per module), and sources that are down or answer
garbage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from opendeploy.engine.alarms.declarations import (
    CloudWatchAlarm,
    PrometheusAlert,
    PrometheusQuery,
    WebhookAlert,
)
from opendeploy.engine.alarms.sources import (
    AlarmReader,
    CloudWatchSource,
    PrometheusSource,
    WebhookAlerts,
)
from opendeploy.engine.alarms.verdict import AlarmReading
from tests.engine._metrics import VictoriaMetrics, victoria_metrics, vmalert
from tests.revisions.servers import free_port, moto_server

RULES = """
groups:
  - name: shop
    interval: 1s
    rules:
      - alert: ShopErrors
        expr: shop_errors > 5
        labels: {service: shop}
"""


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VictoriaMetrics, str]]:
    tmp = tmp_path_factory.mktemp("metrics")
    with victoria_metrics(tmp) as vm, vmalert(tmp, vm.url, RULES) as alerts:
        yield vm, alerts


@pytest.fixture(scope="module")
def cloudwatch() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, cloudwatch: str) -> Any:
    """boto3's standard configuration pointed at moto (nothing of ours)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cloudwatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return boto3.client("cloudwatch", endpoint_url=cloudwatch, region_name="us-east-1")


def test_cloudwatch_alarm_states_through_describe_alarms(aws_env: Any) -> None:
    cw = aws_env
    for name in ("cpu-high", "latency-high"):
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="CPUUtilization",
            Namespace="AWS/EC2",
            Statistic="Average",
            Period=60,
            EvaluationPeriods=1,
            Threshold=80,
            ComparisonOperator="GreaterThanThreshold",
        )
    cw.set_alarm_state(AlarmName="cpu-high", StateValue="ALARM", StateReason="test")
    cw.set_alarm_state(AlarmName="latency-high", StateValue="OK", StateReason="test")
    source = CloudWatchSource(region="eu-west-1")
    got = source.read(
        {
            "cpu-high": CloudWatchAlarm("cpu-high"),
            "latency": CloudWatchAlarm("latency-high"),  # declared under another name
            "gone": CloudWatchAlarm("no-such-alarm"),
        }
    )
    assert got["cpu-high"] == AlarmReading(state="ALARM")
    assert got["latency"] == AlarmReading(state="OK")
    assert got["gone"].state is None
    assert "no alarm named no-such-alarm" in (got["gone"].error or "")


def test_cloudwatch_down_is_an_unreadable_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    got = CloudWatchSource(region="us-east-1").read({"cpu": CloudWatchAlarm("cpu")})
    assert got["cpu"].state is None
    assert "DescribeAlarms" in (got["cpu"].error or "")


def test_promql_threshold_and_named_alerts(metrics: tuple[VictoriaMetrics, str]) -> None:
    vm, alerts = metrics
    source = PrometheusSource()
    specs: dict[str, Any] = {
        "errors": PrometheusQuery(vm.url, "shop_errors", above=5),
        "traffic-low": PrometheusQuery(vm.url, "shop_errors", below=1),
        "nothing": PrometheusQuery(vm.url, "absent_metric_xyz", above=1),
        "alert": PrometheusAlert(alerts, "ShopErrors", {"service": "shop"}),
        "other-labels": PrometheusAlert(alerts, "ShopErrors", {"service": "cart"}),
    }
    vm.push('shop_errors{job="shop"}', 2)
    got = source.read(specs)
    assert got["errors"].state == "OK"
    assert got["traffic-low"].state == "OK"
    assert got["nothing"].state == "INSUFFICIENT_DATA"  # no sample is not an alarm
    vm.push('shop_errors{job="shop"}', 9)
    assert source.read({"errors": specs["errors"]})["errors"].state == "ALARM"
    # vmalert evaluates every second: wait for its rule to fire (bounded).
    deadline = time.monotonic() + 15
    while (got := source.read(specs))["alert"].state != "ALARM":
        assert time.monotonic() < deadline, got["alert"]
        time.sleep(0.1)  # vmalert's API has no event to wait on
    assert got["other-labels"].state == "OK"


def test_a_prometheus_source_down_or_answering_garbage_is_unreadable(
    metrics: tuple[VictoriaMetrics, str],
) -> None:
    vm, _ = metrics
    down = f"http://127.0.0.1:{free_port()}"
    got = PrometheusSource().read(
        {
            "down": PrometheusQuery(down, "up", above=0),
            "garbage": PrometheusQuery(f"{vm.url}/metrics#", "up", above=0),
            "bad-query": PrometheusQuery(vm.url, "sum(", above=0),
            "down-alert": PrometheusAlert(down, "X"),
        }
    )
    for name in ("down", "garbage", "bad-query", "down-alert"):
        assert got[name].state is None, name
        assert got[name].error, name


def test_webhook_alerts_fire_until_resolved() -> None:
    alerts = WebhookAlerts()
    reader = AlarmReader(cloudwatch=CloudWatchSource(region="us-east-1"), webhook=alerts)
    spec = {"paged": WebhookAlert("HighLatency", {"service": "web"})}
    labels = {"alertname": "HighLatency", "service": "web", "instance": "a"}
    assert reader.read(spec)["paged"].state == "OK"
    assert alerts.receive([{"status": "firing", "labels": labels}]) == 1
    assert reader.read(spec)["paged"].state == "ALARM"
    alerts.receive([{"status": "resolved", "labels": labels}])
    assert reader.read(spec)["paged"].state == "OK"


def test_reading_a_missing_binary_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="victoria-metrics package"), victoria_metrics(tmp_path):
        pass
