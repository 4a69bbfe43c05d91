"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright for Python
with ``executable_path``; no browser download) against a real server and two real agents.

One server, two agents and one browser serve the whole module; the tests run in file order,
as one story: sign in with the keyboard, watch a deployment go live to success, read a failed
one's error and log tail (and follow its rollback link both ways), stop one whose hook waits,
and redeploy the first revision. Hooks wait on files instead of sleeping (``hold``/``release``
in each host's proof directory), so every step waits for an event. Screenshots of the main
pages go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opendeploy.testing.agents import RunningAgent, running_agents
from opendeploy.testing.server import RunningServer, running_server
from tests.web.conftest import REPO

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
APP, GROUP, BUCKET = "storefront", "production", "bundles"
TAGS = {"tier": "web"}
SERVER_ARGS = ("--agent-dead-after", "2", "--poll-timeout", "2", "--event-start-timeout", "10")
#: Playwright waits (ms): a deployment of two hosts one at a time takes a few seconds here.
WAIT_MS = 45_000


#: Set to 1 to skip the browser tests on a machine without chromium (never on CI).
SKIP_ENV = "OPENDEPLOY_SKIP_BROWSER"


def _need_chromium() -> None:
    """Fail when chromium or Playwright is missing, saying how to fix it; skip only when
    ``OPENDEPLOY_SKIP_BROWSER=1`` asks for it explicitly (so a CI without chromium fails)."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"Debian's chromium is not installed ({CHROMIUM}): apt-get install -y chromium"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "Playwright for Python is not installed: pip install -e '.[dev]'"
    if problem is None:
        return
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{problem} ({SKIP_ENV}=1)")
    pytest.fail(f"{problem}; or set {SKIP_ENV}=1 to skip the browser tests on this machine")


# -- the bundle ----------------------------------------------------------------------------------


def _bundle(version: str, www: Path, *, fail_validate: bool = False) -> bytes:
    """Hooks that print where they run; AfterInstall waits while ``$PROOF_DIR/hold`` exists
    until ``$PROOF_DIR/release`` appears, printing (and removing) ``$PROOF_DIR/say`` whenever
    it appears meanwhile; ValidateService fails when ``fail_validate``."""
    scripts = {
        "BeforeInstall": f'echo "BeforeInstall of {version} on $(basename "$PROOF_DIR")"\n',
        "AfterInstall": (
            f'echo "AfterInstall of {version}: installed $(cat {www}/version.txt)"\n'
            'if [ -e "$PROOF_DIR/hold" ]; then echo "holding for release"; '
            'touch "$PROOF_DIR/holding"; '
            'while [ ! -e "$PROOF_DIR/release" ]; do '
            'if [ -e "$PROOF_DIR/say" ]; then cat "$PROOF_DIR/say"; rm -f "$PROOF_DIR/say"; fi; '
            "sleep 0.05; done; "
            'rm -f "$PROOF_DIR/holding"; echo released; fi\n'
        ),
        "ApplicationStart": f'echo "ApplicationStart of {version}"\n',
        "ValidateService": (
            'echo "checking health"; echo "health check failed: HTTP 503" >&2; exit 3\n'
            if fail_validate
            else 'echo "healthy"\n'
        ),
    }
    hooks = "".join(
        f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 120\n" for event in scripts
    )
    appspec = (
        "version: 0.0\nos: linux\nfiles:\n"
        f"  - source: version.txt\n    destination: {www}\n"
        "file_exists_behavior: OVERWRITE\nhooks:\n" + hooks
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("appspec.yml", appspec)
        archive.writestr("version.txt", f"{version}\n")
        for event, body in scripts.items():
            info = zipfile.ZipInfo(f"scripts/{event}.sh")
            info.external_attr = 0o755 << 16
            archive.writestr(info, "#!/bin/sh\nset -e\n" + body)
    return buffer.getvalue()


@dataclass
class Stage:
    server: RunningServer
    agents: list[RunningAgent]
    api: Any
    page: Any
    www: Path
    deployments: dict[str, str]

    def proof(self, index: int) -> Path:
        return self.agents[index].directory / "proof"

    def upload(self, version: str, *, fail_validate: bool = False) -> dict[str, Any]:
        key = f"{APP}/{version}.zip"
        s3 = self.server.client("s3")
        s3.put_object(
            Bucket=BUCKET, Key=key, Body=_bundle(version, self.www, fail_validate=fail_validate)
        )
        return {
            "revisionType": "S3",
            "s3Location": {"bucket": BUCKET, "key": key, "bundleType": "zip"},
        }

    def deploy(self, revision: dict[str, Any]) -> str:
        deployment_id: str = self.api.create_deployment(
            applicationName=APP,
            deploymentGroupName=GROUP,
            revision=revision,
            fileExistsBehavior="OVERWRITE",
        )["deploymentId"]
        return deployment_id

    def finished(self, deployment_id: str) -> dict[str, Any]:
        self.api.get_waiter("deployment_successful")  # the model loads; status read below
        import time

        deadline = time.monotonic() + WAIT_MS / 1000
        while True:
            info: dict[str, Any] = self.api.get_deployment(deploymentId=deployment_id)[
                "deploymentInfo"
            ]
            if info["status"] in ("Succeeded", "Failed", "Stopped"):
                return info
            assert time.monotonic() < deadline, f"{deployment_id} did not finish: {info}"
            time.sleep(0.2)  # the API offers no push; poll the server's state

    def say(self, index: int, text: str) -> None:
        """Make host ``index``'s held AfterInstall print ``text`` (renamed into place whole)."""
        draft = self.proof(index) / "say.draft"
        draft.write_text(f"{text}\n")
        draft.rename(self.proof(index) / "say")

    def shot(self, name: str) -> None:
        """Save a screenshot of the page, after checking that it fits the laptop-sized
        viewport's width (1366 px): nothing scrolls sideways."""
        overflow = self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: {overflow} px wider than the {self.page.url} viewport"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    base = tmp_path_factory.mktemp("browser")
    with ExitStack() as stack:
        server = stack.enter_context(running_server(base / "server", extra_args=SERVER_ARGS))
        server.client("s3").create_bucket(Bucket=BUCKET)

        def env(name: str, directory: Path) -> dict[str, str]:
            (directory / "proof").mkdir(parents=True, exist_ok=True)
            return {"PROOF_DIR": str(directory / "proof")}

        agents = stack.enter_context(
            running_agents(server, base / "hosts", 2, tags=TAGS, agent_env=env)
        )
        api = server.client()
        api.create_application(applicationName=APP)
        api.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            deploymentConfigName="CodeDeployDefault.OneAtATime",
            onPremisesInstanceTagFilters=[
                {"Key": k, "Value": v, "Type": "KEY_AND_VALUE"} for k, v in TAGS.items()
            ],
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
        playwright = stack.enter_context(sync_playwright())
        profile = base / "chromium-profile"
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1366, "height": 768},
            base_url=server.endpoint,
        )
        stack.callback(context.close)
        context.set_default_timeout(WAIT_MS)
        _expect().set_options(timeout=WAIT_MS)
        page = context.pages[0] if context.pages else context.new_page()
        yield Stage(server, agents, api, page, base / "www", {})
        shutil.rmtree(profile, ignore_errors=True)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


# -- the story -----------------------------------------------------------------------------------


def test_sign_in_with_the_keyboard(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    page.goto("/ui/")
    expect(page).to_have_url(f"{stage.server.endpoint}/ui/login?next=%2Fui%2F")
    expect(page.get_by_label("Access key ID")).to_be_focused()
    page.keyboard.type(stage.server.access_key_id)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Secret access key")).to_be_focused()
    page.keyboard.type(stage.server.secret_access_key)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    stage.shot("login")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stage.server.endpoint}/ui/")
    expect(page.get_by_role("heading", name="Applications", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=GROUP)).to_be_visible()


def test_watch_a_deployment_progress_live_to_success(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    hold = stage.proof(0) / "hold"
    hold.touch()
    deployment_id = stage.deploy(stage.upload("v1"))
    stage.deployments["v1"] = deployment_id
    page.goto(f"/ui/deployments/{deployment_id}")
    page.evaluate("window.__sameDocument = true")
    status = page.locator("#deployment-status")
    # host-1's AfterInstall holds: the open page shows it in progress, with its output.
    expect(status).to_contain_text("InProgress")
    expect(page.locator("#region-output")).to_contain_text("AfterInstall (InProgress)")
    expect(page.locator("#instance-host-1")).to_contain_text("InProgress")
    expect(page.locator("#output-instance")).to_have_text("host-1")
    # A line the hook prints only now, after the page was loaded, while the hook still runs:
    # it can reach the page only through the live stream.
    line = f"streamed while held {uuid.uuid4().hex[:8]}"
    stage.say(0, line)
    expect(page.locator("#region-output")).to_contain_text(line)
    expect(status).to_contain_text("InProgress")
    expect(page.locator("#instance-host-1")).to_contain_text("InProgress")
    assert (stage.proof(0) / "holding").exists(), "the hook is no longer running"
    stage.shot("deployment-in-progress")
    (stage.proof(0) / "release").touch()
    expect(status).to_contain_text("Succeeded")
    expect(page.locator("#count-Succeeded")).to_have_text("2")
    expect(page.locator("#instance-host-2")).to_contain_text("Succeeded")
    # The live box keeps the output of the instance that ran last once the deployment ends.
    expect(page.locator("#output-instance")).to_have_text("host-2")
    expect(page.locator("#region-output")).to_contain_text("ValidateService (Succeeded)")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    hold.unlink()
    (stage.proof(0) / "release").unlink()
    stage.shot("deployment-succeeded")
    # Opened afresh, the finished deployment shows that output too (not an empty box).
    page.goto(f"/ui/deployments/{deployment_id}")
    expect(page.locator("#output-instance")).to_have_text("host-2")
    expect(page.locator("#region-output")).to_contain_text("ApplicationStart of v1")
    expect(page.locator("#region-output")).to_contain_text("healthy")


def test_hook_output_streams_to_the_page(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    page.goto(f"/ui/deployments/{stage.deployments['v1']}?instance=host-1")
    expect(page.locator("#region-output")).to_contain_text("holding for release", timeout=3000)
    expect(page.locator("#region-output")).to_contain_text("AfterInstall of v1: installed v1")


def test_open_a_failed_deployment_and_read_its_error_and_log_tail(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    deployment_id = stage.deploy(stage.upload("v2-broken", fail_validate=True))
    info = stage.finished(deployment_id)
    assert info["status"] == "Failed"
    rollback_id = info["rollbackInfo"]["rollbackDeploymentId"]
    page.goto(f"/ui/deployments/{deployment_id}")
    expect(page.locator("#deployment-status")).to_contain_text("Failed")
    failure = page.get_by_role("region", name="What failed")
    expect(failure).to_contain_text("host-1")
    expect(failure).to_contain_text("ValidateService")
    expect(failure).to_contain_text("scripts/ValidateService.sh")
    expect(failure).to_contain_text("ScriptFailed")
    expect(failure.locator(".log-tail")).to_contain_text("health check failed: HTTP 503")
    expect(page.locator(".error-info")).to_be_visible()
    stage.shot("deployment-failed")
    # Rollback links both ways.
    page.locator("#rollback-link").click()
    expect(page).to_have_url(f"{stage.server.endpoint}/ui/deployments/{rollback_id}")
    expect(page.locator("#rollback-of-link")).to_have_text(deployment_id)
    expect(page.locator("#deployment-status")).to_contain_text("Succeeded")


def test_stop_a_deployment_whose_hook_waits(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    proof = stage.proof(0)
    (proof / "hold").touch()
    deployment_id = stage.deploy(stage.upload("v3"))
    page.goto(f"/ui/deployments/{deployment_id}")
    expect(page.locator("#region-output")).to_contain_text("AfterInstall (InProgress)")
    # All by keyboard: Enter on Stop opens the dialog with Cancel focused; Escape cancels and
    # gives the focus back to Stop; Enter again, Tab to Confirm, Enter.
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Stop deployment {deployment_id}?")
    expect(page.locator("#confirm-cancel")).to_be_focused()
    stage.shot("stop-confirmation")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(stop).to_be_focused()
    assert stage.api.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"] == (
        "InProgress"
    ), "Escape must not stop the deployment"
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-cancel")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#flash")).to_contain_text("Stop requested")
    expect(page.locator("#deployment-status")).to_contain_text("Stopped")
    expect(page.locator(".error-info")).to_contain_text("MANUAL_STOP")
    # The script goes on (as in CodeDeploy), and the page says so.
    expect(page.locator("#busy-hosts")).to_contain_text(
        "host-1: AfterInstall was still running when this deployment ended"
    )
    stage.shot("deployment-stopped")
    # The next deployment waits for that script on host-1, and its page says what for.
    (proof / "hold").unlink()
    waiting = stage.deploy(stage.upload("v1"))
    page.goto(f"/ui/deployments/{waiting}")
    expect(page.locator("#busy-hosts")).to_contain_text(
        f"host-1 is busy: AfterInstall of {deployment_id} (Stopped) still runs there"
    )
    # Let the held hook end so the agent is free for the next deployment.
    (proof / "release").touch()
    expect(page.locator("#deployment-status")).to_contain_text("Succeeded")
    expect(page.locator("#busy-hosts")).to_have_count(0)


def test_redeploy_an_old_revision(stage: Stage) -> None:
    page, expect = stage.page, _expect()
    proof = stage.proof(0)
    first = stage.deployments["v1"]
    page.goto(f"/ui/deployments/{first}")
    page.get_by_role("button", name="Redeploy this revision").click()
    expect(page.locator("dialog#confirm")).to_contain_text(f"{APP}/v1.zip")
    page.locator("#confirm-ok").click()
    flash = page.locator("#flash")
    expect(flash).to_contain_text(f"created from {first}")
    new_id = page.url.rsplit("/", 1)[1]
    assert new_id != first
    expect(page.locator("#deployment-status")).to_contain_text("Succeeded")
    info = stage.api.get_deployment(deploymentId=new_id)["deploymentInfo"]
    assert info["revision"]["s3Location"]["key"] == f"{APP}/v1.zip"
    assert (stage.www / "version.txt").read_text() == "v1\n"
    (proof / "release").unlink(missing_ok=True)
    stage.shot("deployment-redeployed")
    page.goto(f"/ui/applications/{APP}/groups/{GROUP}")
    expect(page.get_by_role("link", name=new_id)).to_be_visible()
    stage.shot("group")
    page.goto(f"/ui/applications/{APP}")
    expect(page.get_by_role("link", name=GROUP)).to_be_visible()
    stage.shot("application")
    page.goto("/ui/")
    stage.shot("home")
    page.goto("/ui/instances")
    expect(page.get_by_role("row", name="host-1")).to_contain_text(new_id)
    expect(page.get_by_role("row", name="host-2")).to_contain_text("tier=web")
    stage.shot("instances")
