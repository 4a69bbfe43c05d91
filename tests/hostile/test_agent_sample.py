"""A sample of the hostile corpus through a real server and a real agent process.

The same cases as ``test_local_corpus.py``, but as S3 revisions in the server's own bundle store,
deployed by ``create_deployment`` to one host whose ``opendeploy agent`` runs them: the deployment
must fail, the failed lifecycle event's diagnostics must carry the expected message (no Python
exception text, no UnknownError with one), and the canary beside the host's destination must be
exactly as before. One server and one agent serve every case.

And a full disk on a real agent (its deployment root on a 1 MiB tmpfs; skipped where mounting
is not allowed): the failure names the path.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opendeploy.testing.agents import RunningAgent, running_agents
from opendeploy.testing.server import RunningServer, running_server
from tests.e2e.polling import finished_deployment
from tests.hostile.bundles import Places, write_bundle
from tests.hostile.corpus import CASES, Case
from tests.hostile.test_local_corpus import PYTHON_TEXT, make_canary, snapshot

pytestmark = pytest.mark.e2e

APP, GROUP, BUCKET = "hostile", "hosts", "bundles"
SAMPLE = (
    "absolute-file-tar",
    "dotdot-file-zip",
    "symlink-out-tgz",
    "bad-crc-tgz",
    "compression-bomb-zip",
    "nul-in-value-zip",
    "deep-flow-list-tgz",
    "bigint-timeout-zip",
    "oversized-comment-tar",
    "destination-cleanup-file-zip",
    "hook-location-dotdot-zip",
    "hook-location-abs-dotdot-tgz",
)
_BY_ID = {case.id: case for case in CASES}
#: The corpus tries appspecs in directory, zip and tgz bundles; the sample adds a tar.
_BY_ID["oversized-comment-tar"] = dataclasses.replace(_BY_ID["oversized-comment-zip"], kind="tar")
SAMPLE_CASES = [_BY_ID[name] for name in SAMPLE]


@dataclass
class Host:
    server: RunningServer
    agent: RunningAgent
    group_id: str
    s3: Any


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("hostile-agent")
    with ExitStack() as stack:
        server = stack.enter_context(running_server(base / "server"))
        s3 = server.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        (agent,) = stack.enter_context(
            running_agents(
                server,
                base / "hosts",
                1,
                tags={"role": "hostile"},
                extra_config={"hook_kill_grace_seconds": 0.2},
            )
        )
        client = server.client()
        client.create_application(applicationName=APP)
        group_id = client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName=GROUP,
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            onPremisesInstanceTagFilters=[
                {"Key": "role", "Value": "hostile", "Type": "KEY_AND_VALUE"}
            ],
        )["deploymentGroupId"]
        yield Host(server, agent, group_id, s3)


def _failed_event(client: Any, deployment_id: str, instance: str) -> dict[str, Any]:
    target = client.get_deployment_target(deploymentId=deployment_id, targetId=instance)
    events = target["deploymentTarget"]["instanceTarget"]["lifecycleEvents"]
    failed = [event for event in events if event["status"] == "Failed"]
    assert len(failed) == 1, events
    return dict(failed[0])


def test_the_sample_is_taken_from_the_corpus() -> None:
    assert {case.id for case in SAMPLE_CASES} == set(SAMPLE)


@pytest.mark.parametrize("case", SAMPLE_CASES, ids=[case.id for case in SAMPLE_CASES])
def test_hostile_bundle_fails_clearly_on_a_real_agent(host: Host, case: Case) -> None:
    # The archive is unpacked four levels under the agent's deployment root; the corpus's
    # "{up}" climbs back to the directory holding dest and canary: the agent's own.
    places = Places(host.agent.directory, host.group_id, root_name="deployment-root")
    if not places.canary.exists():
        make_canary(places)
    before = snapshot(places.canary)
    bundle = write_bundle(
        case.kind,
        case.entries,
        host.agent.directory.parent / f"{case.id}.{case.kind}",
        places,
        case.damage,
    )
    key = f"{APP}/{case.id}.{case.kind}"
    host.s3.put_object(Bucket=BUCKET, Key=key, Body=bundle.read_bytes())
    client = host.server.client()
    deployment_id = client.create_deployment(
        applicationName=APP,
        deploymentGroupName=GROUP,
        revision={
            "revisionType": "S3",
            "s3Location": {"bucket": BUCKET, "key": key, "bundleType": case.kind},
        },
    )["deploymentId"]

    info = finished_deployment(client, deployment_id, timeout=120)

    assert info["status"] == "Failed", info
    event = _failed_event(client, deployment_id, host.agent.name)
    diagnostics = event["diagnostics"]
    message = f"{diagnostics['errorCode']}: {diagnostics['message']}"
    assert re.search(places.fill(case.expect), message, re.DOTALL), message
    leaked = PYTHON_TEXT.search(message)
    assert leaked is None, f"Python exception text {leaked.group()!r} in: {message}"
    assert snapshot(places.canary) == before
    assert not (places.canary / "ran").exists()


@contextmanager
def _small_file_system(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_on_a_real_agent_names_the_path(host: Host, tmp_path: Path) -> None:
    # A second host whose deployment root is a 1 MiB file system, and a 3 MiB bundle:
    # DownloadBundle fails, and its message says where the disk filled up.
    root = tmp_path / "small-root"
    with ExitStack() as stack:
        stack.enter_context(_small_file_system(root, "1m"))
        (agent,) = stack.enter_context(
            running_agents(
                host.server, tmp_path / "hosts", 1, name_prefix="full", tags={"role": "full"},
                extra_config={"root_dir": str(root)},
            )
        )  # fmt: skip
        client = host.server.client()
        client.create_deployment_group(
            applicationName=APP,
            deploymentGroupName="full",
            serviceRoleArn="arn:aws:iam::000000000000:role/opendeploy",
            onPremisesInstanceTagFilters=[
                {"Key": "role", "Value": "full", "Type": "KEY_AND_VALUE"}
            ],
        )
        bundle = write_bundle(
            "zip",
            (("file", "appspec.yml", b"version: 0.0\nos: linux\n"),
             ("file", "big.bin", os.urandom(3 << 20))),
            tmp_path / "big.zip",
            Places(tmp_path, "unused"),
        )  # fmt: skip
        host.s3.put_object(Bucket=BUCKET, Key="big.zip", Body=bundle.read_bytes())
        deployment_id = client.create_deployment(
            applicationName=APP,
            deploymentGroupName="full",
            revision={
                "revisionType": "S3",
                "s3Location": {"bucket": BUCKET, "key": "big.zip", "bundleType": "zip"},
            },
        )["deploymentId"]
        info = finished_deployment(client, deployment_id, timeout=120)
        assert info["status"] == "Failed", info
        event = _failed_event(client, deployment_id, agent.name)
        message = event["diagnostics"]["message"]
        assert event["lifecycleEventName"] == "DownloadBundle"
        assert re.fullmatch(
            rf"cannot download the bundle to {re.escape(str(root))}/\S+/{deployment_id}/"
            r"bundle\.tar: No space left on device",
            message,
        ), message
