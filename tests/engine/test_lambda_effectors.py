"""The Lambda effectors against an in-memory Lambda API (the end-to-end tests use moto).

What is checked here is what the effectors decide: the weights and their order, idempotent
writes read back, a resumed shift catching up in one write, the restorer leaving an alias it
did not set, the hook's payload and invocation type, and the checks against the function.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from opendeploy.appspec.lambda_spec import LambdaAppSpec
from opendeploy.domain.configs import TrafficRouting, TrafficRoutingType
from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.records import DeploymentStyle, LoadBalancerInfo
from opendeploy.engine.effectors import ServerStep
from opendeploy.engine.effectors.lambda_alias import AliasRestorer, LambdaAliasEffector
from opendeploy.engine.effectors.lambda_hooks import LambdaHookEffector

SPEC = LambdaAppSpec("fn", "live", "1", "2", "CodeDeployHook_pre", None)
T = TrafficRoutingType


def _missing(op: str) -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "nope"}}, op)


@dataclass
class FakeLambda:
    """GetFunction, GetAlias, UpdateAlias, Invoke over dicts; every write and invoke recorded."""

    versions: dict[str, set[str]] = field(
        default_factory=lambda: {"fn": {"1", "2"}, "CodeDeployHook_pre": {"1"}}
    )
    alias: tuple[str, dict[str, float]] = ("1", {})
    updates: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    invokes: list[dict[str, Any]] = field(default_factory=list)
    invoke_error: str | None = None

    def get_function(self, FunctionName: str, Qualifier: str | None = None) -> dict[str, Any]:
        known = self.versions.get(FunctionName)
        if known is None or (Qualifier is not None and Qualifier not in known):
            raise _missing("GetFunction")
        return {"Configuration": {"FunctionName": FunctionName}}

    def get_alias(self, FunctionName: str, Name: str) -> dict[str, Any]:
        if FunctionName != "fn" or Name != "live":
            raise _missing("GetAlias")
        version, weights = self.alias
        return {"FunctionVersion": version, "RoutingConfig": {"AdditionalVersionWeights": weights}}

    def update_alias(self, **kw: Any) -> None:
        self.alias = (kw["FunctionVersion"], dict(kw["RoutingConfig"]["AdditionalVersionWeights"]))
        self.updates.append(self.alias)

    def invoke(self, **kw: Any) -> dict[str, Any]:
        if self.invoke_error:
            raise ClientError({"Error": {"Code": self.invoke_error, "Message": "no"}}, "Invoke")
        self.invokes.append(kw)
        return {"StatusCode": 202}


@dataclass
class FakeStore:
    routing_: TrafficRouting = field(default_factory=lambda: TrafficRouting(T.ALL_AT_ONCE))
    status_: str = "InProgress"
    weights: list[float] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    answered: bool = True

    def spec(self, deployment_id: str) -> tuple[LambdaAppSpec | None, str | None]:
        return SPEC, None

    def routing(self, deployment_id: str) -> TrafficRouting:
        return self.routing_

    def record_weight(self, deployment_id: str, weight: float, at: datetime) -> None:
        self.weights.append(weight)

    def status(self, deployment_id: str) -> str | None:
        return self.status_

    def hook_answered(self, execution_id: str) -> bool:
        return self.answered

    def needing_restore(self) -> list[tuple[str, LambdaAppSpec]]:
        return [] if self.restored else [("d-AAAAAAAAA", SPEC)]

    def mark_restored(self, deployment_id: str, at: datetime) -> None:
        self.restored.append(deployment_id)


class Progress:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.cancel = False

    def report(self, message: str) -> None:
        self.lines.append(message)

    def cancelled(self) -> bool:
        return self.cancel


def step(event: LifecycleEvent, started: datetime, creator: str = "user") -> ServerStep:
    return ServerStep(
        "cmd-1", "d-AAAAAAAAA", "fn", event, started, LoadBalancerInfo.from_wire(None),
        DeploymentStyle(), compute_platform="Lambda", creator=creator,
    )  # fmt: skip


def shift(
    store: FakeStore, lam: FakeLambda, started: datetime, minute: float = 0.02
) -> tuple[str, Progress]:
    effector = LambdaAliasEffector(
        store, AliasRestorer(store, client=lambda: lam), client=lambda: lam,
        minute=timedelta(seconds=minute),
    )  # fmt: skip
    progress = Progress()
    outcome = effector.run(step(LifecycleEvent.ALLOW_TRAFFIC, started), progress)
    return outcome.result, progress


def test_linear_sets_each_weight_once_in_order_and_ends_on_the_target() -> None:
    store = FakeStore(TrafficRouting(T.TIME_BASED_LINEAR, 25, 1))
    lam = FakeLambda()
    # Minutes of 0.25 s: a shift late by a whole interval (a loaded machine) would be caught up
    # by the next one, by design, and skip a weight.
    result, progress = shift(store, lam, datetime.now(UTC), minute=0.25)
    assert result == "Succeeded"
    assert lam.updates == [("1", {"2": 0.25}), ("1", {"2": 0.5}), ("1", {"2": 0.75}), ("2", {})]
    assert store.weights == [0.25, 0.5, 0.75, 1.0]
    assert "version 2 25%, version 1 75%" in progress.lines[0]


def test_a_resumed_shift_catches_up_in_one_write_and_a_repeat_writes_nothing() -> None:
    store = FakeStore(TrafficRouting(T.TIME_BASED_CANARY, 10, 1))
    lam = FakeLambda()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    assert shift(store, lam, long_ago)[0] == "Succeeded"
    assert lam.updates == [("2", {})]
    assert shift(store, lam, long_ago)[0] == "Succeeded"
    assert lam.updates == [("2", {})]  # read first: already there


def test_a_stopped_deployment_is_not_shifted_and_its_alias_is_put_back() -> None:
    store = FakeStore(TrafficRouting(T.TIME_BASED_LINEAR, 10, 1), status_="Stopped")
    lam = FakeLambda(alias=("1", {"2": 0.3}))
    result, _ = shift(store, lam, datetime.now(UTC))
    assert result == "Failed"
    assert lam.updates == [("1", {})]
    assert store.restored == ["d-AAAAAAAAA"]


def test_the_restorer_leaves_an_alias_another_deployment_moved() -> None:
    store = FakeStore()
    lam = FakeLambda(alias=("5", {"6": 0.5}))
    AliasRestorer(store, client=lambda: lam).run_once()
    assert lam.updates == [] and store.restored == ["d-AAAAAAAAA"]
    store, lam = FakeStore(), FakeLambda(alias=("2", {}))
    AliasRestorer(store, client=lambda: lam).run_once()
    assert lam.updates == [("1", {})]


def test_the_hook_is_invoked_as_codedeploy_invokes_it() -> None:
    lam = FakeLambda()
    progress = Progress()
    effector = LambdaHookEffector(FakeStore(), client=lambda: lam, poll_seconds=0.01)
    started = datetime.now(UTC)
    outcome = effector.run(step(LifecycleEvent.BEFORE_ALLOW_TRAFFIC, started), progress)
    assert outcome.result == "Succeeded"
    (call,) = lam.invokes
    assert call["FunctionName"] == "CodeDeployHook_pre"
    assert call["InvocationType"] == "Event"
    assert json.loads(call["Payload"]) == {
        "DeploymentId": "d-AAAAAAAAA",
        "LifecycleEventHookExecutionId": "cmd-1",
    }
    assert "lifecycleEventHookExecutionId cmd-1" in progress.lines[0]
    # No AfterAllowTraffic hook in the AppSpec: nothing is invoked.
    after = effector.run(step(LifecycleEvent.AFTER_ALLOW_TRAFFIC, started), progress)
    assert after.result == "Succeeded" and len(lam.invokes) == 1


def test_the_checks_against_the_function() -> None:
    cases = [
        (FakeLambda(alias=("2", {})), "alias version does not match"),
        (FakeLambda(alias=("1", {"2": 0.1})), "already routes 10% to version 2"),
        (FakeLambda(versions={"fn": {"1"}, "CodeDeployHook_pre": {"1"}}), "TargetVersion 2"),
        (FakeLambda(versions={"fn": {"1", "2"}}), "hook function CodeDeployHook_pre does not"),
        (FakeLambda(versions={}), "The Lambda function fn does not exist"),
    ]
    for lam, words in cases:
        effector = LambdaHookEffector(FakeStore(), client=lambda lam=lam: lam)  # type: ignore[misc]
        started = datetime.now(UTC)
        outcome = effector.run(step(LifecycleEvent.BEFORE_ALLOW_TRAFFIC, started), Progress())
        assert outcome.result == "Failed", words
        assert outcome.diagnostics.message.startswith("The deployment failed because the AppSpec")
        assert words in outcome.diagnostics.message
        assert lam.invokes == []
    # A rollback reroutes whatever the alias holds: no checks, no hooks.
    lam = FakeLambda(alias=("2", {"3": 0.5}))
    effector = LambdaHookEffector(FakeStore(), client=lambda: lam)
    rollback = step(LifecycleEvent.BEFORE_ALLOW_TRAFFIC, datetime.now(UTC), "codeDeployRollback")
    assert effector.run(rollback, Progress()).result == "Succeeded" and lam.invokes == []


def test_a_hook_that_cannot_be_invoked_fails_at_once_with_the_lambda_error() -> None:
    lam = FakeLambda(invoke_error="AccessDeniedException")
    store = FakeStore(answered=False)  # nobody will ever answer: the effector must not wait
    effector = LambdaHookEffector(store, client=lambda: lam, poll_seconds=0.01)
    outcome = effector.run(step(LifecycleEvent.BEFORE_ALLOW_TRAFFIC, datetime.now(UTC)), Progress())
    assert outcome.result == "Failed"
    assert outcome.diagnostics.message == (
        "The BeforeAllowTraffic hook function CodeDeployHook_pre could not be invoked: "
        "AccessDeniedException: no"
    )
