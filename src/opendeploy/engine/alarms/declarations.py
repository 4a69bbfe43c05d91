"""What each alarm name stands for, and the analysis gates: the server's ``--alarms`` file.

A deployment group names alarms exactly as with AWS (``alarmConfiguration.alarms[].name``); a
name this file does not declare is a CloudWatch alarm of that name, as with AWS. The file is
YAML (or JSON)::

    require_declared: false          # true: a group naming an undeclared alarm is refused
    webhook:
      token: s3cret                  # Alertmanager's "Authorization: Bearer s3cret"
    alarms:
      high-error-rate:               # a PromQL expression with a threshold
        prometheus:
          url: http://127.0.0.1:8428 # Prometheus or VictoriaMetrics (GET /api/v1/query)
          query: sum(rate(http_errors_total[1m]))
          above: 5                   # ALARM while a sample is > 5 (or ``below: N``: < N)
      checkout-down:                 # an alerting rule of that server, by its alert name
        prometheus:
          url: http://127.0.0.1:9090
          alert: CheckoutDown        # ALARM while /api/v1/alerts has it "firing"
          labels: {service: web}     # optional: only alerts with these labels
      paged:                         # alerts that Alertmanager POSTs to the server's receiver
        alertmanager:
          alert: HighLatency
          labels: {service: web}
      legacy-cpu:                    # a CloudWatch alarm under another name
        cloudwatch: {name: prod-cpu-high}
    gates:                           # analysis gates, beyond AWS
      - application: shop
        deployment_group: prod
        name: error-ratio
        prometheus: {url: http://127.0.0.1:8428, query: "sum(rate(errors[1m]))"}
        max: 0.05                    # within bounds: min <= every sample <= max
        hold_seconds: 30             # in bounds this long after a batch before the next
        timeout_seconds: 600         # else the deployment fails (on_timeout: fail | stop)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from opendeploy.engine.declaration_file import ReadWhenChanged, read_yaml
from opendeploy.errors import OpenDeployError

#: How long a gate waits by default before it fails the deployment.
DEFAULT_GATE_TIMEOUT_SECONDS = 600.0


class AlarmDeclarationError(OpenDeployError, ValueError):
    """The alarm declaration file is unreadable or breaks a rule (says where)."""


@dataclass(frozen=True, slots=True)
class CloudWatchAlarm:
    """A CloudWatch alarm, read with DescribeAlarms through boto3's standard configuration."""

    name: str


@dataclass(frozen=True, slots=True)
class PrometheusQuery:
    """A PromQL expression: ALARM while a sample is above ``above`` (or below ``below``)."""

    url: str
    query: str
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True, slots=True)
class PrometheusAlert:
    """An alerting rule of a Prometheus-compatible server: ALARM while it is firing."""

    url: str
    alert: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WebhookAlert:
    """An alert Alertmanager delivers to the server's receiver: ALARM while it fires."""

    alert: str
    labels: Mapping[str, str] = field(default_factory=dict)


AlarmSpec = CloudWatchAlarm | PrometheusQuery | PrometheusAlert | WebhookAlert


@dataclass(frozen=True, slots=True)
class GateDeclaration:
    """An analysis gate of one deployment group."""

    application: str
    deployment_group: str
    name: str
    url: str
    query: str
    min: float | None
    max: float | None
    hold_seconds: float
    timeout_seconds: float = DEFAULT_GATE_TIMEOUT_SECONDS
    on_timeout: Literal["fail", "stop"] = "fail"

    def bounds(self) -> str:
        """The bounds as a message shows them (``0 <= v <= 0.05``)."""
        low = f"{self.min:g} <= " if self.min is not None else ""
        high = f" <= {self.max:g}" if self.max is not None else ""
        return f"{low}{self.query}{high}"


@dataclass(frozen=True, slots=True)
class AlarmDeclarations:
    """Every declared alarm by name, the gates, and the webhook receiver's token."""

    alarms: Mapping[str, AlarmSpec] = field(default_factory=dict)
    gates: tuple[GateDeclaration, ...] = ()
    require_declared: bool = False
    webhook_token: str | None = None

    def resolve(self, name: str) -> AlarmSpec | None:
        """What ``name`` stands for: its declaration, else the CloudWatch alarm of that name
        (None when names must be declared)."""
        spec = self.alarms.get(name)
        if spec is not None:
            return spec
        return None if self.require_declared else CloudWatchAlarm(name)

    def gate_for(self, application: str, group: str) -> GateDeclaration | None:
        for gate in self.gates:
            if gate.application == application and gate.deployment_group == group:
                return gate
        return None

    @classmethod
    def load(cls, path: Path) -> AlarmDeclarations:
        return cls.parse(read_yaml(path, AlarmDeclarationError), where=str(path))

    @classmethod
    def parse(cls, raw: Any, *, where: str = "alarms") -> AlarmDeclarations:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise AlarmDeclarationError(f"{where}: expected a mapping")
        unknown = set(raw) - {"require_declared", "webhook", "alarms", "gates"}
        if unknown:
            raise AlarmDeclarationError(
                f"{where}: unknown key {', '.join(sorted(map(str, unknown)))} (expected "
                "require_declared, webhook, alarms, gates)"
            )
        require = raw.get("require_declared", False)
        if not isinstance(require, bool):
            raise AlarmDeclarationError(f"{where}.require_declared: {require!r} is not a boolean")
        webhook = raw.get("webhook") or {}
        if not isinstance(webhook, Mapping) or not isinstance(webhook.get("token", ""), str):
            raise AlarmDeclarationError(f"{where}.webhook: expected a mapping with a 'token'")
        token = webhook.get("token") or None
        alarms_raw = raw.get("alarms") or {}
        if not isinstance(alarms_raw, Mapping):
            raise AlarmDeclarationError(f"{where}.alarms: expected a mapping of alarm names")
        alarms = {
            str(name): _alarm(spec, f"{where}.alarms.{name}") for name, spec in alarms_raw.items()
        }
        if token is None and any(isinstance(a, WebhookAlert) for a in alarms.values()):
            raise AlarmDeclarationError(
                f"{where}: alertmanager alarms need webhook.token (the receiver's bearer token)"
            )
        gates_raw = raw.get("gates") or []
        if not isinstance(gates_raw, list):
            raise AlarmDeclarationError(f"{where}.gates: expected a list")
        gates = tuple(_gate(g, f"{where}.gates[{i}]") for i, g in enumerate(gates_raw))
        return cls(alarms, gates, require, token)


def _alarm(spec: Any, at: str) -> AlarmSpec:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise AlarmDeclarationError(
            f"{at}: expected exactly one of prometheus, alertmanager, cloudwatch"
        )
    ((kind, body),) = spec.items()
    body = body or {}
    if not isinstance(body, Mapping):
        raise AlarmDeclarationError(f"{at}.{kind}: expected a mapping")
    if kind == "cloudwatch":
        return CloudWatchAlarm(_text(body, "name", f"{at}.{kind}", default=at.rsplit(".", 1)[1]))
    if kind == "alertmanager":
        return WebhookAlert(_text(body, "alert", f"{at}.{kind}"), _labels(body, f"{at}.{kind}"))
    if kind == "prometheus":
        url = _text(body, "url", f"{at}.{kind}").rstrip("/")
        if "alert" in body:
            return PrometheusAlert(
                url, _text(body, "alert", f"{at}.{kind}"), _labels(body, f"{at}.{kind}")
            )
        query = _text(body, "query", f"{at}.{kind}")
        above = _number(body, "above", f"{at}.{kind}")
        below = _number(body, "below", f"{at}.{kind}")
        if (above is None) == (below is None):
            raise AlarmDeclarationError(f"{at}.{kind}: a query needs exactly one of above, below")
        return PrometheusQuery(url, query, above, below)
    raise AlarmDeclarationError(
        f"{at}: unknown source {kind!r} (expected prometheus, alertmanager, cloudwatch)"
    )


def _gate(spec: Any, at: str) -> GateDeclaration:
    if not isinstance(spec, Mapping):
        raise AlarmDeclarationError(f"{at}: expected a mapping")
    prom = spec.get("prometheus")
    if not isinstance(prom, Mapping):
        raise AlarmDeclarationError(f"{at}.prometheus: expected a mapping with url and query")
    low, high = _number(spec, "min", at), _number(spec, "max", at)
    if low is None and high is None:
        raise AlarmDeclarationError(f"{at}: needs min, max or both")
    hold = _number(spec, "hold_seconds", at)
    if hold is None or hold < 0:
        raise AlarmDeclarationError(f"{at}.hold_seconds: needs a number >= 0")
    timeout = _number(spec, "timeout_seconds", at)
    if timeout is None:
        timeout = DEFAULT_GATE_TIMEOUT_SECONDS
    if timeout <= 0:
        raise AlarmDeclarationError(f"{at}.timeout_seconds: {timeout:g} is not > 0")
    on_timeout = spec.get("on_timeout", "fail")
    if on_timeout not in ("fail", "stop"):
        raise AlarmDeclarationError(f"{at}.on_timeout: {on_timeout!r} is not fail or stop")
    return GateDeclaration(
        application=_text(spec, "application", at),
        deployment_group=_text(spec, "deployment_group", at),
        name=_text(spec, "name", at),
        url=_text(prom, "url", f"{at}.prometheus").rstrip("/"),
        query=_text(prom, "query", f"{at}.prometheus"),
        min=low,
        max=high,
        hold_seconds=hold,
        timeout_seconds=timeout,
        on_timeout=on_timeout,
    )


def _text(body: Mapping[str, Any], key: str, at: str, *, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value:
        raise AlarmDeclarationError(f"{at}.{key}: expected a non-empty string, got {value!r}")
    return value


def _number(body: Mapping[str, Any], key: str, at: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlarmDeclarationError(f"{at}.{key}: {value!r} is not a number")
    return float(value)


def _labels(body: Mapping[str, Any], at: str) -> dict[str, str]:
    labels = body.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise AlarmDeclarationError(f"{at}.labels: expected a mapping")
    return {str(k): str(v) for k, v in labels.items()}


_READ = ReadWhenChanged(AlarmDeclarations.load, AlarmDeclarationError)


def declared(path: Path | None) -> AlarmDeclarations:
    """The declarations in ``path`` (none: no file), read again only when the file changed."""
    return AlarmDeclarations() if path is None else _READ(path)
