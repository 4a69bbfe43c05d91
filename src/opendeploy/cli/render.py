"""What ``opendeploy watch`` shows, as pure functions of a :class:`Snapshot` of a deployment.

A snapshot is built from the public API's answers (GetDeployment, BatchGetDeploymentTargets)
plus the streamed hook output; nothing here does I/O, so every view is tested by rendering into a
``Console(file=StringIO(), width=100)``:

- :func:`live_view`: the terminal view (header with the overview counts, a table per batch of
  instances with each lifecycle event's state and duration, the newest output lines);
- :func:`plain_lines`: the plain lines for a pipe, one per state change between two snapshots,
  with the hook output in place;
- :func:`summary`: the closing report (status, duration, failing host, event, script, error code,
  message, log tail, rollback).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "TERMINAL_STATUSES",
    "DeploymentView",
    "EventView",
    "InstanceView",
    "OutputLine",
    "Snapshot",
    "batches",
    "failure",
    "format_duration",
    "live_view",
    "output_line",
    "plain_lines",
    "snapshot_from_api",
    "summary",
]

#: Deployment statuses after which nothing changes any more.
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
OVERVIEW_KEYS = ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready")
#: How many output lines the live view keeps on screen.
LIVE_OUTPUT_LINES = 10
#: Short column headers so that a table of every event fits 100 columns.
_SHORT_NAMES = {
    "BeforeBlockTraffic": "BeforeBlock",
    "AfterBlockTraffic": "AfterBlock",
    "ApplicationStop": "AppStop",
    "DownloadBundle": "Download",
    "BeforeInstall": "BeforeInst",
    "AfterInstall": "AfterInst",
    "ApplicationStart": "AppStart",
    "ValidateService": "Validate",
    "BeforeAllowTraffic": "BeforeAllow",
    "AfterAllowTraffic": "AfterAllow",
}
_STATUS_STYLE = {
    "Succeeded": "green",
    "Failed": "bold red",
    "InProgress": "yellow",
    "Stopped": "red",
    "Skipped": "dim",
    "Pending": "dim",
    "Ready": "cyan",
    "Created": "dim",
    "Queued": "dim",
    "Unknown": "dim",
}
_RUNNING = frozenset({"InProgress", "Pending", "Ready", "Unknown"})
_EVENT_MARK = {
    "Succeeded": "✓",
    "Failed": "✗",
    "InProgress": "▶",
    "Skipped": "-",
    "Pending": "·",
    "Unknown": "?",
}


@dataclass(frozen=True)
class EventView:
    """One lifecycle event of one instance."""

    name: str
    status: str
    start: datetime | None = None
    end: datetime | None = None
    error_code: str | None = None
    script_name: str | None = None
    message: str | None = None
    log_tail: str | None = None


@dataclass(frozen=True)
class InstanceView:
    """One deployment target (an instance) and its lifecycle events in order."""

    instance_id: str
    status: str
    events: tuple[EventView, ...] = ()
    label: str | None = None
    #: A Lambda target's traffic (``lambdaFunctionInfo``), e.g. ``fn:live version 2 25 %
    #: (version 1 75 %)``.
    traffic: str | None = None

    @property
    def started_at(self) -> datetime | None:
        starts = [e.start for e in self.events if e.start is not None]
        return min(starts) if starts else None

    @property
    def ended_at(self) -> datetime | None:
        ends = [e.end for e in self.events if e.end is not None]
        return max(ends) if ends else None


@dataclass(frozen=True)
class DeploymentView:
    """The deployment itself: where, what, how far."""

    deployment_id: str
    status: str
    application: str = ""
    group: str = ""
    config: str = ""
    overview: Mapping[str, int] = field(default_factory=dict)
    created: datetime | None = None
    completed: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    rollback_deployment_id: str | None = None
    rollback_of: str | None = None
    rollback_message: str | None = None
    #: ``deploymentStatusMessages``, e.g. what a host waits for before it starts its events.
    messages: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputLine:
    """One line of hook output."""

    instance_id: str
    event: str
    line: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one poll saw, and when."""

    deployment: DeploymentView
    instances: tuple[InstanceView, ...]
    now: datetime
    output: tuple[OutputLine, ...] = ()

    @property
    def finished(self) -> bool:
        return self.deployment.status in TERMINAL_STATUSES


# -- from the API's shapes -----------------------------------------------------------------------


def snapshot_from_api(
    info: Mapping[str, Any],
    targets: Iterable[Mapping[str, Any]],
    now: datetime,
    output: Sequence[OutputLine] = (),
) -> Snapshot:
    """A snapshot from ``GetDeployment``'s ``deploymentInfo`` and ``deploymentTargets`` entries."""
    error = info.get("errorInformation") or {}
    rollback = info.get("rollbackInfo") or {}
    overview = {k: int(v) for k, v in (info.get("deploymentOverview") or {}).items()}
    deployment = DeploymentView(
        deployment_id=str(info.get("deploymentId", "")),
        status=str(info.get("status", "Unknown")),
        application=str(info.get("applicationName", "")),
        group=str(info.get("deploymentGroupName", "")),
        config=str(info.get("deploymentConfigName", "")),
        overview=overview,
        created=info.get("createTime"),
        completed=info.get("completeTime"),
        error_code=error.get("code"),
        error_message=error.get("message"),
        rollback_deployment_id=rollback.get("rollbackDeploymentId"),
        rollback_of=rollback.get("rollbackTriggeringDeploymentId"),
        rollback_message=rollback.get("rollbackMessage"),
        messages=tuple(str(m) for m in info.get("deploymentStatusMessages") or ()),
    )
    instances = []
    for target in targets:
        # On-premises and EC2 targets are instanceTarget; the other platforms have the same
        # fields under their own key.
        body = next((v for k, v in target.items() if k.endswith("Target") and v), None)
        if not body:
            continue
        events = tuple(_event(e) for e in body.get("lifecycleEvents") or ())
        instances.append(
            InstanceView(
                instance_id=str(body.get("targetId", "")),
                status=str(body.get("status", "Unknown")),
                events=events,
                label=body.get("instanceLabel"),
                traffic=_traffic(body.get("lambdaFunctionInfo")),
            )
        )
    instances.sort(key=lambda i: i.instance_id)
    return Snapshot(deployment, tuple(instances), now, tuple(output))


def _traffic(info: Mapping[str, Any] | None) -> str | None:
    """A Lambda alias's split between the deployment's two versions, as one phrase."""
    if not info:
        return None
    share = round(float(info.get("targetVersionWeight") or 0.0) * 100)
    return (
        f"{info.get('functionName')}:{info.get('functionAlias')} version "
        f"{info.get('targetVersion')} {share} % (version {info.get('currentVersion')} "
        f"{100 - share} %)"
    )


def _event(event: Mapping[str, Any]) -> EventView:
    diagnostics = event.get("diagnostics") or {}
    return EventView(
        name=str(event.get("lifecycleEventName", "")),
        status=str(event.get("status", "Unknown")),
        start=event.get("startTime"),
        end=event.get("endTime"),
        error_code=diagnostics.get("errorCode"),
        script_name=diagnostics.get("scriptName"),
        message=diagnostics.get("message"),
        log_tail=diagnostics.get("logTail"),
    )


# -- small pieces ----------------------------------------------------------------------------


#: The summary says how long the deployment waited for its first event from this long on.
WAIT_NOTE_SECONDS = 10.0


def cli_console(**kwargs: Any) -> Console:
    """The console of a CLI command: in a pipe (not a terminal) lines are never wrapped at its
    assumed 80 columns, so a long line, a path or a URL reaches ``grep`` whole."""
    console = Console(**kwargs)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def format_duration(seconds: float) -> str:
    """``0.4s``, ``12s``, ``3m05s``, ``1h02m``: short enough for a table cell."""
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    if start is None:
        return ""
    return format_duration(((end or now) - start).total_seconds())


def batches(instances: Sequence[InstanceView]) -> list[list[InstanceView]]:
    """Instances grouped by when they started: a batch begins once the previous one finished.

    The API does not name batches; this reads them off the event times. Instances that have not
    started yet form the next group, and the skipped ones (which never will) the last.
    """
    started = sorted(
        (i for i in instances if i.started_at is not None),
        key=lambda i: (i.started_at, i.instance_id),
    )
    groups: list[list[InstanceView]] = []
    batch_end: datetime | None = None  # None: the current batch is still running
    for instance in started:
        start = instance.started_at
        assert start is not None
        if groups and (batch_end is None or start < batch_end):
            groups[-1].append(instance)
        else:
            groups.append([instance])
        ends = [i.ended_at if i.status not in _RUNNING else None for i in groups[-1]]
        batch_end = None if any(e is None for e in ends) else max(e for e in ends if e)
    waiting = [i for i in instances if i.started_at is None and i.status != "Skipped"]
    if waiting:
        groups.append(waiting)
    skipped = [i for i in instances if i.started_at is None and i.status == "Skipped"]
    if skipped:
        groups.append(skipped)
    return groups


def failure(snapshot: Snapshot) -> tuple[InstanceView, EventView] | None:
    """The first failed lifecycle event (by start time) and its instance, if any."""
    failed = [
        (instance, event)
        for instance in snapshot.instances
        for event in instance.events
        if event.status == "Failed"
    ]
    if not failed:
        return None
    return min(failed, key=lambda pair: (pair[1].start or snapshot.now, pair[0].instance_id))


_INSTALL_EVENTS = frozenset(
    {
        "ApplicationStop",
        "DownloadBundle",
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
    }
)


def _done(instance: InstanceView, event: str) -> bool:
    return any(e.name == event and e.status == "Succeeded" for e in instance.events)


def blue_green_phase(snapshot: Snapshot) -> str | None:
    """Where a blue/green deployment stands, with the hosts in and out of the load balancer
    (None for any other deployment, or one that has ended).

    Read from the targets: green installing; Ready (with the call that continues it);
    rerouting (green hosts whose AllowTraffic is done are in); blocking blue (blue hosts whose
    BlockTraffic is done are out); waiting to terminate blue."""
    dep = snapshot.deployment
    green = [i for i in snapshot.instances if i.label == "Green"]
    blue = [i for i in snapshot.instances if i.label == "Blue"]
    if not (green or blue) or snapshot.finished:
        return None
    rollback = dep.rollback_of is not None
    incoming, outgoing = (blue, green) if rollback else (green, blue)
    names = ("blue", "green") if rollback else ("green", "blue")
    inside = [i.instance_id for i in incoming if _done(i, "AllowTraffic")]
    out = [i.instance_id for i in outgoing if _done(i, "BlockTraffic")]
    where = (
        f" — in: {', '.join(inside) or 'none'} of {names[0]}; "
        f"out: {', '.join(out) or 'none'} of {names[1]}"
    )
    if dep.status == "Ready":
        return (
            f"Ready: {names[0]} installed, waiting for ContinueDeployment (aws deploy "
            f"continue-deployment --deployment-id {dep.deployment_id} "
            "--deployment-wait-type READY_WAIT, or Continue in the dashboard)"
        )
    installing = [
        i
        for i in incoming
        if i.status in ("Pending", "InProgress")
        and any(e.name in _INSTALL_EVENTS and e.status != "Succeeded" for e in i.events)
    ]
    if installing and not rollback:
        return f"installing on {names[0]}: {len(installing)} of {len(incoming)} hosts to go"
    if any(i.status in ("Pending", "InProgress", "Ready") for i in incoming):
        return f"rerouting traffic to {names[0]}{where}"
    if any(i.status in ("Pending", "InProgress") for i in outgoing):
        return f"blocking traffic to {names[1]}{where}"
    return f"waiting to terminate {names[1]}{where}"


def _overview_text(overview: Mapping[str, int]) -> str:
    keys = [k for k in OVERVIEW_KEYS if k != "Ready" or overview.get(k)]
    return "  ".join(f"{k} {overview.get(k, 0)}" for k in keys)


def output_line(line: OutputLine) -> str:
    """One output line as printed in a pipe and in ``opendeploy logs``."""
    return f"{line.instance_id} {line.event} | {line.line}"


# -- the terminal view ---------------------------------------------------------------------------


def _header(snapshot: Snapshot) -> Text:
    dep = snapshot.deployment
    text = Text()
    text.append(f"Deployment {dep.deployment_id} ", style="bold")
    text.append(dep.status, style=_STATUS_STYLE.get(dep.status, ""))
    if dep.created is not None:
        text.append(f"  {_duration(dep.created, dep.completed, snapshot.now)}")
    where = " / ".join(part for part in (dep.application, dep.group, dep.config) if part)
    if where:
        text.append(f"\n{where}", style="dim")
    if dep.rollback_of:
        text.append(f"\nrollback of {dep.rollback_of}", style="magenta")
    text.append(f"\n{_overview_text(dep.overview)}")
    for instance in snapshot.instances:
        if instance.traffic:
            text.append(f"\ntraffic: {instance.traffic}", style="cyan")
    phase = blue_green_phase(snapshot)
    if phase:
        text.append(f"\n{phase}", style="cyan")
    for message in dep.messages:
        text.append(f"\n{message}", style="yellow")
    return text


def _batch_table(number: int, instances: Sequence[InstanceView], now: datetime) -> Table:
    names: list[str] = []
    for instance in instances:
        for event in instance.events:
            if event.name not in names:
                names.append(event.name)
    if all(i.started_at is None and i.status == "Skipped" for i in instances):
        title = "Skipped"
    elif all(i.started_at is None for i in instances):
        title = "Waiting"
    else:
        title = f"Batch {number}"
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    # Who and in what state are what a reader looks for: when the terminal is narrow, the
    # event columns give way first (a long duration in one of them squeezed "InProgress").
    table.add_column(
        "Instance", no_wrap=True, min_width=max((len(i.instance_id) for i in instances), default=0)
    )
    table.add_column(
        "Status", no_wrap=True, min_width=max((len(i.status) for i in instances), default=0)
    )
    for name in names:
        table.add_column(_SHORT_NAMES.get(name, name), no_wrap=True)
    for instance in instances:
        by_name = {e.name: e for e in instance.events}
        cells: list[Text] = []
        for name in names:
            shown = by_name.get(name)
            if shown is None:
                cells.append(Text(""))
                continue
            mark = _EVENT_MARK.get(shown.status, "?")
            duration = _duration(shown.start, shown.end, now)
            cells.append(
                Text(f"{mark} {duration}".rstrip(), style=_STATUS_STYLE.get(shown.status, ""))
            )
        table.add_row(
            Text(instance.instance_id),
            Text(instance.status, style=_STATUS_STYLE.get(instance.status, "")),
            *cells,
        )
    return table


def live_view(
    snapshot: Snapshot, *, output_lines: int = LIVE_OUTPUT_LINES, header: bool = True
) -> RenderableType:
    """The terminal view: header, one table per batch, the newest output lines.

    The last frame, which stays on the screen above the :func:`summary`, goes without the header
    (``header=False``), so that the result is stated once.
    """
    parts: list[RenderableType] = [_header(snapshot)] if header else []
    for number, group in enumerate(batches(snapshot.instances), start=1):
        parts.append(_batch_table(number, group, snapshot.now))
    if not snapshot.instances:
        parts.append(Text("No instances yet.", style="dim"))
    recent = snapshot.output[-output_lines:] if output_lines else ()
    if recent:
        parts.append(Text("Output", style="bold"))
        for line in recent:
            text = Text(f"{line.instance_id} {line.event} ", style="dim")
            text.append(f"| {line.line}")
            text.no_wrap = True
            text.overflow = "ellipsis"
            parts.append(text)
    return Group(*parts)


# -- plain lines for a pipe ------------------------------------------------------------------


def plain_lines(
    previous: Snapshot | None, current: Snapshot, output: Sequence[OutputLine]
) -> tuple[list[str], tuple[OutputLine, ...]]:
    """The plain lines for a pipe: (lines, output held back for the next poll).

    One line per state change from ``previous`` to ``current`` (all of it if None), with the
    new hook ``output`` in place: each output line after its event's InProgress line and before
    its end line, so that a pipe reads in the order things happened. (The output is read after
    the status; printed after all the state lines, a hook's last words came below its own
    "Succeeded".) Lines of an event that ``current`` still shows Pending (it started after the
    status was read) are held back for the next poll, which will show it started; once the
    deployment has ended, nothing is held. Lines of an event the snapshot does not know come
    before the deployment's line.
    """
    by_event: dict[tuple[str, str], list[OutputLine]] = {}
    for out in output:
        by_event.setdefault((out.instance_id, out.event), []).append(out)
    held: list[OutputLine] = []
    lines: list[str] = []
    old = {i.instance_id: i for i in previous.instances} if previous else {}
    for instance in current.instances:
        seen = old.get(instance.instance_id)
        if instance.status == "Skipped":
            # One line, not one per event: none of them ran.
            if seen is None or seen.status != instance.status:
                lines.append(f"{instance.instance_id} Skipped")
            continue
        old_events = {e.name: e for e in seen.events} if seen else {}
        for event in instance.events:
            said = by_event.pop((instance.instance_id, event.name), [])
            was = old_events.get(event.name)
            if (was is not None and was.status == event.status) or (
                was is None and event.status == "Pending"
            ):
                if event.status == "Pending" and not current.finished:
                    held.extend(said)
                else:
                    lines.extend(map(output_line, said))  # a running event's new lines
                continue
            detail = ""
            if event.status in ("Succeeded", "Failed") and event.start is not None:
                detail = f" ({_duration(event.start, event.end, current.now)})"
            if event.status == "Failed" and event.error_code:
                detail += f" {event.error_code}"
            line = f"{instance.instance_id} {event.name} {event.status}{detail}"
            printed = [output_line(o) for o in said]
            lines.extend([line, *printed] if event.status == "InProgress" else [*printed, line])
        if instance.traffic and (seen is None or seen.traffic != instance.traffic):
            lines.append(f"{instance.instance_id} traffic {instance.traffic}")
        if seen is None or seen.status != instance.status:
            lines.append(f"{instance.instance_id} {instance.status}")
    for rest in by_event.values():
        lines.extend(map(output_line, rest))
    # The deployment's line comes last: its new status is the consequence of the lines above;
    # the first one comes first (nothing happened before it). Its end is left to the summary,
    # which states the result once, with the duration.
    dep = current.deployment
    before = previous.deployment if previous else None
    known = set(before.messages) if before else set()
    # Once it has ended the summary lists the messages; before, each is printed once, as it comes.
    news = [
        f"{dep.deployment_id}: {m}" for m in dep.messages if m not in known and not current.finished
    ]
    phase = blue_green_phase(current)
    if phase and (previous is None or blue_green_phase(previous) != phase):
        news.insert(0, f"{dep.deployment_id}: {phase}")
    line = f"{dep.deployment_id} {dep.status} ({_overview_text(dep.overview)})"
    if before is None:
        lines[:0] = [] if current.finished else [line, *news]
    elif (before.status != dep.status or before.overview != dep.overview) and not current.finished:
        lines.extend([line, *news])
    else:
        lines.extend(news)
    return lines, tuple(held)


# -- the closing report ----------------------------------------------------------------------


def summary(snapshot: Snapshot, *, log_tail_lines: int = 20) -> RenderableType:
    """The final report: status and duration, and for a failure where, what and why."""
    dep = snapshot.deployment
    text = Text()
    text.append(f"Deployment {dep.deployment_id} ", style="bold")
    text.append(dep.status, style=_STATUS_STYLE.get(dep.status, ""))
    if dep.created is not None:
        text.append(f" in {_duration(dep.created, dep.completed, snapshot.now)}")
        starts = [e.start for i in snapshot.instances for e in i.events if e.start is not None]
        waited = (min(starts) - dep.created).total_seconds() if starts else 0.0
        if waited >= WAIT_NOTE_SECONDS:
            # E.g. a host that first finished a stopped deployment's script: the time is not
            # the events' own.
            text.append(f", {format_duration(waited)} of it before the first event started")
    text.append(f"\n{_overview_text(dep.overview)}")
    for instance in snapshot.instances:
        if instance.traffic:
            text.append(f"\nTraffic: {instance.traffic}")
    found = failure(snapshot)
    if found is not None:
        instance, event = found
        text.append("\nFailed on ", style="bold red")
        text.append(f"{instance.instance_id} at {event.name}")
        if event.script_name:
            text.append(f", script {event.script_name}")
        if event.error_code:
            text.append(f", error {event.error_code}")
        if event.message:
            text.append(f"\n  {event.message}")
        if event.log_tail:
            tail = event.log_tail.rstrip("\n").splitlines()[-log_tail_lines:]
            text.append("\n  log tail:", style="bold")
            for line in tail:
                text.append(f"\n    {line}")
    elif dep.status != "Succeeded" and dep.error_message:
        text.append(f"\n{dep.error_code or 'Error'}: {dep.error_message}", style="red")
    if found is not None and dep.error_message and dep.error_message != found[1].message:
        text.append(f"\n{dep.error_message}", style="dim")
    for message in dep.messages:
        text.append(f"\n{message}", style="yellow")
    if dep.rollback_deployment_id:
        text.append("\nRollback: ", style="bold magenta")
        text.append(dep.rollback_deployment_id)
        if dep.rollback_message:
            text.append(f" ({dep.rollback_message})", style="dim")
    elif dep.rollback_of:
        text.append(f"\nThis is the rollback of {dep.rollback_of}", style="magenta")
    elif dep.rollback_message:
        text.append(f"\nNo rollback: {dep.rollback_message}", style="dim")
    return text
