"""Alarms that stop deployments, and analysis gates that hold them (platforms.md §5).

- :mod:`~opendeploy.engine.alarms.declarations`: the ``--alarms`` file (what each alarm name
  is: CloudWatch, a Prometheus-compatible expression or alert, an Alertmanager alert; gates).
- :mod:`~opendeploy.engine.alarms.sources`: reading alarm states, one protocol per source.
- :mod:`~opendeploy.engine.alarms.verdict`: the pure rules (which configuration applies, what
  stops a deployment, how a gate's metric reading changes its state).
- :mod:`~opendeploy.engine.alarms.watcher`: the loop that reads and records; the engine's
  reconcile acts on what it recorded (``Plan.end_if_stopped``, ``Plan.hold_for_gate``).
"""

from __future__ import annotations

from opendeploy.engine.alarms.declarations import (
    AlarmDeclarationError,
    AlarmDeclarations,
    declared,
)
from opendeploy.engine.alarms.sources import (
    AlarmReader,
    AlarmSource,
    CloudWatchSource,
    PrometheusSource,
    WebhookAlerts,
)
from opendeploy.engine.alarms.watcher import AlarmWatcher

__all__ = [
    "AlarmDeclarationError",
    "AlarmDeclarations",
    "AlarmReader",
    "AlarmSource",
    "AlarmWatcher",
    "CloudWatchSource",
    "PrometheusSource",
    "WebhookAlerts",
    "declared",
]
