"""BeforeAllowTraffic and AfterAllowTraffic on Lambda: the AppSpec checked, the hooks invoked.

BeforeAllowTraffic first checks the AppSpec against the function, as CodeDeploy does when a
Lambda deployment starts (each failure is AWS's ``INVALID_LAMBDA_CONFIGURATION`` message and
the reason): the function and both versions exist, the alias points to CurrentVersion and routes
no weight elsewhere (a deployment stopped without putting it back leaves one), and every hook
function named exists (AWS would only find out when it invokes it, after traffic moved).

A hook is invoked as CodeDeploy invokes it: asynchronously (``InvocationType=Event``), with the
payload ``{"DeploymentId", "LifecycleEventHookExecutionId"}`` and nothing else. The execution id
is the server step's own id (random, unguessable). The function answers through
PutLifecycleEventHookExecutionStatus, which the API records as the step's outcome, so this
effector only waits until that answer is in (or the engine gave the step up: a stop, or the
event timeout, which is how a hook that never answers fails). An invocation the Lambda API
refuses fails the event at once, with its error. A step run again after a restart invokes the
hook again, with the same execution id: at least once, as asynchronous invocation is on AWS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from opendeploy.appspec.lambda_spec import INVALID_LAMBDA_CONFIGURATION_MESSAGE, LambdaAppSpec
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.engine.effectors import ServerStep, StepOutcome, StepProgress
from opendeploy.engine.effectors.lambda_alias import (
    ROLLBACK_CREATOR,
    aws_error,
    not_found,
    routing_of,
)
from opendeploy.engine.effectors.lambda_client import lambda_client
from opendeploy.engine.effectors.lambda_ports import LambdaStore

#: AWS's reason when the alias is not on CurrentVersion (SAM issue 291 quotes it).
ALIAS_MISMATCH = (
    "The Lambda function alias version does not match the current version in AppSpec file."
)
#: How often a waiting hook looks for its answer in the store (one indexed read).
ANSWER_POLL_SECONDS = 0.2


class LambdaHookEffector:
    """BeforeAllowTraffic and AfterAllowTraffic of a Lambda deployment (see the module)."""

    def __init__(
        self,
        store: LambdaStore,
        *,
        client: Callable[[], Any] = lambda_client,
        poll_seconds: float = ANSWER_POLL_SECONDS,
    ) -> None:
        self.store = store
        self.client = client
        self.poll_seconds = poll_seconds

    def run(self, step: ServerStep, progress: StepProgress) -> StepOutcome:
        spec, why = self.store.spec(step.deployment_id)
        if spec is None:
            return StepOutcome.failed(f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} {why}")
        try:
            client = self.client()
            if step.event is LifecycleEvent.BEFORE_ALLOW_TRAFFIC and step.creator != (
                ROLLBACK_CREATOR
            ):
                problem = check_against_function(client, spec)
                if problem is not None:
                    return StepOutcome.failed(f"{INVALID_LAMBDA_CONFIGURATION_MESSAGE} {problem}")
        except (ClientError, BotoCoreError) as e:
            return StepOutcome.failed(
                f"The Lambda function {spec.function_name} could not be checked: {aws_error(e)}"
            )
        hook = spec.hook(str(step.event))
        if hook is None or step.creator == ROLLBACK_CREATOR:
            return StepOutcome.succeeded(f"No {step.event} hook: nothing to run.")
        payload = {
            "DeploymentId": step.deployment_id,
            "LifecycleEventHookExecutionId": step.command_id,
        }
        try:
            answer = client.invoke(
                FunctionName=hook, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        except (ClientError, BotoCoreError) as e:
            return StepOutcome.failed(
                f"The {step.event} hook function {hook} could not be invoked: {aws_error(e)}"
            )
        if answer.get("FunctionError"):
            return StepOutcome.failed(
                f"The {step.event} hook function {hook} failed when invoked: "
                f"{answer['FunctionError']}"
            )
        progress.report(
            f"Invoked {hook} (InvocationType Event); waiting for its "
            f"PutLifecycleEventHookExecutionStatus with lifecycleEventHookExecutionId "
            f"{step.command_id}."
        )
        while not progress.cancelled() and not self.store.hook_answered(step.command_id):
            time.sleep(self.poll_seconds)  # the answer is a row another request writes
        # The answer (or the engine's verdict) is the step's outcome already; this one arrives
        # too late to count, by design.
        return StepOutcome.succeeded(f"The {step.event} hook function {hook} answered.")


def check_against_function(client: Any, spec: LambdaAppSpec) -> str | None:
    """Why the AppSpec does not match the function (None: it does)."""
    fn, name = spec.function_name, spec.alias
    try:
        client.get_function(FunctionName=fn)
    except ClientError as e:
        if not_found(e):
            return f"The Lambda function {fn} does not exist."
        raise
    try:
        alias = client.get_alias(FunctionName=fn, Name=name)
    except ClientError as e:
        if not_found(e):
            return f"The alias {name} of the Lambda function {fn} does not exist."
        raise
    version, weights = routing_of(alias)
    if version != spec.current_version:
        return (
            f"{ALIAS_MISMATCH} The alias {name} points to version {version}; the AppSpec's "
            f"CurrentVersion is {spec.current_version}."
        )
    if weights:
        shares = ", ".join(f"{w:.0%} to version {v}" for v, w in sorted(weights.items()))
        return (
            f"The alias {name} of {fn} already routes {shares} (a deployment stopped without "
            "putting it back?); remove its routing configuration before deploying."
        )
    for label, version in (("TargetVersion", spec.target_version),):
        try:
            client.get_function(FunctionName=fn, Qualifier=version)
        except ClientError as e:
            if not_found(e):
                return f"The {label} {version} of the Lambda function {fn} does not exist."
            raise
    for event, hook in (
        ("BeforeAllowTraffic", spec.before_allow_traffic),
        ("AfterAllowTraffic", spec.after_allow_traffic),
    ):
        if hook is None:
            continue
        try:
            client.get_function(FunctionName=hook)
        except ClientError as e:
            if not_found(e):
                return f"The {event} hook function {hook} does not exist."
            raise
    return None
