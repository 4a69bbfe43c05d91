"""Amazon ECS and Elastic Load Balancing v2 through boto3: the AWS providers of an ECS deployment.

The clients come from boto3's standard configuration (credential chain, region,
``AWS_ENDPOINT_URL_ECS`` / ``AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2``, ``AWS_MAX_ATTEMPTS``),
so the same code drives AWS, LocalStack or a moto server with no option of ours. Calls are
idempotent as the ports require: CreateTaskSet is preceded by a look for a task set of the same
``externalId`` (a rerun after a lost answer must not start a second replacement), and deleting a
task set that is gone is not an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.built_once import BuiltOnce
from opendeploy.engine.effectors import StepProgress
from opendeploy.engine.effectors.containers import (
    ContainerPlatformError,
    EcsService,
    TaskSet,
    TaskSetSpec,
)

#: How often a wait for a steady task set asks ECS again (its own waiters ask every 15 s; a
#: deployment is faster the sooner it sees the change, and DescribeTaskSets is cheap).
POLL_SECONDS = 1.0
#: A progress line (which also renews the step's lease) at most this often.
PROGRESS_EVERY_SECONDS = 5.0


def _client(service_name: str) -> Any:
    return boto3.session.Session().client(service_name)


def _answer(e: Exception) -> str:
    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(e)


class AwsEcsPlatform:
    """The :class:`~opendeploy.engine.effectors.containers.ContainerPlatform` of Amazon ECS."""

    def __init__(
        self, client: Callable[[], Any] | None = None, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self._ecs = BuiltOnce(client or (lambda: _client("ecs")))
        self.poll_seconds = poll_seconds

    @property
    def ecs(self) -> Any:
        return self._ecs()

    def _call(self, target: EcsService, what: str, /, **kwargs: Any) -> Any:
        try:
            return getattr(self.ecs, what)(**kwargs)
        except (ClientError, BotoCoreError) as e:
            raise ContainerPlatformError(
                f"ECS {what} for service {target.service} in cluster {target.cluster} "
                f"failed: {_answer(e)}"
            ) from None

    def task_sets(self, service: EcsService) -> list[TaskSet]:
        answer = self._call(
            service, "describe_services", cluster=service.cluster, services=[service.service]
        )
        found = answer.get("services") or []
        if not found:
            reasons = ", ".join(f.get("reason", "?") for f in answer.get("failures") or [])
            raise ContainerPlatformError(
                f"ECS has no service {service.service} in cluster {service.cluster}"
                + (f" ({reasons})" if reasons else "")
            )
        return [_task_set(raw) for raw in found[0].get("taskSets") or []]

    def create_task_set(self, service: EcsService, spec: TaskSetSpec) -> TaskSet:
        for existing in self.task_sets(service):
            if existing.external_id == spec.external_id and existing.status != "DRAINING":
                return existing
        request: dict[str, Any] = {
            "cluster": service.cluster,
            "service": service.service,
            "taskDefinition": spec.task_definition,
            "externalId": spec.external_id,
            "loadBalancers": [
                {
                    "targetGroupArn": spec.target_group,
                    "containerName": spec.container_name,
                    "containerPort": spec.container_port,
                }
            ],
            "scale": {"unit": "PERCENT", "value": 100.0},
        }
        if spec.platform_version:
            request["platformVersion"] = spec.platform_version
        if spec.network_configuration:
            request["networkConfiguration"] = dict(spec.network_configuration)
        if spec.capacity_provider_strategy:
            request["capacityProviderStrategy"] = [dict(s) for s in spec.capacity_provider_strategy]
        return _task_set(self._call(service, "create_task_set", **request)["taskSet"])

    def wait_steady(
        self, service: EcsService, identifier: str, timeout: float, progress: StepProgress
    ) -> TaskSet:
        started = reported = time.monotonic()
        while True:
            current = self._one(service, identifier)
            if current.steady and current.running >= current.desired:
                return current
            now = time.monotonic()
            if now - started > timeout:
                raise ContainerPlatformError(
                    f"the replacement task set {identifier} of service {service.service} did not "
                    f"reach a steady state within {timeout:g} s ({current.running} of "
                    f"{current.desired} tasks running)"
                )
            if progress.cancelled():
                raise ContainerPlatformError(f"waiting for task set {identifier} was given up")
            if now - reported >= PROGRESS_EVERY_SECONDS:
                progress.report(
                    f"task set {identifier}: {current.running} of {current.desired} tasks running"
                )
                reported = now
            time.sleep(self.poll_seconds)

    def _one(self, service: EcsService, identifier: str) -> TaskSet:
        answer = self._call(
            service,
            "describe_task_sets",
            cluster=service.cluster,
            service=service.service,
            taskSets=[identifier],
        )
        found = answer.get("taskSets") or []
        if not found:
            raise ContainerPlatformError(
                f"service {service.service} in cluster {service.cluster} has no task set "
                f"{identifier}"
            )
        return _task_set(found[0])

    def make_primary(self, service: EcsService, identifier: str) -> None:
        self._call(
            service,
            "update_service_primary_task_set",
            cluster=service.cluster,
            service=service.service,
            primaryTaskSet=self._arn(service, identifier),
        )

    def _find(self, service: EcsService, identifier: str) -> TaskSet | None:
        for task_set in self.task_sets(service):
            if identifier in (task_set.identifier, task_set.arn):
                return task_set
        return None

    def _arn(self, service: EcsService, identifier: str) -> str:
        # AWS takes a task set's id or ARN; moto only the ARN, so the ARN it is.
        found = self._find(service, identifier)
        if found is None:
            raise ContainerPlatformError(
                f"service {service.service} in cluster {service.cluster} has no task set "
                f"{identifier}"
            )
        return found.arn

    def delete_task_set(self, service: EcsService, identifier: str) -> None:
        found = self._find(service, identifier)
        if found is None:
            return  # gone already: a rerun
        try:
            self.ecs.delete_task_set(
                cluster=service.cluster, service=service.service, taskSet=found.arn, force=True
            )
        except (ClientError, BotoCoreError) as e:
            # Gone meanwhile: AWS says TaskSetNotFoundException, moto a ClientException; the
            # service's own list decides rather than either wording.
            if self._find(service, identifier) is None:
                return
            raise ContainerPlatformError(
                f"ECS delete_task_set {identifier} of service {service.service} failed: "
                f"{_answer(e)}"
            ) from None


def _task_set(raw: Mapping[str, Any]) -> TaskSet:
    return TaskSet(
        identifier=str(raw.get("id") or raw.get("taskSetArn", "")),
        arn=str(raw.get("taskSetArn", "")),
        status=str(raw.get("status", "")),
        task_definition=str(raw.get("taskDefinition", "")),
        desired=int(raw.get("computedDesiredCount") or 0),
        pending=int(raw.get("pendingCount") or 0),
        running=int(raw.get("runningCount") or 0),
        steady=raw.get("stabilityStatus") == "STEADY_STATE",
        target_groups=tuple(
            str(lb["targetGroupArn"])
            for lb in raw.get("loadBalancers") or []
            if lb.get("targetGroupArn")
        ),
        external_id=raw.get("externalId"),
    )


class ElbV2Listeners:
    """The :class:`~opendeploy.engine.effectors.containers.Listeners` of Elastic Load Balancing
    v2: a listener's default action, a forward over weighted target groups."""

    def __init__(self, client: Callable[[], Any] | None = None) -> None:
        self._elb = BuiltOnce(client or (lambda: _client("elbv2")))

    @property
    def elb(self) -> Any:
        return self._elb()

    def forwards(self, listener: str) -> dict[str, int]:
        try:
            found = self.elb.describe_listeners(ListenerArns=[listener])["Listeners"]
        except (ClientError, BotoCoreError) as e:
            raise ContainerPlatformError(
                f"ELBv2 DescribeListeners for {listener} failed: {_answer(e)}"
            ) from None
        weights: dict[str, int] = {}
        for action in found[0].get("DefaultActions") or [] if found else []:
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                weights.update({g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups})
            elif action.get("TargetGroupArn"):
                weights[action["TargetGroupArn"]] = 1
        return weights

    def forward(self, listener: str, weights: Mapping[str, int]) -> None:
        groups = [{"TargetGroupArn": arn, "Weight": int(w)} for arn, w in weights.items()]
        try:
            self.elb.modify_listener(
                ListenerArn=listener,
                DefaultActions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}],
            )
        except (ClientError, BotoCoreError) as e:
            raise ContainerPlatformError(
                f"ELBv2 ModifyListener {listener} to "
                + ", ".join(f"{arn} {w}" for arn, w in weights.items())
                + f" failed: {_answer(e)}"
            ) from None
