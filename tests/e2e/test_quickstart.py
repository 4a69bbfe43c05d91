"""``opendeploy quickstart`` run as a user would, non-interactively (stdout is a pipe).

The story must be told (good succeeded, broken failed on host-1 at ValidateService, the automatic
rollback succeeded), the exit status must be 0, and nothing it started may outlive it: no process
whose command line names its directory is left, also after a SIGINT in the middle.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def _processes_naming(directory: Path) -> list[str]:
    """Command lines of live processes that mention ``directory`` (server and agents do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ", 1)[1].split()[0]
        except OSError:
            continue
        if str(directory) in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline}")
    return found


def _quickstart(directory: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "QUICKSTART_PACE": "0.05"}
    env.pop("FORCE_COLOR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "opendeploy", "quickstart", "--dir", str(directory), "--no-live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_quickstart_tells_the_story_and_stops_everything(tmp_path: Path) -> None:
    directory = tmp_path / "qs"
    process = _quickstart(directory)
    out, _ = process.communicate(timeout=180)
    assert process.returncode == 0, out
    assert "\x1b" not in out
    # A pipe gets whole lines, not lines wrapped at 80 columns.
    assert (
        "\napplication quickstart, deployment group demo (quickstart=demo, "
        "CodeDeployDefault.HalfAtATime, rollback on failure)\n"
    ) in out
    ids = dict(re.findall(r"^(good|broken|rollback) +(d-\w{9}) ", out, re.MULTILINE))
    assert set(ids) == {"good", "broken", "rollback"}, out
    assert f"good      {ids['good']}  Succeeded (as expected)" in out
    assert f"broken    {ids['broken']}  Failed (as expected)" in out
    assert f"rollback  {ids['rollback']}  Succeeded (as expected)" in out
    assert "Failed on host-1 at ValidateService, script scripts/validate.sh" in out
    assert f"Rollback: {ids['rollback']}" in out
    assert f"This is the rollback of {ids['broken']}" in out
    assert f"export OPENDEPLOY_DATA_DIR={directory}/data" in out
    # Where the dashboard is, and the key pair that signs in to it.
    credentials = (directory / "data" / "credentials").read_text()
    key_id = re.search(r"aws_access_key_id\s*=\s*(\S+)", credentials)
    assert key_id, credentials
    dashboard = re.search(
        rf"^dashboard (http://127\.0\.0\.1:\d+)/ui/: sign in with access key ID "
        rf"{key_id.group(1)} and its secret \(aws_secret_access_key in "
        rf"{re.escape(str(directory))}/data/credentials\)$",
        out,
        re.MULTILINE,
    )
    assert dashboard, out
    assert f"open the dashboard at {dashboard.group(1)}/ui/" in out
    # Every host ran the good revision, and the rollback again.
    for host in ("host-1", "host-2", "host-3"):
        events = (directory / "hosts" / host / "proof" / "events.log").read_text()
        assert f"ValidateService {ids['good']}" in events
        assert f"ValidateService {ids['rollback']}" in events
    assert "version 1" in (directory / "www" / "index.html").read_text()
    assert _processes_naming(directory) == []
    _suggested_commands_work(out, directory, set(ids.values()))


def _suggested_commands_work(out: str, directory: Path, ids: set[str]) -> None:
    """The "What next" commands, typed as printed: the server again, then list-deployments."""
    serve = re.search(r"^    (opendeploy server .*) &$", out, re.MULTILINE)
    listing = re.search(r"^    (opendeploy list-deployments .*)$", out, re.MULTILINE)
    export = re.search(r"^    export (OPENDEPLOY_DATA_DIR=\S+)$", out, re.MULTILINE)
    assert serve and listing and export, out
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPENDEPLOY_"))}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    name, _, value = export.group(1).partition("=")
    env[name] = value
    server = subprocess.Popen(
        serve.group(1).split(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        listed = subprocess.CompletedProcess[str]([], 1, "", "")
        for _ in range(100):
            listed = subprocess.run(
                listing.group(1).split(), env=env, capture_output=True, text=True, timeout=30
            )
            if listed.returncode == 0 or "Could not connect" not in listed.stderr:
                break
            time.sleep(0.2)
        assert listed.returncode == 0, (listed.stdout, listed.stderr)
        assert ids <= set(re.findall(r"d-\w{9}", listed.stdout)), listed.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_quickstart_interrupted_stops_what_it_started(tmp_path: Path) -> None:
    directory = tmp_path / "qs"
    process = _quickstart(directory)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Created deployment"):
            break
    assert _processes_naming(directory), "".join(seen)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 1, "".join(seen) + rest
    assert "Interrupted: stopping the server and the agents." in rest
    assert _processes_naming(directory) == []
