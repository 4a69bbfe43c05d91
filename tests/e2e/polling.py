"""Waiting on a real server's state from an end-to-end test.

The CodeDeploy API offers no push (and the hooks' proof files give no event), so the tests poll
at a short interval up to a deadline, and say what they were waiting for when it passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TERMINAL = ("Succeeded", "Failed", "Stopped")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Call ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def deployment_info(client: Any, deployment_id: str) -> dict[str, Any]:
    info: dict[str, Any] = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    return info


def finished_deployment(client: Any, deployment_id: str, timeout: float = 60) -> dict[str, Any]:
    """The deployment's info once it is Succeeded, Failed or Stopped."""

    def done() -> dict[str, Any] | None:
        info = deployment_info(client, deployment_id)
        return info if info["status"] in TERMINAL else None

    result: dict[str, Any] = wait_for(done, timeout, f"deployment {deployment_id} to finish")
    return result
