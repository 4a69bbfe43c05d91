"""``opendeploy watch``: the views as pure functions of a snapshot, then the command for real.

Rendering is checked in a ``Console(file=StringIO(), width=100)``; the command runs as a
subprocess against a real server and agents, in a pipe (plain text) and in a pseudo-terminal
whose screen is rebuilt from the escape codes with pyte (what a person would see).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pexpect
import pyte
import pytest
from rich.console import Console

from opendeploy.cli.render import (
    DeploymentView,
    EventView,
    InstanceView,
    OutputLine,
    Snapshot,
    batches,
    blue_green_phase,
    format_duration,
    live_view,
    plain_lines,
    snapshot_from_api,
    summary,
)
from opendeploy.domain.lifecycle import SERVER_ORDER
from tests.cli.deploy_cluster import Cluster, deploy_cluster, deployment_id

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EVENTS = ("ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "ValidateService")


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _instance(
    name: str, status: str, done: int, start: float, failed: bool = False
) -> InstanceView:
    """``done`` events succeeded from ``start`` on (1 s each); then one running/failed event."""
    events = []
    for index, event in enumerate(EVENTS):
        begin = _at(start + index)
        if index < done:
            events.append(EventView(event, "Succeeded", begin, _at(start + index + 1)))
        elif index == done and status == "InProgress":
            events.append(EventView(event, "InProgress", begin))
        elif index == done and failed:
            events.append(
                EventView(
                    event,
                    "Failed",
                    begin,
                    _at(start + index + 0.5),
                    error_code="ScriptFailed",
                    script_name="scripts/validate.sh",
                    message="Script at specified location: scripts/validate.sh failed with "
                    "exit code 1",
                    log_tail="[stdout]checking\n[stderr]health check failed\n",
                )
            )
        else:
            events.append(EventView(event, "Skipped" if status == "Skipped" else "Pending"))
    return InstanceView(name, status, tuple(events))


def _snapshot(
    status: str, instances: tuple[InstanceView, ...], now: float, **kw: object
) -> Snapshot:
    counts = {"Pending": 0, "InProgress": 0, "Succeeded": 0, "Failed": 0, "Skipped": 0}
    for instance in instances:
        counts[instance.status] += 1
    deployment = DeploymentView(
        deployment_id="d-ABCDEFGHI",
        status=status,
        application="shop",
        group="web",
        config="CodeDeployDefault.HalfAtATime",
        overview=counts,
        created=T0,
        completed=_at(now) if status in ("Succeeded", "Failed") else None,
        **kw,  # type: ignore[arg-type]
    )
    return Snapshot(
        deployment, instances, _at(now), (OutputLine("host-2", "BeforeInstall", "step 2"),)
    )


def _render(renderable: object) -> str:
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


RUNNING = _snapshot(
    "InProgress",
    (
        _instance("host-1", "Succeeded", 5, 0),
        _instance("host-2", "InProgress", 2, 5.5),
        _instance("host-3", "Pending", 0, 0),
    ),
    now=8.2,
)
SUCCEEDED = _snapshot(
    "Succeeded", tuple(_instance(f"host-{i}", "Succeeded", 5, 5 * i) for i in (1, 2, 3)), now=20
)
FAILED = _snapshot(
    "Failed",
    (
        _instance("host-1", "Failed", 4, 0, failed=True),
        _instance("host-2", "Skipped", 0, 0),
        _instance("host-3", "Skipped", 0, 0),
    ),
    now=4.5,
    error_code="HEALTH_CONSTRAINTS",
    error_message="The overall deployment failed because too many individual instances failed.",
    rollback_deployment_id="d-ROLLBACK1",
    rollback_message="The deployment failed; rolling back.",
)


def test_a_narrow_terminal_squeezes_the_event_columns_not_the_instance_or_its_status() -> None:
    # Seven events with long durations do not fit 60 columns: the event cells give way, the
    # instance name and "InProgress" stay whole (a quickstart watch once showed "InProgr…").
    start = _at(0)
    order = [e.value for e in SERVER_ORDER]
    done = order[order.index("ApplicationStop") : order.index("ValidateService")]
    events = tuple(
        EventView(name, "Succeeded", start, start + timedelta(seconds=123.4)) for name in done
    ) + (EventView("ValidateService", "InProgress", start),)
    wide = InstanceView("host-with-a-long-name-1", "InProgress", events)
    snapshot = Snapshot(RUNNING.deployment, (wide,), _at(500), ())
    console = Console(file=io.StringIO(), width=60, color_system=None)
    console.print(live_view(snapshot))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    row = next(line for line in out.splitlines() if "host-with-a-long-name-1" in line)
    assert "InProgress" in row


def test_live_view_of_a_running_deployment_shows_batches_events_counts_and_output() -> None:
    out = _render(live_view(RUNNING))
    assert "Deployment d-ABCDEFGHI InProgress  8.2s" in out
    assert "shop / web / CodeDeployDefault.HalfAtATime" in out
    assert "Pending 1  InProgress 1  Succeeded 1  Failed 0  Skipped 0" in out
    batch1, batch2, waiting = out.index("Batch 1"), out.index("Batch 2"), out.index("Waiting")
    assert batch1 < out.index("host-1") < batch2 < out.index("host-2") < waiting
    assert out.index("host-3") > waiting
    assert "Validate" in out and "BeforeInst" in out  # short column names fit 100 columns
    host2 = next(line for line in out.splitlines() if "host-2" in line and "InProgress" in line)
    assert "✓ 1.0s" in host2 and "▶ 0.7s" in host2  # BeforeInstall runs since 7.5 s
    assert "host-2 BeforeInstall | step 2" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_summary_of_a_success_is_status_duration_and_counts() -> None:
    out = _render(summary(SUCCEEDED))
    assert out.splitlines()[:2] == [
        "Deployment d-ABCDEFGHI Succeeded in 20s",
        "Pending 0  InProgress 0  Succeeded 3  Failed 0  Skipped 0",
    ]
    assert "Failed on" not in out and "Rollback" not in out


def test_summary_of_a_failure_names_host_event_script_code_log_tail_and_rollback() -> None:
    out = _render(summary(FAILED))
    assert (
        "Failed on host-1 at ValidateService, script scripts/validate.sh, error ScriptFailed" in out
    )
    assert "failed with exit code 1" in out
    assert "    [stderr]health check failed" in out
    assert "too many individual instances failed" in out
    assert "Rollback: d-ROLLBACK1 (The deployment failed; rolling back.)" in out


def test_skipped_hosts_are_listed_as_skipped_not_waiting() -> None:
    out = _render(live_view(FAILED))
    assert "Waiting" not in out
    skipped = next(i for i, line in enumerate(out.splitlines()) if line.strip() == "Skipped")
    skipped = out.index("\n".join(out.splitlines()[skipped : skipped + 1]))
    assert out.index("host-2") > skipped and out.index("host-3") > skipped


def test_the_last_frame_leaves_the_result_to_the_summary() -> None:
    out = _render(live_view(SUCCEEDED, header=False))
    assert "Deployment d-ABCDEFGHI" not in out and "host-3" in out


def test_a_long_wait_before_the_first_event_is_told_apart() -> None:
    late = _snapshot("Failed", (_instance("host-1", "Failed", 0, 25.8, failed=True),), now=26.3)
    first = _render(summary(late)).splitlines()[0]
    assert first == "Deployment d-ABCDEFGHI Failed in 26s, 25s of it before the first event started"
    assert _render(summary(SUCCEEDED)).splitlines()[0].endswith("Succeeded in 20s")


def test_a_stop_message_is_printed_once() -> None:
    stopped_text = "The deployment was stopped by a user request."
    stopped = _snapshot(
        "Stopped",
        (
            InstanceView(
                "host-1",
                "Failed",
                (EventView("ApplicationStop", "Failed", _at(0), _at(1), message=stopped_text),),
            ),
        ),
        now=2,
        error_code="MANUAL_STOP",
        error_message=stopped_text,
    )
    assert _render(summary(stopped)).count("stopped by a user request") == 1


def test_batches_follow_start_times() -> None:
    assert [[i.instance_id for i in b] for b in batches(RUNNING.instances)] == [
        ["host-1"],
        ["host-2"],
        ["host-3"],
    ]


def changes(previous: Snapshot | None, current: Snapshot) -> list[str]:
    lines, held = plain_lines(previous, current, ())
    assert held == ()
    return lines


def test_changes_are_one_plain_line_per_transition() -> None:
    first = changes(None, RUNNING)
    assert "host-1 ValidateService Succeeded (1.0s)" in first
    assert "host-2 BeforeInstall InProgress" in first
    # The deployment's first line comes first, before any instance's.
    assert first[0].startswith("d-ABCDEFGHI InProgress (")
    assert changes(RUNNING, RUNNING) == []
    later = changes(RUNNING, FAILED)
    assert "host-2 Skipped" in later and not any("host-2 Install" in x for x in later)
    # Its end is the summary's to state (once, with the duration), not a line of its own.
    assert not any(line.startswith("d-ABCDEFGHI") for line in later)
    created = _snapshot("Created", (_instance("host-1", "Pending", 0, 0),), now=0)
    assert changes(None, created)[0].startswith("d-ABCDEFGHI Created (")


def test_a_lambda_target_shows_the_alias_split_as_it_changes() -> None:
    info = {
        "deploymentId": "d-ABCDEFGHI",
        "status": "InProgress",
        "deploymentOverview": {"InProgress": 1},
    }

    def target(weight: float, allow: str) -> dict[str, object]:
        events = [
            {"lifecycleEventName": "BeforeAllowTraffic", "status": "Succeeded"},
            {"lifecycleEventName": "AllowTraffic", "status": allow},
            {"lifecycleEventName": "AfterAllowTraffic", "status": "Pending"},
        ]
        function = {
            "functionName": "fn",
            "functionAlias": "live",
            "currentVersion": "1",
            "targetVersion": "2",
            "targetVersionWeight": weight,
        }
        return {
            "deploymentTargetType": "LambdaTarget",
            "lambdaTarget": {
                "targetId": "fn",
                "status": "InProgress",
                "lifecycleEvents": events,
                "lambdaFunctionInfo": function,
            },
        }

    first = snapshot_from_api(info, [target(0.0, "Pending")], T0)
    shifted = snapshot_from_api(info, [target(0.25, "InProgress")], T0)
    assert "fn traffic fn:live version 2 0 % (version 1 100 %)" in changes(None, first)
    later = changes(first, shifted)
    assert "fn AllowTraffic InProgress" in later
    assert "fn traffic fn:live version 2 25 % (version 1 75 %)" in later
    assert changes(shifted, shifted) == []
    console = Console(file=io.StringIO(), width=100)
    console.print(summary(shifted))
    assert "Traffic: fn:live version 2 25 % (version 1 75 %)" in console.file.getvalue()  # type: ignore[attr-defined]


def _out(host: str, event: str, line: str) -> OutputLine:
    return OutputLine(host, event, line)


def test_plain_lines_put_hook_output_between_its_events_start_and_end() -> None:
    # host-2: BeforeInstall running in RUNNING; in LATER it has ended and Install runs.
    later = _snapshot(
        "InProgress",
        (
            _instance("host-1", "Succeeded", 5, 0),
            _instance("host-2", "InProgress", 3, 5.5),
            _instance("host-3", "Pending", 0, 0),
        ),
        now=9.2,
    )
    output = [
        _out("host-2", "BeforeInstall", "last words"),
        _out("host-2", "Install", "installing"),
    ]
    lines, held = plain_lines(RUNNING, later, output)
    assert held == ()
    assert lines == [
        "host-2 BeforeInstall | last words",
        "host-2 BeforeInstall Succeeded (1.0s)",
        "host-2 Install InProgress",
        "host-2 Install | installing",
    ]
    # A running event's new lines, with no state change, come on their own.
    assert plain_lines(later, later, [_out("host-2", "Install", "still")]) == (
        ["host-2 Install | still"],
        (),
    )


def test_plain_lines_hold_output_of_an_event_not_yet_seen_started() -> None:
    early = _out("host-3", "ApplicationStop", "stopping")
    lines, held = plain_lines(RUNNING, RUNNING, [early])
    assert lines == [] and held == (early,)
    started = _snapshot(
        "InProgress",
        (
            _instance("host-1", "Succeeded", 5, 0),
            _instance("host-2", "InProgress", 2, 5.5),
            _instance("host-3", "InProgress", 0, 8.5),
        ),
        now=8.7,
    )
    lines, held = plain_lines(RUNNING, started, held)
    assert lines[:3] == [
        "host-3 ApplicationStop InProgress",
        "host-3 ApplicationStop | stopping",
        "host-3 InProgress",
    ]
    assert held == ()
    # Once the deployment has ended nothing waits for a next poll: the lines are printed.
    lines, held = plain_lines(FAILED, FAILED, [_out("host-3", "ApplicationStop", "late")])
    assert lines == ["host-3 ApplicationStop | late"] and held == ()


def _bg(name: str, label: str, status: str, done: dict[str, str]) -> InstanceView:
    events = tuple(EventView(event, state) for event, state in done.items())
    return InstanceView(name, status, events, label=label)


def test_a_blue_green_deployment_shows_its_phase_and_the_hosts_in_and_out() -> None:
    installed = {"ValidateService": "Succeeded"}
    installing = {"Install": "InProgress", "ValidateService": "Pending"}
    blue_wait = {"BlockTraffic": "Pending"}
    stages = [
        ("InProgress", [_bg("g-1", "Green", "InProgress", installing)], "installing on green"),
        ("Ready", [_bg("g-1", "Green", "Ready", installed)], "Ready: green installed, waiting"),
        (
            "InProgress",
            [
                _bg("g-1", "Green", "Succeeded", {**installed, "AllowTraffic": "Succeeded"}),
                _bg("g-2", "Green", "InProgress", {**installed, "AllowTraffic": "InProgress"}),
            ],
            "rerouting traffic to green — in: g-1 of green; out: none of blue",
        ),
        (
            "InProgress",
            [
                _bg("g-1", "Green", "Succeeded", {**installed, "AllowTraffic": "Succeeded"}),
                _bg("b-1", "Blue", "InProgress", blue_wait),
            ],
            "blocking traffic to blue — in: g-1 of green; out: none of blue",
        ),
        (
            "InProgress",
            [
                _bg("g-1", "Green", "Succeeded", {**installed, "AllowTraffic": "Succeeded"}),
                _bg("b-1", "Blue", "Succeeded", {"BlockTraffic": "Succeeded"}),
            ],
            "waiting to terminate blue — in: g-1 of green; out: b-1 of blue",
        ),
    ]
    previous = None
    for status, hosts, phase in stages:
        snap = Snapshot(DeploymentView("d-ABCDEFGHI", status), tuple(hosts), _at(1))
        assert (blue_green_phase(snap) or "").startswith(phase), blue_green_phase(snap)
        assert phase in _render(live_view(snap))
        lines = changes(previous, snap)
        assert any(phase in line for line in lines), lines
        previous = snap
    # In place, or once it has ended: no phase.
    assert (
        blue_green_phase(_snapshot("InProgress", (_instance("h", "InProgress", 1, 0),), 3)) is None
    )
    ended = Snapshot(DeploymentView("d-ABCDEFGHI", "Succeeded"), tuple(stages[-1][1]), _at(1))
    assert blue_green_phase(ended) is None


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.04, 9.96, 42, 185, 3725)] == [
        "0.0s",
        "10.0s",
        "42s",
        "3m05s",
        "1h02m",
    ]


# -- the command, for real -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with deploy_cluster(tmp_path_factory.mktemp("watch"), pace="0.25") as c:
        yield c


@pytest.mark.e2e
def test_watch_in_a_pipe_exits_1_for_a_failure_and_0_for_its_rollback(cluster: Cluster) -> None:
    good = deployment_id(cluster.deploy(cluster.good, "--no-watch").stdout)
    cluster.client.get_waiter("deployment_successful").wait(
        deploymentId=good, WaiterConfig={"Delay": 1}
    )
    created = cluster.deploy(cluster.broken, "--no-watch")
    dep = deployment_id(created.stdout)
    result = cluster.cli("watch", dep, "--interval", "0.2")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "\x1b" not in result.stdout
    assert "Failed on host-1 at ValidateService" in result.stdout
    rollback = cluster.client.get_deployment(deploymentId=dep)["deploymentInfo"]["rollbackInfo"][
        "rollbackDeploymentId"
    ]
    followed = cluster.cli("watch", rollback, "--interval", "0.2")
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert f"This is the rollback of {dep}" in followed.stdout
    assert f"Deployment {rollback} Succeeded in " in followed.stdout


@pytest.mark.e2e
def test_watch_of_an_unknown_deployment_exits_255(cluster: Cluster) -> None:
    result = cluster.cli("watch", "d-NOSUCHONE")
    assert result.returncode == 255
    assert "DeploymentDoesNotExist" in result.stderr


def _held_revision(cluster: Cluster, base: Path) -> tuple[Path, Path]:
    """The good revision with an AfterInstall that prints a line, then waits for a gate file.

    Returns (revision dir, gate). Until the test creates the gate, every host that reaches
    AfterInstall is running it, so a line seen then was streamed while the hook ran.
    """
    revision, gate = base / "held", base / "gate"
    shutil.copytree(cluster.good, revision)
    script = revision / "scripts" / "after_install.sh"
    script.write_text(
        "#!/bin/sh\n"
        'echo "waiting for the gate"\n'
        f'while [ ! -e "{gate}" ]; do sleep 0.05; done\n'
        'echo "through the gate"\n'
        '"$(dirname "$0")/record.sh"\n'
    )
    script.chmod(0o755)
    return revision, gate


#: ``<host> <event> | [stdout]<line>``: the held hook's streamed line, in a pipe and on the screen.
HELD_LINE = re.compile(r"host-\d AfterInstall \| \[stdout\]waiting for the gate")


@pytest.mark.e2e
def test_watch_in_a_pipe_prints_hook_output_while_the_hook_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    revision, gate = _held_revision(cluster, tmp_path)
    dep = deployment_id(cluster.deploy(revision, "--no-watch").stdout)
    watcher = subprocess.Popen(
        [sys.executable, "-m", "opendeploy", "watch", dep, "--interval", "0.2"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        before_gate = []
        # Read until the held hook's line arrives: the gate is still shut, so the hook (and the
        # deployment) is running. A watch that printed output only at the end would show it
        # after the hook's 30 s timeout failed the deployment: the asserts below catch that.
        for line in watcher.stdout:
            before_gate.append(line)
            if HELD_LINE.fullmatch(line.rstrip("\n")):
                break
        assert before_gate and HELD_LINE.fullmatch(before_gate[-1].rstrip("\n")), before_gate
        status = cluster.client.get_deployment(deploymentId=dep)["deploymentInfo"]["status"]
        assert status == "InProgress"
        assert not any(line.startswith(f"{dep} Succeeded") for line in before_gate)
        gate.touch()
        rest, errors = watcher.communicate(timeout=120)
    finally:
        gate.touch()
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, "".join(before_gate) + rest + errors
    assert "\x1b" not in "".join(before_gate) + rest
    assert re.search(r"^host-\d AfterInstall \| \[stdout\]through the gate$", rest, re.M), rest
    assert f"Deployment {dep} Succeeded" in rest


@pytest.mark.e2e
def test_watch_in_a_terminal_streams_hook_output_while_the_hook_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    revision, gate = _held_revision(cluster, tmp_path)
    dep = deployment_id(cluster.deploy(revision, "--no-watch").stdout)
    columns, rows = 100, 40
    child = _spawn(cluster, ["watch", dep, "--interval", "0.2"], rows, columns)
    screen = pyte.Screen(columns, rows)
    raw: list[str] = []
    held_screen = ""
    running = re.compile(r"host-\d +│ InProgress │.*▶")
    give_up_at = time.monotonic() + 30
    try:
        for shown in _screens(child, screen, raw):
            if gate.exists():
                continue
            # The gate is shut: whatever this screen shows was drawn while the hook ran. The
            # output line can reach the screen before the engine's pass that records the
            # event as started (soon after the acknowledgement), so wait for both.
            if HELD_LINE.search(shown) and running.search(shown):
                held_screen = shown
                gate.touch()
            elif time.monotonic() > give_up_at:
                gate.touch()
    finally:
        gate.touch()
        child.close()
    # The held host's row: in progress, its AfterInstall running (▶), its output on screen.
    assert held_screen, "\n".join(screen.display)
    assert f"Deployment {dep} InProgress" in held_screen
    assert child.exitstatus == 0, "".join(raw)
    assert f"Deployment {dep} Succeeded" in "\n".join(screen.display)


@pytest.mark.e2e
def test_watch_in_a_terminal_shows_the_live_table(cluster: Cluster) -> None:
    created = cluster.deploy(cluster.good, "--no-watch")
    dep = deployment_id(created.stdout)
    columns, rows = 100, 40
    child = _spawn(cluster, ["watch", dep, "--interval", "0.2"], rows, columns)
    screen = pyte.Screen(columns, rows)
    raw: list[str] = []
    seen_running = False
    for shown in _screens(child, screen, raw):
        seen_running = seen_running or ("InProgress" in shown and "Batch 1" in shown)
    child.close()
    assert child.exitstatus == 0, "".join(raw)
    assert "\x1b[" in "".join(raw)  # a terminal gets the live view, not plain lines
    assert seen_running, "\n".join(screen.display)
    shown = "\n".join(line.rstrip() for line in screen.display)
    assert f"Deployment {dep} Succeeded" in shown
    assert "Batch 1" in shown and "Validate" in shown
    assert "host-3" in shown and "✓" in shown


def _screens(child: pexpect.spawn[str], screen: pyte.Screen, raw: list[str]) -> Iterator[str]:
    """Feed the child's output into ``screen`` until it exits, keeping it in ``raw``; after each
    chunk, the screen's text (lines right-stripped)."""
    stream = pyte.Stream(screen)
    while True:
        try:
            chunk = child.read_nonblocking(65536, timeout=60)
        except pexpect.EOF:
            return
        raw.append(chunk)
        stream.feed(chunk)
        yield "\n".join(line.rstrip() for line in screen.display)


def _spawn(cluster: Cluster, args: list[str], rows: int, columns: int) -> pexpect.spawn[str]:
    import sys

    return pexpect.spawn(
        sys.executable,
        ["-m", "opendeploy", *args],
        env=cluster.env(),
        dimensions=(rows, columns),
        encoding="utf-8",
        timeout=60,
    )


@pytest.mark.e2e
def test_a_host_busy_with_a_stopped_deployments_script_says_so(
    cluster: Cluster, tmp_path: Path
) -> None:
    revision, gate = _held_revision(cluster, tmp_path)
    stopped = deployment_id(cluster.deploy(revision, "--no-watch").stdout)
    try:
        deadline = time.monotonic() + 60
        while True:
            held = cluster.cli("logs", stopped, "--event", "AfterInstall")
            if "waiting for the gate" in held.stdout:
                break
            assert time.monotonic() < deadline, held.stdout + held.stderr
            time.sleep(0.2)
        host = held.stdout.split()[0]
        assert cluster.cli("stop-deployment", "--deployment-id", stopped).returncode == 0
        info = cluster.client.get_deployment(deploymentId=stopped)["deploymentInfo"]
        assert info["status"] == "Stopped"
        assert f"{host}: AfterInstall was still running when this deployment ended" in " ".join(
            info["deploymentStatusMessages"]
        )
        # The next deployment waits for that script on that host, and says so.
        waiting = deployment_id(cluster.deploy(cluster.good, "--no-watch").stdout)
        busy = f"{host} is busy: AfterInstall of {stopped} (Stopped) still runs there"
        deadline = time.monotonic() + 60
        while True:  # through boto3: a CLI process per turn costs ~1 s on a loaded machine
            got = cluster.client.get_deployment(deploymentId=waiting)["deploymentInfo"]
            if busy in " ".join(got.get("deploymentStatusMessages", [])):
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
        shown = cluster.cli("get-deployment", "--deployment-id", waiting)
        assert busy in shown.stdout, shown.stdout + shown.stderr  # it holds until the gate opens
        # In a pipe, watch prints it as a line of the deployment's.
        watcher = subprocess.Popen(
            [sys.executable, "-m", "opendeploy", "watch", waiting, "--interval", "0.2"],
            env=cluster.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        assert watcher.stdout is not None
        first = [watcher.stdout.readline() for _ in range(3)]
        assert any(line.startswith(f"{waiting}: {busy}") for line in first), first
        gate.touch()
        rest, errors = watcher.communicate(timeout=120)
        assert watcher.returncode == 0, "".join(first) + rest + errors
    finally:
        gate.touch()
    # Once the host has taken the next deployment's events, nothing waits any more.
    after = cluster.client.get_deployment(deploymentId=waiting)["deploymentInfo"]
    assert not any("is busy" in m for m in after.get("deploymentStatusMessages", []))
