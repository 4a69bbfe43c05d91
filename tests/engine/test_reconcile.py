"""reconcile(): unit rules, idempotence, and properties over random fleets and agent answers."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opendeploy.domain.lifecycle import LifecycleEvent
from opendeploy.domain.status import (
    TERMINAL_DEPLOYMENT_STATUSES,
    DeploymentStatus,
    InstanceStatus,
    LifecycleErrorCode,
    LifecycleEventStatus,
)
from opendeploy.engine import batches
from opendeploy.engine.reconcile import EngineSettings, reconcile
from opendeploy.engine.rollback import RollbackTrigger, decide_rollback
from opendeploy.engine.snapshot import (
    ALL_AT_ONCE,
    HALF_AT_A_TIME,
    ONE_AT_A_TIME,
    AutoRollbackConfig,
    AutoRollbackEvent,
    DeploymentSnapshot,
    EngineInputError,
    LastSuccessful,
    MinimumHealthyHosts,
    StopRequest,
    lifecycle_events,
    new_target,
)

from .harness import T0, Harness, apply, at

E = LifecycleEvent


def deployment(n: int, mhh: MinimumHealthyHosts = ONE_AT_A_TIME, **kw: object) -> Harness:
    snap = DeploymentSnapshot(
        "d-UNITTEST1",
        DeploymentStatus.CREATED,
        mhh,
        tuple(new_target(f"i-{k}") for k in range(1, n + 1)),
        created_at=T0,
        **kw,  # type: ignore[arg-type]
    )
    return Harness(snap)


def test_settings_defaults_are_visible() -> None:
    s = EngineSettings()
    assert (s.event_timeout_seconds, s.agent_dead_after_seconds) == (3600.0, 15.0)
    assert (s.event_start_timeout_seconds, s.deployment_timeout_seconds) == (300.0, 43200.0)
    with pytest.raises(TypeError):
        EngineSettings(60)  # type: ignore[misc]


def test_settings_reject_non_positive_values() -> None:
    with pytest.raises(EngineInputError, match=r"EngineSettings.agent_dead_after_seconds: 0 "):
        EngineSettings(agent_dead_after_seconds=0)


def test_lifecycle_events_in_place_with_and_without_load_balancer() -> None:
    assert [e.value for e in lifecycle_events()] == [
        "ApplicationStop",
        "DownloadBundle",
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
    ]
    with_lb = lifecycle_events(load_balancer=True)
    assert with_lb[:3] == (E.BEFORE_BLOCK_TRAFFIC, E.BLOCK_TRAFFIC, E.AFTER_BLOCK_TRAFFIC)
    assert with_lb[-3:] == (E.BEFORE_ALLOW_TRAFFIC, E.ALLOW_TRAFFIC, E.AFTER_ALLOW_TRAFFIC)


def test_created_deployment_starts_and_dispatches_the_first_batch() -> None:
    h = deployment(4, HALF_AT_A_TIME)
    d = h.step(at(0))
    assert d.deployment is not None
    assert d.deployment.status is DeploymentStatus.IN_PROGRESS
    assert d.deployment.start_time == at(0)
    assert [(c.instance_id, c.event) for c in d.dispatch] == [
        ("i-1", E.APPLICATION_STOP),
        ("i-2", E.APPLICATION_STOP),
    ]
    assert {u.instance_id: u.status for u in d.target_updates} == {
        "i-1": InstanceStatus.IN_PROGRESS,
        "i-2": InstanceStatus.IN_PROGRESS,
    }


def test_reconcile_is_pure_and_idempotent() -> None:
    h = deployment(3, ALL_AT_ONCE)
    first = reconcile(h.snap, at(0))
    assert reconcile(h.snap, at(0)) == first
    applied = apply(h.snap, first, at(0))
    again = reconcile(applied, at(0))
    assert not again.has_changes
    assert again.dispatch == ()
    # A later call with no report in between dispatches nothing either.
    assert reconcile(applied, at(5)).dispatch == ()


def test_event_times_and_diagnostics_come_from_the_agent_reports() -> None:
    h = deployment(1)
    h.step(at(0))
    h.ack("i-1", at(2))
    h.step(at(3))
    ev = h.target("i-1").event(E.APPLICATION_STOP)
    assert (ev.status, ev.start_time, ev.end_time) == (
        LifecycleEventStatus.IN_PROGRESS,
        at(2),
        None,
    )
    h.complete("i-1", at(7), "Succeeded")
    d = h.step(at(8))
    ev = h.target("i-1").event(E.APPLICATION_STOP)
    assert (ev.status, ev.start_time, ev.end_time) == (LifecycleEventStatus.SUCCEEDED, at(2), at(7))
    assert ev.diagnostics is not None
    assert (ev.diagnostics.error_code, ev.diagnostics.message) == (
        LifecycleErrorCode.SUCCESS,
        "Succeeded",
    )
    assert [(c.instance_id, c.event) for c in d.dispatch] == [("i-1", E.DOWNLOAD_BUNDLE)]


def test_failure_keeps_the_agents_diagnostics() -> None:
    h = deployment(1)
    h.step(at(0))
    h.fail("i-1", at(1), "ScriptTimedOut", "Script at specified location: a.sh failed to complete")
    h.step(at(1))
    diag = h.target("i-1").event(E.APPLICATION_STOP).diagnostics
    assert diag is not None
    assert diag.error_code is LifecycleErrorCode.SCRIPT_TIMED_OUT
    assert (diag.script_name, diag.log_tail) == ("x.sh", "boom")
    assert h.status is DeploymentStatus.FAILED


def test_terminal_deployment_decides_nothing() -> None:
    h = deployment(2, ALL_AT_ONCE)
    h.step(at(0))
    done = replace(h.snap, status=DeploymentStatus.SUCCEEDED)
    d = reconcile(done, at(99999))
    assert not d.has_changes
    assert d.unreachable == ()


def test_stop_of_a_created_deployment_skips_everything() -> None:
    h = deployment(2, ALL_AT_ONCE, stop=StopRequest(T0))
    d = h.step(at(0))
    assert d.deployment is not None
    assert d.deployment.status is DeploymentStatus.STOPPED
    assert (d.deployment.start_time, d.deployment.complete_time) == (at(0), at(0))
    assert d.dispatch == ()
    assert d.overview.skipped == 2


def test_rollback_not_configured_is_none() -> None:
    common = dict(deployment_id="d-A", last_successful=LastSuccessful("d-B", "rev"))
    none = AutoRollbackConfig()
    assert decide_rollback(trigger=RollbackTrigger.FAILURE, config=none, **common) is None  # type: ignore[arg-type]
    on_failure = AutoRollbackConfig(True, frozenset({AutoRollbackEvent.DEPLOYMENT_FAILURE}))
    # a stop is not a failure; and the stop's own flag does not apply to failures
    assert (
        decide_rollback(trigger=RollbackTrigger.STOP_ON_REQUEST, config=on_failure, **common)  # type: ignore[arg-type]
        is None
    )
    decision = decide_rollback(
        trigger=RollbackTrigger.FAILURE,
        config=on_failure,
        stop_override=False,
        **common,  # type: ignore[arg-type]
    )
    assert decision is not None
    assert decision.plan is not None
    assert "d-A" in decision.plan.rollback_message


def test_rollback_disabled_configuration_ignores_its_events() -> None:
    config = AutoRollbackConfig(False, frozenset({AutoRollbackEvent.DEPLOYMENT_FAILURE}))
    assert (
        decide_rollback(
            deployment_id="d-A",
            trigger=RollbackTrigger.FAILURE,
            config=config,
            last_successful=LastSuccessful("d-B", "rev"),
        )
        is None
    )


# -- properties --------------------------------------------------------------------------------

CONFIGS = st.one_of(
    st.just(ONE_AT_A_TIME),
    st.just(HALF_AT_A_TIME),
    st.just(ALL_AT_ONCE),
    st.builds(MinimumHealthyHosts, st.just("FLEET_PERCENT"), st.integers(0, 99)),
    st.builds(MinimumHealthyHosts, st.just("HOST_COUNT"), st.integers(0, 8)),
)

# One answer per command an agent receives: succeed, fail, noop acknowledgement, or stay silent
# for one round (the engine must wait, then get an answer later).
ANSWERS = st.lists(
    st.sampled_from(["ok", "ok", "ok", "fail", "noop", "wait"]), min_size=1, max_size=60
)


def _events_in_order(h: Harness) -> None:
    """No event has run after one that did not (strict order per instance)."""
    for t in h.snap.targets:
        blocked = False
        for ev in t.events:
            if blocked:
                assert ev.status in (LifecycleEventStatus.PENDING, LifecycleEventStatus.SKIPPED)
            if ev.status in (LifecycleEventStatus.PENDING, LifecycleEventStatus.SKIPPED):
                blocked = True


def _run(h: Harness, answers: list[str], stop_at: int | None = None) -> None:
    mhh = h.snap.minimum_healthy_hosts
    total = len(h.snap.targets)
    cap = batches.max_in_flight(total, mhh)
    clock, k = 0, 0
    h.step(at(clock))
    while h.status not in TERMINAL_DEPLOYMENT_STATUSES:
        clock += 1
        assert clock < 2000, "the deployment did not terminate"
        if stop_at is not None and clock == stop_at:
            h.snap = dataclasses.replace(h.snap, stop=StopRequest(at(clock)))
        for t in h.snap.targets:
            h.poll(t.instance_id, at(clock))
            if h.outstanding(t.instance_id) is None:
                continue
            answer = answers[k % len(answers)]
            k += 1
            if answer == "ok":
                h.complete(t.instance_id, at(clock), "Succeeded")
            elif answer == "fail":
                h.fail(t.instance_id, at(clock))
            elif answer == "noop":
                h.ack(t.instance_id, at(clock), noop=True)
        d = h.step(at(clock))
        in_flight = d.overview.in_progress
        assert in_flight <= cap
        assert in_flight + d.overview.failed <= max(batches.budget(total, mhh), d.overview.failed)
        _events_in_order(h)
    # Terminal: nothing in flight, no command left outstanding, the verdict matches the rule.
    overview = h.history[-1].overview
    assert overview.in_progress == overview.pending == 0
    assert all(t.command is None for t in h.snap.targets)
    if h.status is DeploymentStatus.SUCCEEDED:
        assert overview.succeeded >= batches.success_threshold(total, mhh)
    elif (
        h.status is DeploymentStatus.FAILED
        and total
        and batches.constraints_hold_at_start(total, mhh)
    ):
        assert overview.succeeded < batches.success_threshold(total, mhh)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(n=st.integers(0, 7), mhh=CONFIGS, answers=ANSWERS)
def test_deployment_terminates_when_agents_answer_and_never_exceeds_the_batch(
    n: int, mhh: MinimumHealthyHosts, answers: list[str]
) -> None:
    _run(deployment(n, mhh), answers)


@settings(max_examples=60, deadline=None, database=None)
@given(n=st.integers(1, 6), mhh=CONFIGS, answers=ANSWERS, stop_at=st.integers(1, 20))
def test_stop_at_any_moment_ends_the_deployment(
    n: int, mhh: MinimumHealthyHosts, answers: list[str], stop_at: int
) -> None:
    h = deployment(n, mhh)
    _run(h, answers, stop_at=stop_at)
    assert h.status in TERMINAL_DEPLOYMENT_STATUSES


@pytest.mark.parametrize("platform", ["ECS"])
def test_ecs_deployments_end_at_once(platform: str) -> None:
    snap = DeploymentSnapshot(
        "d-UNITTEST1", DeploymentStatus.CREATED, ALL_AT_ONCE, (), T0, compute_platform=platform
    )
    d = reconcile(snap, at(1))
    assert d.deployment is not None and d.deployment.status is DeploymentStatus.FAILED
    assert d.deployment.error is not None and d.deployment.error.code == "INTERNAL_ERROR"
    assert f"The {platform} compute platform is not supported" in d.deployment.error.message
    assert d.deployment.complete_time == at(1) and d.rollback is None and not d.dispatch
    # A stop request that came first ends it as Stopped instead.
    stopped = reconcile(replace(snap, stop=StopRequest(requested_at=at(1))), at(1))
    assert stopped.deployment is not None
    assert stopped.deployment.status is DeploymentStatus.STOPPED
    assert stopped.deployment.error is not None
    assert stopped.deployment.error.code == "MANUAL_STOP"


def test_a_deregistered_instance_fails_its_event_at_once_and_names_the_cause() -> None:
    h = deployment(3, ALL_AT_ONCE)
    for i in ("i-1", "i-2", "i-3"):
        h.poll(i, at(0))
    h._set("i-3", deregistered_at=at(0))  # left before the deployment reached it
    d = h.step(at(0))
    assert sorted(c.instance_id for c in d.dispatch) == ["i-1", "i-2"]
    assert d.unreachable == ("i-3",)  # the worker records it on the instance
    stop3 = h.target("i-3").event(E.APPLICATION_STOP)
    assert stop3.status is LifecycleEventStatus.FAILED
    assert stop3.diagnostics is not None
    assert "i-3 was deregistered" in stop3.diagnostics.message
    assert "was not run" in stop3.diagnostics.message
    assert "has not polled" not in stop3.diagnostics.message
    assert h.target("i-3").status is InstanceStatus.FAILED
    # i-1 is deregistered while its command runs: it fails on the very next pass, long before
    # agent_dead_after (15 s), with the deregistration as the reason.
    h.ack("i-1", at(1))
    h._set("i-1", deregistered_at=at(2))
    assert h.step(at(2)).unreachable == ("i-1",)
    stop1 = h.target("i-1").event(E.APPLICATION_STOP)
    assert stop1.status is LifecycleEventStatus.FAILED
    assert stop1.diagnostics is not None
    assert "i-1 was deregistered" in stop1.diagnostics.message
    assert "outcome of the lifecycle event is unknown" in stop1.diagnostics.message
    assert h.target("i-1").status is InstanceStatus.FAILED
    assert h.target("i-2").status is InstanceStatus.IN_PROGRESS
    assert reconcile(h.snap, at(2)).unreachable == ()  # a terminal target is no longer listed


def test_the_pass_that_fails_a_dead_agents_event_reports_it_unreachable() -> None:
    h = deployment(2, ALL_AT_ONCE)
    h.poll("i-1", at(0))
    h.poll("i-2", at(0))
    h.step(at(0))
    h.ack("i-1", at(1))
    h.ack("i-2", at(1))
    h.poll("i-2", at(14))
    assert h.step(at(14)).unreachable == ()
    d = h.step(at(16))  # i-1 quiet since 0 (> 15 s): its event fails, and it is named
    assert h.target("i-1").status is InstanceStatus.FAILED
    assert d.unreachable == ("i-1",)
    assert h.target("i-2").status is InstanceStatus.IN_PROGRESS


def test_timeouts_fire_only_once_past_their_length_and_infinite_ones_never() -> None:
    h = deployment(1, ALL_AT_ONCE)
    h.settings = EngineSettings(event_timeout_seconds=10, agent_dead_after_seconds=20)
    h.step(at(0))
    h.ack("i-1", at(1))
    h.poll("i-1", at(11))
    h.step(at(11))  # running for exactly 10 s: not yet past the timeout
    event = h.target("i-1").event(E.APPLICATION_STOP)
    assert (event.status, event.start_time) == (LifecycleEventStatus.IN_PROGRESS, at(1))
    h.step(at(11.5))
    event = h.target("i-1").event(E.APPLICATION_STOP)
    assert event.status is LifecycleEventStatus.FAILED
    assert event.diagnostics is not None
    assert "did not complete within 10 s" in event.diagnostics.message

    forever = float("inf")
    h = deployment(1, ALL_AT_ONCE)
    h.settings = EngineSettings(
        event_timeout_seconds=forever,
        agent_dead_after_seconds=forever,
        deployment_timeout_seconds=forever,
    )
    h.step(at(0))
    h.ack("i-1", at(1))
    h.step(at(10**9))  # thirty years on, an agent never heard from again
    assert h.target("i-1").status is InstanceStatus.IN_PROGRESS


def test_a_restarted_server_does_not_count_its_downtime_against_agents() -> None:
    h = deployment(1, ALL_AT_ONCE)
    h.poll("i-1", at(0))
    h.step(at(0))
    h.ack("i-1", at(1))
    # The server was down from 2 s to 100 s; its engine started watching again at 100 s.
    h.snap = replace(h.snap, watching_since=at(100))
    grace = h.settings.restart_grace_seconds
    assert grace > h.settings.agent_dead_after_seconds
    h.step(at(100 + grace))
    # Still within the restart grace: the agent may be waiting out its retry backoff.
    assert h.target("i-1").status is InstanceStatus.IN_PROGRESS
    h.step(at(101 + grace))
    event = h.target("i-1").event(E.APPLICATION_STOP)
    assert event.status is LifecycleEventStatus.FAILED
    assert event.diagnostics is not None
    assert f"has not polled for {101 + int(grace)} s" in event.diagnostics.message


def test_after_a_restart_an_agent_that_polls_again_is_judged_by_dead_after() -> None:
    h = deployment(1, ALL_AT_ONCE)
    h.poll("i-1", at(0))
    h.step(at(0))
    h.ack("i-1", at(1))
    h.snap = replace(h.snap, watching_since=at(100), polled_here=frozenset({"i-1"}))
    h.poll("i-1", at(130))  # back after its backoff; from now on the usual window applies
    h.step(at(144))
    assert h.target("i-1").status is InstanceStatus.IN_PROGRESS
    h.step(at(146))
    assert h.target("i-1").status is InstanceStatus.FAILED


def test_after_a_restart_an_agent_heard_from_but_not_polling_yet_gets_the_grace() -> None:
    h = deployment(1, ALL_AT_ONCE)
    h.poll("i-1", at(0))
    h.step(at(0))
    h.ack("i-1", at(1))
    # Its report got through at 130 s (seen), but its poll loop still waits out the backoff of
    # the server's absence: no poll here since the start.
    h.snap = replace(h.snap, watching_since=at(100), polled_here=frozenset())
    grace = h.settings.restart_grace_seconds
    h.poll("i-1", at(130))
    h.step(at(100 + grace - 1))
    assert h.target("i-1").status is InstanceStatus.IN_PROGRESS
    # After the grace the usual window applies, from its last sign of life.
    h.step(at(101 + grace))
    assert h.target("i-1").status is InstanceStatus.FAILED


def test_a_fleet_of_dead_agents_is_named_in_a_message_not_a_list() -> None:
    h = deployment(25, ALL_AT_ONCE)
    for k in range(1, 26):
        h.poll(f"i-{k}", at(0))
    h.step(at(0))
    h.step(at(20))  # nobody polled again: every event fails, and the deployment with them
    assert h.error is not None and h.error.code == "AGENT_ISSUE"
    named = ", ".join(f"i-{k}" for k in range(1, 11))  # the targets' order
    assert h.error.message == (
        "The overall deployment failed because the OpenDeploy agent stopped polling on "
        f"{named} and 15 more, and too few healthy instances remain."
    )
