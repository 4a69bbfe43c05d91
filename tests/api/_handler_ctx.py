"""Calling the control-plane handlers directly over a real Store (no wire layer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opendeploy.api.context import Handler, RequestContext
from opendeploy.api.handlers import (
    applications,
    deployment_configs,
    deployment_groups,
    deployments,
    github,
    instances,
    onprem,
    revisions,
    tags,
)
from opendeploy.engine.dispatch import HostNotifier
from opendeploy.engine.worker import EngineWorker
from opendeploy.errors import ServiceError
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store

HANDLERS: dict[str, Handler] = {}
for module in (
    applications,
    deployment_configs,
    deployment_groups,
    deployments,
    github,
    instances,
    onprem,
    revisions,
    tags,
):
    HANDLERS.update(module.HANDLERS)


class Api:
    """``api.CreateApplication(applicationName="x")`` calls the handler of that operation."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> dict[str, Any]:
            return HANDLERS[operation](self.ctx, params)

        return call

    def run_engine(self) -> None:
        """One pass of the real engine over the store (no engine runs behind these handlers):
        what a server's engine does right after a CreateDeployment or StopDeployment wakes it."""
        worker = EngineWorker(self.ctx.store, self.ctx.settings, notifier=HostNotifier())
        while worker.run_once():
            pass

    def error(self, operation: str, **params: Any) -> ServiceError:
        """The ServiceError the call raises (fails the test when it succeeds)."""
        with pytest.raises(ServiceError) as info:
            HANDLERS[operation](self.ctx, params)
        return info.value


@pytest.fixture(name="api")
def api_fixture(database_url: str, tmp_path: Path) -> Iterator[Api]:
    store = Store.open(database_url)
    settings = ServerSettings(
        data_dir=tmp_path, database_url=database_url, region="eu-west-1", account_id="123456789012"
    )
    try:
        yield Api(RequestContext(store, settings, "AKIATEST", "req-1"))
    finally:
        store.close()
