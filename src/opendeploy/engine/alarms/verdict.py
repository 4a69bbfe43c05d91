"""Pure deciders of the alarm watcher: which alarms a deployment watches, whether what they read
stops it, and what its analysis gate's metric means for the gate's recorded state.

No I/O: the watcher (:mod:`opendeploy.engine.alarms.watcher`) reads the sources and records
what these functions decide; the engine's reconcile acts on the records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from opendeploy.engine.alarms.declarations import GateDeclaration
from opendeploy.engine.snapshot import GateSnapshot

AlarmState = Literal["ALARM", "OK", "INSUFFICIENT_DATA"]


@dataclass(frozen=True, slots=True)
class AlarmReading:
    """One alarm's state, or why it could not be read."""

    state: AlarmState | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MetricReading:
    """A gate's query: its samples' values, or why it could not be read."""

    values: tuple[float, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AlarmConfig:
    """The ``alarmConfiguration`` in effect for a deployment, when it is enabled."""

    names: tuple[str, ...]
    ignore_poll_failure: bool = False


@dataclass(frozen=True, slots=True)
class AlarmStop:
    """The verdict: stop the deployment, because of these alarms."""

    alarms: tuple[str, ...]
    unreadable: bool = False


def effective_config(
    group: Mapping[str, Any] | None, override: Mapping[str, Any] | None
) -> AlarmConfig | None:
    """The configuration a deployment watches: its ``overrideAlarmConfiguration`` if it has one
    (it replaces the group's for that deployment), else its group's; None when not enabled
    (the console's "Ignore alarm configuration" keeps the list with ``enabled: false``)."""
    raw = override if override is not None else group
    if not raw or not raw.get("enabled"):
        return None
    names = tuple(str(a["name"]) for a in raw.get("alarms") or () if a.get("name"))
    if not names:
        return None
    return AlarmConfig(names, bool(raw.get("ignorePollAlarmFailure", False)))


def alarm_verdict(config: AlarmConfig, readings: Mapping[str, AlarmReading]) -> AlarmStop | None:
    """Whether the alarms stop the deployment: any in ALARM does (``INSUFFICIENT_DATA`` does
    not); one that cannot be read does unless ``ignorePollAlarmFailure`` (AWS: "false: The
    deployment stops if alarm status information can't be retrieved")."""
    active = tuple(n for n in config.names if _state(readings, n) == "ALARM")
    if active:
        return AlarmStop(active)
    unreadable = tuple(n for n in config.names if readings.get(n, _MISSING).error is not None)
    if unreadable and not config.ignore_poll_failure:
        return AlarmStop(unreadable, unreadable=True)
    return None


_MISSING = AlarmReading(error="not read")


def _state(readings: Mapping[str, AlarmReading], name: str) -> AlarmState | None:
    return readings.get(name, _MISSING).state


# --- analysis gates ---------------------------------------------------------------------------


def initial_gate_state(gate: GateDeclaration) -> dict[str, Any]:
    """A gate's stored state before its metric was read (CreateDeployment writes it, so the
    engine knows of the gate from the deployment's first pass)."""
    return {
        "name": gate.name,
        "hold_seconds": gate.hold_seconds,
        "timeout_seconds": gate.timeout_seconds,
        "on_timeout": gate.on_timeout,
        "ok_since": None,
        "checked_at": None,
        "detail": "not read yet",
    }


def observe_gate(
    previous: Mapping[str, Any] | None,
    gate: GateDeclaration,
    reading: MetricReading,
    now: datetime,
) -> dict[str, Any]:
    """The gate's new stored state after ``reading`` at ``now``: ``ok_since`` is kept while
    every sample stays within bounds, set to ``now`` when they come back, and cleared by a
    sample out of bounds, no sample at all, or a failed read; ``checked_at`` is ``now``."""
    state = initial_gate_state(gate)
    ok, detail = _within(gate, reading)
    state["detail"] = detail
    state["checked_at"] = now.isoformat()
    if ok:
        since = (previous or {}).get("ok_since")
        state["ok_since"] = since if since is not None else now.isoformat()
    return state


def _within(gate: GateDeclaration, reading: MetricReading) -> tuple[bool, str]:
    if reading.error is not None:
        return False, f"cannot read {gate.query}: {reading.error}"
    if not reading.values:
        return False, f"{gate.query} returned no sample"
    for v in reading.values:
        if (gate.min is not None and v < gate.min) or (gate.max is not None and v > gate.max):
            return False, f"{gate.query} = {v:g}, outside {gate.bounds()}"
    return True, f"{gate.query} = {_values(reading.values)}, within {gate.bounds()}"


def _values(values: Sequence[float]) -> str:
    return ", ".join(f"{v:g}" for v in values[:5]) + (" …" if len(values) > 5 else "")


def gate_snapshot(raw: Mapping[str, Any] | None) -> GateSnapshot | None:
    """The engine's view of a stored gate state."""
    if not raw:
        return None
    since, checked = raw.get("ok_since"), raw.get("checked_at")
    return GateSnapshot(
        name=str(raw["name"]),
        hold_seconds=float(raw["hold_seconds"]),
        timeout_seconds=float(raw["timeout_seconds"]),
        on_timeout="stop" if raw.get("on_timeout") == "stop" else "fail",
        ok_since=datetime.fromisoformat(since) if since else None,
        checked_at=datetime.fromisoformat(checked) if checked else None,
        detail=str(raw.get("detail") or ""),
    )


def gate_message(raw: Mapping[str, Any] | None) -> str | None:
    """The line ``deploymentStatusMessages`` shows for a gate (what the deployment waits on)."""
    if not raw:
        return None
    return f"Analysis gate {raw['name']}: {raw.get('detail') or 'not read yet'}"
