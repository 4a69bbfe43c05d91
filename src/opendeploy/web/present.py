"""Pure formatting for the dashboard: revisions, durations, creators, status marks, charts.

Everything here takes plain values and returns text (or chart geometry), so the templates stay
free of logic and these rules are testable without a server. Status is always spelled out in
words and marked with a symbol, never conveyed by colour alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: A symbol per status, shown next to the word (colour is only a third cue).
STATUS_MARKS: dict[str, str] = {
    "Succeeded": "✓",
    "Failed": "✗",
    "Stopped": "■",
    "InProgress": "▶",
    "Baking": "▶",
    "Created": "○",
    "Queued": "○",
    "Pending": "○",
    "Ready": "⏸",
    "Skipped": "–",
    "Unknown": "?",
}

#: Who started a deployment, as the ``creator`` column spells it, in words.
CREATORS: dict[str, str] = {
    "user": "a user (API, CLI or dashboard)",
    "autoscaling": "a new instance joining the group",
    "codeDeployRollback": "an automatic rollback",
    "CodeDeployAutoUpdate": "automatic update",
}

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})


def status_mark(status: str | None) -> str:
    return STATUS_MARKS.get(status or "", "?")


def status_class(status: str | None) -> str:
    """A CSS class name for a status (``st-succeeded`` …)."""
    return "st-" + (status or "unknown").lower()


def creator_text(creator: str | None) -> str:
    return CREATORS.get(creator or "", creator or "unknown")


def revision_text(revision: Mapping[str, Any] | None) -> str:
    """One line naming a revision: ``s3://bucket/key (zip)``, ``owner/repo@commit`` …"""
    if not revision:
        return "none"
    kind = revision.get("revisionType")
    if kind == "S3":
        s3 = revision.get("s3Location") or {}
        text = f"s3://{s3.get('bucket', '?')}/{s3.get('key', '?')}"
        extras = [s3.get("bundleType")]
        if s3.get("version"):
            extras.append(f"version {s3['version']}")
        if s3.get("eTag"):
            extras.append(f"ETag {s3['eTag']}")
        shown = [e for e in extras if e]
        return text + (f" ({', '.join(shown)})" if shown else "")
    if kind == "GitHub":
        gh = revision.get("gitHubLocation") or {}
        return f"{gh.get('repository', '?')}@{str(gh.get('commitId', '?'))[:12]}"
    if kind in ("String", "AppSpecContent"):
        content = revision.get("string") or revision.get("appSpecContent") or {}
        sha = content.get("sha256")
        return "inline AppSpec" + (f" (sha256 {str(sha)[:12]})" if sha else "")
    return str(kind or "unknown")


def duration_text(
    start: datetime | None, end: datetime | None, *, now: datetime | None = None
) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12 s``; running ones count up to ``now``."""
    if start is None:
        return "not started"
    stop = end or now or datetime.now(UTC)
    seconds = max(0, int((stop - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def time_text(value: datetime | None) -> str:
    """UTC, to the second, in a sortable form (``2026-11-01 12:03:04 UTC``)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def ago_text(value: datetime | None, *, now: datetime | None = None) -> str:
    """``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``; ``never`` for None."""
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - value).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@dataclass(frozen=True)
class AgentState:
    """How an instance's agent looks from the server: a word for the status and a sentence."""

    status: str  # "polling", "not polling", "never polled", "deregistered"
    text: str


def agent_state(
    instance: Mapping[str, Any], *, dead_after_seconds: float, now: datetime | None = None
) -> AgentState:
    """Whether an instance's agent is alive, by the rule the engine applies to its events.

    The engine records ``unreachable_since`` only when it fails an event of a quiet agent; an
    idle fleet has no events, so a quiet agent is also named from ``last_seen_at`` alone, with
    the same ``dead_after_seconds`` the engine uses.
    """
    now = now or datetime.now(UTC)
    if instance.get("deregister_time") is not None:
        return AgentState("deregistered", "deregistered: gets no more commands")
    seen = instance.get("last_seen_at")
    if seen is None:
        return AgentState("never polled", "no agent has polled for this instance yet")
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    unreachable = instance.get("unreachable_since")
    quiet = (now - seen).total_seconds() > dead_after_seconds
    if unreachable is not None or quiet:
        since = f"; unreachable since {time_text(unreachable)}" if unreachable else ""
        return AgentState(
            "not polling",
            f"the agent has not polled for {ago_text(seen, now=now).removesuffix(' ago')}"
            f" (limit {dead_after_seconds:g} s){since}",
        )
    return AgentState("polling", "the agent is polling")


@dataclass(frozen=True)
class Bar:
    """One deployment in a success chart: where it is drawn and what it says."""

    x: int
    height: int
    status: str
    label: str


@dataclass(frozen=True)
class SuccessChart:
    """Recent deployments of a group, oldest first, with the success rate of the finished ones."""

    bars: tuple[Bar, ...]
    finished: int
    succeeded: int
    width: int
    height: int

    @property
    def rate_text(self) -> str:
        if not self.finished:
            return "no finished deployments yet"
        percent = round(100 * self.succeeded / self.finished)
        return f"{percent} % of the last {self.finished} finished ({self.succeeded} succeeded)"


#: Bar heights (of 24 px): success full, failure short, anything else a stub.
_BAR_HEIGHTS = {"Succeeded": 24, "Failed": 8, "Stopped": 8}


def success_chart(recent: Sequence[Mapping[str, Any]], *, bar_width: int = 6) -> SuccessChart:
    """Chart geometry for ``recent`` deployments given newest first (as the queries list them)."""
    bars: list[Bar] = []
    finished = succeeded = 0
    for index, row in enumerate(reversed(list(recent))):
        status = str(row["status"])
        if status in TERMINAL:
            finished += 1
            succeeded += status == "Succeeded"
        bars.append(
            Bar(
                x=index * (bar_width + 2),
                height=_BAR_HEIGHTS.get(status, 4),
                status=status,
                label=f"{row['deployment_id']}: {status}, {time_text(row.get('create_time'))}",
            )
        )
    return SuccessChart(
        bars=tuple(bars),
        finished=finished,
        succeeded=succeeded,
        width=max(1, len(bars) * (bar_width + 2)),
        height=24,
    )


def output_text(commands: Sequence[Mapping[str, Any]]) -> str:
    """The streamed output of an instance's commands, each under a header line."""
    parts = []
    for command in commands:
        status = command.get("result") or command.get("status") or ""
        if status == "Closed":
            status = "closed"  # the engine closed it without an agent result
        parts.append(f"── {command['lifecycle_event']} ({status}) ──\n")
        text = command.get("output") or ""
        if text:
            parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)
