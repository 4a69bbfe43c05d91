"""The dashboard's actions, through the very operation handlers the API serves.

Stop, continue and redeploy call ``StopDeployment``, ``ContinueDeployment`` and
``CreateDeployment`` from the server's control table (the one ``POST /`` dispatches to), so the
rules, the engine's stop path and the wake-up of the engine worker are the API's, not copies.
Each returns a :class:`Outcome` the page shows as its result.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opendeploy.api.context import Handler, RequestContext
from opendeploy.errors import ServiceError
from opendeploy.settings import ServerSettings
from opendeploy.store.database import Store


@dataclass(frozen=True)
class Outcome:
    """What an action did: ``ok`` or not, a sentence for the user, maybe a page to go to."""

    ok: bool
    message: str
    deployment_id: str | None = None


class Actions:
    """Deployment actions on behalf of a logged-in admin key."""

    def __init__(
        self, *, store: Store, settings: ServerSettings, control: Mapping[str, Handler]
    ) -> None:
        self.store = store
        self.settings = settings
        self.control = control

    def _call(self, principal: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        ctx = RequestContext(
            store=self.store,
            settings=self.settings,
            principal=principal,
            request_id=str(uuid.uuid4()),
        )
        return self.control[operation](ctx, params)

    def stop(self, principal: str, deployment_id: str, *, rollback: bool) -> Outcome:
        try:
            answer = self._call(
                principal,
                "StopDeployment",
                {"deploymentId": deployment_id, "autoRollbackEnabled": rollback},
            )
        except ServiceError as exc:
            return Outcome(False, f"Stop failed: {exc.code}: {exc}")
        what = "Stop with rollback" if rollback else "Stop"
        return Outcome(
            True, f"{what} requested: {answer.get('status')}. {answer.get('statusMessage', '')}"
        )

    def continue_(self, principal: str, deployment_id: str) -> Outcome:
        try:
            self._call(
                principal,
                "ContinueDeployment",
                {"deploymentId": deployment_id, "deploymentWaitType": "READY_WAIT"},
            )
        except ServiceError as exc:
            return Outcome(False, f"Continue failed: {exc.code}: {exc}")
        return Outcome(True, f"Deployment {deployment_id} continues.")

    def redeploy(self, principal: str, deployment_id: str) -> Outcome:
        """A new deployment of ``deployment_id``'s revision to the same group, same options."""
        row = self.store.deployments.get(deployment_id)
        if row is None:
            return Outcome(False, f"Redeploy failed: deployment {deployment_id} does not exist.")
        params: dict[str, Any] = {
            "applicationName": row["application_name"],
            "deploymentGroupName": row["deployment_group_name"],
            "revision": row["revision"],
            "deploymentConfigName": row["deployment_config_name"],
            "ignoreApplicationStopFailures": bool(row["ignore_application_stop_failures"]),
            "description": f"Redeploy of {deployment_id} from the dashboard",
        }
        if row["compute_platform"] == "Server":
            # Lambda and ECS deployments refuse it (AWS: "can not be specified").
            params["fileExistsBehavior"] = row["file_exists_behavior"]
        try:
            answer = self._call(principal, "CreateDeployment", params)
        except ServiceError as exc:
            return Outcome(False, f"Redeploy failed: {exc.code}: {exc}")
        new_id = str(answer["deploymentId"])
        return Outcome(
            True, f"Deployment {new_id} created from {deployment_id}'s revision.", new_id
        )
