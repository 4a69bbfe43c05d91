"""``GET /metrics``: the store's gauges and the process's counters, and the bearer token."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette

from opendeploy import metrics
from opendeploy.store.database import Store
from opendeploy.testing.server import serve_in_thread
from opendeploy.web.metrics import metrics_routes


def test_metrics_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'opendeploy.db'}")
    try:
        app = Starlette(routes=metrics_routes(store, agent_dead_after_seconds=15, token="t0k"))
        metrics.observe_request("ListApplications", None, 0.002)
        with serve_in_thread(app) as endpoint, httpx.Client(base_url=endpoint) as client:
            refused = client.get("/metrics")
            wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
            served = client.get("/metrics", headers={"Authorization": "Bearer t0k"})
    finally:
        store.close()
    assert (refused.status_code, wrong.status_code, served.status_code) == (401, 401, 200)
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert served.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = served.text
    assert 'opendeploy_api_requests_total{error="",operation="ListApplications"}' in text
    assert 'opendeploy_agents{state="polling"} 0.0' in text
    assert "opendeploy_outbox_undelivered 0.0" in text
