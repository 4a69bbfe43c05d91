"""The dashboard over HTTP against a real server process: sessions, CSRF, pages, paging, actions
and the live stream (render times are bench/dashboard_render.py's)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from opendeploy.store import tables
from opendeploy.testing.server import RunningServer
from tests._stored import server_store, stored_deployment
from tests.e2e.polling import wait_for
from tests.web.conftest import login

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::000000000000:role/opendeploy"
PAGES = [
    "/ui/",
    "/ui/instances",
    "/ui/applications/shop",
    "/ui/applications/shop/groups/web",
    "/ui/deployments/d-ABCDEFGHI",
]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"app-{suffix}", f"group-{suffix}"


def _app_and_group(server: RunningServer, tag: str) -> tuple[str, str]:
    app, group = _names()
    client = server.client()
    client.create_application(applicationName=app)
    client.create_deployment_group(
        applicationName=app,
        deploymentGroupName=group,
        serviceRoleArn=ROLE,
        deploymentConfigName="CodeDeployDefault.AllAtOnce",
        onPremisesInstanceTagFilters=[{"Key": "dash", "Value": tag, "Type": "KEY_AND_VALUE"}],
    )
    return app, group


# -- sessions ----------------------------------------------------------------------------------


def test_every_page_stream_and_action_needs_a_session(dashboard_server: RunningServer) -> None:
    with httpx.Client(base_url=dashboard_server.endpoint) as anonymous:
        for path in PAGES:
            response = anonymous.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next=")
        assert anonymous.get("/ui/deployments/d-ABCDEFGHI/events").status_code == 401
        for action in ("stop", "continue", "redeploy"):
            response = anonymous.post(f"/ui/deployments/d-ABCDEFGHI/{action}", data={})
            assert response.status_code == 401
        # A forged or garbled cookie is no session either.
        anonymous.cookies.set("od_session", "eyJrIjoiQUtJQSJ9.Zm9yZ2Vk", path="/ui")
        assert anonymous.get("/ui/").status_code == 303
        # The login form and the static files are public; they carry no data.
        assert anonymous.get("/ui/login").status_code == 200
        assert anonymous.get("/ui/static/dashboard.css").status_code == 200
        assert anonymous.get("/ui/static/dashboard.js").status_code == 200


def test_get_root_redirects_to_the_dashboard_and_post_root_stays_the_api(
    dashboard_server: RunningServer,
) -> None:
    response = httpx.get(f"{dashboard_server.endpoint}/")
    assert response.status_code == 307 and response.headers["location"] == "/ui/"
    api = httpx.post(
        f"{dashboard_server.endpoint}/",
        headers={"X-Amz-Target": "CodeDeploy_20141006.ListApplications"},
        content=b"{}",
    )
    assert api.status_code in (400, 403) and "__type" in api.text
    # And signed API calls still work next to the dashboard.
    assert "applications" in dashboard_server.client().list_applications()


def test_login_takes_only_an_admin_key_pair(dashboard_server: RunningServer) -> None:
    endpoint = dashboard_server.endpoint
    wrong = httpx.post(
        f"{endpoint}/ui/login",
        data={"access_key_id": dashboard_server.access_key_id, "secret_access_key": "nope"},
    )
    assert wrong.status_code == 401 and "not an admin key" in wrong.text
    assert "od_session" not in wrong.cookies
    store = server_store(dashboard_server)
    try:
        key_id, secret = store.access_keys.create(principal="arn:whatever", kind="instance")
    finally:
        store.close()
    instance = httpx.post(
        f"{endpoint}/ui/login", data={"access_key_id": key_id, "secret_access_key": secret}
    )
    assert instance.status_code == 401
    unknown = httpx.post(
        f"{endpoint}/ui/login", data={"access_key_id": "AKIAUNKNOWN", "secret_access_key": "x"}
    )
    assert unknown.status_code == 401


def test_login_sets_a_strict_http_only_session_and_logout_needs_csrf(
    dashboard_server: RunningServer,
) -> None:
    with httpx.Client(base_url=dashboard_server.endpoint) as client:
        response = client.post(
            "/ui/login",
            data={
                "access_key_id": dashboard_server.access_key_id,
                "secret_access_key": dashboard_server.secret_access_key,
                "next": "/ui/instances",
            },
        )
        assert response.status_code == 303 and response.headers["location"] == "/ui/instances"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        home = client.get("/ui/")
        assert home.status_code == 200 and dashboard_server.access_key_id in home.text
        assert "default-src 'self'" in home.headers["content-security-policy"]
        assert client.post("/ui/logout", data={}).status_code == 403
        assert client.post("/ui/logout", data={"csrf_token": "forged"}).status_code == 403
        out = client.post("/ui/logout", data={"csrf_token": _csrf(home.text)})
        assert out.status_code == 303
        assert client.get("/ui/").status_code == 303


def test_login_never_redirects_off_the_dashboard(dashboard_server: RunningServer) -> None:
    for target in ("//evil.example/ui", "https://evil.example/", "/\\evil.example"):
        response = httpx.post(
            f"{dashboard_server.endpoint}/ui/login",
            data={
                "access_key_id": dashboard_server.access_key_id,
                "secret_access_key": dashboard_server.secret_access_key,
                "next": target,
            },
        )
        assert response.headers["location"] == "/ui/", target


# -- pages ---------------------------------------------------------------------------------------


def test_pages_render_and_unknown_names_are_404(dashboard_server: RunningServer) -> None:
    app, group = _app_and_group(dashboard_server, "pages")
    with login(dashboard_server) as client:
        home = client.get("/ui/")
        assert home.status_code == 200 and app in home.text and group in home.text
        assert client.get(f"/ui/applications/{app}").status_code == 200
        page = client.get(f"/ui/applications/{app}/groups/{group}")
        assert page.status_code == 200 and "No deployments yet" in page.text
        assert "CodeDeployDefault.AllAtOnce" in page.text
        for missing in (
            "/ui/applications/none-such",
            f"/ui/applications/{app}/groups/none-such",
            "/ui/deployments/d-ABCDEFGHI",
            "/ui/deployments/not-an-id",
        ):
            assert client.get(missing).status_code == 404, missing
        for html in (home.text, page.text):
            assert "<main" in html and "<nav" in html and 'scope="col"' in html


# -- actions, stream -----------------------------------------------------------------------------


def test_stop_and_redeploy_through_the_dashboard(dashboard_server: RunningServer) -> None:
    """A host that never polls keeps the deployment in progress until the dashboard stops it."""
    tag = uuid.uuid4().hex[:8]
    app, group = _app_and_group(dashboard_server, tag)
    api = dashboard_server.client()
    name = f"silent-{tag}"
    api.register_on_premises_instance(
        instanceName=name, iamUserArn=f"arn:aws:iam::000000000000:user/{name}"
    )
    api.add_tags_to_on_premises_instances(
        instanceNames=[name], tags=[{"Key": "dash", "Value": tag}]
    )
    revision = {
        "revisionType": "S3",
        "s3Location": {"bucket": "bundles", "key": "v1.zip", "bundleType": "zip"},
    }
    first = api.create_deployment(applicationName=app, deploymentGroupName=group, revision=revision)
    deployment_id = first["deploymentId"]
    with login(dashboard_server) as client:
        page = client.get(f"/ui/deployments/{deployment_id}")
        assert page.status_code == 200 and 'id="action-stop"' in page.text
        assert 'data-live="true"' in page.text
        stopped = client.post(
            f"/ui/deployments/{deployment_id}/stop", data={"csrf_token": _csrf(page.text)}
        )
        assert stopped.status_code == 303
        assert stopped.headers["location"] == f"/ui/deployments/{deployment_id}"
        after = client.get(stopped.headers["location"])
        assert "Stop requested" in after.text, after.text
        # The flash shows once.
        assert "Stop requested" not in client.get(stopped.headers["location"]).text
        info = api.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        assert info["status"] == "Stopped"
        final = client.get(f"/ui/deployments/{deployment_id}")
        assert 'id="action-redeploy"' in final.text and 'id="action-stop"' not in final.text
        assert "MANUAL_STOP" in final.text

        # A stopped deployment cannot be stopped again: the API's error is the result.
        again = client.post(
            f"/ui/deployments/{deployment_id}/stop", data={"csrf_token": _csrf(final.text)}
        )
        assert "DeploymentAlreadyCompletedException" in client.get(again.headers["location"]).text

        redeployed = client.post(
            f"/ui/deployments/{deployment_id}/redeploy", data={"csrf_token": _csrf(final.text)}
        )
        new_id = redeployed.headers["location"].rsplit("/", 1)[1]
        assert new_id != deployment_id
        new = api.get_deployment(deploymentId=new_id)["deploymentInfo"]
        assert new["revision"] == revision and new["deploymentGroupName"] == group
        assert f"created from {deployment_id}" in client.get(redeployed.headers["location"]).text
        api.stop_deployment(deploymentId=new_id)


def _silent_host(server: RunningServer, tag: str) -> str:
    """A registered, tagged instance with no agent: its deployments stay in progress."""
    api = server.client()
    name = f"silent-{tag}"
    api.register_on_premises_instance(
        instanceName=name, iamUserArn=f"arn:aws:iam::000000000000:user/{name}"
    )
    api.add_tags_to_on_premises_instances(
        instanceNames=[name], tags=[{"Key": "dash", "Value": tag}]
    )
    return name


def _stored_deployment(
    server: RunningServer,
    app: str,
    group: str,
    *,
    status: str,
    last_success: bool = False,
    **columns: Any,
) -> str:
    """A deployment written straight into the server's store (no targets), in ``status``;
    with ``last_success``, recorded as its group's last successful deployment."""
    store = server_store(server)
    now = datetime.now(UTC)
    try:
        row = stored_deployment(store, app, group, now=now, status=status, **columns)
        deployment_id: str = row["deployment_id"]
        if last_success:
            groups = tables.deployment_groups
            with store.database.write() as conn:
                conn.execute(
                    update(groups)
                    .where(groups.c.deployment_group_id == row["deployment_group_id"])
                    .values(last_successful_deployment_id=deployment_id)
                )
        return deployment_id
    finally:
        store.close()


def test_stop_and_roll_back_links_the_rollback_both_ways(dashboard_server: RunningServer) -> None:
    """The group's last success is v1 (seeded through the store); v2 waits on a silent host
    until the dashboard stops it with rollback: a rollback deployment of v1 appears, and each
    page links to the other."""
    tag = uuid.uuid4().hex[:8]
    app, group = _app_and_group(dashboard_server, tag)
    _silent_host(dashboard_server, tag)
    api = dashboard_server.client()
    v1: dict[str, Any] = {
        "revisionType": "S3",
        "s3Location": {"bucket": "bundles", "key": "v1.zip", "bundleType": "zip"},
    }
    v2 = {**v1, "s3Location": {**v1["s3Location"], "key": "v2.zip"}}
    good = _stored_deployment(
        dashboard_server, app, group, status="Succeeded", last_success=True, revision=v1,
        complete_time=datetime.now(UTC),
    )  # fmt: skip
    assert (
        api.get_deployment_group(applicationName=app, deploymentGroupName=group)[
            "deploymentGroupInfo"
        ]["lastSuccessfulDeployment"]["deploymentId"]
        == good
    )

    deployment_id = api.create_deployment(
        applicationName=app, deploymentGroupName=group, revision=v2
    )["deploymentId"]
    with login(dashboard_server) as client:
        page = client.get(f"/ui/deployments/{deployment_id}")
        assert 'id="action-stop-rollback"' in page.text
        assert (
            f'data-confirm="Stop deployment {deployment_id} and roll back to the last '
            'successful revision?"'
        ) in page.text
        stopped = client.post(
            f"/ui/deployments/{deployment_id}/stop",
            data={"csrf_token": _csrf(page.text), "rollback": "true"},
        )
        assert stopped.status_code == 303
        assert "Stop with rollback requested" in client.get(stopped.headers["location"]).text

        def rollback_id() -> str | None:
            info = api.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
            found = (info.get("rollbackInfo") or {}).get("rollbackDeploymentId")
            return str(found) if found and info["status"] == "Stopped" else None

        rollback = wait_for(rollback_id, 30, "the rollback deployment")
        info = api.get_deployment(deploymentId=rollback)["deploymentInfo"]
        assert info["revision"] == v1
        assert info["rollbackInfo"]["rollbackTriggeringDeploymentId"] == deployment_id

        stopped_page = client.get(f"/ui/deployments/{deployment_id}").text
        assert (
            f'<a href="/ui/deployments/{rollback}" id="rollback-link">{rollback}</a>'
            in stopped_page
        )
        assert "MANUAL_STOP" in stopped_page
        rollback_page = client.get(f"/ui/deployments/{rollback}").text
        assert (
            f'<a href="/ui/deployments/{deployment_id}" id="rollback-of-link">{deployment_id}</a>'
            in rollback_page
        )
        assert 'id="rollback-link"' not in rollback_page
    # The rollback waits on the silent host too; end it so the group is free.
    api.stop_deployment(deploymentId=rollback, autoRollbackEnabled=False)


def test_continue_a_deployment_that_waits(dashboard_server: RunningServer) -> None:
    """A blue/green deployment waiting in Ready (STOP_DEPLOYMENT with a long wait), put in that
    state through the store: the page offers Continue (with a confirmation), the action
    reaches ContinueDeployment and its result is shown; on another status it is refused."""
    app, group = _app_and_group(dashboard_server, "continue-" + uuid.uuid4().hex[:6])
    waiting = _stored_deployment(
        dashboard_server, app, group, status="Ready",
        deployment_style={"deploymentType": "BLUE_GREEN"},
        blue_green_deployment_configuration={
            "deploymentReadyOption": {
                "actionOnTimeout": "STOP_DEPLOYMENT", "waitTimeInMinutes": 2880,
            }
        },
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": "b", "key": "green.zip", "bundleType": "zip"},
        },
    )  # fmt: skip
    with login(dashboard_server) as client:
        page = client.get(f"/ui/deployments/{waiting}")
        assert page.status_code == 200
        assert 'id="action-continue"' in page.text
        assert f'data-confirm="Continue deployment {waiting}?"' in page.text
        answer = client.post(
            f"/ui/deployments/{waiting}/continue", data={"csrf_token": _csrf(page.text)}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/ui/deployments/{waiting}"
        assert f"Deployment {waiting} continues." in client.get(answer.headers["location"]).text
        store = server_store(dashboard_server)
        try:
            row = store.deployments.get(waiting)
        finally:
            store.close()
        assert row is not None and row["continue_requested"] == "READY_WAIT"

        # A deployment that does not wait (Baking, which the engine leaves alone like Ready):
        # no Continue button, and a forged post gets the API's error as its result.
        busy = _stored_deployment(
            dashboard_server, *_app_and_group(dashboard_server, "busy-" + uuid.uuid4().hex[:6]),
            status="Baking",
            deployment_style={"deploymentType": "BLUE_GREEN"},
        )  # fmt: skip
        page = client.get(f"/ui/deployments/{busy}")
        assert 'id="action-continue"' not in page.text
        refused = client.post(
            f"/ui/deployments/{busy}/continue", data={"csrf_token": _csrf(page.text)}
        )
        shown = client.get(refused.headers["location"]).text
        assert "Continue failed: DeploymentIsNotInReadyStateException" in shown


def _events(client: httpx.Client, path: str, timeout: float = 30) -> list[tuple[str, Any]]:
    """Read an SSE stream to its ``end`` event."""
    out: list[tuple[str, Any]] = []
    event = ""
    with client.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[len("data: ") :])))
                if event == "end":
                    break
    return out


def test_stream_of_a_finished_deployment_sends_each_region_then_ends(
    dashboard_server: RunningServer,
) -> None:
    app, group = _app_and_group(dashboard_server, "none-match-" + uuid.uuid4().hex[:6])
    api = dashboard_server.client()
    revision = {
        "revisionType": "S3",
        "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"},
    }
    deployment_id = api.create_deployment(
        applicationName=app, deploymentGroupName=group, revision=revision
    )["deploymentId"]  # no instance matches: failed at once (NO_INSTANCES)
    with login(dashboard_server) as client:
        events = _events(client, f"/ui/deployments/{deployment_id}/events")
    names = [e for e, _ in events]
    assert names[-1] == "end"
    assert {"summary", "actions", "instances"} <= set(names)
    summary = dict(events)["summary"]
    assert "NO_INSTANCES" in summary and "Failed" in summary


# -- 1,000 instances -----------------------------------------------------------------------------


def _fill(server: RunningServer, app: str, group: str, count: int) -> tuple[str, list[str]]:
    """``count`` registered instances and a finished deployment to all of them, via the store."""
    store = server_store(server)
    now = datetime.now(UTC)
    try:
        names = [f"fleet-{i:04d}" for i in range(count)]
        for name in names:
            store.instances.register(
                name=name,
                instance_arn=f"arn:aws:codedeploy:us-east-1:000000000000:instance/{name}_x",
                iam_user_arn=None,
                iam_session_arn=None,
                now=now,
            )
        store.instances.add_tags(names, [("fleet", "big"), ("rack", "r1")])
        deployment_id: str = stored_deployment(
            store,
            app,
            group,
            now=now,
            select_targets=lambda fleet: [
                (n, a, None) for n, a, _ in fleet if n.startswith("fleet-")
            ],
            deployment_config_name="CodeDeployDefault.HalfAtATime",
            revision={
                "revisionType": "S3",
                "s3Location": {"bucket": "b", "key": "big.zip", "bundleType": "zip"},
            },
            status="Failed",
            complete_time=now + timedelta(minutes=3),
            error_information={"code": "HEALTH_CONSTRAINTS", "message": "too many failed"},
        )["deployment_id"]
        events = [
            "ApplicationStop",
            "DownloadBundle",
            "BeforeInstall",
            "Install",
            "AfterInstall",
            "ApplicationStart",
            "ValidateService",
        ]
        for index, name in enumerate(names):
            failed = index % 100 == 7
            store.deployments.set_lifecycle_events(
                deployment_id,
                name,
                [
                    {
                        "name": event,
                        "status": "Failed"
                        if failed and event == "ValidateService"
                        else "Succeeded",
                        "start_time": now + timedelta(seconds=index),
                        "end_time": now + timedelta(seconds=index + 1),
                        "diagnostics": {
                            "errorCode": "ScriptFailed",
                            "scriptName": "scripts/validate.sh",
                            "message": "Script at specified location: scripts/validate.sh failed",
                            "logTail": "[stderr]health check failed\n",
                        }
                        if failed and event == "ValidateService"
                        else None,
                    }
                    for event in events
                ],
            )
        return deployment_id, names
    finally:
        store.close()


def test_a_thousand_instance_deployment_is_paged(dashboard_server: RunningServer) -> None:
    """Pages of a 1,000-instance deployment show one page of rows, never all of them. How fast
    they render is measured by bench/dashboard_render.py (speed goals live in benchmarks)."""
    app, group = _app_and_group(dashboard_server, "fleet-big")
    deployment_id, _ = _fill(dashboard_server, app, group, 1000)
    with login(dashboard_server) as client:
        for path in (
            f"/ui/deployments/{deployment_id}?page=20",
            "/ui/instances?page=20",
            f"/ui/applications/{app}",
            f"/ui/applications/{app}/groups/{group}",
            "/ui/",
        ):
            assert client.get(path).status_code == 200, path

        page = client.get(f"/ui/deployments/{deployment_id}").text
        assert "1000 instances, page 1 of 20" in page
        assert page.count('<tr id="instance-') == 50
        assert "HEALTH_CONSTRAINTS" in page and "ScriptFailed" in page
        assert "health check failed" in page and "scripts/validate.sh" in page
        assert "up to 500 instances at a time" in page  # HalfAtATime of 1,000
        last = client.get(f"/ui/deployments/{deployment_id}?page=20").text
        assert "fleet-0999" in last and "fleet-0000" not in last

        instances = client.get("/ui/instances?page=2").text
        assert "fleet-0050" in instances and "fleet-0049" not in instances
        assert deployment_id in instances and "fleet=big" in instances
        assert instances.count("<tr>") == 1 + 50  # the head row and one page of instances

        # The live stream's instances region is the same page of 50 rows.
        events = _events(client, f"/ui/deployments/{deployment_id}/events")
        region = dict(events)["instances"]
        assert region.count('<tr id="instance-') == 50


# -- agents --------------------------------------------------------------------------------------


def test_instances_page_names_agents_that_are_not_polling(dashboard_server: RunningServer) -> None:
    """Fresh, quiet, never-seen and engine-marked unreachable agents, each said in words."""
    tag = uuid.uuid4().hex[:8]
    api = dashboard_server.client()
    names = {state: f"agent-{state}-{tag}" for state in ("fresh", "quiet", "never", "marked")}
    for name in names.values():
        api.register_on_premises_instance(
            instanceName=name, iamUserArn=f"arn:aws:iam::000000000000:user/{name}"
        )
    store = server_store(dashboard_server)
    now = datetime.now(UTC)
    try:
        store.instances.touch(names["fresh"], now=now, agent_version="OFFICIAL_1.7.1")
        store.instances.touch(names["quiet"], now=now - timedelta(minutes=5))
        store.instances.touch(names["marked"], now=now)
        with store.database.write() as conn:
            conn.execute(
                update(tables.on_premises_instances)
                .where(tables.on_premises_instances.c.name == names["marked"])
                .values(unreachable_since=now)
            )
    finally:
        store.close()
    with login(dashboard_server) as client:
        page = client.get("/ui/instances").text
    rows = {
        state: re.search(rf'<th scope="row">{name}</th>(.*?)</tr>', page, re.S)
        for state, name in names.items()
    }
    cells = {state: match.group(1) for state, match in rows.items() if match is not None}
    assert set(cells) == set(names), page
    assert "agent-polling" in cells["fresh"] and "the agent is polling" in cells["fresh"]
    assert "agent-not-polling" in cells["quiet"]
    assert "has not polled for 5 min (limit 15 s)" in cells["quiet"]
    assert "agent-never-polled" in cells["never"]
    assert "agent-not-polling" in cells["marked"] and "unreachable since" in cells["marked"]
