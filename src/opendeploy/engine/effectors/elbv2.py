"""AWS Elastic Load Balancing v2 as the load balancer of BlockTraffic and AllowTraffic.

Through boto3 with its standard configuration and nothing of ours: the credential chain, the
region (``AWS_REGION``/``AWS_DEFAULT_REGION``, the profile), and the endpoint
(``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2`` or ``AWS_ENDPOINT_URL``), so the same server
drives AWS, LocalStack or a ``moto_server``.

A declared target group names the ELBv2 target group (``target_group``: its ARN, or its name,
looked up once with DescribeTargetGroups); each instance's target is the declaration's
``servers`` entry, ``id`` or ``id:port`` (an instance id, an IP address, or a Lambda ARN; an
instance not listed is the target of its own name; without a port, the target group's).

- BlockTraffic is DeregisterTargets, then DescribeTargetHealth until the target is no longer
  ``draining``, bounded by the target group's deregistration delay
  (``deregistration_delay.timeout_seconds``, read from DescribeTargetGroupAttributes) plus a
  margin: ELB itself ends the drain at that delay.
- AllowTraffic is RegisterTargets, then DescribeTargetHealth until ``healthy``, bounded by the
  declaration's healthy timeout; a target that stays ``unhealthy`` fails the step with ELB's
  reason and description.
- Weights: ELBv2 weighs target groups on a listener's forward action, not the targets in a
  group, so per-host weights are refused with a message that says so (use two target groups and
  a weighted listener, as blue/green does, or HAProxy/nginx for per-host weights).
- The state read back is DescribeTargetHealth.

Every botocore error becomes an EffectorError naming the target group, the host and what AWS
answered (its error code and message).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opendeploy.built_once import BuiltOnce
from opendeploy.engine.effectors import EffectorError, StepProgress, given_up
from opendeploy.engine.effectors.load_balancers import ELBv2Pool, TargetGroup
from opendeploy.engine.effectors.traffic import HostTraffic

#: ELB's default deregistration delay, when the attribute cannot be read.
DEFAULT_DEREGISTRATION_DELAY_SECONDS = 300.0
#: Past the deregistration delay, this long more for ELB to report the drain over.
DRAIN_MARGIN_SECONDS = 10.0
#: The first poll comes soon (a local ELB answers at once); later ones back off to the last.
POLL_SECONDS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
PROGRESS_EVERY_SECONDS = 5.0


class ELBv2Driver:
    """The :class:`~opendeploy.engine.effectors.traffic.PoolDriver` of ELBv2 target groups."""

    def __init__(self, client_factory: Callable[[], Any] | None = None) -> None:
        self._client = BuiltOnce(client_factory or _default_client)
        self._arns: dict[str, str] = {}
        self._guard = threading.Lock()

    # --- the PoolDriver ---------------------------------------------------------------------

    def drain(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        arn, target = self._arn(group, host), self._target(group, host)
        where = f"{_pool(group).describe()} (target {_show(target)})"
        started = time.monotonic()
        # Run again (after a crash), the target may be out already: ELB refuses to deregister
        # a target it does not have (InvalidTarget), so only one it has is deregistered.
        if self._health(group, host, arn, target).get("State") not in (None, "unused", "draining"):
            with self._calls(group, host, "DeregisterTargets"):
                self.client.deregister_targets(TargetGroupArn=arn, Targets=[target])
        delay = self._deregistration_delay(group, host, arn)
        # Out once ELB no longer counts it registered: ``unused`` (Target.NotRegistered), or not
        # listed at all. Right after the call it may still read ``healthy`` for a moment.
        what = f"deregistering {host} from {where}"
        try:
            over = _poll(
                lambda: self._health(group, host, arn, target).get("State") in (None, "unused"),
                delay + DRAIN_MARGIN_SECONDS,
                progress,
                lambda: f"{where}: draining",
                what,
            )
            given_up(progress, f"{where}: deregistered", what)
        except EffectorError:
            if progress.cancelled():  # see effectors.given_up
                with self._calls(group, host, "RegisterTargets"):
                    self.client.register_targets(TargetGroupArn=arn, Targets=[target])
            raise
        took = time.monotonic() - started
        note = "" if over else f", still draining after the {delay:g} s deregistration delay"
        return f"{host} out of target group {group.name} ({where}, drained in {took:.1f} s{note})"

    def ready(self, group: TargetGroup, host: str, progress: StepProgress) -> str:
        arn, target = self._arn(group, host), self._target(group, host)
        where = f"{_pool(group).describe()} (target {_show(target)})"
        started = time.monotonic()
        with self._calls(group, host, "RegisterTargets"):
            self.client.register_targets(TargetGroupArn=arn, Targets=[target])
        last: list[dict[str, Any]] = [{}]

        def healthy() -> bool:
            last[0] = self._health(group, host, arn, target)
            return last[0].get("State") == "healthy"

        ok = _poll(
            healthy,
            group.healthy_timeout_seconds,
            progress,
            lambda: f"{where}: {_said(last[0])}, waiting for it to turn healthy",
            f"registering {host} with {where}",
        )
        if not ok:
            raise EffectorError(
                f"ELB did not report {host} healthy in {where} within "
                f"{group.healthy_timeout_seconds:g} s (it said: {_said(last[0])})"
            )
        took = time.monotonic() - started
        return f"{host} in target group {group.name} ({where}, healthy after {took:.1f} s)"

    def set_weights(
        self, group: TargetGroup, weights: Mapping[str, int], progress: StepProgress
    ) -> str:
        raise EffectorError(
            f"{_pool(group).describe()} cannot weigh hosts ({', '.join(weights)}): ELBv2 weighs "
            "target groups on a listener's forward action, not the targets of one; shift traffic "
            "between two target groups, or declare the hosts behind HAProxy or nginx"
        )

    def state(self, group: TargetGroup) -> list[HostTraffic]:
        arn = self._arn(group, "(all hosts)")
        with self._calls(group, "(all hosts)", "DescribeTargetHealth"):
            answer = self.client.describe_target_health(TargetGroupArn=arn)
        out = []
        for d in answer.get("TargetHealthDescriptions", []):
            t, health = d.get("Target", {}), d.get("TargetHealth", {})
            state = str(health.get("State", "unknown"))
            # The servers map names a target with or without its port: find it either way.
            name = _show(t)
            host = group.instance_of(name)
            if host == name:
                host = group.instance_of(str(t.get("Id")))
            out.append(
                HostTraffic(
                    target_group=group.name, host=host, serving=state == "healthy", state=state
                )
            )
        return out

    # --- AWS --------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        return self._client()

    @contextmanager
    def _calls(self, group: TargetGroup, host: str, action: str) -> Iterator[None]:
        """Turn botocore's errors into an EffectorError naming the group, the host and AWS's
        answer."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as e:
            error = e.response.get("Error", {})
            raise EffectorError(
                f"{_pool(group).describe()} refused {action} for {host}: "
                f"{error.get('Code', 'error')}: {error.get('Message', str(e))}"
            ) from None
        except BotoCoreError as e:
            raise EffectorError(
                f"cannot reach Elastic Load Balancing for {_pool(group).describe()} "
                f"({action} for {host}): {e}"
            ) from None

    def _arn(self, group: TargetGroup, host: str) -> str:
        name = _pool(group).target_group
        if name.startswith("arn:"):
            return name
        with self._guard:
            cached = self._arns.get(name)
        if cached is not None:
            return cached
        with self._calls(group, host, "DescribeTargetGroups"):
            answer = self.client.describe_target_groups(Names=[name])
        groups = answer.get("TargetGroups", [])
        if not groups:
            raise EffectorError(f"{_pool(group).describe()}: ELB has no target group {name}")
        arn = str(groups[0]["TargetGroupArn"])
        with self._guard:
            self._arns[name] = arn
        return arn

    @staticmethod
    def _target(group: TargetGroup, host: str) -> dict[str, Any]:
        """The instance's target: ``id``, ``id:port``, ``[ipv6]:port`` (no port: the group's)."""
        spec = group.server_of(host)
        if spec.startswith("["):
            ident, _, rest = spec[1:].partition("]")
            port = rest.removeprefix(":")
        elif spec.startswith("arn:") or spec.count(":") != 1:
            ident, port = spec, ""  # a Lambda function's ARN, or a bare IPv6 address
        else:
            ident, _, port = spec.partition(":")
        return {"Id": ident, "Port": int(port)} if port.isdigit() else {"Id": ident}

    def _deregistration_delay(self, group: TargetGroup, host: str, arn: str) -> float:
        with self._calls(group, host, "DescribeTargetGroupAttributes"):
            answer = self.client.describe_target_group_attributes(TargetGroupArn=arn)
        for a in answer.get("Attributes", []):
            if a.get("Key") == "deregistration_delay.timeout_seconds":
                try:
                    return float(a["Value"])
                except (KeyError, ValueError):
                    break
        return DEFAULT_DEREGISTRATION_DELAY_SECONDS

    def _health(
        self, group: TargetGroup, host: str, arn: str, target: dict[str, Any]
    ) -> dict[str, Any]:
        """The target's TargetHealth (``{}`` when ELB no longer lists it)."""
        with self._calls(group, host, "DescribeTargetHealth"):
            answer = self.client.describe_target_health(TargetGroupArn=arn, Targets=[target])
        for d in answer.get("TargetHealthDescriptions", []):
            if d.get("Target", {}).get("Id") == target["Id"]:
                return dict(d.get("TargetHealth", {}))
        return {}


def _default_client() -> Any:
    import boto3

    return boto3.client("elbv2")


def _pool(group: TargetGroup) -> ELBv2Pool:
    if not isinstance(group.pool, ELBv2Pool):
        raise EffectorError(f"target group {group.name} is not an ELBv2 target group")
    return group.pool


def _show(target: Mapping[str, Any]) -> str:
    return f"{target['Id']}:{target['Port']}" if target.get("Port") else str(target.get("Id"))


def _said(health: Mapping[str, Any]) -> str:
    """ELB's word on a target's health: its state, reason and description."""
    if not health:
        return "not registered"
    parts = [str(health.get("State", "unknown"))]
    parts += [str(health[k]) for k in ("Reason", "Description") if health.get(k)]
    return ", ".join(parts)


def _poll(
    ok: Callable[[], bool],
    seconds: float,
    progress: StepProgress,
    waiting: Callable[[], str],
    what: str,
) -> bool:
    """Ask until ``ok`` (True) or ``seconds`` pass (False), backing off; EffectorError when the
    step is given up."""
    started = reported = time.monotonic()
    attempt = 0
    while not ok():
        now = time.monotonic()
        if now - started > seconds:
            return False
        if progress.cancelled():
            raise EffectorError(f"{what} was given up")
        if now - reported >= PROGRESS_EVERY_SECONDS:
            progress.report(waiting())
            reported = now
        time.sleep(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)])
        attempt += 1
    return True
