"""The alarm watcher's round over fakes of its store and reader: what it reads, what it records,
and when it wakes the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opendeploy.engine.alarms.declarations import (
    AlarmDeclarations,
    AlarmSpec,
    GateDeclaration,
    PrometheusQuery,
)
from opendeploy.engine.alarms.verdict import AlarmReading, MetricReading, initial_gate_state
from opendeploy.engine.alarms.watcher import AlarmWatcher
from opendeploy.store.alarm_watch import Watched
from tests.engine.harness import at


@dataclass
class FakeStore:
    rows: list[Watched]
    stops: list[tuple[str, tuple[str, ...], bool]] = field(default_factory=list)
    gates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def watched(self) -> list[Watched]:
        return self.rows

    def record_alarm_stop(
        self, deployment_id: str, alarms: tuple[str, ...], *, unreadable: bool
    ) -> bool:
        self.stops.append((deployment_id, alarms, unreadable))
        return True

    def record_gate(self, deployment_id: str, state: dict[str, Any]) -> None:
        self.gates.append((deployment_id, state))


@dataclass
class FakeReader:
    states: dict[str, AlarmReading]
    value: float = 0.0
    reads: list[set[str]] = field(default_factory=list)

    def read(self, specs: Mapping[str, AlarmSpec]) -> dict[str, AlarmReading]:
        self.reads.append(set(specs))
        return {n: self.states[n] for n in specs}

    def metric(self, url: str, expression: str) -> MetricReading:
        return MetricReading((self.value,))


def _config(*names: str, ignore: bool = False) -> dict[str, Any]:
    return {
        "enabled": True,
        "ignorePollAlarmFailure": ignore,
        "alarms": [{"name": n} for n in names],
    }


def _row(dep: str, group: dict[str, Any] | None, **kw: Any) -> Watched:
    return Watched(dep, "shop", "prod", group, kw.pop("override", None), kw.pop("gate", None), **kw)


GATE = GateDeclaration("shop", "prod", "g", "http://vm", "q", None, 1.0, 5.0)


def _watcher(
    store: FakeStore, reader: FakeReader, decl: AlarmDeclarations, woken: list[int]
) -> AlarmWatcher:
    return AlarmWatcher(
        store,
        reader,
        lambda: decl,
        on_change=lambda: woken.append(1),
        clock=lambda: at(0),
    )


def test_a_round_reads_each_alarm_once_and_records_the_stops() -> None:
    store = FakeStore(
        [
            _row("d-1", _config("errors", "latency")),
            _row("d-2", _config("errors")),
            _row("d-3", None, override=_config("latency")),
            _row("d-4", _config("errors"), override={"enabled": False, "alarms": []}),
            _row("d-5", _config("errors"), creator="codeDeployRollback"),
        ]
    )
    reader = FakeReader({"errors": AlarmReading(state="ALARM"), "latency": AlarmReading("OK")})
    woken: list[int] = []
    assert _watcher(store, reader, AlarmDeclarations(), woken).round() == 2
    assert reader.reads == [{"errors", "latency"}]
    assert store.stops == [("d-1", ("errors",), False), ("d-2", ("errors",), False)]
    assert woken == [1]


def test_a_name_no_longer_declared_cannot_be_read() -> None:
    store = FakeStore([_row("d-1", _config("gone")), _row("d-2", _config("gone", ignore=True))])
    decl = AlarmDeclarations(
        {"kept": PrometheusQuery("http://p", "x", above=1)}, require_declared=True
    )
    reader = FakeReader({})
    _watcher(store, reader, decl, []).round()
    assert reader.reads == []
    assert store.stops == [("d-1", ("gone",), True)]


def test_gates_are_recorded_when_their_state_changes() -> None:
    decl = AlarmDeclarations(gates=(GATE,))
    ungated = _row("d-0", None)  # created without a gate: never gated later
    store = FakeStore([ungated, _row("d-1", None, gate=initial_gate_state(GATE))])
    woken: list[int] = []
    reader = FakeReader({}, value=0.5)
    assert _watcher(store, reader, decl, woken).round() == 1
    ((dep, state),) = store.gates
    assert dep == "d-1"
    assert state["ok_since"] == at(0).isoformat()
    assert state["checked_at"] == at(0).isoformat()
    assert woken == [1]
    # The same reading at the same instant changes nothing: nothing written, no wake-up.
    store.rows = [_row("d-1", None, gate=state)]
    assert _watcher(store, reader, decl, woken).round() == 0
    assert woken == [1]
