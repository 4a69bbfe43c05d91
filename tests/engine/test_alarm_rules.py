"""The pure rules of alarms and gates: which configuration applies, what stops a deployment, how
a gate's readings hold the next batch, and what the ``--alarms`` file may say."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest

from opendeploy.domain.configs import ONE_AT_A_TIME
from opendeploy.domain.status import DeploymentStatus
from opendeploy.engine.alarms.declarations import (
    AlarmDeclarationError,
    AlarmDeclarations,
    CloudWatchAlarm,
    GateDeclaration,
    PrometheusAlert,
    PrometheusQuery,
    WebhookAlert,
)
from opendeploy.engine.alarms.verdict import (
    AlarmConfig,
    AlarmReading,
    AlarmStop,
    MetricReading,
    alarm_verdict,
    effective_config,
    gate_snapshot,
    initial_gate_state,
    observe_gate,
)
from opendeploy.engine.reconcile import ALARM_ACTIVE_MESSAGE
from opendeploy.engine.snapshot import (
    AutoRollbackConfig,
    AutoRollbackEvent,
    DeploymentSnapshot,
    LastSuccessful,
    StopRequest,
    new_target,
)
from tests.engine.harness import T0, Harness, at

ALARM = AlarmReading(state="ALARM")
OK = AlarmReading(state="OK")
DOWN = AlarmReading(error="connection refused")


def test_the_override_replaces_the_groups_configuration() -> None:
    group = {"enabled": True, "alarms": [{"name": "a"}], "ignorePollAlarmFailure": True}
    assert effective_config(group, None) == AlarmConfig(("a",), True)
    assert effective_config(group, {"enabled": False, "alarms": [{"name": "a"}]}) is None
    assert effective_config(None, {"enabled": True, "alarms": [{"name": "b"}]}) == AlarmConfig(
        ("b",)
    )
    assert effective_config({"enabled": False, "alarms": [{"name": "a"}]}, None) is None
    assert effective_config(None, None) is None


@pytest.mark.parametrize(
    ("readings", "ignore", "verdict"),
    [
        ({"a": OK, "b": OK}, False, None),
        ({"a": OK, "b": ALARM}, False, AlarmStop(("b",))),
        ({"a": ALARM, "b": DOWN}, False, AlarmStop(("a",))),  # an alarm wins over a failure
        ({"a": OK, "b": DOWN}, False, AlarmStop(("b",), unreadable=True)),
        ({"a": OK, "b": DOWN}, True, None),
        ({"a": ALARM, "b": DOWN}, True, AlarmStop(("a",))),
        ({"a": AlarmReading(state="INSUFFICIENT_DATA"), "b": OK}, False, None),
        ({"a": OK}, False, AlarmStop(("b",), unreadable=True)),  # never read
    ],
)
def test_alarm_verdict(
    readings: dict[str, AlarmReading], ignore: bool, verdict: AlarmStop | None
) -> None:
    assert alarm_verdict(AlarmConfig(("a", "b"), ignore), readings) == verdict


def _stopped_by(stop: StopRequest) -> Harness:
    snap = DeploymentSnapshot(
        "d-ALARM0001",
        DeploymentStatus.IN_PROGRESS,
        ONE_AT_A_TIME,
        (new_target("i-1"),),
        created_at=T0,
        started_at=T0,
        stop=stop,
        auto_rollback=AutoRollbackConfig(
            True, frozenset({AutoRollbackEvent.DEPLOYMENT_STOP_ON_ALARM})
        ),
        last_successful=LastSuccessful("d-OLD000001", "rev-1"),
    )
    h = Harness(snap)
    h.step(at(1))
    return h


def test_a_stop_by_alarms_names_them_as_aws_does_and_rolls_back() -> None:
    h = _stopped_by(StopRequest(T0, by_alarm=True, alarms=("errors", "latency")))
    assert h.status is DeploymentStatus.STOPPED
    assert h.error is not None
    assert h.error.code == "ALARM_ACTIVE"
    assert h.error.message == ALARM_ACTIVE_MESSAGE + "<errors> <latency>"
    assert h.rollback is not None


def test_a_stop_by_unreadable_alarms_says_they_could_not_be_read() -> None:
    h = _stopped_by(StopRequest(T0, by_alarm=True, alarms=("cw",), unreadable=True))
    assert h.error is not None
    assert h.error.code == "ALARM_ACTIVE"
    assert "could not be read and ignorePollAlarmFailure is false" in h.error.message
    assert h.error.message.endswith("<cw>")


# --- gates ------------------------------------------------------------------------------------

GATE = GateDeclaration("shop", "prod", "errors", "http://vm", "err", None, 0.05, 2.0, 10.0)


def test_observe_gate_keeps_ok_since_while_in_bounds() -> None:
    first = observe_gate(None, GATE, MetricReading((0.01,)), at(0))
    assert first["ok_since"] == at(0).isoformat()
    second = observe_gate(first, GATE, MetricReading((0.02, 0.03)), at(1))
    assert second["ok_since"] == at(0).isoformat()
    assert second["checked_at"] == at(1).isoformat()
    for bad in (MetricReading((0.01, 0.5)), MetricReading(()), MetricReading(error="down")):
        assert observe_gate(second, GATE, bad, at(2))["ok_since"] is None
    assert (
        "0.5, outside err <= 0.05"
        in observe_gate(second, GATE, MetricReading((0.5,)), at(2))["detail"]
    )
    assert observe_gate(None, GATE, MetricReading(error="down"), at(2))["detail"] == (
        "cannot read err: down"
    )


@dataclass
class Gated:
    """A two-instance deployment with a gate, and the gate's stored state."""

    h: Harness
    gate: GateDeclaration
    raw: dict[str, Any]

    def read(self, value: float, when: datetime) -> None:
        """The watcher reads ``value`` at ``when`` and records it."""
        self.raw = observe_gate(self.raw, self.gate, MetricReading((value,)), when)
        self.h.snap = replace(self.h.snap, gate=gate_snapshot(self.raw))


def _gated(on_timeout: Literal["fail", "stop"] = "fail") -> Gated:
    gate = replace(GATE, on_timeout=on_timeout)
    raw = initial_gate_state(gate)
    snap = DeploymentSnapshot(
        "d-GATE00001",
        DeploymentStatus.CREATED,
        ONE_AT_A_TIME,
        (new_target("i-1"), new_target("i-2")),
        created_at=T0,
        gate=gate_snapshot(raw),
    )
    return Gated(Harness(snap), gate, raw)


def _run_first(h: Harness) -> datetime:
    """Run i-1's whole lifecycle; the moment it ended."""
    t = 0.0
    h.step(at(t))
    while h.outstanding("i-1") is not None:
        t += 1
        h.poll("i-1", at(t))
        h.complete("i-1", at(t), "Succeeded")
        h.step(at(t))
    return at(t)


def _later(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


def test_the_gate_never_holds_the_first_batch_and_holds_the_next_until_readings_pass() -> None:
    g = _gated()
    h = g.h
    ended = _run_first(h)  # no reading at all: the first batch went anyway
    assert h.outstanding("i-2") is None
    g.read(0.5, ended)
    h.step(ended)
    assert h.outstanding("i-2") is None  # out of bounds
    # Back in bounds, but not yet for hold_seconds (2 s) of readings.
    g.read(0.01, _later(ended, 1))
    h.step(_later(ended, 1))
    g.read(0.01, _later(ended, 2.5))
    h.step(_later(ended, 2.5))
    assert h.outstanding("i-2") is None
    # A pass later without a new reading proves nothing more.
    h.step(_later(ended, 4))
    assert h.outstanding("i-2") is None
    g.read(0.01, _later(ended, 3.1))
    h.step(_later(ended, 4))
    assert h.outstanding("i-2") is not None
    assert h.status is DeploymentStatus.IN_PROGRESS


@pytest.mark.parametrize(
    ("on_timeout", "status"),
    [("fail", DeploymentStatus.FAILED), ("stop", DeploymentStatus.STOPPED)],
)
def test_a_gate_that_does_not_pass_in_time_ends_the_deployment(
    on_timeout: Literal["fail", "stop"], status: DeploymentStatus
) -> None:
    g = _gated(on_timeout)
    h = g.h
    ended = _run_first(h)
    g.read(0.5, ended)
    h.step(_later(ended, 10))
    assert h.status is DeploymentStatus.IN_PROGRESS
    h.step(_later(ended, 10.5))
    assert h.status is status
    assert h.error is not None
    assert h.error.code == "CUSTOMER_APPLICATION_UNHEALTHY"
    assert "The analysis gate errors did not pass within 10 s" in h.error.message
    assert "0.5, outside" in h.error.message


# --- the declaration file ---------------------------------------------------------------------


def test_declarations_resolve_names_and_gates() -> None:
    d = AlarmDeclarations.parse(
        {
            "webhook": {"token": "t"},
            "alarms": {
                "q": {"prometheus": {"url": "http://p/", "query": "x", "above": 1}},
                "a": {"prometheus": {"url": "http://p", "alert": "A", "labels": {"s": 1}}},
                "w": {"alertmanager": {"alert": "W"}},
                "c": {"cloudwatch": {"name": "real"}},
                "c2": {"cloudwatch": None},
            },
            "gates": [
                {
                    "application": "shop",
                    "deployment_group": "prod",
                    "name": "g",
                    "prometheus": {"url": "http://p", "query": "y"},
                    "max": 1,
                    "hold_seconds": 5,
                }
            ],
        }
    )
    assert d.resolve("q") == PrometheusQuery("http://p", "x", above=1.0)
    assert d.resolve("a") == PrometheusAlert("http://p", "A", {"s": "1"})
    assert d.resolve("w") == WebhookAlert("W")
    assert d.resolve("c") == CloudWatchAlarm("real")
    assert d.resolve("c2") == CloudWatchAlarm("c2")
    assert d.resolve("other") == CloudWatchAlarm("other")  # declared nowhere: CloudWatch
    assert replace(d, require_declared=True).resolve("other") is None
    gate = d.gate_for("shop", "prod")
    assert gate is not None and gate.timeout_seconds == 600 and gate.on_timeout == "fail"
    assert d.gate_for("shop", "staging") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a mapping"),
        ({"alarm": {}}, "unknown key alarm"),
        ({"alarms": {"x": {"nagios": {}}}}, "alarms.x: unknown source 'nagios'"),
        ({"alarms": {"x": {"prometheus": {"url": "u", "query": "q"}}}}, "exactly one of above"),
        ({"alarms": {"x": {"prometheus": {"query": "q", "above": 1}}}}, "prometheus.url"),
        ({"alarms": {"x": {"alertmanager": {"alert": "A"}}}}, "need webhook.token"),
        (
            {"alarms": {"x": {"prometheus": {"url": "u", "query": "q", "above": "1"}}}},
            "not a number",
        ),
        ({"require_declared": "yes"}, "not a boolean"),
        ({"gates": [{"name": "g"}]}, "gates[0].prometheus"),
    ],
)
def test_malformed_declarations_say_where(raw: object, message: str) -> None:
    with pytest.raises(AlarmDeclarationError, match=message.replace("[", r"\[")):
        AlarmDeclarations.parse(raw, where="alarms.yml")
