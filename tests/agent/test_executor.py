"""execute_event: one lifecycle event at a time, state on disk only, real files and processes."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import opendeploy.agent.executor as executor_module
from opendeploy.agent.config import AgentConfig
from opendeploy.agent.executor import (
    EventStatus,
    deployment_root,
    execute_event,
    is_noop,
    source_settings,
)
from opendeploy.agent.spec import DeploymentSpec, parse_deployment_spec
from opendeploy.domain.status import LifecycleErrorCode
from tests._users import throwaway_user
from tests.revisions.servers import CREDENTIALS, git_daemon, moto_server, s3

DG = "dg-1"


def make_bundle(path: Path, target: Path, hooks: Mapping[str, str], *, tag: str = "v1") -> Path:
    """A bundle whose hooks run the given shell bodies; ``$PROOF`` names the proof file."""
    (path / "content").mkdir(parents=True)
    (path / "content" / f"{tag}.txt").write_text(tag)
    (path / "scripts").mkdir()
    lines = [
        "version: 0.0",
        "os: linux",
        "files:",
        "  - source: content",
        f"    destination: {target}",
        "hooks:",
    ]
    for event, body in hooks.items():
        script = path / "scripts" / f"{event}.sh"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
        lines += [f"  {event}:", f"    - location: scripts/{event}.sh", "      timeout: 10"]
    (path / "appspec.yml").write_text("\n".join(lines) + "\n")
    return path


def record(tag: str) -> str:
    return (
        f'echo "$LIFECYCLE_EVENT {tag} $DEPLOYMENT_ID"; echo "$LIFECYCLE_EVENT {tag}" >> "$PROOF"'
    )


def local_spec(
    location: Path, deployment_id: str, *, bundle_type: str = "directory", **extra: Any
) -> DeploymentSpec:
    kind = "Local Directory" if bundle_type == "directory" else "Local File"
    return parse_deployment_spec(
        {
            "DeploymentId": deployment_id,
            "DeploymentGroupId": DG,
            "DeploymentGroupName": "group",
            "ApplicationName": "app",
            "Revision": {
                "RevisionType": kind,
                "LocalRevision": {"Location": str(location), "BundleType": bundle_type},
            },
            **extra,
        }
    )


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgentConfig:
    monkeypatch.setenv("PROOF", str(tmp_path / "proof.txt"))
    return AgentConfig(root_dir=tmp_path / "root", log_dir=tmp_path / "log")


def proof(tmp_path: Path) -> list[str]:
    path = tmp_path / "proof.txt"
    return path.read_text().splitlines() if path.exists() else []


def deploy(spec: DeploymentSpec, config: AgentConfig, *events: str) -> None:
    for event in events:
        result = execute_event(spec, event, config=config)
        assert not result.failed, result


def test_download_bundle_unpacks_records_and_keeps_no_bundle_copy(
    tmp_path: Path, config: AgentConfig
) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {})
    source = tmp_path / "b.zip"
    with zipfile.ZipFile(source, "w") as zf:
        for path in bundle.rglob("*"):
            zf.write(path, path.relative_to(bundle).as_posix())
    spec = local_spec(source, "d-1", bundle_type="zip")
    result = execute_event(spec, "DownloadBundle", config=config)
    assert result.status is EventStatus.SUCCEEDED
    root = deployment_root(config)
    deployment = root.deployment(DG, "d-1")
    assert (deployment.archive / "appspec.yml").is_file()
    assert not deployment.bundle.exists()
    assert source.is_file()
    assert root.most_recent(DG) == deployment.path
    assert root.last_successful(DG) is None
    assert result.diagnostics() == {
        "error_code": 0,
        "script_name": "",
        "message": "Succeeded: ",
        "log": "",
    }


def test_each_event_can_run_in_a_fresh_process(tmp_path: Path, config: AgentConfig) -> None:
    target = tmp_path / "t"
    bundle = make_bundle(tmp_path / "b", target, {"AfterInstall": record("v1")})
    spec = local_spec(bundle, "d-1")
    deploy(spec, config, "DownloadBundle")
    program = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from opendeploy.agent.config import AgentConfig\n"
        "from opendeploy.agent.executor import execute_event\n"
        "from opendeploy.agent.spec import parse_deployment_spec\n"
        "spec = parse_deployment_spec(sys.argv[1])\n"
        "config = AgentConfig(root_dir=Path(sys.argv[2]))\n"
        "for event in sys.argv[3:]:\n"
        "    print(json.dumps(execute_event(spec, event, config=config).diagnostics()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program, json.dumps(spec.to_payload()), str(config.root_dir)]
        + ["Install", "AfterInstall"],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    ).stdout
    assert [json.loads(line)["error_code"] for line in out.splitlines()] == [0, 0]
    assert (target / "v1.txt").read_text() == "v1"
    assert proof(tmp_path) == ["AfterInstall v1"]
    root = deployment_root(config)
    assert root.last_successful(DG) == root.deployment(DG, "d-1").path
    assert root.cleanup_file(DG).read_text().splitlines() == [str(target), str(target / "v1.txt")]


def test_first_deployment_has_no_previous_revision_so_stop_is_a_noop(
    tmp_path: Path, config: AgentConfig
) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {"ApplicationStop": record("v1")})
    spec = local_spec(bundle, "d-1")
    assert is_noop(spec, "ApplicationStop", config)
    result = execute_event(spec, "ApplicationStop", config=config)
    assert result.status is EventStatus.SKIPPED
    assert result.diagnostics()["message"] == "Succeeded: CompletedNoopCommand"
    assert proof(tmp_path) == []


def test_event_without_scripts_is_a_noop(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {"AfterInstall": record("v1")})
    spec = local_spec(bundle, "d-1")
    deploy(spec, config, "DownloadBundle")
    assert is_noop(spec, "ValidateService", config)
    assert not is_noop(spec, "AfterInstall", config)
    assert not is_noop(spec, "Install", config)
    assert execute_event(spec, "ValidateService", config=config).status is EventStatus.SKIPPED
    assert not deployment_root(config).deployment(DG, "d-1").scripts_log.exists()


def test_previous_revision_scripts_run_with_the_current_deployment_env_and_log(
    tmp_path: Path, config: AgentConfig
) -> None:
    hooks = {"ApplicationStop": "echo stop $DEPLOYMENT_ID; " + record("v1")}
    first = local_spec(make_bundle(tmp_path / "v1", tmp_path / "t", hooks), "d-1")
    deploy(first, config, "DownloadBundle", "Install")
    second_bundle = make_bundle(tmp_path / "v2", tmp_path / "t", {}, tag="v2")
    second = local_spec(second_bundle, "d-2")
    lines: list[tuple[str, str]] = []
    result = execute_event(
        second, "ApplicationStop", config=config, on_output=lambda s, t: lines.append((s, t))
    )
    assert result.status is EventStatus.SUCCEEDED
    assert result.revision_dir == deployment_root(config).deployment(DG, "d-1").path
    assert proof(tmp_path) == ["ApplicationStop v1"]
    assert ("stdout", "stop d-2") in lines
    log = deployment_root(config).deployment(DG, "d-2").scripts_log.read_text()
    assert "LifecycleEvent - ApplicationStop" in log
    assert "[stdout]stop d-2" in log


def test_failing_hook_reports_the_official_diagnostics(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {"AfterInstall": "echo oops; exit 4"})
    spec = local_spec(bundle, "d-1")
    deploy(spec, config, "DownloadBundle", "Install")
    result = execute_event(spec, "AfterInstall", config=config)
    assert result.failed
    assert result.error_code is LifecycleErrorCode.SCRIPT_FAILED
    diagnostics = result.diagnostics()
    assert diagnostics["error_code"] == 4
    assert diagnostics["script_name"] == "scripts/AfterInstall.sh"
    assert diagnostics["message"].endswith("failed with exit code 4")
    assert "[stdout]oops" in diagnostics["log"]


def test_broken_stop_of_the_last_revision_names_the_way_out_and_can_be_ignored(
    tmp_path: Path, config: AgentConfig
) -> None:
    first = local_spec(
        make_bundle(tmp_path / "v1", tmp_path / "t", {"ApplicationStop": "exit 1"}), "d-1"
    )
    deploy(first, config, "DownloadBundle", "Install")
    second = local_spec(make_bundle(tmp_path / "v2", tmp_path / "t", {}, tag="v2"), "d-2")
    result = execute_event(second, "ApplicationStop", config=config)
    assert result.failed
    root = deployment_root(config)
    assert "ignoreApplicationStopFailures" in result.message
    assert "--ignore-application-stop-failures" in result.message
    assert str(root.last_successful_file(DG)) in result.message
    ignored = execute_event(
        second, "ApplicationStop", config=config, ignore_application_stop_failures=True
    )
    assert ignored.status is EventStatus.SUCCEEDED
    assert ignored.ignored_failure
    assert ignored.error_code is LifecycleErrorCode.SCRIPT_FAILED


def test_ignore_flag_does_not_cover_other_events(tmp_path: Path, config: AgentConfig) -> None:
    spec = local_spec(make_bundle(tmp_path / "b", tmp_path / "t", {"AfterInstall": "exit 1"}), "d")
    deploy(spec, config, "DownloadBundle", "Install")
    result = execute_event(
        spec, "AfterInstall", config=config, ignore_application_stop_failures=True
    )
    assert result.failed


def test_blue_green_rollback_takes_block_traffic_from_the_most_recent_revision(
    tmp_path: Path, config: AgentConfig
) -> None:
    hooks = {e: record(t) for e, t in (("BeforeBlockTraffic", "x"), ("BeforeAllowTraffic", "x"))}
    good = local_spec(make_bundle(tmp_path / "good", tmp_path / "t", hooks_for("good")), "d-1")
    deploy(good, config, "DownloadBundle", "Install")
    bad = local_spec(make_bundle(tmp_path / "bad", tmp_path / "t2", hooks_for("bad")), "d-2")
    deploy(bad, config, "DownloadBundle")  # downloaded, never installed: most recent only
    rollback = local_spec(
        make_bundle(tmp_path / "rb", tmp_path / "t3", hooks, tag="rb"),
        "d-3",
        DeploymentType="BLUE_GREEN",
        DeploymentCreator="codeDeployRollback",
    )
    deploy(rollback, config, "BeforeBlockTraffic", "BeforeAllowTraffic")
    assert proof(tmp_path) == ["BeforeBlockTraffic bad", "BeforeAllowTraffic good"]


def hooks_for(tag: str) -> dict[str, str]:
    return {"BeforeBlockTraffic": record(tag), "BeforeAllowTraffic": record(tag)}


def test_all_possible_lifecycle_events_are_checked(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {"Custom": record("v1")})
    unknown = local_spec(bundle, "d-1", AllPossibleLifecycleEvents=["ApplicationStart"])
    deploy(unknown, config, "DownloadBundle")
    result = execute_event(unknown, "Install", config=config)
    assert result.failed
    assert 'appspec.yml file contains unknown lifecycle events: ["Custom"]' in result.message
    missing = local_spec(bundle, "d-2", AllPossibleLifecycleEvents=["Custom", "Other"])
    deploy(missing, config, "DownloadBundle")
    result = execute_event(missing, "Install", config=config)
    assert result.message == (
        "You specified a lifecycle event which is not a default one and doesn't exist in your "
        "appspec.yml file: Other"
    )


def test_hook_event_timeout_cap_is_configurable(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {})
    text = (bundle / "appspec.yml").read_text()
    (bundle / "appspec.yml").write_text(
        text + "  ApplicationStart:\n    - location: s.sh\n      timeout: 4000\n"
    )
    spec = local_spec(bundle, "d-1")
    deploy(spec, config, "DownloadBundle")
    assert execute_event(spec, "Install", config=config).failed
    uncapped = AgentConfig(root_dir=config.root_dir, hook_event_timeout_cap=None)
    assert not execute_event(spec, "Install", config=uncapped).failed


def _zip_dir(src: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for path in sorted(src.rglob("*")):
            info = zipfile.ZipInfo.from_file(path, path.relative_to(src).as_posix())
            if path.is_file():
                zf.writestr(info, path.read_bytes())
    return dest


def _remote_spec(revision: dict[str, Any], deployment_id: str = "d-1") -> DeploymentSpec:
    return parse_deployment_spec(
        {
            "DeploymentId": deployment_id,
            "DeploymentGroupId": DG,
            "DeploymentGroupName": "g",
            "ApplicationName": "a",
            "Revision": revision,
        }
    )


def test_s3_revision_is_downloaded_checked_and_signed_with_the_instance_key(
    tmp_path: Path, config: AgentConfig
) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "target", {"AfterInstall": 'env >> "$PROOF"'})
    archive = _zip_dir(bundle, tmp_path / "bundle.zip")
    onprem = tmp_path / "codedeploy.onpremises.yml"
    onprem.write_text(
        "region: us-east-1\n"
        "iam_user_arn: arn:aws:iam::000000000000:user/host-1\n"
        f"aws_access_key_id: {CREDENTIALS.access_key_id}\n"
        f"aws_secret_access_key: {CREDENTIALS.secret_access_key}\n"
    )
    with moto_server() as endpoint:
        client = s3(endpoint)
        client.create_bucket(Bucket="bundles")
        etag = client.put_object(Bucket="bundles", Key="app.zip", Body=archive.read_bytes())["ETag"]
        cfg = dataclasses.replace(
            config, s3_endpoint_override=endpoint, on_premises_config_file=onprem
        )
        assert source_settings(cfg).s3_credentials == CREDENTIALS
        s3_revision = {"Bucket": "bundles", "Key": "app.zip", "BundleType": "zip"}
        spec = _remote_spec(
            {"RevisionType": "S3", "S3Revision": {**s3_revision, "ETag": etag.strip('"')}}
        )
        deploy(spec, cfg, "DownloadBundle", "Install", "AfterInstall")
        assert (tmp_path / "target" / "v1.txt").read_text() == "v1"
        assert "BUNDLE_BUCKET=bundles" in proof(tmp_path)
        assert not (cfg.root_dir / DG / "d-1" / "bundle.tar").exists()

        wrong = _remote_spec(
            {"RevisionType": "S3", "S3Revision": {**s3_revision, "ETag": "0" * 32}}, "d-2"
        )
        result = execute_event(wrong, "DownloadBundle", config=cfg)
        assert result.failed
        assert "Expected deployment artifact bundle etag" in result.message


def test_github_revision_is_fetched_from_the_configured_git_server(
    tmp_path: Path, config: AgentConfig
) -> None:
    repo = make_bundle(tmp_path / "repos" / "acme" / "web", tmp_path / "target", {})
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    commit = subprocess.run(
        [*git[:3], "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    with git_daemon(tmp_path / "repos") as base_url:
        cfg = dataclasses.replace(config, git_base_url=base_url)
        spec = _remote_spec(
            {
                "RevisionType": "GitHub",
                "GitHubRevision": {
                    "Account": "acme",
                    "Repository": "web",
                    "CommitId": commit,
                    "BundleType": "tar",
                },
            }
        )
        deploy(spec, cfg, "DownloadBundle", "Install")
    assert (tmp_path / "target" / "v1.txt").read_text() == "v1"


def test_missing_previous_revision_dir_names_the_way_out(
    tmp_path: Path, config: AgentConfig
) -> None:
    first = local_spec(
        make_bundle(tmp_path / "v1", tmp_path / "t", {"ApplicationStop": record("v1")}), "d-1"
    )
    deploy(first, config, "DownloadBundle", "Install")
    root = deployment_root(config)
    shutil.rmtree(root.deployment(DG, "d-1").path)  # an operator "cleaned up" by hand
    second = local_spec(make_bundle(tmp_path / "v2", tmp_path / "t", {}, tag="v2"), "d-2")
    result = execute_event(second, "ApplicationStop", config=config)
    assert result.failed
    assert "did not find an AppSpec file" in result.message
    assert str(root.last_successful_file(DG)) in result.message
    ignored = execute_event(
        second, "ApplicationStop", config=config, ignore_application_stop_failures=True
    )
    assert ignored.ignored_failure


# -- os: windows -----------------------------------------------------------------------------------


def test_a_windows_appspec_is_refused_by_download_bundle(
    tmp_path: Path, config: AgentConfig
) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {"BeforeInstall": record("v1")})
    text = (bundle / "appspec.yml").read_text()
    (bundle / "appspec.yml").write_text(text.replace("os: linux", "os: windows"))
    spec = local_spec(_zip_dir(bundle, tmp_path / "b.zip"), "d-1", bundle_type="zip")
    result = execute_event(spec, "DownloadBundle", config=config)
    assert result.failed
    assert result.error_code is LifecycleErrorCode.UNKNOWN_ERROR
    assert result.message.startswith('os: "windows": this host runs Linux, and an appspec with')
    assert deployment_root(config).most_recent(DG) is None
    # Install refuses it too (a server may send Install on its own).
    assert execute_event(spec, "Install", config=config).message.startswith('os: "windows"')
    assert not (tmp_path / "t").exists()


# -- configuration settings and their effect -------------------------------------------------------


def _limit_result(tmp_path: Path, config: AgentConfig, source: Path, kind: str) -> Any:
    spec = local_spec(source, f"d-{kind}-{len(list(tmp_path.iterdir()))}", bundle_type=kind)
    return execute_event(spec, "DownloadBundle", config=config)


def test_bundle_max_total_bytes_caps_the_unpacked_size(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {})
    (bundle / "content" / "big.bin").write_bytes(b"x" * 20_000)
    assert not _limit_result(tmp_path, config, bundle, "directory").failed
    capped = dataclasses.replace(config, bundle_max_total_bytes=10_000)
    result = _limit_result(tmp_path, capped, bundle, "directory")
    assert result.failed
    assert "over the limit of 10000 bytes (bundle_max_total_bytes in the agent configuration)" in (
        result.message
    )


def test_bundle_max_entries_caps_the_entry_count(tmp_path: Path, config: AgentConfig) -> None:
    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {})
    for index in range(10):
        (bundle / "content" / f"f{index}").write_text("x")
    source = _zip_dir(bundle, tmp_path / "b.zip")
    assert not _limit_result(tmp_path, config, source, "zip").failed
    capped = dataclasses.replace(config, bundle_max_entries=5)
    result = _limit_result(tmp_path, capped, source, "zip")
    assert result.failed
    assert "over the limit of 5 entries (bundle_max_entries in the agent configuration)" in (
        result.message
    )


def test_bundle_max_compression_ratio_refuses_bombs(tmp_path: Path, config: AgentConfig) -> None:
    import random

    bundle = make_bundle(tmp_path / "b", tmp_path / "t", {})
    # 2 MiB (over the 1 MiB the ratio check starts at) of two letters: deflates ~6:1.
    data = bytes(random.Random(7).choices(b"ab", k=2 * 1024 * 1024))
    (bundle / "content" / "two-letters.txt").write_bytes(data)
    source = tmp_path / "b.zip"
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in bundle.rglob("*"):
            zf.write(path, path.relative_to(bundle).as_posix())
    assert not _limit_result(tmp_path, config, source, "zip").failed  # default 1000
    strict = dataclasses.replace(config, bundle_max_compression_ratio=2)
    result = _limit_result(tmp_path, strict, source, "zip")
    assert result.failed
    assert "a ratio over 2 (bundle_max_compression_ratio in the agent configuration)" in (
        result.message
    )


def _hook_result(
    tmp_path: Path, config: AgentConfig, event: str, body: str, *, timeout: int = 10
) -> Any:
    name = f"b{len(list(tmp_path.iterdir()))}"
    bundle = make_bundle(tmp_path / name, tmp_path / f"t-{name}", {event: body})
    text = (bundle / "appspec.yml").read_text()
    (bundle / "appspec.yml").write_text(text.replace("timeout: 10", f"timeout: {timeout}"))
    spec = local_spec(bundle, f"d-{name}")
    deploy(spec, config, "DownloadBundle", "Install")
    return execute_event(spec, event, config=config)


def test_hook_kill_grace_seconds_is_the_wait_between_term_and_kill(
    tmp_path: Path, config: AgentConfig
) -> None:
    # The script ignores SIGTERM: only the SIGKILL after the grace ends it.
    stubborn = "trap 'echo TERM ignored' TERM\nwhile :; do sleep 0.1; done"
    quick = dataclasses.replace(config, hook_kill_grace_seconds=0)
    result = _hook_result(tmp_path, quick, "ApplicationStart", stubborn, timeout=1)
    assert result.error_code is LifecycleErrorCode.SCRIPT_TIMED_OUT
    assert result.duration < 4.5  # 1 s timeout + no grace, with a wide margin for a busy host
    patient = dataclasses.replace(config, hook_kill_grace_seconds=4)
    result = _hook_result(tmp_path, patient, "ApplicationStart", stubborn, timeout=1)
    assert result.error_code is LifecycleErrorCode.SCRIPT_TIMED_OUT
    assert result.duration >= 5  # cannot end before timeout + grace: TERM is ignored
    assert "[stdout]TERM ignored" in result.log_tail


def test_hook_outputs_left_open_warns_or_fails(
    tmp_path: Path, config: AgentConfig, leftover_pids: Path
) -> None:
    daemon = f'sleep 60 &\necho $! >> "{leftover_pids}"\necho started'
    warned = _hook_result(tmp_path, config, "ApplicationStart", daemon)
    assert warned.status is EventStatus.SUCCEEDED
    log = (deployment_root(config).root / DG).glob("*/logs/scripts.log")
    assert any("still holds its stdout and stderr open" in p.read_text() for p in log)
    failing = dataclasses.replace(config, hook_outputs_left_open="fail")
    failed = _hook_result(tmp_path, failing, "ApplicationStart", daemon)
    assert failed.error_code is LifecycleErrorCode.OUTPUTS_LEFT_OPEN
    assert failed.message == (
        "Script at specified location: scripts/ApplicationStart.sh failed to close STDOUT"
    )


@pytest.fixture
def leftover_pids(tmp_path: Path) -> Iterator[Path]:
    """A file the hooks append the pids of their background processes to; killed at teardown."""
    path = tmp_path / "leftover-pids"
    yield path
    for pid in path.read_text().split() if path.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def test_hook_login_environment_decides_the_runas_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A root_dir every user can enter (pytest's tmp_path is private to root).
    with (
        throwaway_user("odexec") as user,
        tempfile.TemporaryDirectory(prefix="opendeploy-exec-") as shared_dir,
    ):
        shared = Path(shared_dir)
        shared.chmod(0o755)
        monkeypatch.setenv("AGENT_ONLY", "agent")
        config = AgentConfig(root_dir=shared / "root", log_dir=shared / "log")
        bundle = make_bundle(shared / "b", shared / "t", {})
        (bundle / "scripts" / "env.sh").write_text(
            '#!/bin/sh\necho "$USER ${AGENT_ONLY-unset} $SHELL $DEPLOYMENT_ID"\n'
        )
        (bundle / "scripts" / "env.sh").chmod(0o755)
        text = (bundle / "appspec.yml").read_text()
        (bundle / "appspec.yml").write_text(
            text + f"  ApplicationStart:\n    - location: scripts/env.sh\n      runas: {user}\n"
        )
        seen: dict[bool, list[str]] = {}
        for login in (True, False):
            lines: list[str] = []
            spec = local_spec(bundle, f"d-login-{login}")
            settings = dataclasses.replace(config, hook_login_environment=login)
            deploy(spec, settings, "DownloadBundle", "Install")

            def collect(_stream: str, line: str, out: list[str] = lines) -> None:
                out.append(line)

            result = execute_event(spec, "ApplicationStart", config=settings, on_output=collect)
            assert result.status is EventStatus.SUCCEEDED, result
            seen[login] = lines
        assert seen[True] == [f"{user} unset /bin/sh d-login-True"]  # su -: a fresh environment
        assert seen[False] == [f"{user} agent /bin/sh d-login-False"]  # su: the agent's kept


def test_an_appspec_edited_between_events_is_read_afresh(
    tmp_path: Path, config: AgentConfig
) -> None:
    """Parsed appspecs are remembered by their text, so an edit on disk is never missed."""
    target = tmp_path / "t"
    bundle = make_bundle(tmp_path / "b", target, {"AfterInstall": record("v1")})
    spec = local_spec(bundle, "d-1")
    deploy(spec, config, "DownloadBundle", "Install")
    assert not is_noop(spec, "AfterInstall", config)
    assert is_noop(spec, "ValidateService", config)
    archive = deployment_root(config).deployment(DG, "d-1").archive
    appspec = archive / "appspec.yml"
    text = appspec.read_text()
    appspec.write_text(text.replace("AfterInstall:", "ValidateService:"))
    assert is_noop(spec, "AfterInstall", config)
    assert not is_noop(spec, "ValidateService", config)
    deploy(spec, config, "ValidateService")
    assert proof(tmp_path) == ["ValidateService v1"]
    # A broken edit fails each time it is read, not only the first.
    appspec.write_text("version: 0.0\nos: [\n")
    for _ in range(2):
        result = execute_event(spec, "ValidateService", config=config)
        assert result.failed and "invalid YAML" in result.message, result


def test_a_full_disk_during_the_download_names_the_path(
    config: AgentConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FullDisk:
        def fetch(self, dest_file: Path) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(executor_module, "source_for_revision", lambda *a, **k: FullDisk())
    spec = _remote_spec(
        {"RevisionType": "S3", "S3Revision": {"Bucket": "b", "Key": "k", "BundleType": "zip"}}
    )
    result = execute_event(spec, "DownloadBundle", config=config)
    assert result.failed
    bundle = config.root_dir / DG / "d-1" / "bundle.tar"
    assert result.message == f"cannot download the bundle to {bundle}: No space left on device"
