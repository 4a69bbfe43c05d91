"""Where alarm states come from: one protocol, a source per kind of declaration.

- :class:`CloudWatchSource`: DescribeAlarms through boto3's standard configuration
  (credentials chain, region, ``AWS_ENDPOINT_URL_CLOUDWATCH``), up to 100 names a call.
- :class:`PrometheusSource`: the HTTP API Prometheus and VictoriaMetrics both speak
  (``/api/v1/query`` for an expression with a threshold, ``/api/v1/alerts`` for a named alert).
- :class:`WebhookAlerts`: the alerts Alertmanager POSTed to the server's receiver.

:class:`AlarmReader` sends each name to the source of its declaration. A source never raises
for an alarm it cannot read: the reading carries the error, and ``ignorePollAlarmFailure``
decides (:func:`~opendeploy.engine.alarms.verdict.alarm_verdict`).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from opendeploy.engine.alarms.declarations import (
    AlarmSpec,
    CloudWatchAlarm,
    PrometheusAlert,
    PrometheusQuery,
    WebhookAlert,
)
from opendeploy.engine.alarms.verdict import AlarmReading, MetricReading

#: A source that does not answer within this long cannot be read (the watcher polls each
#: second; a hung source must not hold every other deployment's alarms).
READ_TIMEOUT_SECONDS = 2.0
#: DescribeAlarms takes at most 100 names a call.
CLOUDWATCH_BATCH = 100


class AlarmSource(Protocol):
    """Reads the state of alarms declared for this source, by the names groups use."""

    def read(self, specs: Mapping[str, Any]) -> dict[str, AlarmReading]: ...


class CloudWatchSource:
    """CloudWatch alarms, read with DescribeAlarms (metric and composite alarms)."""

    def __init__(self, *, region: str) -> None:
        self._region = region
        self._client: Any = None

    def _cloudwatch(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            self._client = session.client(
                "cloudwatch",
                region_name=session.region_name or self._region,
                config=Config(
                    connect_timeout=READ_TIMEOUT_SECONDS,
                    read_timeout=READ_TIMEOUT_SECONDS,
                    retries={"max_attempts": 1},
                ),
            )
        return self._client

    def read(self, specs: Mapping[str, Any]) -> dict[str, AlarmReading]:
        by_cw: dict[str, list[str]] = {}
        for name, spec in specs.items():
            by_cw.setdefault(spec.name, []).append(name)
        out: dict[str, AlarmReading] = {}
        names = sorted(by_cw)
        for i in range(0, len(names), CLOUDWATCH_BATCH):
            chunk = names[i : i + CLOUDWATCH_BATCH]
            try:
                # Both kinds: DescribeAlarms returns metric alarms only unless asked.
                answer = self._cloudwatch().describe_alarms(
                    AlarmNames=chunk, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
                )
            except Exception as e:  # any failure of the call is a poll failure
                for cw in chunk:
                    for name in by_cw[cw]:
                        out[name] = AlarmReading(error=f"CloudWatch DescribeAlarms: {e}")
                continue
            states = {
                a["AlarmName"]: a["StateValue"]
                for a in [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]
            }
            for cw in chunk:
                state = states.get(cw)
                for name in by_cw[cw]:
                    out[name] = (
                        AlarmReading(state=state)
                        if state in ("ALARM", "OK", "INSUFFICIENT_DATA")
                        else AlarmReading(error=f"CloudWatch has no alarm named {cw}")
                    )
        return out


class PrometheusSource:
    """Expressions and alerts of Prometheus-compatible servers, over their HTTP API."""

    def read(self, specs: Mapping[str, Any]) -> dict[str, AlarmReading]:
        out: dict[str, AlarmReading] = {}
        alerts: dict[str, list[dict[str, Any]] | str] = {}  # url -> alerts, or the error
        for name, spec in specs.items():
            if isinstance(spec, PrometheusQuery):
                got = query(spec.url, spec.query)
                if got.error is not None:
                    out[name] = AlarmReading(error=got.error)
                elif not got.values:
                    out[name] = AlarmReading(state="INSUFFICIENT_DATA")
                else:
                    fire = any(
                        (spec.above is not None and v > spec.above)
                        or (spec.below is not None and v < spec.below)
                        for v in got.values
                    )
                    out[name] = AlarmReading(state="ALARM" if fire else "OK")
                continue
            assert isinstance(spec, PrometheusAlert)
            if spec.url not in alerts:
                alerts[spec.url] = _alerts(spec.url)
            listed = alerts[spec.url]
            if isinstance(listed, str):
                out[name] = AlarmReading(error=listed)
                continue
            firing = any(
                a.get("state") == "firing" and _matches(a.get("labels") or {}, spec.alert, spec)
                for a in listed
            )
            out[name] = AlarmReading(state="ALARM" if firing else "OK")
        return out


def _matches(labels: Mapping[str, Any], alert: str, spec: PrometheusAlert | WebhookAlert) -> bool:
    return labels.get("alertname") == alert and all(
        labels.get(k) == v for k, v in spec.labels.items()
    )


def _get(url: str) -> Any:
    """GET a Prometheus API answer's ``data`` (raises ValueError with what went wrong)."""
    try:
        with urllib.request.urlopen(url, timeout=READ_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise ValueError(f"{url}: HTTP {e.code}") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{url}: {e}") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        raise ValueError(f"{url}: not a successful Prometheus API answer ({error or body!r:.200})")
    return body.get("data")


def query(url: str, expression: str) -> MetricReading:
    """An instant query's sample values (a vector or a scalar)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expression})}"
    try:
        data = _get(full)
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return MetricReading((float(result[1]),))
        if kind != "vector":
            return MetricReading(error=f"{expression}: a {kind} result, expected a vector")
        return MetricReading(tuple(float(s["value"][1]) for s in result))
    except (ValueError, KeyError, TypeError, IndexError) as e:
        return MetricReading(error=str(e))


def _alerts(url: str) -> list[dict[str, Any]] | str:
    try:
        data = _get(f"{url}/api/v1/alerts")
        alerts = data["alerts"]
        if not isinstance(alerts, list):
            return f"{url}/api/v1/alerts: 'alerts' is not a list"
        return [a for a in alerts if isinstance(a, dict)]
    except (ValueError, KeyError, TypeError) as e:
        return str(e)


class WebhookAlerts:
    """The alerts Alertmanager delivered to the receiver, firing until resolved (thread-safe).

    Kept in this process: with several replicas, give Alertmanager each replica's receiver
    (a ``webhook_configs`` entry each) or use a ``prometheus`` alarm, which any replica reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._firing: set[frozenset[tuple[str, str]]] = set()

    def receive(self, alerts: Iterable[Mapping[str, Any]]) -> int:
        """Take in a webhook's alerts (``status`` firing or resolved); how many were taken."""
        taken = 0
        with self._lock:
            for alert in alerts:
                labels = alert.get("labels")
                if not isinstance(labels, Mapping):
                    continue
                key = frozenset((str(k), str(v)) for k, v in labels.items())
                if alert.get("status") == "resolved":
                    self._firing.discard(key)
                else:
                    self._firing.add(key)
                taken += 1
        return taken

    def read(self, specs: Mapping[str, Any]) -> dict[str, AlarmReading]:
        with self._lock:
            firing = [dict(k) for k in self._firing]
        return {
            name: AlarmReading(
                state="ALARM" if any(_matches(f, spec.alert, spec) for f in firing) else "OK"
            )
            for name, spec in specs.items()
        }


class AlarmReader:
    """Reads any declared alarms, each through the source of its kind; and gates' metrics."""

    def __init__(
        self,
        *,
        cloudwatch: AlarmSource,
        prometheus: PrometheusSource | None = None,
        webhook: WebhookAlerts | None = None,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.prometheus = prometheus or PrometheusSource()
        self.webhook = webhook or WebhookAlerts()

    def read(self, specs: Mapping[str, AlarmSpec]) -> dict[str, AlarmReading]:
        groups: dict[int, dict[str, AlarmSpec]] = {}
        sources: list[AlarmSource] = [self.cloudwatch, self.prometheus, self.webhook]
        for name, spec in specs.items():
            if isinstance(spec, CloudWatchAlarm):
                index = 0
            elif isinstance(spec, PrometheusQuery | PrometheusAlert):
                index = 1
            else:
                assert isinstance(spec, WebhookAlert)
                index = 2
            groups.setdefault(index, {})[name] = spec
        out: dict[str, AlarmReading] = {}
        for index, group in groups.items():
            out.update(sources[index].read(group))
        return out

    def metric(self, url: str, expression: str) -> MetricReading:
        return query(url, expression)
