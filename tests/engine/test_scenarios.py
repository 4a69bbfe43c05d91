"""Runs every scenario in ``scenarios/*.json``: a fleet, a config, agent reports over time, and
what the engine must have decided after each step.

Scenario keys: ``fleet`` (instance ids), ``config`` ({type, value}), optional
``load_balancer``, ``ignore_application_stop_failures``, ``auto_rollback`` ({enabled, events}),
``creator``, ``last_successful`` ({deployment_id, revision}), ``style`` (deploymentStyle),
``labels`` ({instance: "Blue" | "Green"}, blue/green), ``blue_green``
(blueGreenDeploymentConfiguration), ``traffic_routing`` (the configuration's
trafficRoutingConfig), ``compute_platform`` ("Lambda": the fleet is the function),
``settings`` (EngineSettings fields), ``silent_from`` ({instance: t}: that agent stops polling
at t seconds) and ``steps``.

A step: ``at`` (seconds after T0); ``reports``, applied in order before reconciling — ``{"ack": i,
"noop": bool}``, ``{"run": i}`` (ack + Succeeded; for a server step, the effector runner's
report), ``{"fail": i, "error_code", "message"}``,
``{"stop": {"auto_rollback": bool|null, "by_alarm": bool}}``, ``{"continue": wait type}``;
``drive`` ({instance: "succeed" |
{"fail_at": event}}): those agents answer every command and the engine is run until they have
nothing left to answer; ``expect``: ``status``, ``error_code``, ``error_message`` (substring),
``targets`` ({i: status}), ``events`` ({i: {event: status}}), ``event_message`` ({i: {event:
substring}}), ``event_error_code``, ``overview`` (all six counts), ``dispatched`` ([[i, event]]
over the whole step, any order, agent commands and server steps alike), ``server_steps`` (the
[[i, event]] of those dispatched to the server's effector runner), ``unreachable``,
``rollback`` (``"none"``, or {``plan``: null | {revision, last_successful_deployment_id,
creator}, ``message``: substring}), ``termination_wait_started`` (bool), ``status_message``
(a substring of a line added to deploymentStatusMessages in this step).
Every reconcile is checked for idempotence by the harness.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opendeploy.domain.configs import TrafficRouting
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import BlueGreenSettings, DeploymentStyle
from opendeploy.domain.status import DeploymentStatus
from opendeploy.engine.reconcile import EngineSettings
from opendeploy.engine.snapshot import (
    AutoRollbackConfig,
    AutoRollbackEvent,
    DeploymentSnapshot,
    LastSuccessful,
    MinimumHealthyHosts,
    StopRequest,
    new_target,
)

from .harness import T0, Harness, at

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.json"))


def build(spec: dict[str, Any]) -> Harness:
    lb = spec.get("load_balancer", False)
    rb = spec.get("auto_rollback", {})
    last = spec.get("last_successful")
    platform = spec.get("compute_platform", "Server")
    labels = spec.get("labels", {})
    style = DeploymentStyle.from_wire(spec.get("style"))
    rollback = style.blue_green and spec.get("creator") == "codeDeployRollback"
    snap = DeploymentSnapshot(
        deployment_id="d-TESTTEST1",
        status=DeploymentStatus.CREATED,
        minimum_healthy_hosts=MinimumHealthyHosts(spec["config"]["type"], spec["config"]["value"]),
        targets=tuple(
            new_target(
                i,
                load_balancer=lb,
                label=labels.get(i),
                rollback=rollback,
                compute_platform=platform,
            )
            for i in spec["fleet"]
        ),
        created_at=T0,
        ignore_application_stop_failures=spec.get("ignore_application_stop_failures", False),
        auto_rollback=AutoRollbackConfig(
            rb.get("enabled", False), frozenset(AutoRollbackEvent(e) for e in rb.get("events", []))
        ),
        creator=spec.get("creator", "user"),
        last_successful=LastSuccessful(**last) if last else None,
        style=style,
        compute_platform=platform,
        blue_green=BlueGreenSettings.from_wire(spec.get("blue_green")),
        traffic_routing=(
            TrafficRouting.from_wire(spec["traffic_routing"]) if "traffic_routing" in spec else None
        ),
    )
    return Harness(snap, settings=EngineSettings(**spec.get("settings", {})))


def drive(h: Harness, plan: dict[str, Any], now: Any, dispatched: list[list[str]]) -> None:
    for _ in range(200):
        answered = False
        for instance, how in plan.items():
            event = h.outstanding(instance)
            if event is None:
                continue
            answered = True
            if isinstance(how, dict) and how.get("fail_at") == event:
                h.fail(instance, now, how.get("error_code", "ScriptFailed"))
            else:
                h.complete(instance, now, "Succeeded")
        d = h.step(now)
        dispatched += [[c.instance_id, c.event.value, c.executor] for c in d.dispatch]
        if not answered and not d.has_changes:
            return
    raise AssertionError("drive did not settle")


def check(h: Harness, expect: dict[str, Any], dispatched: list[list[str]], where: str) -> None:
    def eq(actual: Any, expected: Any, what: str) -> None:
        assert actual == expected, f"{where}: {what}: {actual!r} != {expected!r}"

    last = h.history[-1]
    if "status" in expect:
        eq(h.status.value, expect["status"], "status")
    if "error_code" in expect:
        eq(h.error.code if h.error else None, expect["error_code"], "error_code")
    if "error_message" in expect:
        assert h.error and expect["error_message"] in h.error.message, (where, h.error)
    for i, status in expect.get("targets", {}).items():
        eq(h.target(i).status.value, status, f"target {i}")
    for i, events in expect.get("events", {}).items():
        for name, status in events.items():
            eq(h.target(i).event(LifecycleEvent(name)).status.value, status, f"{i} {name}")
    for i, events in expect.get("event_message", {}).items():
        for name, text in events.items():
            diag = h.target(i).event(LifecycleEvent(name)).diagnostics
            assert diag and text in diag.message, (where, i, name, diag)
    for i, events in expect.get("event_error_code", {}).items():
        for name, code in events.items():
            diag = h.target(i).event(LifecycleEvent(name)).diagnostics
            eq(diag.error_code.value if diag else None, code, f"{i} {name} error code")
    if "overview" in expect:
        eq(last.overview.as_api(), expect["overview"], "overview")
    if "dispatched" in expect:
        eq(sorted(d[:2] for d in dispatched), sorted(expect["dispatched"]), "dispatched")
    if "server_steps" in expect:
        server = [d[:2] for d in dispatched if d[2] == "server"]
        eq(sorted(server), sorted(expect["server_steps"]), "server_steps")
    if "termination_wait_started" in expect:
        eq(h.snap.termination_wait_started, expect["termination_wait_started"], "termination")
    if "status_message" in expect:
        lines = [m for d in h.history for m in d.status_messages]
        assert any(expect["status_message"] in m for m in lines), (where, lines)
    if "unreachable" in expect:
        eq(list(last.unreachable), expect["unreachable"], "unreachable")
    if "rollback" in expect:
        want = expect["rollback"]
        if want == "none":
            eq(h.rollback, None, "rollback")
        else:
            assert h.rollback is not None, f"{where}: no rollback decision"
            assert want["message"] in h.rollback.message, (where, h.rollback.message)
            if want["plan"] is None:
                eq(h.rollback.plan, None, "rollback plan")
            else:
                plan = h.rollback.plan
                assert plan is not None, f"{where}: no rollback plan"
                for key, value in want["plan"].items():
                    eq(getattr(plan, key), value, f"rollback plan {key}")


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    spec = json.loads(path.read_text())
    h = build(spec)
    silent = spec.get("silent_from", {})
    for n, step in enumerate(spec["steps"]):
        where = f"{path.stem} step {n} (t={step['at']})"
        now = at(step["at"])
        for t in h.snap.targets:
            if step["at"] < silent.get(t.instance_id, float("inf")):
                h.poll(t.instance_id, now)
        for report in step.get("reports", []):
            if "ack" in report:
                h.ack(report["ack"], now, noop=report.get("noop", False))
            elif "run" in report:
                h.complete(report["run"], now, "Succeeded")
            elif "fail" in report:
                h.fail(
                    report["fail"],
                    now,
                    report.get("error_code", "ScriptFailed"),
                    report.get("message", ""),
                )
            elif "stop" in report:
                stop = report["stop"]
                request = StopRequest(now, stop.get("auto_rollback"), stop.get("by_alarm", False))
                h.snap = replace(h.snap, stop=request)
            elif "continue" in report:
                h.snap = replace(h.snap, continue_requested=report["continue"])
            else:
                raise AssertionError(f"{where}: unknown report {report}")
        dispatched: list[list[str]] = []
        if "drive" in step:
            drive(h, step["drive"], now, dispatched)
        else:
            d = h.step(now)
            dispatched += [[c.instance_id, c.event.value, c.executor] for c in d.dispatch]
        check(h, step.get("expect", {}), dispatched, where)


def test_every_scenario_is_listed() -> None:
    assert len(SCENARIOS) >= 10
