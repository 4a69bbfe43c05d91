"""What each dashboard page shows, gathered from the store into plain dicts for the templates.

One function per page; the deployment page's view is also what the live stream re-renders, so
the first paint and every update come from the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opendeploy.api.handlers.deployments import busy_hosts
from opendeploy.cli.render import (
    DeploymentView,
    EventView,
    InstanceView,
    Snapshot,
    blue_green_phase,
)
from opendeploy.store.database import Store
from opendeploy.store.notifications import NotificationLog
from opendeploy.web import present, queries

#: Rows per page of each list.
INSTANCES_PER_PAGE = 50
DEPLOYMENTS_PER_PAGE = 25
APPLICATIONS_PER_PAGE = 20
RECENT_DEPLOYMENTS = 15


class NotFound(LookupError):
    """The page's subject (application, group, deployment) does not exist."""


@dataclass(frozen=True)
class Pager:
    """Where a page sits in a list: 1-based ``page``, ``pages`` in all, ``total`` rows."""

    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def page_number(raw: str | None) -> int:
    """A 1-based page number from a query parameter (anything odd means page 1)."""
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1


def home(store: Store, *, page: int) -> dict[str, Any]:
    total = store.applications.count()
    pager = Pager(page, APPLICATIONS_PER_PAGE, total)
    names, _ = store.applications.list_names(offset=pager.offset, limit=pager.size)
    apps = [a for a in store.applications.get_many(names) if a is not None]
    apps.sort(key=lambda a: str(a["name"]))
    groups = queries.groups_of(store, [a["application_id"] for a in apps])
    group_ids = [g["deployment_group_id"] for gs in groups.values() for g in gs]
    recent = queries.recent_by_group(store, group_ids)
    for app in apps:
        app["groups"] = [_with_chart(g, recent) for g in groups[app["application_id"]]]
    return {
        "applications": apps,
        "pager": pager,
        "recent": queries.recent_deployments(store, limit=RECENT_DEPLOYMENTS),
    }


def _with_chart(group: dict[str, Any], recent: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rows = recent.get(group["deployment_group_id"], [])
    return {**group, "chart": present.success_chart(rows), "last": rows[0] if rows else None}


def application(store: Store, name: str) -> dict[str, Any]:
    app = store.applications.get(name)
    if app is None:
        raise NotFound(f"application {name!r}")
    groups = queries.groups_of(store, [app["application_id"]])[app["application_id"]]
    recent = queries.recent_by_group(store, [g["deployment_group_id"] for g in groups])
    return {"app": app, "groups": [_with_chart(g, recent) for g in groups]}


def group(store: Store, app_name: str, group_name: str, *, page: int) -> dict[str, Any]:
    app = store.applications.get(app_name)
    if app is None:
        raise NotFound(f"application {app_name!r}")
    row = store.deployment_groups.get(app["application_id"], group_name)
    if row is None:
        raise NotFound(f"deployment group {group_name!r}")
    recent = queries.recent_by_group(store, [row["deployment_group_id"]], per_group=30)
    # Count through the paging call itself: one more id than a page says "there is more".
    pager = Pager(page, DEPLOYMENTS_PER_PAGE, 0)
    ids, more = store.deployments.list_ids(
        application_id=app["application_id"],
        deployment_group_name=group_name,
        offset=pager.offset,
        limit=pager.size,
    )
    deployments = [d for d in store.deployments.get_many(ids) if d is not None]
    return {
        "app": app,
        "group": row,
        "success": present.success_chart(recent[row["deployment_group_id"]]),
        "deployments": deployments,
        "page": page,
        "more": more,
    }


def deployment(
    store: Store, deployment_id: str, *, page: int, instance: str | None
) -> dict[str, Any]:
    """Everything the deployment page shows (also each live update)."""
    row = store.deployments.get(deployment_id)
    if row is None:
        raise NotFound(f"deployment {deployment_id!r}")
    total = sum(row["overview"].values())
    pager = Pager(page, INSTANCES_PER_PAGE, total)
    ids, _ = store.deployments.list_target_ids(deployment_id, offset=pager.offset, limit=pager.size)
    targets = [t for t in store.deployments.get_targets(deployment_id, ids) if t is not None]
    order = queries.start_order(store, deployment_id) if targets else {}
    at_once = queries.pace(store, row["deployment_config_name"], total) if total else 0
    for target in targets:
        position = order.get(target["target_id"])
        target["batch"] = None if position is None or not at_once else position // at_once + 1
    failures = queries.failed_events(store, deployment_id)
    watched = instance or queries.first_target_with(store, deployment_id, ["InProgress"])
    if watched is None and failures:
        watched = str(failures[0]["target_id"])
    if watched is None:
        # Nothing in progress and nothing failed (e.g. a finished deployment): the instance that
        # started last, the one a live page was following when the deployment ended.
        started = order or queries.start_order(store, deployment_id)
        watched = max(started, key=lambda name: started[name]) if started else None
    commands = store.commands.output(deployment_id, watched) if watched else []
    rollback = row["rollback_info"] or {}
    status = str(row["status"])
    group_exists = row["deployment_group_name"] is not None and row["revision"] is not None
    return {
        "d": row,
        "total": total,
        "pager": pager,
        "targets": targets,
        "at_once": at_once,
        "started": len(order),
        "failures": failures,
        "watched": watched,
        "selected": instance,
        "output": present.output_text(commands),
        "rollback": rollback,
        "busy": busy_hosts(store, row),
        "live": status not in present.TERMINAL,
        "can_stop": status not in present.TERMINAL,
        "can_continue": status == "Ready",
        "phase": _blue_green_phase(store, row, total),
        "status_messages": list(row.get("deployment_status_messages") or []),
        "can_redeploy": status in present.TERMINAL and group_exists,
        "lambda_traffic": _lambda_traffic(store, row),
    }


def _lambda_traffic(store: Store, row: dict[str, Any]) -> dict[str, Any] | None:
    """A Lambda deployment's alias and the weight on its target version over time."""
    if row["compute_platform"] != "Lambda":
        return None
    found = store.lambda_deployments.get(str(row["deployment_id"]))
    if found is None or found["spec"] is None:
        return None
    spec = found["spec"]
    history = [
        {"at": entry["at"], "percent": round(float(entry["weight"]) * 100)}
        for entry in found["weights"] or []
    ]
    weight = found["target_weight"]
    return {
        "function": spec["functionName"],
        "alias": spec["alias"],
        "current": spec["currentVersion"],
        "target": spec["targetVersion"],
        "percent": None if weight is None else round(float(weight) * 100),
        "history": history,
        "restored_at": found["restored_at"],
    }


#: Above this many targets the page leaves the blue/green phase out (it reads every target).
PHASE_TARGETS_LIMIT = 1000


def _blue_green_phase(store: Store, row: dict[str, Any], total: int) -> str | None:
    """The phase ``opendeploy watch`` shows for a blue/green deployment (None otherwise)."""
    style = row.get("deployment_style") or {}
    if style.get("deploymentType") != "BLUE_GREEN" or row.get("compute_platform") != "Server":
        return None
    if not total or total > PHASE_TARGETS_LIMIT:
        return None
    ids, _ = store.deployments.list_target_ids(row["deployment_id"], limit=total)
    views = [
        InstanceView(
            str(t["target_id"]),
            str(t["status"]),
            tuple(EventView(str(e["name"]), str(e["status"])) for e in t["lifecycle_events"]),
            label=t["instance_label"],
        )
        for t in store.deployments.get_targets(row["deployment_id"], ids)
        if t is not None
    ]
    rollback = (row.get("rollback_info") or {}).get("rollbackTriggeringDeploymentId")
    view = DeploymentView(str(row["deployment_id"]), str(row["status"]), rollback_of=rollback)
    return blue_green_phase(Snapshot(view, tuple(views), datetime.now(UTC)))


def instances(
    store: Store, *, page: int, registered: bool, dead_after_seconds: float
) -> dict[str, Any]:
    pager = Pager(page, INSTANCES_PER_PAGE, 0)
    rows, total = queries.instance_page(
        store, registered=registered, offset=pager.offset, limit=pager.size
    )
    last = queries.last_deployments(store, [r["name"] for r in rows])
    now = datetime.now(UTC)
    for row in rows:
        row["last"] = last.get(row["name"])
        row["agent"] = present.agent_state(row, dead_after_seconds=dead_after_seconds, now=now)
    return {
        "instances": rows,
        "pager": Pager(page, INSTANCES_PER_PAGE, total),
        "registered": registered,
    }


#: The notification log shows this many deliveries, newest first.
NOTIFICATIONS_SHOWN = 200
_NOTIFICATION_STATUSES = ("Pending", "Delivered", "Failed")


def notifications(store: Store, *, deployment_id: str | None, status: str | None) -> dict[str, Any]:
    """The notification delivery log (SNS topics, webhooks), filtered."""
    if status not in _NOTIFICATION_STATUSES:
        status = None
    rows = NotificationLog(store, "dashboard").recent(
        limit=NOTIFICATIONS_SHOWN, deployment_id=deployment_id or None, status=status
    )
    return {
        "deliveries": rows,
        "deployment_id": deployment_id or "",
        "status": status,
        "statuses": _NOTIFICATION_STATUSES,
        "shown": NOTIFICATIONS_SHOWN,
    }
