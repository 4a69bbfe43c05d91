"""The alarm watcher: reads the alarms and gates of every deployment not over yet, and records
what they mean for the engine.

One background loop per server process. Each round (every ``alarm_poll_seconds``, and at once
when the Alertmanager receiver takes in an alert) it:

1. lists the deployments that are not over and not stopping, with the alarm configuration in
   effect for each (the deployment's ``overrideAlarmConfiguration``, else its group's);
2. reads every alarm they name once, each through the source its declaration names;
3. records a stop by an alarm for each deployment that :func:`alarm_verdict` says must stop;
4. reads the metric of each deployment's analysis gate and records the gate's new state;
5. wakes the engine when it recorded anything, so the stop lands within the engine's next pass.

Rollback deployments are not watched for alarms (the alarm that caused them still fires).

The watcher only records facts; the engine's reconcile ends the deployment (``ALARM_ACTIVE``)
and rolls it back as ``DEPLOYMENT_STOP_ON_ALARM`` says, on every platform alike. With several
replicas each watches every deployment; recording a stop twice is harmless (the second finds
the stop requested and writes nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from opendeploy.engine.alarms.declarations import AlarmDeclarations, AlarmSpec
from opendeploy.engine.alarms.verdict import (
    AlarmConfig,
    AlarmReading,
    MetricReading,
    alarm_verdict,
    effective_config,
    observe_gate,
)
from opendeploy.engine.loop import BackgroundLoop
from opendeploy.store.alarm_watch import Watched

log = logging.getLogger("opendeploy.alarms")

#: The creator of a rollback deployment (``DeploymentInfo.creator``).
ROLLBACK_CREATOR = "codeDeployRollback"


class WatchStore(Protocol):
    """What the watcher reads and records (SQL: ``store.alarm_watch.AlarmWatchStore``)."""

    def watched(self) -> list[Watched]: ...

    def record_alarm_stop(
        self, deployment_id: str, alarms: tuple[str, ...], *, unreadable: bool
    ) -> bool: ...

    def record_gate(self, deployment_id: str, state: dict[str, Any]) -> None: ...


class Reader(Protocol):
    """Where alarm states and gate metrics come from (``alarms.sources.AlarmReader``)."""

    def read(self, specs: Mapping[str, AlarmSpec]) -> dict[str, AlarmReading]: ...

    def metric(self, url: str, expression: str) -> MetricReading: ...


class AlarmWatcher(BackgroundLoop):
    """Watches alarms and gates; ``wake()`` runs a round at once."""

    thread_name = "opendeploy-alarms"

    def __init__(
        self,
        store: WatchStore,
        reader: Reader,
        declarations: Callable[[], AlarmDeclarations],
        *,
        on_change: Callable[[], None],
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__()
        self.store = store
        self.reader = reader
        self._declarations = declarations
        self._on_change = on_change
        self.poll_seconds = poll_seconds
        self._clock = clock

    def _run(self) -> None:
        log.info("alarm watcher started poll_seconds=%g", self.poll_seconds)
        while not self._stopping.is_set():
            try:
                self.round()
            except Exception:
                log.exception("alarm watch round failed; retrying on the next tick")
            self.wakeup.wait(self.poll_seconds)

    def round(self) -> int:
        """One look at every watched deployment; how many facts it recorded."""
        watched = self.store.watched()
        if not watched:
            return 0
        declarations = self._declarations()
        configs: dict[str, AlarmConfig] = {}
        for w in watched:
            if w.creator == ROLLBACK_CREATOR:
                # The alarm that stopped the deployment usually still fires while its rollback
                # restores the last good revision: stopping the rollback too would leave the
                # bad revision in place. (A deployment a user makes may opt out of an alarm
                # through overrideAlarmConfiguration, as with AWS.)
                continue
            config = effective_config(w.group_alarms, w.override_alarms)
            if config is not None:
                configs[w.deployment_id] = config
        readings = self._read({n for c in configs.values() for n in c.names}, declarations)
        recorded = 0
        for w in watched:
            config = configs.get(w.deployment_id)
            if config is not None:
                stop = alarm_verdict(config, readings)
                if stop is not None and self.store.record_alarm_stop(
                    w.deployment_id, stop.alarms, unreadable=stop.unreadable
                ):
                    recorded += 1
                    log.warning(
                        "deployment stopped by alarm deployment_id=%s alarms=%s unreadable=%s",
                        w.deployment_id,
                        ",".join(stop.alarms),
                        stop.unreadable,
                    )
                    continue
            recorded += self._watch_gate(w, declarations)
        if recorded:
            self._on_change()
        return recorded

    def _read(self, names: set[str], declarations: AlarmDeclarations) -> dict[str, AlarmReading]:
        specs: dict[str, AlarmSpec] = {}
        out: dict[str, AlarmReading] = {}
        for name in names:
            spec = declarations.resolve(name)
            if spec is None:  # the file changed since the group was saved
                out[name] = AlarmReading(error=f"alarm {name} is not declared on this server")
            else:
                specs[name] = spec
        if specs:
            out.update(self.reader.read(specs))
        for name, reading in out.items():
            if reading.error is not None:
                log.warning("alarm unreadable alarm=%s error=%s", name, reading.error)
        return out

    def _watch_gate(self, w: Watched, declarations: AlarmDeclarations) -> int:
        if w.gate_state is None:
            return 0  # created without a gate (or a rollback, which no gate holds)
        gate = declarations.gate_for(w.application_name, w.deployment_group_name)
        if gate is None:
            return 0
        try:
            reading = self.reader.metric(gate.url, gate.query)
        except Exception as e:  # a source's bug must not stop the other deployments' watch
            reading = MetricReading(error=str(e))
        state = observe_gate(w.gate_state, gate, reading, self._clock())
        if state == w.gate_state:
            return 0
        self.store.record_gate(w.deployment_id, state)
        return 1
