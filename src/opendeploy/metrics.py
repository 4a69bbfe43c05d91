"""The server's own metrics (Prometheus), the counters and histograms the code updates as things
happen. What is read from the store at scrape time (deployments by status, agents polling) is
``web.metrics``'s collector; ``GET /metrics`` serves both.

Names follow Prometheus's conventions: ``opendeploy_`` prefix, ``_total`` counters, ``_seconds``
histograms. Every metric lives in :data:`REGISTRY` (not the library's global one), so that a
process serving several apps (tests) and the library's own process metrics stay apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

API_REQUESTS = Counter(
    "opendeploy_api_requests",
    "API calls answered, by operation and error code (empty: success).",
    ["operation", "error"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "opendeploy_api_request_duration_seconds",
    "Time to answer an API call, by operation (PollHostCommand includes its hold).",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
LIFECYCLE_SECONDS = Histogram(
    "opendeploy_lifecycle_event_duration_seconds",
    "Duration of finished lifecycle events, by event and status.",
    ["event", "status"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
EFFECTOR_STEPS = Counter(
    "opendeploy_effector_steps",
    "Server-side steps (BlockTraffic, AllowTraffic …) run, by event and outcome.",
    ["event", "outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "opendeploy_notifications",
    "Notification attempts, by target kind (sns, webhook) and result (delivered, failed).",
    ["kind", "result"],
    registry=REGISTRY,
)
NOTIFICATION_SECONDS = Histogram(
    "opendeploy_notification_send_duration_seconds",
    "Time one notification attempt took, by target kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)

_requests: dict[tuple[str, str], tuple[Counter, Histogram]] = {}


def observe_request(operation: str, error: str | None, seconds: float) -> None:
    """Count one API call (the label children are cached: this runs on every agent poll)."""
    key = (operation, error or "")
    children = _requests.get(key)
    if children is None:
        children = (API_REQUESTS.labels(*key), API_SECONDS.labels(operation))
        _requests[key] = children
    children[0].inc()
    children[1].observe(seconds)
