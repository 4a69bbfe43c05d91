"""``GET /metrics``: the server's metrics in Prometheus's text format.

Two kinds: what the code counts as it happens (:mod:`opendeploy.metrics`: API calls, effector
steps, notifications) and what is read from the store at scrape time, by :class:`StoreCollector`
(deployments by status and platform, agents polling or not, the outbox's backlog, the
notification log, and the lifecycle events finished since the last scrape, observed into their
histogram). Nothing here runs on the agents' poll path: a scrape costs a few aggregate queries.

Auth: none by default, as Prometheus scrapes; with ``--metrics-token`` (or the
``OPENDEPLOY_METRICS_TOKEN`` environment variable) the request must carry
``Authorization: Bearer <token>`` (Prometheus: ``authorization: {credentials: …}``).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import anyio.to_thread
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opendeploy import metrics
from opendeploy.store import tables
from opendeploy.store.database import Store

_D = tables.deployments
_I = tables.on_premises_instances
_L = tables.lifecycle_events
_O = tables.deployment_events
_N = tables.notification_deliveries


class StoreCollector(Collector):
    """Gauges read from the store on each scrape; lifecycle durations fed to their histogram."""

    def __init__(
        self,
        store: Store,
        *,
        agent_dead_after_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.agent_dead_after = timedelta(seconds=agent_dead_after_seconds)
        self.clock = clock
        #: Lifecycle events that ended after this are observed on the next scrape (per process:
        #: each replica reports those it sees, from its start on).
        self._watermark = clock()
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.store.database.read() as conn:
            by_status = conn.execute(
                select(_D.c.status, _D.c.compute_platform, func.count()).group_by(
                    _D.c.status, _D.c.compute_platform
                )
            ).all()
            live = _I.c.deregister_time.is_(None)
            seen = _I.c.last_seen_at >= now - self.agent_dead_after
            polling = conn.execute(
                select(func.count()).select_from(_I).where(and_(live, seen))
            ).scalar_one()
            registered = conn.execute(select(func.count()).select_from(_I).where(live)).scalar_one()
            undelivered = conn.execute(
                select(func.count()).select_from(_O).where(_O.c.delivered_at.is_(None))
            ).scalar_one()
            log_counts = conn.execute(
                select(_N.c.target_kind, _N.c.status, func.count()).group_by(
                    _N.c.target_kind, _N.c.status
                )
            ).all()
            with self._lock:
                since, self._watermark = self._watermark, now
                ended = conn.execute(
                    select(_L.c.name, _L.c.status, _L.c.start_time, _L.c.end_time).where(
                        _L.c.end_time > since, _L.c.end_time <= now, _L.c.start_time.is_not(None)
                    )
                ).all()
        for row in ended:
            seconds = max((row.end_time - row.start_time).total_seconds(), 0.0)
            metrics.LIFECYCLE_SECONDS.labels(row.name, row.status).observe(seconds)

        deployments = GaugeMetricFamily(
            "opendeploy_deployments",
            "Deployments in the store, by status and compute platform.",
            labels=["status", "platform"],
        )
        for r in by_status:
            deployments.add_metric([str(r[0]), str(r[1])], float(r[2]))
        yield deployments
        agents = GaugeMetricFamily(
            "opendeploy_agents",
            "Registered instances whose agent polled within --agent-dead-after (polling) or not.",
            labels=["state"],
        )
        agents.add_metric(["polling"], polling)
        agents.add_metric(["not_polling"], registered - polling)
        yield agents
        yield GaugeMetricFamily(
            "opendeploy_outbox_undelivered",
            "Deployment events not yet handed to the notifiers.",
            value=undelivered,
        )
        log = GaugeMetricFamily(
            "opendeploy_notification_deliveries",
            "Notifications in the delivery log, by target kind and status.",
            labels=["kind", "status"],
        )
        for r in log_counts:
            log.add_metric([str(r[0]), str(r[1])], float(r[2]))
        yield log


class _Shared(Collector):
    """The process's counters and histograms (:data:`opendeploy.metrics.REGISTRY`)."""

    def collect(self) -> Iterator[Metric]:
        yield from metrics.REGISTRY.collect()


def metrics_routes(
    store: Store, *, agent_dead_after_seconds: float, token: str | None
) -> list[Route]:
    """The ``/metrics`` route: this store's gauges and the process's counters."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, agent_dead_after_seconds=agent_dead_after_seconds))
    registry.register(_Shared())
    expected = f"Bearer {token}".encode() if token else None

    async def serve(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return PlainTextResponse(
                    "a bearer token is required (Authorization: Bearer <--metrics-token>)\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="opendeploy-metrics"'},
                )
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        # The classic text format (0.0.4), which every Prometheus and agent reads; the names
        # here need none of 1.0.0's escaping.
        return Response(body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    return [Route("/metrics", serve, methods=["GET"])]
